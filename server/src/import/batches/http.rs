//! The batch import's handlers: open a job (and start its worker), take numbered batches
//! (memory reserved before the body is read, frame checked, ledger consulted, queued),
//! answer the vectors check, and commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lvbak_core::batch::{Batch, MAX_FILE_CHUNK_BYTES};
use lvbak_core::closure::Selection;
use lvbak_core::hpke::HpkeKeyPair;
use lvbak_core::secrets::SecretsIndex;
use lvbak_core::upload::FileClaim;
use lvbak_core::{FormatError, Manifest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};

use super::lookup::{batches_of, ended, wait_until_ended};
use super::work::{Queued, Work};
use super::worker::Worker;
use super::{BatchUpload, QUEUE};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::import::http::recorded_status;
use crate::import::jobs::{ArchiveFacts, Opening};
use crate::memory::{Held, MemoryBudget};
use crate::state::AppState;
use crate::storage::identity::random_bytes;
use crate::storage::UserRecord;
use crate::util::new_id;
use lvbak_core::protocol::{BatchJobOpened, CommitRequest, JobStatus, VectorsCheck};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/user-data/import/batches", post(open))
        .route(
            "/api/v1/user-data/import/{job_id}/batches/{number}",
            put(receive).layer(DefaultBodyLimit::max(MAX_BATCH_WIRE_BYTES)),
        )
        .route("/api/v1/user-data/import/{job_id}/vectors-check", post(vectors_check))
        .route("/api/v1/user-data/import/{job_id}/held-files", get(super::held::held_files))
        .route("/api/v1/user-data/import/{job_id}/held-rows", get(super::held::held_rows))
        .route("/api/v1/user-data/import/{job_id}/commit", post(commit))
}

