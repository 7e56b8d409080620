//! Import: the apply engine (`session`), driven from an archive (`from_archive`) or from
//! the browser's verified batches (`batches`), run as jobs (`jobs`) behind the HTTP routes
//! (`http`, `batches`) or by `lvbak import`.

pub mod batches;
pub mod from_archive;
pub mod http;
pub mod jobs;
pub mod session;
