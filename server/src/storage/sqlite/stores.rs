//! SQLite as the storage traits' backend (`storage::backend`): [`SqliteStores`] runs each
//! trait method as the `Database` method of the same name on a blocking thread
//! (`spawn_blocking`), as the callers did before the traits, so a statement waiting for the
//! write gate or a busy database never holds up the async runtime.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Database, DbError, DbResult};
use crate::storage::backend::{
    AccountStore, EmbeddingQueue, JobLog, JobRecord, SecretStore, SessionUser, SettingStore, SourceKind, SourceRow,
    StoredSecret, TicketUse, UnboundKey, UserRecord,
};

/// The storage traits over one SQLite database.
pub(crate) struct SqliteStores {
    db: Arc<Database>,
}

impl SqliteStores {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// Runs `work` on the database on a blocking thread. A panic in it (or a runtime shutting
    /// down under it) answers as an error, as the callers' own `spawn_blocking` did.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|stopped| DbError::Invalid(format!("a storage task stopped: {stopped}")))?
    }
}

#[async_trait]
impl AccountStore for SqliteStores {
    async fn create_user(&self, id: &str, username: &str, password_hash: &str, now: i64) -> DbResult<UserRecord> {
        let (id, username, hash) = (id.to_string(), username.to_string(), password_hash.to_string());
        self.run(move |db| db.create_user(&id, &username, &hash, now)).await
    }

    async fn user_by_name(&self, username: &str) -> DbResult<Option<UserRecord>> {
        let username = username.to_string();
        self.run(move |db| db.user_by_name(&username)).await
    }

    async fn user_names(&self) -> DbResult<Vec<String>> {
        self.run(Database::user_names).await
    }

    async fn user_ids(&self) -> DbResult<Vec<String>> {
        self.run(Database::user_ids).await
    }

    async fn credentials(&self, username: &str) -> DbResult<Option<(UserRecord, String)>> {
        let username = username.to_string();
        self.run(move |db| db.credentials(&username)).await
    }

    async fn quota_of(&self, user_id: &str) -> DbResult<Option<Option<u64>>> {
        let user_id = user_id.to_string();
        self.run(move |db| db.quota_of(&user_id)).await
    }

    async fn set_quota(&self, user_id: &str, quota: Option<Option<u64>>) -> DbResult<()> {
        let user_id = user_id.to_string();
        self.run(move |db| db.set_quota(&user_id, quota)).await
    }

    async fn usage_of(&self, user_id: &str) -> DbResult<Option<u64>> {
        let user_id = user_id.to_string();
        self.run(move |db| db.usage_of(&user_id)).await
    }

    async fn set_usage(&self, user_id: &str, bytes: u64) -> DbResult<()> {
        let user_id = user_id.to_string();
        self.run(move |db| db.set_usage(&user_id, bytes)).await
    }

    async fn charge_usage(&self, user_id: &str, bytes: u64, instance_quota: Option<u64>) -> DbResult<()> {
        let user_id = user_id.to_string();
        self.run(move |db| db.charge_usage(&user_id, bytes, instance_quota)).await
    }

    async fn create_session(&self, token_hash: &str, user_id: &str, now: i64, expires_at: i64) -> DbResult<()> {
        let (token_hash, user_id) = (token_hash.to_string(), user_id.to_string());
        self.run(move |db| db.create_session(&token_hash, &user_id, now, expires_at)).await
    }

    async fn session_user(&self, token_hash: &str, now: i64) -> DbResult<Option<SessionUser>> {
        let token_hash = token_hash.to_string();
        self.run(move |db| db.session_user(&token_hash, now)).await
    }

    async fn delete_session(&self, token_hash: &str) -> DbResult<()> {
        let token_hash = token_hash.to_string();
        self.run(move |db| db.delete_session(&token_hash)).await
    }
}

#[async_trait]
impl JobLog for SqliteStores {
    async fn record_job(
        &self,
        id: &str,
        user_id: &str,
        status: &str,
        archive_id: &str,
        started_at: i64,
    ) -> DbResult<()> {
        let (id, user_id, status, archive_id) =
            (id.to_string(), user_id.to_string(), status.to_string(), archive_id.to_string());
        self.run(move |db| db.record_job(&id, &user_id, &status, &archive_id, started_at)).await
    }

    async fn job_record(&self, id: &str, user_id: &str) -> DbResult<Option<JobRecord>> {
        let (id, user_id) = (id.to_string(), user_id.to_string());
        self.run(move |db| db.job_record(&id, &user_id)).await
    }

    async fn finish_job(
        &self,
        id: &str,
        status: &str,
        finished_at: i64,
        error_code: Option<&str>,
        error_message: Option<&str>,
        report: &str,
    ) -> DbResult<()> {
        let (id, status, report) = (id.to_string(), status.to_string(), report.to_string());
        let (code, message) = (error_code.map(str::to_string), error_message.map(str::to_string));
        self.run(move |db| db.finish_job(&id, &status, finished_at, code.as_deref(), message.as_deref(), &report)).await
    }

    async fn fail_unfinished_jobs(&self, now: i64, code: &str, message: &str) -> DbResult<Vec<String>> {
        let (code, message) = (code.to_string(), message.to_string());
        self.run(move |db| db.fail_unfinished_jobs(now, &code, &message)).await
    }
}

