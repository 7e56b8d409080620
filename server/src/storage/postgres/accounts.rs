//! [`AccountStore`] over PostgreSQL: Lumiverse's `user` table holds the accounts, lvbak's
//! `lvbak_credentials` their password hashes and `lvbak_sessions` the hashes of session
//! tokens; quotas and use are `quotas`'s.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{quotas, PostgresStores};
use crate::storage::backend::{AccountStore, SessionUser, UserRecord};
use crate::storage::sqlite::{DbError, DbResult};

fn user_record(row: &Row) -> UserRecord {
    UserRecord { id: row.get(0), username: row.get(1) }
}

#[async_trait]
impl AccountStore for PostgresStores {
    async fn create_user(&self, id: &str, username: &str, password_hash: &str, now: i64) -> DbResult<UserRecord> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // The unique index on the name decides between two nodes creating one name at once.
        let created = transaction
            .execute(
                r#"INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt", username, "displayUsername", role)
                   VALUES ($1, $2, $3, 0, $4, $4, $2, $2, 'user') ON CONFLICT (username) DO NOTHING"#,
                &[&id, &username, &format!("{username}@lvbak.invalid"), &now],
            )
            .await?;
        if created == 0 {
            return Err(DbError::NameTaken(username.to_string()));
        }
        transaction
            .execute(
                "INSERT INTO lvbak_credentials (user_id, password_hash, updated_at) VALUES ($1, $2, $3)",
                &[&id, &password_hash, &now],
            )
            .await?;
        transaction.commit().await?;
        Ok(UserRecord { id: id.to_string(), username: username.to_string() })
    }

    async fn user_by_name(&self, username: &str) -> DbResult<Option<UserRecord>> {
        let client = self.client().await?;
        let row = client.query_opt(r#"SELECT id, username FROM "user" WHERE username = $1"#, &[&username]).await?;
        Ok(row.as_ref().map(user_record))
    }

    async fn user_names(&self) -> DbResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(r#"SELECT username FROM "user" WHERE username IS NOT NULL ORDER BY username COLLATE "C""#, &[])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn user_ids(&self) -> DbResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client.query(r#"SELECT id FROM "user" ORDER BY id COLLATE "C""#, &[]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn credentials(&self, username: &str) -> DbResult<Option<(UserRecord, String)>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                r#"SELECT u.id, u.username, c.password_hash FROM "user" u
                   JOIN lvbak_credentials c ON c.user_id = u.id WHERE u.username = $1"#,
                &[&username],
            )
            .await?;
        Ok(row.map(|row| (user_record(&row), row.get(2))))
    }

    async fn quota_of(&self, user_id: &str) -> DbResult<Option<Option<u64>>> {
        quotas::quota_of(&**self.client().await?, user_id).await
    }

    async fn set_quota(&self, user_id: &str, quota: Option<Option<u64>>) -> DbResult<()> {
        quotas::set_quota(&**self.client().await?, user_id, quota).await
    }

    async fn usage_of(&self, user_id: &str) -> DbResult<Option<u64>> {
        quotas::usage_of(&**self.client().await?, user_id).await
    }

    async fn set_usage(&self, user_id: &str, bytes: u64) -> DbResult<()> {
        quotas::set_usage(&**self.client().await?, user_id, bytes).await
    }

    async fn charge_usage(&self, user_id: &str, bytes: u64, instance_quota: Option<u64>) -> DbResult<()> {
        quotas::charge_usage(&mut **self.client().await?, user_id, bytes, instance_quota).await
    }

    async fn create_session(&self, token_hash: &str, user_id: &str, now: i64, expires_at: i64) -> DbResult<()> {
        let client = self.client().await?;
        // Expired sessions are swept whenever a new one starts.
        client.execute("DELETE FROM lvbak_sessions WHERE expires_at <= $1", &[&now]).await?;
        client
            .execute(
                "INSERT INTO lvbak_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&token_hash, &user_id, &now, &expires_at],
            )
            .await?;
        Ok(())
    }

    async fn session_user(&self, token_hash: &str, now: i64) -> DbResult<Option<SessionUser>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                r#"SELECT u.id, u.username FROM lvbak_sessions s JOIN "user" u ON u.id = s.user_id
                   WHERE s.token_hash = $1 AND s.expires_at > $2"#,
                &[&token_hash, &now],
            )
            .await?;
        Ok(row.as_ref().map(user_record))
    }

    async fn delete_session(&self, token_hash: &str) -> DbResult<()> {
        let client = self.client().await?;
        client.execute("DELETE FROM lvbak_sessions WHERE token_hash = $1", &[&token_hash]).await?;
        Ok(())
    }
}
