//! Re-vectorization: after an import whose vectors could not be restored (another model,
//! or an archive without vectors, as every Lumiverse 1.1 export is), the rows marked for it
//! are embedded again through the user's OpenAI-compatible embeddings endpoint.
//! `config` (the `embeddingConfig` setting and key), `client` (the HTTP request with its
//! retries), `runs` (one run per user: queue, batches, LanceDB, marks), `http` (routes),
//! `forward` (a run's requests sent to the node running it).

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod forward;
pub(crate) mod http;
pub(crate) mod runs;

pub use config::{EmbeddingSettings, SETTING_KEY};
pub use runs::{Embeddings, RunStatus};
