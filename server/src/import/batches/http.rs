//! The batch import's handlers: open a job (and start its worker), take numbered batches
//! (memory reserved before the body is read, frame checked, ledger consulted, queued),
//! answer the vectors check, and commit.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::{GeneralPurpose, STANDARD as BASE64};
use base64::write::EncoderWriter;
use base64::Engine as _;
use lvbak_core::batch::{Batch, MAX_FILE_CHUNK_BYTES};
use lvbak_core::hpke::HpkeKeyPair;
use lvbak_core::secrets::SecretsIndex;
use lvbak_core::upload::{held_id_hash, FileClaim};
use lvbak_core::{FormatError, Manifest};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};

use super::work::{Queued, Work};
use super::worker::Worker;
use super::{BatchUpload, HELD_ROWS_READS, QUEUE};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::export::pipe::pipe;
use crate::import::http::recorded_status;
use crate::import::jobs::{ArchiveFacts, Job};
use crate::memory::{Held, MemoryBudget};
use crate::state::AppState;
use crate::storage::identity::random_bytes;
use crate::storage::sqlite::DbError;
use crate::util::new_id;
use lvbak_core::protocol::{BatchJobOpened, CommitRequest, HeldFiles, JobStatus, VectorsCheck};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/user-data/import/batches", post(open))
        .route(
            "/api/v1/user-data/import/{job_id}/batches/{number}",
            put(receive).layer(DefaultBodyLimit::max(MAX_BATCH_WIRE_BYTES)),
        )
        .route("/api/v1/user-data/import/{job_id}/vectors-check", post(vectors_check))
        .route("/api/v1/user-data/import/{job_id}/held-files", get(held_files))
        .route("/api/v1/user-data/import/{job_id}/held-rows", get(held_rows))
        .route("/api/v1/user-data/import/{job_id}/commit", post(commit))
}

/// A batch on the wire, at most: a file chunk and its header, or deflated NDJSON.
const MAX_BATCH_WIRE_BYTES: usize = MAX_FILE_CHUNK_BYTES + 128 * 1024;
/// How long a batch waits for room in the instance's batch memory before `busy`.
const MEMORY_WAIT: Duration = Duration::from_secs(30);
/// How long a commit waits for a job that failed before it to end.
const COMMIT_WAIT: Duration = Duration::from_secs(120);
/// A batch body may take this long, plus a second per [`SLOWEST_UPLOAD`] bytes, to arrive.
const BODY_GRACE: Duration = Duration::from_secs(15);
const SLOWEST_UPLOAD: u64 = 128 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenRequest {
    manifest: Value,
    #[serde(default)]
    secrets_index: Option<Value>,
    /// The archive's files, for the server to say which it holds already.
    #[serde(default)]
    files: Vec<FileClaim>,
}

/// `POST /api/v1/user-data/import/batches`
async fn open(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(request): Json<OpenRequest>,
) -> AppResult<(StatusCode, Json<BatchJobOpened>)> {
    // The client's manifest is checked as if read from the archive.
    let manifest = Manifest::parse(request.manifest.to_string().as_bytes())?;
    let limit = state.limits().max_entries;
    if request.files.len() as u64 > limit {
        return Err(FormatError::TooManyEntries { limit, actual: request.files.len() as u64 }.into());
    }
    let binding = match request.secrets_index.filter(|v| !v.is_null()) {
        Some(index) => Some(SecretsIndex::parse(index.to_string().as_bytes())?.binding()),
        None => None,
    };
    state.ensure_under_quota(&user.id).await?;
    let reservation = state.jobs().reserve(&user.id)?;
    let store = state.store();
    let job_id = new_id();
    let facts = ArchiveFacts::new(&manifest, binding);
    drop(manifest);
    let key = HpkeKeyPair::from_secret(random_bytes::<32>()).map_err(AppError::internal)?;
    let job = state.jobs().create(&store, state.progress(), reservation, job_id.clone(), facts, None);
    let public_key = BASE64.encode(key.public_key());
    let (queue, receiver) = std::sync::mpsc::sync_channel(QUEUE);
    let inflated = Arc::new(AtomicU64::new(0));
    job.set_batches(Arc::new(BatchUpload {
        ledger: tokio::sync::Mutex::default(),
        next_batch: AtomicU64::new(0),
        public_key: public_key.clone(),
        held_files: parking_lot::Mutex::default(),
        held_rows: parking_lot::Mutex::default(),
        reading_held_rows: AtomicBool::new(false),
        held_rows_reads: AtomicU64::new(0),
        fresh_tables: std::sync::OnceLock::new(),
        accept_vectors: AtomicBool::new(false),
        receiving: std::sync::atomic::AtomicUsize::new(0),
        inflated: inflated.clone(),
        places: Arc::new(Semaphore::new(QUEUE)),
        queue,
    }));
    let (ready, opened) = oneshot::channel();
    let worker = Worker {
        services: state.import_services(),
        job: job.clone(),
        queue: receiver,
        key,
        inflated,
        runtime: tokio::runtime::Handle::current(),
        claims: request.files,
    };
    if let Err(error) = worker.spawn(ready) {
        state.jobs().finish(&store, &job, crate::import::jobs::Outcome::Failed(crate::failure::JobFailure::Internal));
        return Err(AppError::internal(error));
    }
    // The worker answers whether this account can take the archive's vectors, and which
    // files it holds already.
    let (accept_vectors, vector_reason, held_files) = match opened.await {
        Ok(Ok(opened)) => (opened.blocker.is_none(), opened.blocker, opened.held_files),
        Ok(Err(failure)) => {
            return Err(AppError::ImportEnded { status: JobStatus::Failed, error: Some(failure.to_error()) })
        }
        Err(_) => return Err(AppError::internal("the import worker did not start")),
    };
    Ok((
        StatusCode::CREATED,
        Json(BatchJobOpened {
            job_id,
            status: job.status(),
            // What the account's settings say now; the rows may change it (see vectors-check).
            accept_vectors,
            vector_reason,
            hpke_public_key: public_key,
            next_batch: 0,
            max_batch_bytes: MAX_BATCH_WIRE_BYTES,
            held_files,
        }),
    ))
}

