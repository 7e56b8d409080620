//! [`PreparedExportStore`]: exports prepared (`POST /export/prepare`) and not yet fetched,
//! by archive id — the [`ExportPlan`] a later `GET` streams, with the account's API keys
//! already sealed for the archive — which any node of an instance must be able to hand
//! out. `export::prepared::PreparedExports`, in the process's memory, is today's.
//!
//! What every backend guarantees: a plan is handed out once, and only to its own user; a
//! user holds a few at most (the oldest goes first) and none past an hour.

use lvbak_core::secrets::SecretsIndex;
use lvbak_core::EncryptedSecret;

use super::UserRecord;

/// The API keys of an archive, sealed under its secrets master key.
#[derive(Clone, Debug)]
pub struct SealedSecrets {
    pub index: SecretsIndex,
    pub records: Vec<EncryptedSecret>,
}

/// What one export will write (see `export::plan`, which makes it).
#[derive(Clone, Debug)]
pub struct ExportPlan {
    pub user: UserRecord,
    pub archive_id: String,
    pub exported_at: i64,
    pub include_vectors: bool,
    pub secrets: Option<SealedSecrets>,
    /// A selective export: the picked items (their closure is computed when the archive is
    /// written), never with API keys.
    pub only: Option<lvbak_core::closure::Selection>,
}

/// Prepared exports not yet fetched (see the module documentation).
#[async_trait::async_trait]
pub(crate) trait PreparedExportStore: Send + Sync {
    /// Keeps a prepared export until it is fetched.
    async fn insert(&self, plan: ExportPlan);
    /// Takes the plan of `archive_id` if it is `user_id`'s and still kept.
    async fn take(&self, archive_id: &str, user_id: &str) -> Option<ExportPlan>;
}