/// A batch on the wire, at most: a file chunk and its header, or deflated NDJSON.
const MAX_BATCH_WIRE_BYTES: usize = MAX_FILE_CHUNK_BYTES + 128 * 1024;
/// How long a batch waits for room in the instance's batch memory before `busy`.
const MEMORY_WAIT: Duration = Duration::from_secs(30);
/// A batch body may take this long, plus a second per [`SLOWEST_UPLOAD`] bytes, to arrive.
const BODY_GRACE: Duration = Duration::from_secs(15);
const SLOWEST_UPLOAD: u64 = 128 * 1024;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct OpenRequest {
    manifest: Value,
    #[serde(default)]
    secrets_index: Option<Value>,
    /// The archive's files, for the server to say which it holds already.
    #[serde(default)]
    files: Vec<FileClaim>,
    /// A restore preview: the rows that come are previewed, not applied, and the commit
    /// answers the `RestorePreview`.
    #[serde(default)]
    preview: bool,
    /// A selective restore: the picks (`KIND:ID`) whose closure the client sends; what the
    /// import adds must be that closure (`open_selection` otherwise).
    #[serde(default)]
    selection: Option<DeclaredSelection>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeclaredSelection {
    picks: Vec<String>,
    #[serde(default)]
    without_chats: bool,
    /// Restored as a copy: the picks arrive under the ids derived for this importer
    /// (`lvbak_core::closure::copy_id`).
    #[serde(default)]
    as_copy: bool,
}

impl DeclaredSelection {
    /// The picks, each `KIND:ID` (`bad_pick` otherwise, or for none or too many), and
    /// whether they come as a copy.
    fn parsed(&self) -> AppResult<(Selection, bool)> {
        let selection = Selection::from_words(&self.picks, self.without_chats).map_err(AppError::BadPick)?;
        Ok((selection, self.as_copy))
    }
}

/// `POST /api/v1/user-data/import/batches`
async fn open(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(request): Json<OpenRequest>,
) -> AppResult<(StatusCode, Json<BatchJobOpened>)> {
    Ok((StatusCode::CREATED, Json(open_job(&state, &user, request, None).await?)))
}

/// Opens again, here, batch job `job_id` of `user` that a node now gone ran, from the open
/// request it was opened with (`opened`, as `open_job` kept it): the upload starts again
/// from its first batch.
pub(crate) async fn reopen(state: &AppState, user: &UserRecord, job_id: &str, opened: &str) -> AppResult<()> {
    let request: OpenRequest = serde_json::from_str(opened).map_err(AppError::internal)?;
    open_job(state, user, request, Some(job_id.to_string())).await.map(drop)
}

/// Opens a batch job of `user` from its open request: a new one, or (`adopted`) the job of
/// that id which a node now gone ran.
async fn open_job(
    state: &AppState,
    user: &UserRecord,
    request: OpenRequest,
    adopted: Option<String>,
) -> AppResult<BatchJobOpened> {
    let opening = match (&adopted, request.preview) {
        (Some(_), _) => Opening::Adopted,
        (None, true) => Opening::Preview,
        (None, false) => Opening::Batch(serde_json::to_string(&request).map_err(AppError::internal)?),
    };
    // The client's manifest is checked as if read from the archive.
    let manifest = Manifest::parse(request.manifest.to_string().as_bytes())?;
    let limit = state.limits().max_entries;
    if request.files.len() as u64 > limit {
        return Err(FormatError::TooManyEntries { limit, actual: request.files.len() as u64 }.into());
    }
    let selection = request.selection.as_ref().map(DeclaredSelection::parsed).transpose()?;
    let binding = match request.secrets_index.as_ref().filter(|v| !v.is_null()) {
        Some(index) => Some(SecretsIndex::parse(index.to_string().as_bytes())?.binding()),
        None => None,
    };
    let reservation = if request.preview {
        // A preview writes nothing, so an account over its quota may still look.
        state.jobs().reserve_preview(&user.id)?
    } else {
        if adopted.is_none() {
            state.ensure_under_quota(&user.id).await?;
        }
        state.jobs().reserve(&user.id)?
    };
    let store = state.store();
    let job_id = adopted.unwrap_or_else(new_id);
    let facts = ArchiveFacts::new(&manifest, binding);
    drop(manifest);
    let key = HpkeKeyPair::from_secret(random_bytes::<32>()).map_err(AppError::internal)?;
    let job = state.jobs().create(&store, state.progress(), reservation, job_id.clone(), facts, None, opening).await?;
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
        selection,
    };
    if let Err(error) = worker.spawn(ready) {
        let failed = crate::import::jobs::Outcome::Failed(crate::failure::JobFailure::Internal);
        state.jobs().finish(&store, &job, failed).await;
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
    Ok(BatchJobOpened {
        job_id,
        status: job.status(),
        // What the account's settings say now; the rows may change it (see vectors-check).
        accept_vectors,
        vector_reason,
        hpke_public_key: public_key,
        next_batch: 0,
        max_batch_bytes: MAX_BATCH_WIRE_BYTES,
        held_files,
    })
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
    crate::faults::commit_arrived().await;
    let (done, finished) = oneshot::channel();
    // A worker that has stopped (the job failed before the commit came) takes no work: the
    // commit is dropped, and the job's own outcome is the answer once the job has ended — its
    // recorded status may still say `queued` while its end is being recorded.
    let _ = batches.enqueue(Work::Commit(done), None).await;
    let _ = finished.await;
    // A job that failed before the commit came closes the channel at once, and ends once it
    // has settled what it applied: its own outcome is the answer.
    match wait_until_ended(&job).await {
        JobStatus::Complete if job.preview => match job.lock().preview.take() {
            Some(preview) => Ok(Json(preview).into_response()),
            // Taken by a commit before: the job is gone.
            None => Err(AppError::NotFound("import job")),
        },
        JobStatus::Complete => Ok(Json(job.report()).into_response()),
        status => Err(AppError::ImportEnded { status, error: job.lock().error.clone() }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use axum::http::HeaderValue;
    use lvbak_core::batch::{deflate_ndjson, encode_bundle};
    use lvbak_core::protocol::{BatchAccepted, HeldRowsAnswer, JobReport};
    use lvbak_core::upload::HeldRows;
    use sha2::Digest as _;

    use super::super::held::{held_files, held_rows};
    use super::super::testing::{book, ids, rows, sound_chunk, SOUND};
    use super::super::HELD_ROWS_READS;
    use super::*;
    use crate::config::HostingLimits;
    use crate::storage::UserRecord;
    use crate::test_support::{account, test_state};

    const A: &str = "3f1c2a4e-0000-4000-8000-0000000000a1";
    const B: &str = "3f1c2a4e-0000-4000-8000-0000000000b2";

    /// `POST …/batches` with the corpus manifest and these file claims.
    async fn open_job(state: &AppState, user: &UserRecord, files: Vec<FileClaim>) -> AppResult<BatchJobOpened> {
        let manifest = serde_json::from_slice(&lvbak_tests::corpus::manifest_json(&[])).unwrap();
        let request = OpenRequest { manifest, secrets_index: None, files, preview: false, selection: None };
        let (status, Json(opened)) = open(State(state.clone()), CurrentUser(user.clone()), Json(request)).await?;
        assert_eq!(status, StatusCode::CREATED);
        Ok(opened)
    }

    /// `PUT …/batches/:n` with `body`, its length and `hash` (the body's own by default).
    async fn put_with(
        state: &AppState,
        user: &UserRecord,
        job: &str,
        number: u64,
        body: Vec<u8>,
        length: Option<usize>,
        hash: Option<String>,
    ) -> AppResult<BatchAccepted> {
        let mut headers = HeaderMap::new();
        if let Some(length) = length {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        let hash = hash.unwrap_or_else(|| hex::encode(sha2::Sha256::digest(&body)));
        headers.insert("x-batch-sha256", HeaderValue::from_str(&hash).unwrap());
        let path = Path((job.to_string(), number));
        let answer = receive(State(state.clone()), CurrentUser(user.clone()), path, headers, Body::from(body)).await?;
        Ok(serde_json::from_slice(&axum::body::to_bytes(answer.into_body(), usize::MAX).await.unwrap()).unwrap())
    }

    async fn put(
        state: &AppState,
        user: &UserRecord,
        job: &str,
        number: u64,
        body: Vec<u8>,
    ) -> AppResult<BatchAccepted> {
        let length = body.len();
        put_with(state, user, job, number, body, Some(length), None).await
    }

    async fn commit_job(state: &AppState, user: &UserRecord, job: &str, batches: u64) -> AppResult<JobReport> {
        let answer = commit(
            State(state.clone()),
            CurrentUser(user.clone()),
            Path(job.to_string()),
            Json(CommitRequest { batches }),
        )
        .await?;
        Ok(serde_json::from_slice(&axum::body::to_bytes(answer.into_body(), usize::MAX).await.unwrap()).unwrap())
    }

    async fn held_rows_of(state: &AppState, user: &UserRecord, job: &str) -> AppResult<Vec<u8>> {
        let answer = held_rows(State(state.clone()), CurrentUser(user.clone()), Path(job.to_string())).await?;
        Ok(axum::body::to_bytes(answer.into_body(), usize::MAX).await.unwrap().to_vec())
    }

    /// Cancels an open job and waits until it has ended.
    async fn cancel_and_wait(state: &AppState, user: &UserRecord, job: &str) {
        let open = state.jobs().get(job, &user.id).unwrap();
        state.jobs().cancel(&open);
        for _ in 0..500 {
            if state.jobs().get(job, &user.id).is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the job did not end");
    }

    fn error_code<T: std::fmt::Debug>(answer: AppResult<T>) -> String {
        answer.unwrap_err().code().to_string()
    }

    /// A job opens with its key and next batch, and tells which of the claimed files the
    /// account holds, by the server's own reading of its copies (same size and CRC-32).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_opens_with_its_key_and_the_files_the_account_holds() {
        let test = test_state("batch-open", HostingLimits::default()).await;
        let state = &test.state;
        let alice = account(state, "alice").await;
        let opened = open_job(state, &alice, vec![]).await.unwrap();
        assert_eq!((opened.next_batch, opened.held_files.len()), (0, 0));
        assert_eq!(BASE64.decode(&opened.hpke_public_key).unwrap().len(), 32);
        // The corpus manifest names an embedding model this account has not set.
        assert!(!opened.accept_vectors && opened.vector_reason.is_some(), "{opened:?}");
        // One open import per user.
        assert_eq!(error_code(open_job(state, &alice, vec![]).await), "import_running");
        let bundle = encode_bundle(&[
            rows("world_books", 1, &book(A), 0).encode().unwrap(),
            sound_chunk(0, SOUND.len() as u64, SOUND).encode().unwrap(),
        ])
        .unwrap();
        put(state, &alice, &opened.job_id, 0, bundle).await.unwrap();
        let done = commit_job(state, &alice, &opened.job_id, 1).await.unwrap();
        assert_eq!(done.status, JobStatus::Complete, "{done:?}");

        let claim = |name: &str, bytes: &[u8]| FileClaim {
            bucket: "notification-sounds".into(),
            name: name.into(),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        };
        let opened = open_job(state, &alice, vec![claim("completion.mp3", SOUND), claim("completion.wav", SOUND)]);
        let opened = opened.await.unwrap();
        assert_eq!(opened.held_files, ["files/notification-sounds/completion.mp3"]);
        let path = Path(opened.job_id.clone());
        let Json(held) = held_files(State(state.clone()), CurrentUser(alice.clone()), path).await.unwrap();
        assert_eq!(held.held_files, opened.held_files);
        // The same name and size with other bytes is not held.
        cancel_and_wait(state, &alice, &opened.job_id).await;
        let mut other = SOUND.to_vec();
        *other.last_mut().unwrap() = b'!';
        let opened = open_job(state, &alice, vec![claim("completion.mp3", &other)]).await.unwrap();
        assert!(opened.held_files.is_empty());
    }

    /// Every check a batch gets before it is taken — its length, its hash, its number, its
    /// frame, whether vectors may come — refuses it with its code and leaves the job where
    /// it was; the next batch then goes in, a replay answers the same, and other bytes under
    /// a taken number are a conflict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_checked_before_it_is_taken_and_a_refusal_changes_nothing() {
        let test = test_state("batch-receive", HostingLimits::default()).await;
        let state = &test.state;
        let alice = account(state, "alice").await;
        let job = open_job(state, &alice, vec![]).await.unwrap().job_id;
        let good = rows("world_books", 1, &book(A), 0).encode().unwrap();
        let next = || state.jobs().get(&job, &alice.id).unwrap().batches().unwrap().resume_facts().0;
        let refused = [
            ("no length", put_with(state, &alice, &job, 0, good.clone(), None, None).await, "batch_length"),
            (
                "too long",
                put_with(state, &alice, &job, 0, good.clone(), Some(MAX_BATCH_WIRE_BYTES + 1), None).await,
                "batch_length",
            ),
            (
                "another hash",
                put_with(state, &alice, &job, 0, good.clone(), Some(good.len()), Some("00".repeat(32))).await,
                "batch_hash_mismatch",
            ),
            (
                "shorter than said",
                put_with(state, &alice, &job, 0, good.clone(), Some(good.len() + 1), None).await,
                "upload_failed",
            ),
            ("a gap", put(state, &alice, &job, 3, good.clone()).await, "batch_gap"),
            ("not a batch", put(state, &alice, &job, 0, b"PK\x03\x04 not a batch".to_vec()).await, "bad_batch"),
            (
                "a path outside its folder",
                put(state, &alice, &job, 0, rows("../x", 1, &book(A), 0).encode().unwrap()).await,
                "path_traversal",
            ),
            ("vectors not accepted", put(state, &alice, &job, 0, vectors_batch()).await, "vectors_not_accepted"),
        ];
        for (what, answer, code) in refused {
            assert_eq!(error_code(answer), code, "{what}");
            assert_eq!(next(), 0, "{what}");
        }
        let taken = put(state, &alice, &job, 0, good.clone()).await.unwrap();
        assert_eq!(taken, BatchAccepted { batch: 0, accepted: true, next_batch: 1 });
        assert_eq!(put(state, &alice, &job, 0, good.clone()).await.unwrap(), taken, "a replay");
        let other = rows("world_books", 1, &book(B), 0).encode().unwrap();
        assert_eq!(error_code(put(state, &alice, &job, 0, other).await), "batch_conflict");
        assert_eq!(next(), 1);
        let done = commit_job(state, &alice, &job, 1).await.unwrap();
        assert_eq!(ids(state, "world_books", &alice), [A]);
        assert_eq!(done.status, JobStatus::Complete);
    }

    /// One vectors batch of `embeddings`.
    fn vectors_batch() -> Vec<u8> {
        let deflated = deflate_ndjson(b"{}\n").unwrap();
        Batch::Vectors { table: "embeddings".into(), first_line: 1, lines: 1, deflated }.encode().unwrap()
    }

    /// `held-rows` hands out the hashes of the account's ids per table and the tables it
    /// has no rows of (fixed at the first reading); a batch may count as held no more rows
    /// than were handed out; the readings per job are few, and one at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_rows_hand_out_the_accounts_ids_and_bound_what_a_batch_counts_as_held() {
        let test = test_state("batch-held-rows", HostingLimits::default()).await;
        let state = &test.state;
        let alice = account(state, "alice").await;
        let job = open_job(state, &alice, vec![]).await.unwrap().job_id;
        let answer: HeldRowsAnswer = serde_json::from_slice(&held_rows_of(state, &alice, &job).await.unwrap()).unwrap();
        assert!(answer.tables.is_empty());
        let everything: Vec<String> = lvbak_core::registry::TABLES.iter().map(|spec| spec.name.to_string()).collect();
        assert_eq!(answer.fresh.as_ref(), Some(&everything));
        let lines = format!("{}{}", book(A), book(B));
        put(state, &alice, &job, 0, rows("world_books", 1, &lines, 0).encode().unwrap()).await.unwrap();
        commit_job(state, &alice, &job, 1).await.unwrap();

        let job = open_job(state, &alice, vec![]).await.unwrap().job_id;
        let text = held_rows_of(state, &alice, &job).await.unwrap();
        let held = HeldRows::parse(&text).unwrap();
        let expected: std::collections::HashSet<u64> = [A, B].map(lvbak_core::upload::held_id_hash).into();
        assert_eq!(held.tables["world_books"], expected);
        let fresh = held.fresh.unwrap();
        assert!(!fresh.contains("world_books") && fresh.contains("characters") && fresh.len() == everything.len() - 1);
        // The client says it left out five rows; two ids were handed out.
        put(state, &alice, &job, 0, rows("world_books", 1, "", 5).encode().unwrap()).await.unwrap();
        let done = commit_job(state, &alice, &job, 1).await.unwrap();
        let line = &done.outcome.unwrap().summary["world_books"];
        assert_eq!(serde_json::to_value(line).unwrap()["skipped"], 2, "{line:?}");

        let job = open_job(state, &alice, vec![]).await.unwrap().job_id;
        for _ in 0..HELD_ROWS_READS {
            held_rows_of(state, &alice, &job).await.unwrap();
        }
        assert_eq!(error_code(held_rows_of(state, &alice, &job).await), "rate_limited");
    }

    /// A commit needs every batch the client sent; it answers the job's report once the
    /// job completed, again when repeated; a batch after it is refused as the job ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_needs_every_batch_and_answers_again_once_complete() {
        let test = test_state("batch-commit", HostingLimits::default()).await;
        let state = &test.state;
        let alice = account(state, "alice").await;
        let job = open_job(state, &alice, vec![]).await.unwrap().job_id;
        put(state, &alice, &job, 0, rows("world_books", 1, &book(A), 0).encode().unwrap()).await.unwrap();
        assert!(matches!(commit_job(state, &alice, &job, 3).await, Err(AppError::BatchGap { next: 1 })));
        let done = commit_job(state, &alice, &job, 1).await.unwrap();
        assert_eq!((done.status, done.job_id.as_str()), (JobStatus::Complete, job.as_str()));
        let again = commit_job(state, &alice, &job, 1).await.unwrap();
        assert_eq!(again.status, JobStatus::Complete);
        let late = put(state, &alice, &job, 1, rows("world_books", 2, &book(B), 0).encode().unwrap()).await;
        assert_eq!(error_code(late), "import_complete");
        // Another account cannot see the job.
        let bob = account(state, "bob").await;
        assert!(matches!(commit_job(state, &bob, &job, 1).await, Err(AppError::NotFound("import job"))));
        assert_eq!(ids(state, "world_books", &alice), [A]);
    }

    /// A body must be as long as it says, taking room in the memory budget as its bytes
    /// arrive (kept until the batch is applied), and has a deadline by its length.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_arrives_whole_within_the_memory_budget() {
        let budget = MemoryBudget::new(16 << 20);
        let (bytes, held) = read_body(&budget, Body::from(vec![7u8; 1000]), 1000).await.unwrap();
        assert_eq!(bytes, vec![7u8; 1000]);
        assert_eq!((held.mebibytes(), budget.available_mib()), (1, 15));
        drop(held);
        assert_eq!(budget.available_mib(), 16);
        for (length, sent) in [(1001, 1000), (999, 1000)] {
            let answer = read_body(&budget, Body::from(vec![7u8; sent]), length).await;
            assert!(matches!(answer, Err(AppError::UploadFailed)), "{length} for {sent} bytes");
        }
        assert_eq!(budget.available_mib(), 16, "a refused body holds nothing");
        assert_eq!(body_deadline(0), BODY_GRACE);
        assert_eq!(body_deadline(10 * SLOWEST_UPLOAD as usize), BODY_GRACE + Duration::from_secs(10));
    }
}