/// The answer for a job that has ended: its final status and error, as recorded.
async fn ended(state: &AppState, id: &str, user_id: &str) -> AppError {
    match recorded_status(state, id, user_id).await {
        Ok(report) => AppError::ImportEnded { status: report.status, error: report.error },
        Err(error) => error,
    }
}

/// The open batch job `id` of `user_id`, or the answer saying why there is none.
async fn batches_of(state: &AppState, id: &str, user_id: &str) -> AppResult<(Arc<Job>, Arc<BatchUpload>)> {
    let Some(job) = state.jobs().get(id, user_id) else {
        return Err(ended(state, id, user_id).await);
    };
    let batches = job.batches().ok_or(AppError::NotABatchImport)?;
    Ok((job, batches))
}

impl BatchUpload {
    /// Queues work for the job's worker, waiting for a place in its queue; `false` when
    /// the worker has ended.
    async fn enqueue(&self, work: Work, memory: Option<Held>) -> bool {
        let Ok(place) = self.places.clone().acquire_owned().await else { return false };
        // The places are as many as the queue holds, so this never finds it full.
        self.queue.try_send(Queued { work, place, memory }).is_ok()
    }
}

/// `PUT /api/v1/user-data/import/:jobId/batches/:n`
async fn receive(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, number)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    let (job, batches) = batches_of(&state, &id, &user.id).await?;
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&length| length <= MAX_BATCH_WIRE_BYTES)
        .ok_or(AppError::BatchLength { limit: MAX_BATCH_WIRE_BYTES })?;
    let _receiving = batches.receiving()?;
    let (body, memory) = read_body(state.memory(), body, length).await?;
    let digest: [u8; 32] =
        ring::digest::digest(&ring::digest::SHA256, &body).as_ref().try_into().map_err(AppError::internal)?;
    let claimed = headers.get("x-batch-sha256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !claimed.eq_ignore_ascii_case(&hex::encode(digest)) {
        return Err(AppError::BatchHashMismatch);
    }
    let mut ledger = batches.ledger.lock().await;
    if let Some(answer) = ledger.check(number, &digest)? {
        return Ok(Json(answer).into_response());
    }
    if job.status().is_final() {
        return Err(ended(&state, &id, &user.id).await);
    }
    let limits = state.limits();
    let wire = ledger.wire_bytes() + body.len() as u64;
    if wire > limits.max_archive_bytes {
        return Err(
            FormatError::TooLarge { what: "the upload".into(), limit: limits.max_archive_bytes, actual: wire }.into()
        );
    }
    // The frame, names and chunk bounds are checked before the batch is acknowledged; NDJSON
    // is inflated and every line parsed by the worker, a step at a time.
    let mut batch = Batch::decode(&body)?;
    drop(body);
    // A bundle's parts are each checked as a batch of their own would be, and only a batch
    // that passes them all draws on the held-rows budget (a refused one may come again).
    let mut payload = 0;
    for part in batch.parts_mut() {
        match part {
            Batch::FileChunk { bytes, .. } => payload += bytes.len() as u64,
            Batch::Secrets { sealed, .. } => payload += sealed.len() as u64,
            Batch::Vectors { .. } if !batches.accept_vectors.load(Ordering::Relaxed) => {
                return Err(AppError::VectorsNotAccepted)
            }
            _ => {}
        }
    }
    if batches.inflated.load(Ordering::Relaxed) + payload > limits.max_decompressed_bytes {
        return Err(FormatError::DecompressedCap { limit: limits.max_decompressed_bytes }.into());
    }
    for part in batch.parts_mut() {
        if let Batch::Rows { table, held, .. } = part {
            *held = batches.take_held_rows(table, *held);
        }
    }
    if !batches.enqueue(Work::Batch(batch), Some(memory)).await {
        return Err(ended(&state, &id, &user.id).await);
    }
    batches.inflated.fetch_add(payload, Ordering::Relaxed);
    let answer = ledger.accept(digest, length as u64);
    batches.next_batch.store(ledger.next(), Ordering::Relaxed);
    Ok(Json(answer).into_response())
}

