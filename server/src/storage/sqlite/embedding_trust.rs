//! What keeps an archive from deciding where an account's embeddings keys and texts go
//! (migration 0008): an `embeddingConfig` setting restored from a backup stays switched off
//! until the user confirms it (`lvbak_embedding_unconfirmed`), and every embeddings API key
//! is bound to the one endpoint it was saved with (`lvbak_key_endpoints`; NULL until the
//! user confirms a setting, for a key restored from a backup).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Database, DbResult};
use crate::storage::backend::UnboundKey;

/// SQL true for the secret names that hold embeddings API keys (Lumiverse's per-provider
/// `embedding_api_key_<provider>` and the older shared `embedding_api_key`).
const EMBEDDING_KEY: &str = "(key = 'embedding_api_key' OR key LIKE 'embedding\\_api\\_key\\_%' ESCAPE '\\')";

/// Whether a secret name holds an embeddings API key.
pub fn is_embedding_key(key: &str) -> bool {
    key == "embedding_api_key" || key.strip_prefix("embedding_api_key_").is_some_and(|rest| !rest.is_empty())
}

/// Marks the account's embeddings setting as restored and not confirmed (inside an
/// import's transaction: a rolled-back import takes the mark back with the setting).
pub(super) fn mark_unconfirmed(connection: &Connection, user_id: &str, now: i64) -> DbResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO lvbak_embedding_unconfirmed (user_id, restored_at) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET restored_at = excluded.restored_at",
        )?
        .execute(params![user_id, now])?;
    Ok(())
}

impl Database {
    /// Whether the account's embeddings setting came from a backup and the user has not
    /// confirmed it in this account.
    pub fn embedding_unconfirmed(&self, user_id: &str) -> DbResult<bool> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT 1 FROM lvbak_embedding_unconfirmed WHERE user_id = ?1", [user_id], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    /// The endpoint each of the account's embeddings keys is bound to (`None`: to none).
    pub fn key_endpoints(&self, user_id: &str) -> DbResult<HashMap<String, Option<String>>> {
        self.read(|connection| {
            let mut statement =
                connection.prepare("SELECT key, endpoint FROM lvbak_key_endpoints WHERE user_id = ?1")?;
            let bound = statement
                .query_map([user_id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<HashMap<_, _>, _>>()?;
            Ok(bound)
        })
    }

    /// Binds a key stored before keys were bound (see [`Self::keys_without_endpoint`]) to
    /// `endpoint`, unless the account's setting is a restored one not yet confirmed (then
    /// to none: the setting it names was not the user's choice).
    pub fn bind_key_saved_earlier(&self, user_id: &str, key: &str, endpoint: &str) -> DbResult<()> {
        self.write(|connection| {
            connection.execute(
                "INSERT OR IGNORE INTO lvbak_key_endpoints (user_id, key, endpoint) VALUES (?1, ?2,
                 CASE WHEN EXISTS (SELECT 1 FROM lvbak_embedding_unconfirmed WHERE user_id = ?1) THEN NULL ELSE ?3 END)",
                params![user_id, key, endpoint],
            )?;
            Ok(())
        })
    }

    /// The user confirmed the account's embeddings setting, whose requests go to
    /// `endpoint`: it is no longer "restored", and keys restored from a backup (bound to
    /// no endpoint) are bound to this one.
    pub fn confirm_embedding_setting(&self, user_id: &str, endpoint: &str) -> DbResult<()> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            transaction.execute("DELETE FROM lvbak_embedding_unconfirmed WHERE user_id = ?1", [user_id])?;
            transaction.execute(
                "UPDATE lvbak_key_endpoints SET endpoint = ?2 WHERE user_id = ?1 AND endpoint IS NULL",
                [user_id, endpoint],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    /// Embeddings keys stored before keys were bound (no row in `lvbak_key_endpoints`),
    /// each with its account's `embeddingConfig` setting.
    pub fn keys_without_endpoint(&self) -> DbResult<Vec<UnboundKey>> {
        self.read(|connection| {
            let sql = format!(
                "SELECT s.user_id, s.key, (SELECT value FROM settings WHERE key = 'embeddingConfig' AND user_id = s.user_id)
                 FROM secrets s WHERE {EMBEDDING_KEY} AND NOT EXISTS
                 (SELECT 1 FROM lvbak_key_endpoints b WHERE b.user_id = s.user_id AND b.key = s.key)"
            );
            let mut statement = connection.prepare(&sql)?;
            let keys = statement
                .query_map([], |row| Ok(UnboundKey { user_id: row.get(0)?, key: row.get(1)?, setting: row.get(2)? }))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_key_names() {
        for key in ["embedding_api_key", "embedding_api_key_openai", "embedding_api_key_openai-compatible"] {
            assert!(is_embedding_key(key), "{key}");
        }
        for key in ["embedding_api_key_", "embedding_api_keys", "connection_1_api_key", "xembedding_api_key"] {
            assert!(!is_embedding_key(key), "{key}");
        }
    }
}
