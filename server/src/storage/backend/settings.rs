//! [`SettingStore`]: each account's settings (Lumiverse's `settings` rows, JSON text by
//! key) as re-vectorization reads and writes them, and whether the account's embeddings
//! setting is one an import restored and its user has not confirmed.
//!
//! A backend must guarantee: settings are per account and per key (one value each);
//! confirming the embeddings setting clears the restored mark and binds the account's keys
//! that are bound nowhere (restored with a backup) to the confirmed endpoint, in one write.

use async_trait::async_trait;

use crate::storage::sqlite::DbResult;

#[async_trait]
pub(crate) trait SettingStore: Send + Sync {
    /// The JSON text of one of the account's settings.
    async fn setting(&self, user_id: &str, key: &str) -> DbResult<Option<String>>;

    /// Writes one setting of the account (insert or replace).
    async fn put_setting(&self, user_id: &str, key: &str, value: &str, now: i64) -> DbResult<()>;

    /// Whether the account's embeddings setting came from a backup and its user has not
    /// confirmed it in this account.
    async fn embedding_unconfirmed(&self, user_id: &str) -> DbResult<bool>;

    /// The user confirmed the account's embeddings setting, whose requests go to
    /// `endpoint`: it is no longer "restored", and keys bound nowhere are bound to it.
    async fn confirm_embedding_setting(&self, user_id: &str, endpoint: &str) -> DbResult<()>;
}
