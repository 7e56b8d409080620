//! [`SecretStore`] over PostgreSQL: Lumiverse's `secrets` table (values sealed under the
//! instance's identity key, as base64 text), each embeddings key's endpoint binding
//! (`lvbak_key_endpoints`, written in the transaction that stores the key) and ticket uses
//! per archive and account (`lvbak_ticket_uses`).

use std::collections::HashMap;

use async_trait::async_trait;
use tokio_postgres::GenericClient;

use super::PostgresStores;
use crate::storage::backend::{SecretStore, StoredSecret, TicketUse, UnboundKey};
use crate::storage::sqlite::{is_embedding_key, DbResult};

/// SQL true for the secret names that hold embeddings API keys, as SQLite's test of them
/// (`sqlite::embedding_trust`) reads: its `LIKE` ignores ASCII case, hence `ILIKE` here.
pub(super) const EMBEDDING_KEY: &str =
    r"(s.key = 'embedding_api_key' OR s.key ILIKE 'embedding\_api\_key\_%' ESCAPE '\')";

/// Binds an embeddings key to the one endpoint it may be sent to (`None`: to none yet), in
/// the transaction that stores it.
async fn bind_if_embedding_key(
    client: &(impl GenericClient + Sync),
    user_id: &str,
    key: &str,
    endpoint: Option<&str>,
) -> DbResult<()> {
    if is_embedding_key(key) {
        client
            .execute(
                "INSERT INTO lvbak_key_endpoints (user_id, key, endpoint) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, key) DO UPDATE SET endpoint = excluded.endpoint",
                &[&user_id, &key, &endpoint],
            )
            .await?;
    }
    Ok(())
}

#[async_trait]
impl SecretStore for PostgresStores {
    async fn secrets_of(&self, user_id: &str) -> DbResult<Vec<StoredSecret>> {
        let client = self.client().await?;
        let rows = client
            .query(
                r#"SELECT key, encrypted_value, iv, tag FROM secrets WHERE user_id = $1 ORDER BY key COLLATE "C""#,
                &[&user_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| StoredSecret { key: row.get(0), encrypted_value: row.get(1), iv: row.get(2), tag: row.get(3) })
            .collect())
    }

    async fn put_secret(&self, user_id: &str, secret: &StoredSecret, now: i64, endpoint: Option<&str>) -> DbResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "INSERT INTO secrets (key, encrypted_value, iv, tag, updated_at, user_id) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (key, user_id) DO UPDATE SET encrypted_value = excluded.encrypted_value,
                     iv = excluded.iv, tag = excluded.tag, updated_at = excluded.updated_at",
                &[&secret.key, &secret.encrypted_value, &secret.iv, &secret.tag, &now, &user_id],
            )
            .await?;
        bind_if_embedding_key(&*transaction, user_id, &secret.key, endpoint).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn put_secret_if_absent(
        &self,
        user_id: &str,
        secret: &StoredSecret,
        now: i64,
        endpoint: Option<&str>,
    ) -> DbResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let stored = transaction
            .execute(
                "INSERT INTO secrets (key, encrypted_value, iv, tag, updated_at, user_id) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (key, user_id) DO NOTHING",
                &[&secret.key, &secret.encrypted_value, &secret.iv, &secret.tag, &now, &user_id],
            )
            .await?
            > 0;
        if stored {
            bind_if_embedding_key(&*transaction, user_id, &secret.key, endpoint).await?;
        }
        transaction.commit().await?;
        Ok(stored)
    }

    async fn delete_secret(&self, user_id: &str, key: &str) -> DbResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute("DELETE FROM lvbak_key_endpoints WHERE key = $1 AND user_id = $2", &[&key, &user_id])
            .await?;
        let deleted =
            transaction.execute("DELETE FROM secrets WHERE key = $1 AND user_id = $2", &[&key, &user_id]).await?;
        transaction.commit().await?;
        Ok(deleted > 0)
    }

    /// One statement: the first use inserts (`uses` = 1), a later one counts up and keeps
    /// the first use's time, so two uses at once are both counted.
    async fn record_ticket_use(&self, archive_id: &str, user_id: &str, now: i64) -> DbResult<TicketUse> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO lvbak_ticket_uses AS t (archive_id, consumed_at, user_id, uses, last_used_at)
                 VALUES ($1, $2, $3, 1, $2)
                 ON CONFLICT (archive_id, user_id) DO UPDATE SET uses = t.uses + 1, last_used_at = excluded.last_used_at
                 RETURNING uses, consumed_at",
                &[&archive_id, &now, &user_id],
            )
            .await?;
        let (uses, consumed_at): (i64, i64) = (row.get(0), row.get(1));
        let was_reused = uses > 1;
        Ok(TicketUse { was_reused, uses, previously_consumed_at: was_reused.then_some(consumed_at) })
    }

    async fn key_endpoints(&self, user_id: &str) -> DbResult<HashMap<String, Option<String>>> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT key, endpoint FROM lvbak_key_endpoints WHERE user_id = $1", &[&user_id]).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn keys_without_endpoint(&self) -> DbResult<Vec<UnboundKey>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT s.user_id, s.key, (SELECT value FROM settings WHERE key = 'embeddingConfig' AND user_id = s.user_id)
             FROM secrets s WHERE {EMBEDDING_KEY} AND NOT EXISTS
             (SELECT 1 FROM lvbak_key_endpoints b WHERE b.user_id = s.user_id AND b.key = s.key)"
        );
        let rows = client.query(&sql, &[]).await?;
        Ok(rows.iter().map(|row| UnboundKey { user_id: row.get(0), key: row.get(1), setting: row.get(2) }).collect())
    }

    async fn bind_key_saved_earlier(&self, user_id: &str, key: &str, endpoint: &str) -> DbResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO lvbak_key_endpoints (user_id, key, endpoint) VALUES ($1, $2,
                 CASE WHEN EXISTS (SELECT 1 FROM lvbak_embedding_unconfirmed WHERE user_id = $1) THEN NULL ELSE $3 END)
                 ON CONFLICT (user_id, key) DO NOTHING",
                &[&user_id, &key, &endpoint],
            )
            .await?;
        Ok(())
    }
}
