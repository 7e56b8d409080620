//! What the server asks of a storage backend, one trait per concern, so that handlers, jobs,
//! imports, exports, re-vectorization and the CLI reach storage without naming SQLite,
//! LanceDB or a folder: [`AccountStore`] (accounts, quotas and disk use, sessions),
//! [`JobLog`] (the record of import jobs), [`SecretStore`] (stored API keys, their endpoint
//! bindings, ticket uses), [`SettingStore`] (settings, the restored embeddings setting),
//! [`EmbeddingQueue`] (re-vectorization's queue and marks), [`ImportRows`] (one import's
//! rows, by `crate::policy`'s rules), [`RowSnapshot`] (one moment's reading of an account's
//! rows), [`FileStorage`] (every account's files), [`VectorStorage`] (their vectors),
//! [`SignInLimits`] (sign-in attempts) and [`PreparedExportStore`] (exports prepared and not
//! yet fetched).
//! `Store` hands them out as trait objects; `sqlite::SqliteStores`, `sqlite::RowApplier`,
//! `sqlite::TableScan`, `files::FileStore` and `vectors::VectorStore` are today's
//! implementations.
//!
//! The service traits are async and object safe (`async_trait`); the import's, the
//! snapshot's and the files' are blocking, called from the import's and export's own
//! threads. Every method is scoped to the account it names: no method answers with another
//! account's data. Rows answer in `DbError` for now; its `Sqlite` variant is SQLite's, and
//! `Postgres`/`PostgresPool` are `postgres::PostgresStores`' (the account-side traits
//! only, so far).

mod accounts;
mod embeddings;
pub(crate) mod file_storage;
pub(crate) mod import_rows;
mod jobs;
pub(crate) mod limits;
pub(crate) mod prepared;
pub(crate) mod row_snapshot;
mod secrets;
mod settings;
pub mod vector_storage;

pub(crate) use accounts::AccountStore;
pub use accounts::{SessionUser, UserRecord};
pub(crate) use embeddings::EmbeddingQueue;
pub use embeddings::{SourceKind, SourceRow};
pub use file_storage::{FileStorage, WriteOutcome};
pub(crate) use import_rows::ImportRows;
pub(crate) use jobs::JobLog;
pub use jobs::JobRecord;
pub(crate) use limits::SignInLimits;
pub(crate) use prepared::PreparedExportStore;
pub use prepared::{ExportPlan, SealedSecrets};
pub(crate) use row_snapshot::RowSnapshot;
pub(crate) use secrets::SecretStore;
pub use secrets::{StoredSecret, TicketUse, UnboundKey};
pub(crate) use settings::SettingStore;
pub use vector_storage::{VectorRow, VectorStorage};

#[cfg(test)]
mod file_storage_tests;
#[cfg(test)]
mod tests;
