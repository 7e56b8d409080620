//! One run's work: pages of the account's queue, a request per batch (through the client's
//! places), vectors charged to the quota and written in large batches with their rows
//! marked, and why a run stops early.

use super::rows::vector_row;
use super::*;

/// Vectors are written to LanceDB this many rows at a time, or at least this often: each
/// write is a new table version and fragment, and thousands of small ones make every later
/// write slower.
pub(super) const WRITE_ROWS: usize = 2_000;

pub(super) const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Vectors embedded but not yet written, with the rows they belong to.
pub(super) struct WriteBuffer {
    tables: HashMap<&'static str, Vec<VectorRow>>,
    marked: Vec<(SourceKind, String)>,
    /// Ids of vectors an interrupted attempt may have written.
    rewritten: std::collections::HashSet<String>,
    since: Instant,
}

/// A storage failure during a run (logged; the run reports `failed`).
#[derive(Debug, thiserror::Error)]
pub(super) enum StorageError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Vectors(#[from] crate::storage::backend::vector_storage::VectorError),
}

/// Why a run stopped before its end.
#[derive(Debug)]
pub(super) enum RunStop {
    Cancelled,
    /// The provider refused, failed or could not be reached.
    Provider(crate::embeddings::client::EmbedError),
    /// The vectors do not fit in the account's quota.
    QuotaExceeded(crate::failure::QuotaExceeded),
    /// The account's rows could not be read or written (logged).
    Storage,
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
    pub(super) fn add(&mut self, rows: &[SourceRow], vectors: Vec<VectorRow>) {
        for (row, vector) in rows.iter().zip(vectors) {
            if row.written {
                self.rewritten.insert(vector.id.clone());
            }
            self.marked.push((row.kind, row.id.clone()));
            self.tables.entry(row.kind.vector_table()).or_default().push(vector);
        }
    }
}

impl RunStop {
    /// The status the run ends with.
    pub(super) fn code(&self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled",
            Self::Provider(error) => error.code(),
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::Storage => "failed",
        }
    }

    /// Why, in words (none for a cancel: the user asked for it).
    pub(super) fn message(&self) -> Option<String> {
        match self {
            Self::Cancelled | Self::Provider(crate::embeddings::client::EmbedError::Cancelled) => None,
            Self::Provider(error) => Some(error.to_string()),
            Self::QuotaExceeded(exceeded) => Some(format!("the vectors do not fit: {exceeded}")),
            Self::Storage => Some("the server could not read or write the account's rows".into()),
        }
    }
}

impl Embeddings {
    /// The run itself; why it stopped early, if it did.
    pub(super) async fn run(
        &self,
        user_id: &str,
        settings: EmbeddingSettings,
        cancel: &CancellationToken,
    ) -> Result<(), RunStop> {
        let storage = |error: &dyn std::fmt::Display| {
            tracing::error!("re-vectorization of {user_id}: {error}");
            RunStop::Storage
        };
        let key = self.api_key(user_id, &settings).await.map_err(|e| storage(&e))?;
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
                    .store
                    .embedding_queue()
                    .next_embedding_sources(user_id, after, batch)
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
                self.remember_dimensions(user_id, found).await.map_err(|e| storage(&e))?;
                dimensions = Some(found);
            }
            let now = crate::util::now();
            let vector_rows: Vec<VectorRow> =
                rows.iter().zip(vectors).map(|(row, vector)| vector_row(user_id, row, vector, now)).collect();
            let bytes: u64 = vector_rows.iter().map(VectorRow::stored_bytes).sum();
            let quota = self.quota;
            let charged = self.store.accounts().charge_usage(user_id, bytes, quota).await;
            if let Err(error) = charged {
                self.write_out(user_id, &mut buffer, &settings.model, dimensions, started, done)
                    .await
                    .map_err(|e| storage(&e))?;
                return Err(match error {
                    DbError::QuotaExceeded(exceeded) => RunStop::QuotaExceeded(exceeded),
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

    pub(super) fn progress(&self, user_id: &str, done: u64, started: Instant) {
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
    pub(super) async fn write_out(
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
            self.store.embedding_queue().mark_writing(user_id, &taken.marked).await?;
            for (table, rows) in &taken.tables {
                let (again, fresh): (Vec<VectorRow>, Vec<VectorRow>) =
                    rows.iter().cloned().partition(|row| taken.rewritten.contains(&row.id));
                self.store.vectors.replace(table, &again, dimension).await?;
                self.store.vectors.add(table, &fresh, dimension).await?;
            }
            let now = crate::util::now();
            self.store.embedding_queue().mark_embedded(user_id, &taken.marked, model, now).await?;
            written = taken.marked.len() as u64;
        }
        self.progress(user_id, done_before + written, started);
        Ok(written)
    }

    /// Stores the dimension the provider answered with in the user's setting.
    pub(super) async fn remember_dimensions(&self, user_id: &str, dimensions: u32) -> Result<(), DbError> {
        let stored = self.store.settings().setting(user_id, SETTING_KEY).await?;
        let update = Map::from_iter([("dimensions".to_string(), Value::from(dimensions))]);
        let merged = EmbeddingSettings::merge(stored.as_deref(), &update)
            .map_err(|error| DbError::Invalid(error.to_string()))?;
        let merged = Value::Object(merged).to_string();
        self.store.settings().put_setting(user_id, SETTING_KEY, &merged, crate::util::now()).await
    }
}
