//! [`SecretStore`]: each account's stored API keys (sealed under the instance's identity
//! key by `storage::identity`; a backend stores the sealed text and never sees a key) and
//! the uses of export tickets, per archive and account.
//!
//! A backend must guarantee: secrets are per account and per name (one value each); an
//! embeddings key (`sqlite::is_embedding_key`) is bound to the one endpoint it may be sent
//! to in the same write that stores it, and deleting it deletes the binding; a ticket's
//! uses are counted per account, one use at a time.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::storage::sqlite::DbResult;

/// One sealed secret as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    pub key: String,
    pub encrypted_value: String,
    pub iv: String,
    pub tag: String,
}

/// What a ticket's use looked like before this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicketUse {
    pub was_reused: bool,
    pub uses: i64,
    pub previously_consumed_at: Option<i64>,
}

impl TicketUse {
    /// This use as a job reports it (the ticket fitted: it was accepted).
    pub fn answer(&self) -> lvbak_core::protocol::TicketUse {
        lvbak_core::protocol::TicketUse {
            accepted: true,
            was_reused: self.was_reused,
            previously_consumed_at: self.previously_consumed_at,
            uses: self.uses,
        }
    }
}

/// A key stored before keys were bound to endpoints, with its account's setting then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnboundKey {
    pub user_id: String,
    pub key: String,
    pub setting: Option<String>,
}

#[async_trait]
pub(crate) trait SecretStore: Send + Sync {
    /// Every secret of one account, by key name.
    async fn secrets_of(&self, user_id: &str) -> DbResult<Vec<StoredSecret>>;

    /// Inserts or replaces one secret of the account; an embeddings key is bound to
    /// `endpoint`, the one URL it may be sent to (`None`: to none).
    async fn put_secret(&self, user_id: &str, secret: &StoredSecret, now: i64, endpoint: Option<&str>) -> DbResult<()>;

    /// Stores a secret unless the account already has one of that name (the account's
    /// version wins); whether it was stored. A stored embeddings key is bound to `endpoint`.
    async fn put_secret_if_absent(
        &self,
        user_id: &str,
        secret: &StoredSecret,
        now: i64,
        endpoint: Option<&str>,
    ) -> DbResult<bool>;

    /// Removes one secret of the account, and its endpoint binding; whether it existed.
    async fn delete_secret(&self, user_id: &str, key: &str) -> DbResult<bool>;

    /// Records one use of an archive's ticket by `user_id` and says how that account used
    /// it before (FORMAT §6: reuse is an advisory, never a refusal).
    async fn record_ticket_use(&self, archive_id: &str, user_id: &str, now: i64) -> DbResult<TicketUse>;

    /// The endpoint each of the account's embeddings keys is bound to (`None`: to none).
    async fn key_endpoints(&self, user_id: &str) -> DbResult<HashMap<String, Option<String>>>;

    /// Embeddings keys of every account stored before keys were bound (no binding at all),
    /// each with its account's `embeddingConfig` setting.
    async fn keys_without_endpoint(&self) -> DbResult<Vec<UnboundKey>>;

    /// Binds a key stored before keys were bound to `endpoint`, unless the account's
    /// setting is a restored one not yet confirmed (then to none); a bound key keeps its
    /// binding.
    async fn bind_key_saved_earlier(&self, user_id: &str, key: &str, endpoint: &str) -> DbResult<()>;
}
