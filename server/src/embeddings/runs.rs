//! [`Embeddings`]: one re-vectorization run per user at a time, on the async runtime. A run
//! queues the user's rows that wait for a vector, then takes them `batch_size` at a time:
//! their text goes to the provider, the vectors are written to LanceDB (replacing any row
//! of the same id), and the rows are marked vectorized and leave the queue in one
//! transaction — so a run killed at any point resumes without duplicates, and memory holds
//! one batch whatever the number of rows. Requests to providers are limited per instance;
//! the vectors count against the account's quota like an import's.

use crate::embeddings::config::EmbeddingRules as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{EmbeddingClient, RUN_ATTEMPTS};
use super::config::{EmbeddingSettings, LEGACY_SECRET_KEY, SETTING_KEY};
use crate::storage::sqlite::embeddings::{SourceKind, SourceRow};
use crate::storage::{Store, VectorRow};

/// Runs remembered (finished ones too, for their status) before finished ones are dropped.
const REMEMBERED_RUNS: usize = 10_000;
/// Vectors are written to LanceDB this many rows at a time, or at least this often: each
/// write is a new table version and fragment, and thousands of small ones make every later
/// write slower.
const WRITE_ROWS: usize = 2_000;
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Vectors embedded but not yet written, with the rows they belong to.
struct WriteBuffer {
    tables: HashMap<&'static str, Vec<VectorRow>>,
    marked: Vec<(SourceKind, String)>,
    /// Ids of vectors an interrupted attempt may have written.
    rewritten: std::collections::HashSet<String>,
    since: Instant,
}

impl Default for WriteBuffer {
    fn default() -> Self {
        Self {
            tables: HashMap::new(),
            marked: Vec::new(),
            rewritten: std::collections::HashSet::new(),
            since: Instant::now(),
        }
    }
}

impl WriteBuffer {
    fn add(&mut self, rows: &[SourceRow], vectors: Vec<VectorRow>) {
        for (row, vector) in rows.iter().zip(vectors) {
            if row.written {
                self.rewritten.insert(vector.id.clone());
            }
            self.marked.push((row.kind, row.id.clone()));
            self.tables.entry(row.kind.vector_table()).or_default().push(vector);
        }
    }
}

/// A storage failure during a run (logged; the run reports `failed`).
#[derive(Debug, thiserror::Error)]
enum StorageError {
    #[error(transparent)]
    Database(#[from] crate::storage::sqlite::DbError),
    #[error(transparent)]
    Vectors(#[from] crate::storage::vectors::VectorError),
}

/// Why a run stopped before its end.
#[derive(Debug)]
enum RunStop {
    Cancelled,
    /// The provider refused, failed or could not be reached.
    Provider(super::client::EmbedError),
    /// The vectors do not fit in the account's quota.
    QuotaExceeded(crate::failure::QuotaExceeded),
    /// The account's rows could not be read or written (logged).
    Storage,
}

impl RunStop {
    /// The status the run ends with.
    fn code(&self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled",
            Self::Provider(error) => error.code(),
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::Storage => "failed",
        }
    }

    /// Why, in words (none for a cancel: the user asked for it).
    fn message(&self) -> Option<String> {
        match self {
            Self::Cancelled | Self::Provider(super::client::EmbedError::Cancelled) => None,
            Self::Provider(error) => Some(error.to_string()),
            Self::QuotaExceeded(exceeded) => Some(format!("the vectors do not fit: {exceeded}")),
            Self::Storage => Some("the server could not read or write the account's rows".into()),
        }
    }
}

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the embeddings setting was restored from a backup and is switched off until you check and save it in this account"
    )]
    NotConfirmed,
    #[error(transparent)]
    Database(#[from] crate::storage::sqlite::DbError),
}

pub use lvbak_core::protocol::RunStatus;

struct Run {
    cancel: CancellationToken,
    status: watch::Sender<RunStatus>,
    running: bool,
}

/// The user's entry in `runs`, made (not running) if missing. Finished runs are forgotten
/// once the map holds `REMEMBERED_RUNS`: one entry per account at most, running ones kept.
fn run_entry<'a>(
    runs: &'a mut HashMap<String, Run>,
    user_id: &str,
    initial: impl FnOnce() -> RunStatus,
) -> &'a mut Run {
    if runs.len() >= REMEMBERED_RUNS && !runs.contains_key(user_id) {
        runs.retain(|_, run| run.running);
    }
    runs.entry(user_id.to_string()).or_insert_with(|| Run {
        cancel: CancellationToken::new(),
        status: watch::Sender::new(initial()),
        running: false,
    })
}