/// How long a batch body of `length` bytes may take to arrive: a grace, then at least
/// [`SLOWEST_UPLOAD`] bytes a second.
fn body_deadline(length: usize) -> Duration {
    BODY_GRACE + Duration::from_secs_f64(length as f64 / SLOWEST_UPLOAD as f64)
}

/// Reads a batch body of `length` bytes (its Content-Length). Room in the instance's memory
/// budget is taken as the bytes arrive, so a sender that stalls holds only what it sent,
/// and only until the body's deadline; a body that is late, short or long is refused.
async fn read_body(memory: &MemoryBudget, body: Body, length: usize) -> AppResult<(Vec<u8>, Held)> {
    let deadline = tokio::time::Instant::now() + body_deadline(length);
    let mut held = memory.hold();
    let mut bytes: Vec<u8> = Vec::new();
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut stream))
            .await
            .map_err(|_| AppError::UploadTimedOut { seconds: body_deadline(length).as_secs() })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| AppError::UploadFailed)?;
        let wanted = bytes.len() + chunk.len();
        if wanted > length {
            return Err(AppError::UploadFailed);
        }
        if bytes.capacity() < wanted {
            let capacity = wanted.max(bytes.capacity().saturating_mul(2)).min(length);
            let wait = MEMORY_WAIT.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if !held.cover(capacity as u64, wait).await {
                return Err(AppError::Busy { what: "uploads", retry_after: Duration::from_secs(2) });
            }
            bytes.reserve_exact(capacity - bytes.len());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() != length {
        return Err(AppError::UploadFailed);
    }
    Ok((bytes, held))
}