#[async_trait]
impl SecretStore for SqliteStores {
    async fn secrets_of(&self, user_id: &str) -> DbResult<Vec<StoredSecret>> {
        let user_id = user_id.to_string();
        self.run(move |db| db.secrets_of(&user_id)).await
    }

    async fn put_secret(&self, user_id: &str, secret: &StoredSecret, now: i64, endpoint: Option<&str>) -> DbResult<()> {
        let (user_id, secret, endpoint) = (user_id.to_string(), secret.clone(), endpoint.map(str::to_string));
        self.run(move |db| db.put_secret(&user_id, &secret, now, endpoint.as_deref())).await
    }

    async fn put_secret_if_absent(
        &self,
        user_id: &str,
        secret: &StoredSecret,
        now: i64,
        endpoint: Option<&str>,
    ) -> DbResult<bool> {
        let (user_id, secret, endpoint) = (user_id.to_string(), secret.clone(), endpoint.map(str::to_string));
        self.run(move |db| db.put_secret_if_absent(&user_id, &secret, now, endpoint.as_deref())).await
    }

    async fn delete_secret(&self, user_id: &str, key: &str) -> DbResult<bool> {
        let (user_id, key) = (user_id.to_string(), key.to_string());
        self.run(move |db| db.delete_secret(&user_id, &key)).await
    }

    async fn record_ticket_use(&self, archive_id: &str, user_id: &str, now: i64) -> DbResult<TicketUse> {
        let (archive_id, user_id) = (archive_id.to_string(), user_id.to_string());
        self.run(move |db| db.record_ticket_use(&archive_id, &user_id, now)).await
    }

    async fn key_endpoints(&self, user_id: &str) -> DbResult<HashMap<String, Option<String>>> {
        let user_id = user_id.to_string();
        self.run(move |db| db.key_endpoints(&user_id)).await
    }

    async fn keys_without_endpoint(&self) -> DbResult<Vec<UnboundKey>> {
        self.run(Database::keys_without_endpoint).await
    }

    async fn bind_key_saved_earlier(&self, user_id: &str, key: &str, endpoint: &str) -> DbResult<()> {
        let (user_id, key, endpoint) = (user_id.to_string(), key.to_string(), endpoint.to_string());
        self.run(move |db| db.bind_key_saved_earlier(&user_id, &key, &endpoint)).await
    }
}

#[async_trait]
impl SettingStore for SqliteStores {
    async fn setting(&self, user_id: &str, key: &str) -> DbResult<Option<String>> {
        let (user_id, key) = (user_id.to_string(), key.to_string());
        self.run(move |db| db.setting(&user_id, &key)).await
    }

    async fn put_setting(&self, user_id: &str, key: &str, value: &str, now: i64) -> DbResult<()> {
        let (user_id, key, value) = (user_id.to_string(), key.to_string(), value.to_string());
        self.run(move |db| db.put_setting(&user_id, &key, &value, now)).await
    }

    async fn embedding_unconfirmed(&self, user_id: &str) -> DbResult<bool> {
        let user_id = user_id.to_string();
        self.run(move |db| db.embedding_unconfirmed(&user_id)).await
    }

    async fn confirm_embedding_setting(&self, user_id: &str, endpoint: &str) -> DbResult<()> {
        let (user_id, endpoint) = (user_id.to_string(), endpoint.to_string());
        self.run(move |db| db.confirm_embedding_setting(&user_id, &endpoint)).await
    }
}

#[async_trait]
impl EmbeddingQueue for SqliteStores {
    async fn queue_pending_embeddings(&self, user_id: &str, kinds: &[SourceKind]) -> DbResult<u64> {
        let (user_id, kinds) = (user_id.to_string(), kinds.to_vec());
        self.run(move |db| db.queue_pending_embeddings(&user_id, &kinds)).await
    }

    async fn queued_embeddings(&self, user_id: &str) -> DbResult<u64> {
        let user_id = user_id.to_string();
        self.run(move |db| db.queued_embeddings(&user_id)).await
    }

    async fn users_with_queued_embeddings(&self) -> DbResult<Vec<String>> {
        self.run(Database::users_with_queued_embeddings).await
    }

    async fn next_embedding_sources(
        &self,
        user_id: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> DbResult<Vec<SourceRow>> {
        let user_id = user_id.to_string();
        let after = after.map(|(source, id)| (source.to_string(), id.to_string()));
        self.run(move |db| {
            let after = after.as_ref().map(|(source, id)| (source.as_str(), id.as_str()));
            db.next_embedding_sources(&user_id, after, limit)
        })
        .await
    }

    async fn mark_writing(&self, user_id: &str, rows: &[(SourceKind, String)]) -> DbResult<()> {
        let (user_id, rows) = (user_id.to_string(), rows.to_vec());
        self.run(move |db| db.mark_writing(&user_id, &rows)).await
    }

    async fn mark_embedded(&self, user_id: &str, rows: &[(SourceKind, String)], model: &str, now: i64) -> DbResult<()> {
        let (user_id, rows, model) = (user_id.to_string(), rows.to_vec(), model.to_string());
        self.run(move |db| db.mark_embedded(&user_id, &rows, &model, now)).await
    }

    async fn reset_embeddings(&self, user_id: &str) -> DbResult<u64> {
        let user_id = user_id.to_string();
        self.run(move |db| db.reset_embeddings(&user_id)).await
    }
}