/// Every user's runs, the provider client and the instance's request limit.
pub struct Embeddings {
    store: Arc<Store>,
    client: EmbeddingClient,
    quota: Option<u64>,
    runs: Mutex<HashMap<String, Run>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Embeddings {
    /// `concurrent_requests` requests to providers at once across the instance; `quota`
    /// the instance's per-account quota; `private_hosts` whether URLs may reach this
    /// machine's own network.
    pub fn new(store: Arc<Store>, concurrent_requests: usize, quota: Option<u64>, private_hosts: bool) -> Self {
        Self::with_timeout(store, concurrent_requests, quota, private_hosts, crate::config::DEFAULT_EMBEDDING_TIMEOUT)
    }

    /// As [`Self::new`], with the longest a provider request may take.
    pub fn with_timeout(
        store: Arc<Store>,
        concurrent_requests: usize,
        quota: Option<u64>,
        private_hosts: bool,
        longest_timeout: std::time::Duration,
    ) -> Self {
        Self::bind_keys_saved_before_bindings(&store);
        Self {
            store,
            client: EmbeddingClient::new(private_hosts, concurrent_requests, longest_timeout),
            quota,
            runs: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    pub fn client(&self) -> &EmbeddingClient {
        &self.client
    }

    /// The user's settings as they take effect: as stored, except that a setting restored
    /// from a backup and not confirmed in this account reads as switched off.
    pub fn settings(&self, user_id: &str) -> Result<EmbeddingSettings, crate::storage::sqlite::DbError> {
        let mut settings = EmbeddingSettings::from_setting(self.store.db.setting(user_id, SETTING_KEY)?.as_deref());
        if self.store.db.embedding_unconfirmed(user_id)? {
            settings.restored = true;
            settings.enabled = false;
        }
        Ok(settings)
    }

    /// The user's API key for `settings`' provider (or the older shared name), when it was
    /// saved for the endpoint `settings` sends to: a key is never sent anywhere else.
    pub fn api_key(
        &self,
        user_id: &str,
        settings: &EmbeddingSettings,
    ) -> Result<Option<zeroize::Zeroizing<String>>, crate::storage::sqlite::DbError> {
        let endpoint = settings.endpoint();
        let bound = self.store.db.key_endpoints(user_id)?;
        let secrets = self.store.db.secrets_of(user_id)?;
        for wanted in [settings.secret_key().as_str(), LEGACY_SECRET_KEY] {
            let Some(stored) = secrets.iter().find(|s| s.key == wanted) else { continue };
            if bound.get(wanted).and_then(Option::as_deref) == Some(endpoint.as_str()) {
                return Ok(self.store.identity.open(user_id, stored).ok());
            }
        }
        Ok(None)
    }

    /// Where the key `settings` would use is allowed to go, when a key is stored but may
    /// not be sent to `settings`' endpoint: `Some(None)` for a key restored from a backup
    /// and bound nowhere yet, `Some(Some(url))` for one saved for another URL.
    pub fn key_bound_elsewhere(
        &self,
        user_id: &str,
        settings: &EmbeddingSettings,
    ) -> Result<Option<Option<String>>, crate::storage::sqlite::DbError> {
        if self.api_key(user_id, settings)?.is_some() {
            return Ok(None);
        }
        let bound = self.store.db.key_endpoints(user_id)?;
        let secrets = self.store.db.secrets_of(user_id)?;
        let own = settings.secret_key();
        let stored =
            [own.as_str(), LEGACY_SECRET_KEY].into_iter().find(|wanted| secrets.iter().any(|s| s.key == *wanted));
        Ok(stored.map(|key| bound.get(key).cloned().flatten()))
    }

    /// Binds the embeddings keys stored before keys were bound to endpoints to the endpoint
    /// their account's setting names now ("the URL stored then"). Runs when a process
    /// starts; keys stored since always have a binding.
    fn bind_keys_saved_before_bindings(store: &Store) {
        let keys = match store.db.keys_without_endpoint() {
            Ok(keys) => keys,
            Err(error) => return tracing::warn!("cannot read unbound embeddings keys: {error}"),
        };
        for key in keys {
            let endpoint = EmbeddingSettings::from_setting(key.setting.as_deref()).endpoint();
            if let Err(error) = store.db.bind_key_saved_earlier(&key.user_id, &key.key, &endpoint) {
                tracing::warn!("cannot bind an embeddings key of {}: {error}", key.user_id);
            }
        }
    }

    /// Where the user's run stands (pending read from the queue when no run is going).
    pub fn status(&self, user_id: &str) -> Result<RunStatus, crate::storage::sqlite::DbError> {
        let current = self.runs.lock().get(user_id).map(|run| run.status.borrow().clone());
        match current {
            Some(status) if status.status == "running" => Ok(status),
            Some(mut status) => {
                status.pending = self.store.db.queued_embeddings(user_id)?;
                Ok(status)
            }
            None => {
                let settings = self.settings(user_id)?;
                let pending = self.store.db.queued_embeddings(user_id)?;
                Ok(RunStatus {
                    status: "idle".into(),
                    pending,
                    total: pending,
                    batch_size: settings.batch_size,
                    model: settings.model,
                    ..RunStatus::default()
                })
            }
        }
    }

    /// A receiver of the user's run status as it changes (a run is not started for it).
    pub fn watch(&self, user_id: &str) -> Result<watch::Receiver<RunStatus>, crate::storage::sqlite::DbError> {
        let initial = self.status(user_id)?;
        let mut runs = self.runs.lock();
        Ok(run_entry(&mut runs, user_id, || initial).status.subscribe())
    }

    /// Starts the user's run unless one is going; its status. A setting restored from a
    /// backup runs nothing until the user confirms it.
    pub fn start(self: &Arc<Self>, user_id: &str) -> Result<RunStatus, StartError> {
        let settings = self.settings(user_id)?;
        if settings.restored {
            return Err(StartError::NotConfirmed);
        }
        let pending = self.store.db.queue_pending_embeddings(user_id, &settings.kinds())?;
        let status = RunStatus {
            status: "running".into(),
            pending,
            total: pending,
            batch_size: settings.batch_size,
            model: settings.model.clone(),
            ..RunStatus::default()
        };
        let cancel = CancellationToken::new();
        {
            let mut runs = self.runs.lock();
            let run = run_entry(&mut runs, user_id, || status.clone());
            if run.running {
                return Ok(run.status.borrow().clone());
            }
            run.cancel = cancel.clone();
            run.running = true;
            run.status.send_replace(status.clone());
        }
        let Some(runtime) = &self.runtime else {
            return Ok(status);
        };
        let (this, user) = (self.clone(), user_id.to_string());
        runtime.spawn(async move {
            let ended = this.run(&user, settings, &cancel).await;
            this.end(&user, ended);
        });
        Ok(status)
    }

    /// Queues the user's rows that wait for a vector, and starts their run if their settings
    /// let it start by itself: enabled, and a key stored (or a provider that needs none,
    /// such as a local server). Called after an import marked rows and after a restart.
    pub fn resume(self: &Arc<Self>, user_id: &str) {
        let startable = self.settings(user_id).and_then(|settings| {
            self.store.db.queue_pending_embeddings(user_id, &settings.kinds())?;
            let keyless = settings.provider == "openai-compatible";
            Ok(settings.enabled && (keyless || self.api_key(user_id, &settings)?.is_some()))
        });
        match startable {
            Ok(true) => {
                if let Err(error) = self.start(user_id) {
                    tracing::warn!("re-vectorization of {user_id} did not start: {error}");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!("re-vectorization of {user_id}: {error}"),
        }
    }

    /// Resumes every run a previous process left with rows queued.
    pub fn resume_all(self: &Arc<Self>) {
        match self.store.db.users_with_queued_embeddings() {
            Ok(users) => users.iter().for_each(|user| self.resume(user)),
            Err(error) => tracing::warn!("cannot list queued embeddings: {error}"),
        }
    }

    /// Asks the user's run to stop; whether one was running.
    pub fn cancel(&self, user_id: &str) -> bool {
        let runs = self.runs.lock();
        match runs.get(user_id).filter(|run| run.running) {
            Some(run) => {
                run.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether the user's run is going.
    pub fn is_running(&self, user_id: &str) -> bool {
        self.runs.lock().get(user_id).is_some_and(|run| run.running)
    }

    /// Waits for the user's run to end; its final status.
    pub async fn finished(&self, user_id: &str) -> Option<RunStatus> {
        let mut receiver = {
            let runs = self.runs.lock();
            runs.get(user_id)?.status.subscribe()
        };
        let ended = receiver.wait_for(|status| status.status != "running").await.ok()?.clone();
        Some(ended)
    }

    fn publish(&self, user_id: &str, change: impl FnOnce(&mut RunStatus)) {
        let runs = self.runs.lock();
        if let Some(run) = runs.get(user_id) {
            run.status.send_modify(change);
        }
    }

    fn end(&self, user_id: &str, ended: Result<(), RunStop>) {
        let pending = self.store.db.queued_embeddings(user_id).unwrap_or_default();
        let mut runs = self.runs.lock();
        if let Some(run) = runs.get_mut(user_id) {
            run.running = false;
            run.status.send_modify(|status| {
                status.pending = pending;
                match ended {
                    Ok(()) => status.status = "complete".into(),
                    Err(stop) => {
                        status.failed = pending;
                        status.error = stop.message();
                        status.status = stop.code().into();
                    }
                }
            });
        }
    }

    /// The run itself; why it stopped early, if it did.
    async fn run(&self, user_id: &str, settings: EmbeddingSettings, cancel: &CancellationToken) -> Result<(), RunStop> {
        let storage = |error: &dyn std::fmt::Display| {
            tracing::error!("re-vectorization of {user_id}: {error}");
            RunStop::Storage
        };
        let key = self.blocking(|this| this.api_key(user_id, &settings)).await.map_err(|e| storage(&e))?;
        let started = Instant::now();
        let mut dimensions = settings.dimensions;
        let mut buffer = WriteBuffer::default();
        let mut done = 0u64;
        // Pages go forward through the queue; rows held in the buffer are still queued until
        // written, so a pass ends at the queue's end and another starts from its beginning
        // (rows queued meanwhile); a pass that finds nothing ends the run.
        let mut cursor: Option<(String, String)> = None;
        let mut found_in_pass = false;
        loop {
            let batch = settings.batch_size;
            let after = cursor.as_ref().map(|(source, id)| (source.as_str(), id.as_str()));
            let rows = match cancel.is_cancelled() {
                true => Vec::new(),
                false => self
                    .blocking(|this| this.store.db.next_embedding_sources(user_id, after, batch))
                    .await
                    .map_err(|e| storage(&e))?,
            };
            if rows.is_empty() {
                done += self
                    .write_out(user_id, &mut buffer, &settings.model, dimensions, started, done)
                    .await
                    .map_err(|e| storage(&e))?;
                if cancel.is_cancelled() {
                    return Err(RunStop::Cancelled);
                }
                if cursor.is_none() || !found_in_pass {
                    return Ok(());
                }
                (cursor, found_in_pass) = (None, false);
                continue;
            }
            found_in_pass = true;
            cursor = rows.last().map(|row| (row.kind.source_type().to_string(), row.id.clone()));
            let texts: Vec<String> = rows.iter().map(embedded_text).collect();
            let key = key.as_deref().map(String::as_str);
            let answer = self.client.embed(user_id, &settings, key, &texts, RUN_ATTEMPTS, cancel).await;
            let vectors = match answer {
                Ok(vectors) => vectors,
                Err(error) => {
                    // What was embedded before the stop is kept.
                    self.write_out(user_id, &mut buffer, &settings.model, dimensions, started, done)
                        .await
                        .map_err(|e| storage(&e))?;
                    return Err(RunStop::Provider(error));
                }
            };
            if dimensions.is_none() {
                // The first answer fixes the dimension, as Lumiverse's connection test does.
                let found = vectors[0].len() as u32;
                self.blocking(|this| this.remember_dimensions(user_id, found)).await.map_err(|e| storage(&e))?;
                dimensions = Some(found);
            }
            let now = crate::util::now();
            let vector_rows: Vec<VectorRow> =
                rows.iter().zip(vectors).map(|(row, vector)| vector_row(user_id, row, vector, now)).collect();
            let bytes: u64 = vector_rows.iter().map(VectorRow::stored_bytes).sum();
            let quota = self.quota;
            let charged = self.blocking(|this| this.store.db.charge_usage(user_id, bytes, quota)).await;
            if let Err(error) = charged {
                self.write_out(user_id, &mut buffer, &settings.model, dimensions, started, done)
                    .await
                    .map_err(|e| storage(&e))?;
                return Err(match error {
                    crate::storage::sqlite::DbError::QuotaExceeded(exceeded) => RunStop::QuotaExceeded(exceeded),
                    other => storage(&other),
                });
            }
            buffer.add(&rows, vector_rows);
            if buffer.marked.len() >= WRITE_ROWS.max(batch) || buffer.since.elapsed() >= WRITE_INTERVAL {
                done += self
                    .write_out(user_id, &mut buffer, &settings.model, dimensions, started, done)
                    .await
                    .map_err(|e| storage(&e))?;
            }
        }
    }

    fn progress(&self, user_id: &str, done: u64, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64().max(1e-3);
        self.publish(user_id, |status| {
            status.done = done;
            status.pending = status.total.saturating_sub(done);
            status.rate = done as f64 / elapsed;
        });
    }

    /// Writes the buffered vectors (of `dimension`, known once anything was embedded) and
    /// marks their rows, then publishes the progress; how many rows. The rows are first
    /// recorded as being written, so that after a crash their vectors are replaced, not
    /// added twice; others are added without a lookup (LanceDB has no index on ids: a
    /// lookup scans the table).
    async fn write_out(
        &self,
        user_id: &str,
        buffer: &mut WriteBuffer,
        model: &str,
        dimension: Option<u32>,
        started: Instant,
        done_before: u64,
    ) -> Result<u64, StorageError> {
        let taken = std::mem::take(buffer);
        let mut written = 0;
        if let (false, Some(dimension)) = (taken.marked.is_empty(), dimension) {
            let dimension = dimension as i32;
            self.blocking(|this| this.store.db.mark_writing(user_id, &taken.marked)).await?;
            for (table, rows) in &taken.tables {
                let (again, fresh): (Vec<VectorRow>, Vec<VectorRow>) =
                    rows.iter().cloned().partition(|row| taken.rewritten.contains(&row.id));
                self.store.vectors.replace(table, &again, dimension).await?;
                self.store.vectors.add(table, &fresh, dimension).await?;
            }
            let now = crate::util::now();
            self.blocking(|this| this.store.db.mark_embedded(user_id, &taken.marked, model, now)).await?;
            written = taken.marked.len() as u64;
        }
        self.progress(user_id, done_before + written, started);
        Ok(written)
    }

    /// Stores the dimension the provider answered with in the user's setting.
    fn remember_dimensions(&self, user_id: &str, dimensions: u32) -> Result<(), crate::storage::sqlite::DbError> {
        let stored = self.store.db.setting(user_id, SETTING_KEY)?;
        let update = Map::from_iter([("dimensions".to_string(), json!(dimensions))]);
        let merged = EmbeddingSettings::merge(stored.as_deref(), &update)
            .map_err(|error| crate::storage::sqlite::DbError::Invalid(error.to_string()))?;
        self.store.db.put_setting(user_id, SETTING_KEY, &Value::Object(merged).to_string(), crate::util::now())
    }

    /// Runs storage work where the runtime allows blocking (runs need a multi-threaded
    /// runtime: the server's, and the one `lvbak embed` builds).
    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&Self) -> T + Send) -> T {
        tokio::task::block_in_place(|| work(self))
    }
}

/// The text a row is embedded from, as Lumiverse builds it.
pub fn embedded_text(row: &SourceRow) -> String {
    let content = row.text.replace("\r\n", "\n");
    let content = content.trim();
    match row.kind {
        SourceKind::WorldBookEntry => world_book_search_text(row, content),
        _ => content.to_string(),
    }
}

/// A world-book entry's search text: its title and keys, then its content.
fn world_book_search_text(row: &SourceRow, content: &str) -> String {
    let keys = |text: &Option<String>| -> Vec<String> {
        let list: Vec<String> = text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        list.into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty() && seen.insert(k.to_lowercase()))
            .collect()
    };
    let mut sections = Vec::new();
    if let Some(comment) = row.label.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        sections.push(format!("Entry title: {comment}"));
    }
    let (primary, secondary) = (keys(&row.keys), keys(&row.secondary_keys));
    if !primary.is_empty() {
        sections.push(format!("Primary keys: {}", primary.join(", ")));
    }
    if !secondary.is_empty() {
        sections.push(format!("Secondary keys: {}", secondary.join(", ")));
    }
    sections.push(format!("Content:\n{content}"));
    let text = sections.join("\n\n");
    // Lumiverse collapses runs of blank lines.
    let mut collapsed = String::with_capacity(text.len());
    let mut newlines = 0;
    for c in text.chars() {
        newlines = if c == '\n' { newlines + 1 } else { 0 };
        if newlines <= 2 {
            collapsed.push(c);
        }
    }
    collapsed.trim().to_string()
}

/// The LanceDB row of one embedded source row, in the shape Lumiverse writes.
fn vector_row(user_id: &str, row: &SourceRow, vector: Vec<f32>, now: i64) -> VectorRow {
    let content = row.text.replace("\r\n", "\n").trim().to_string();
    let metadata = match row.kind {
        SourceKind::ChatChunk => json!({
            "autoSplit": false,
            "splitIndex": 0,
            "splitCount": 1,
            "sourceCharCount": content.encode_utf16().count(),
            "sourceTokenCount": row.token_count.unwrap_or_else(|| content.chars().count().div_ceil(4) as i64),
            // Lumiverse re-embeds a chunk whose text no longer has this hash.
            "sourceContentHash": sha1_smol::Sha1::from(content.as_bytes()).digest().to_string(),
        }),
        SourceKind::MemoryConsolidation => json!({"title": row.label}),
        SourceKind::DatabankChunk => row
            .label
            .as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .filter(Value::is_object)
            .unwrap_or(json!({})),
        SourceKind::WorldBookEntry => {
            let list = |text: &Option<String>| -> Value {
                text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(json!([]))
            };
            json!({
                "comment": row.label,
                "key": list(&row.keys),
                "keysecondary": list(&row.secondary_keys),
                "world_book_id": row.owner_id,
                "search_text": embedded_text(row),
                "vector_version": 4,
                "chunk_index": 0,
                "chunk_count": 1,
            })
        }
    };
    let source_type = row.kind.source_type();
    VectorRow {
        id: format!("{user_id}:{source_type}:{}:0", row.id),
        user_id: user_id.to_string(),
        source_type: source_type.to_string(),
        source_id: row.id.clone(),
        owner_id: row.owner_id.clone(),
        chunk_index: 0.0,
        content,
        vector,
        metadata_json: metadata.to_string(),
        updated_at: now as f64,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_world_book_entry_is_embedded_with_its_title_and_keys() {
        let row = SourceRow {
            kind: SourceKind::WorldBookEntry,
            id: "e1".into(),
            owner_id: "b1".into(),
            text: "  The tower.\r\n\r\n\r\n\r\nIt is tall. ".into(),
            token_count: None,
            label: Some("tower".into()),
            keys: Some(r#"["Tower", "tower", " archive "]"#.into()),
            secondary_keys: Some("[]".into()),
            written: false,
        };
        assert_eq!(
            embedded_text(&row),
            "Entry title: tower\n\nPrimary keys: Tower, archive\n\nContent:\nThe tower.\n\nIt is tall."
        );
        let vector = vector_row("u", &row, vec![1.0], 5);
        assert_eq!(vector.id, "u:world_book_entry:e1:0");
        assert_eq!(vector.content, "The tower.\n\n\n\nIt is tall.");
    }

    #[test]
    fn a_chat_chunk_carries_lumiverses_metadata() {
        let row = SourceRow {
            kind: SourceKind::ChatChunk,
            id: "c1".into(),
            owner_id: "chat".into(),
            text: " abc\r\n".into(),
            token_count: Some(7),
            label: None,
            keys: None,
            secondary_keys: None,
            written: false,
        };
        let vector = vector_row("u", &row, vec![1.0], 5);
        let metadata: Value = serde_json::from_str(&vector.metadata_json).unwrap();
        // sha1("abc"), as Node's createHash("sha1") writes it.
        assert_eq!(metadata["sourceContentHash"], "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!((metadata["sourceCharCount"].as_u64(), metadata["sourceTokenCount"].as_u64()), (Some(3), Some(7)));
        assert_eq!(
            (vector.id.as_str(), vector.owner_id.as_str(), vector.content.as_str()),
            ("u:chat_chunk:c1:0", "chat", "abc")
        );
    }
}