/// `POST /api/v1/user-data/import/:jobId/vectors-check`: once the rows are sent, whether the
/// archive's vectors will be taken (the rows may have brought the embedding settings).
async fn vectors_check(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<VectorsCheck>> {
    let (_, batches) = batches_of(&state, &id, &user.id).await?;
    let (answer, decided) = oneshot::channel();
    if !batches.enqueue(Work::CheckVectors(answer), None).await {
        return Err(ended(&state, &id, &user.id).await);
    }
    let Ok(blocker) = decided.await else {
        return Err(ended(&state, &id, &user.id).await);
    };
    batches.accept_vectors.store(blocker.is_none(), Ordering::Relaxed);
    Ok(Json(VectorsCheck { accept_vectors: blocker.is_none(), vector_reason: blocker }))
}

/// `GET /api/v1/user-data/import/:jobId/held-files`: the files the server said it holds
/// when the job opened (for a client resuming the upload, which must leave out the same).
async fn held_files(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<HeldFiles>> {
    let (_, batches) = batches_of(&state, &id, &user.id).await?;
    Ok(Json(HeldFiles { held_files: batches.held_files() }))
}

/// `GET /api/v1/user-data/import/:jobId/held-rows`: per table, the hashes of the row ids the
/// account has now (8 bytes little-endian each, base64), so the client leaves those rows out.
/// The answer is written as the ids are read, through a bounded pipe: the server holds a
/// few chunks of it, whatever the account's size.
async fn held_rows(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (_, batches) = batches_of(&state, &id, &user.id).await?;
    // One reading at a time and a few per job: an account's ids are read whole.
    if batches.held_rows_reads.fetch_add(1, Ordering::AcqRel) >= HELD_ROWS_READS {
        return Err(AppError::RateLimited { retry_after: Duration::from_secs(60) });
    }
    if batches.reading_held_rows.swap(true, Ordering::AcqRel) {
        return Err(AppError::Busy { what: "held rows", retry_after: Duration::from_secs(1) });
    }
    let (mut writer, failer, body) = pipe(tokio::runtime::Handle::current(), state.hosting().export_stall);
    let store = state.store();
    let user_id = user.id.clone();
    tokio::task::spawn_blocking(move || {
        let written = write_held_rows(&store, &user_id, &batches, &mut writer);
        batches.reading_held_rows.store(false, Ordering::Release);
        if let Err(error) = written {
            tracing::warn!("held rows for {user_id}: {error}");
            drop(writer);
            failer.fail(error.to_string());
        }
    });
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// Writes `{"tables": {"<table>": "<base64 of the hashes>", …}}` as the ids are read, and
/// budgets each table's held rows once its ids are all handed out.
fn write_held_rows<W: Write>(
    store: &crate::storage::Store,
    user_id: &str,
    batches: &BatchUpload,
    out: &mut W,
) -> Result<(), DbError> {
    /// The table being written: its name, its ids so far, and the encoder its hashes go
    /// through into the answer.
    struct Table<'e, W: Write> {
        name: &'static str,
        count: u64,
        base64: EncoderWriter<'e, GeneralPurpose, W>,
    }
    impl<W: Write> Table<'_, W> {
        /// Writes the encoder's last bytes and padding and the closing quote, and budgets
        /// the table's rows; gives the answer's writer back.
        fn end(mut self, batches: &BatchUpload) -> std::io::Result<W> {
            let mut out = self.base64.finish()?;
            out.write_all(b"\"")?;
            batches.hand_out_rows(self.name, self.count);
            Ok(out)
        }
    }
    /// Where the answer stands: between tables, or inside one (`out` is then the encoder's).
    enum Answer<'e, W: Write> {
        Between(W),
        In(Box<Table<'e, W>>),
    }
    let io = |error: std::io::Error| DbError::Invalid(error.to_string());
    let broken = || DbError::Invalid("the held rows were written after a failure".into());
    out.write_all(br#"{"tables":{"#).map_err(io)?;
    let mut answer = Some(Answer::Between(out));
    store.db.table_scan()?.held_row_ids(user_id, |name, id| {
        if !matches!(&answer, Some(Answer::In(table)) if table.name == name) {
            let (out, comma) = match answer.take() {
                Some(Answer::In(ended)) => (ended.end(batches).map_err(io)?, ","),
                Some(Answer::Between(out)) => (out, ""),
                None => return Err(broken()),
            };
            out.write_all(format!("{comma}\"{name}\":\"").as_bytes()).map_err(io)?;
            let base64 = EncoderWriter::new(out, &BASE64);
            answer = Some(Answer::In(Box::new(Table { name, count: 0, base64 })));
        }
        let Some(Answer::In(table)) = answer.as_mut() else { return Err(broken()) };
        table.base64.write_all(&held_id_hash(id).to_le_bytes()).map_err(io)?;
        table.count += 1;
        Ok::<(), DbError>(())
    })?;
    let out = match answer {
        Some(Answer::In(ended)) => ended.end(batches).map_err(io)?,
        Some(Answer::Between(out)) => out,
        None => return Err(broken()),
    };
    // The tables with no rows at the first whole reading, whatever this one found.
    let fresh = batches.fresh_tables.get_or_init(|| {
        let read = batches.held_rows.lock().keys().cloned().collect();
        fresh_tables(&read)
    });
    let fresh = serde_json::to_string(fresh).map_err(|error| DbError::Invalid(error.to_string()))?;
    out.write_all(format!(r#"}},"fresh":{fresh}}}"#).as_bytes()).map_err(io)?;
    out.flush().map_err(io)
}

/// The registry's tables not among `held` (those the account has rows of).
fn fresh_tables(held: &std::collections::HashSet<String>) -> Vec<&'static str> {
    lvbak_core::registry::TABLES.iter().map(|spec| spec.name).filter(|name| !held.contains(*name)).collect()
}

/// `POST /api/v1/user-data/import/:jobId/commit`
async fn commit(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(request): Json<CommitRequest>,
) -> AppResult<Response> {
    let (job, batches) = match batches_of(&state, &id, &user.id).await {
        Ok(open) => open,
        // A commit repeated after the job completed answers its status again.
        Err(AppError::ImportEnded { status: JobStatus::Complete, .. }) => {
            return Ok(Json(recorded_status(&state, &id, &user.id).await?).into_response());
        }
        Err(error) => return Err(error),
    };
    {
        let ledger = batches.ledger.lock().await;
        if request.batches != ledger.next() {
            return Err(AppError::BatchGap { next: ledger.next() });
        }
    }
    let (done, finished) = oneshot::channel();
    if !batches.enqueue(Work::Commit(done), None).await {
        return Err(ended(&state, &id, &user.id).await);
    }
    let _ = finished.await;
    // A job that failed before the commit came closes the channel at once, and ends once it
    // has settled what it applied: its own outcome is the answer.
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    while !job.status().is_final() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match job.status() {
        JobStatus::Complete => Ok(Json(job.report()).into_response()),
        status => Err(AppError::ImportEnded { status, error: job.lock().error.clone() }),
    }
}
