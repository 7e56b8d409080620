//! [`SettingStore`] over PostgreSQL: Lumiverse's `settings` rows (JSON text by key) and
//! whether an account's embeddings setting is a restored one not yet confirmed
//! (`lvbak_embedding_unconfirmed`); confirming it binds the account's keys bound nowhere.

use async_trait::async_trait;

use super::PostgresStores;
use crate::storage::backend::SettingStore;
use crate::storage::sqlite::DbResult;

#[async_trait]
impl SettingStore for PostgresStores {
    async fn setting(&self, user_id: &str, key: &str) -> DbResult<Option<String>> {
        let client = self.client().await?;
        let row =
            client.query_opt("SELECT value FROM settings WHERE user_id = $1 AND key = $2", &[&user_id, &key]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn put_setting(&self, user_id: &str, key: &str, value: &str, now: i64) -> DbResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO settings (key, value, updated_at, user_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key, user_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                &[&key, &value, &now, &user_id],
            )
            .await?;
        Ok(())
    }

    async fn embedding_unconfirmed(&self, user_id: &str) -> DbResult<bool> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT 1 FROM lvbak_embedding_unconfirmed WHERE user_id = $1", &[&user_id]).await?;
        Ok(row.is_some())
    }

    async fn confirm_embedding_setting(&self, user_id: &str, endpoint: &str) -> DbResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction.execute("DELETE FROM lvbak_embedding_unconfirmed WHERE user_id = $1", &[&user_id]).await?;
        transaction
            .execute(
                "UPDATE lvbak_key_endpoints SET endpoint = $2 WHERE user_id = $1 AND endpoint IS NULL",
                &[&user_id, &endpoint],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}
