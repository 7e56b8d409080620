//! What the server asks of a storage backend, one trait per concern, so that handlers, jobs,
//! re-vectorization and the CLI reach storage without naming SQLite: [`AccountStore`]
//! (accounts, quotas and disk use, sessions), [`JobLog`] (the record of import jobs),
//! [`SecretStore`] (stored API keys, their endpoint bindings, ticket uses), [`SettingStore`]
//! (settings, the restored embeddings setting) and [`EmbeddingQueue`] (re-vectorization's
//! queue and marks). `Store` hands them out as trait objects; `sqlite::SqliteStores` is
//! today's one implementation (SQLite on blocking threads).
//!
//! The traits are async and object safe (`async_trait`), and every method is scoped to the
//! account it names: no method answers with another account's data. They answer in
//! `DbError` for now; its `Sqlite` variant is the one backend's, and a second backend adds
//! its own beside it. The import engine's row writer (`RowApplier`), snapshots
//! (`TableScan`) are not behind these traits yet.

mod accounts;
mod embeddings;
mod jobs;
mod secrets;
mod settings;

pub(crate) use accounts::AccountStore;
pub use accounts::{SessionUser, UserRecord};
pub(crate) use embeddings::EmbeddingQueue;
pub use embeddings::{SourceKind, SourceRow};
pub(crate) use jobs::JobLog;
pub use jobs::JobRecord;
pub(crate) use secrets::SecretStore;
pub use secrets::{StoredSecret, TicketUse, UnboundKey};
pub(crate) use settings::SettingStore;

#[cfg(test)]
mod tests;
