//! The `secrets` table (values sealed under the instance identity key by
//! `storage::identity`, stored here as base64 text) and ticket uses (`lvbak_ticket_uses`,
//! per archive and user).

use rusqlite::{params, Connection, OptionalExtension};

use super::{Database, DbResult};
use crate::storage::backend::{StoredSecret, TicketUse};

/// Binds an embeddings key to the one endpoint it may be sent to (`None`: to none yet), in
/// the transaction that stores it: a key is never stored without its binding.
fn bind_if_embedding_key(connection: &Connection, user_id: &str, key: &str, endpoint: Option<&str>) -> DbResult<()> {
    if super::is_embedding_key(key) {
        connection.execute(
            "INSERT INTO lvbak_key_endpoints (user_id, key, endpoint) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id, key) DO UPDATE SET endpoint = excluded.endpoint",
            params![user_id, key, endpoint],
        )?;
    }
    Ok(())
}

impl Database {
    /// Inserts or replaces one user's secret; an embeddings key is bound to `endpoint`, the
    /// one URL it may be sent to.
    pub fn put_secret(&self, user_id: &str, secret: &StoredSecret, now: i64, endpoint: Option<&str>) -> DbResult<()> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            transaction.execute(
                "INSERT INTO secrets (key, encrypted_value, iv, tag, updated_at, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key, user_id) DO UPDATE SET encrypted_value = excluded.encrypted_value,
                     iv = excluded.iv, tag = excluded.tag, updated_at = excluded.updated_at",
                params![secret.key, secret.encrypted_value, secret.iv, secret.tag, now, user_id],
            )?;
            bind_if_embedding_key(&transaction, user_id, &secret.key, endpoint)?;
            transaction.commit()?;
            Ok(())
        })
    }

    /// Stores a secret unless the user already has one of that name (merge semantics: the
    /// target's version wins); returns whether it was stored. A stored embeddings key is
    /// bound to `endpoint` (`None`: sent nowhere until the user confirms a setting).
    pub fn put_secret_if_absent(
        &self,
        user_id: &str,
        secret: &StoredSecret,
        now: i64,
        endpoint: Option<&str>,
    ) -> DbResult<bool> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = transaction.execute(
                "INSERT OR IGNORE INTO secrets (key, encrypted_value, iv, tag, updated_at, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![secret.key, secret.encrypted_value, secret.iv, secret.tag, now, user_id],
            )?;
            if changed > 0 {
                bind_if_embedding_key(&transaction, user_id, &secret.key, endpoint)?;
            }
            transaction.commit()?;
            Ok(changed > 0)
        })
    }

    /// Every secret of one user, by key name.
    pub fn secrets_of(&self, user_id: &str) -> DbResult<Vec<StoredSecret>> {
        self.read(|connection| {
            let mut statement = connection
                .prepare("SELECT key, encrypted_value, iv, tag FROM secrets WHERE user_id = ?1 ORDER BY key")?;
            let secrets = statement
                .query_map([user_id], |row| {
                    Ok(StoredSecret {
                        key: row.get(0)?,
                        encrypted_value: row.get(1)?,
                        iv: row.get(2)?,
                        tag: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(secrets)
        })
    }

    /// Records one use of a ticket by `user_id` and says how that user used it before
    /// (FORMAT §6: reuse is an advisory, never a refusal). Uses are kept per user: another
    /// account's use of the same archive (or of an id it claims) is not this user's reuse.
    pub fn record_ticket_use(&self, archive_id: &str, user_id: &str, now: i64) -> DbResult<TicketUse> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let before: Option<(i64, i64)> = transaction
                .query_row(
                    "SELECT consumed_at, uses FROM lvbak_ticket_uses WHERE archive_id = ?1 AND user_id = ?2",
                    [archive_id, user_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let result = match before {
                Some((consumed_at, uses)) => {
                    transaction.execute(
                        "UPDATE lvbak_ticket_uses SET uses = uses + 1, last_used_at = ?3 WHERE archive_id = ?1 AND user_id = ?2",
                        params![archive_id, user_id, now],
                    )?;
                    TicketUse { was_reused: true, uses: uses + 1, previously_consumed_at: Some(consumed_at) }
                }
                None => {
                    transaction.execute(
                        "INSERT INTO lvbak_ticket_uses (archive_id, consumed_at, user_id, uses, last_used_at)
                         VALUES (?1, ?2, ?3, 1, ?2)",
                        params![archive_id, now, user_id],
                    )?;
                    TicketUse { was_reused: false, uses: 1, previously_consumed_at: None }
                }
            };
            transaction.commit()?;
            Ok(result)
        })
    }
}
