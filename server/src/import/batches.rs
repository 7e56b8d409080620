//! Import in verified batches (the browser's path): the page checks the archive locally and
//! sends it piece by piece (`lvbak_core::batch`). The server decodes and checks each batch
//! again and applies it through the same [`ImportSession`] as a raw upload, on a thread of
//! the job's own that holds the session between requests.
//!
//! - `POST /api/v1/user-data/import/batches` `{manifest, secretsIndex?}` opens a job and
//!   answers its id, whether vectors will be accepted, and an HPKE public key for secrets.
//! - `PUT /api/v1/user-data/import/:jobId/batches/:n` with `X-Batch-Sha256` sends batch `n`
//!   (0-based). A replay of an accepted batch answers the same; a gap answers 409 with
//!   `nextBatch`, so an interrupted upload resumes where it stopped.
//! - `POST /api/v1/user-data/import/:jobId/commit` `{batches}` applies what is queued, runs
//!   the reference scrub and completes the job.
//!
//! Status, events and cancel are the raw path's endpoints. A batch is acknowledged once its
//! frame is checked (header, names, chunk bounds) and it is queued; a parse stage then
//! inflates it (the job's total held to the decompressed cap) and checks and parses every
//! line while the worker applies the batch before, and the client prepares the next. A
//! payload that fails there ends the job with its code (`bad_json`, `line_too_long`,
//! `decompressed_cap`), which the next request answers.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lvbak_core::batch::{decode_batch_deflated, inflate_ndjson, Batch, PlainSecret, MAX_FILE_CHUNK_BYTES};
use lvbak_core::hpke::{HpkeKeyPair, SECRETS_INFO};
use lvbak_core::registry::TABLES;
use lvbak_core::secrets::SecretsIndex;
use lvbak_core::{check_row, parse_row, parse_row_aligned, FileBucket, FormatError, Manifest, NdjsonLines};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

use super::jobs::{Job, Status};
use super::session::{ImportError, ImportSession};
use crate::app::AppState;
use crate::auth::{now, CurrentUser};
use crate::error::{AppError, AppResult};
use crate::export::plan::new_archive_id;
use crate::progress::Progress;
use crate::storage::files::hex;
use crate::storage::identity::random_bytes;
use crate::storage::sqlite::AlignedRow;
use crate::storage::Store;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/user-data/import/batches", post(open))
        .route(
            "/api/v1/user-data/import/{job_id}/batches/{number}",
            put(receive).layer(DefaultBodyLimit::max(MAX_BATCH_WIRE_BYTES)),
        )
        .route("/api/v1/user-data/import/{job_id}/vectors-check", post(vectors_check))
        .route("/api/v1/user-data/import/{job_id}/commit", post(commit))
}

/// A batch on the wire, at most: a file chunk and its header, or deflated NDJSON.
const MAX_BATCH_WIRE_BYTES: usize = MAX_FILE_CHUNK_BYTES + 128 * 1024;
/// Rows per transaction step, as on the raw path.
const ROWS_PER_STEP: usize = 1000;
/// A job nobody sends to for this long ends `failed` and frees the user's slot.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The server's half of one batch upload.
pub struct BatchUpload {
    /// Payload bytes received so far, inflated (held to the decompressed cap per job).
    inflated: Arc<AtomicU64>,
    /// Set by a vectors check that said yes.
    accept_vectors: AtomicBool,
    ledger: AsyncMutex<Ledger>,
    /// Into the job's parse stage, which forwards to its worker in order.
    sender: mpsc::Sender<Staged>,
}

/// What the parse stage receives: NDJSON still to inflate and parse, or a command to pass on.
enum Staged {
    Parse { table: String, first_line: u64, deflated: Vec<u8>, vectors: bool },
    Ready(Command),
}

#[derive(Default)]
struct Ledger {
    next: u64,
    accepted: BTreeMap<u64, ([u8; 32], Value)>,
    wire_bytes: u64,
}

enum Command {
    /// Rows of a registry table, parsed (and so checked) by the request handler.
    Rows {
        table: String,
        rows: Vec<AlignedRow>,
    },
    /// A table this server does not apply: its lines were checked.
    SkipTable(String),
    Apply(Batch),
    /// The parse stage refused a batch: the job fails with this.
    Fail(FormatError),
    /// Whether vectors may come (`None`) or why not, once the batches before are applied.
    CheckVectors(oneshot::Sender<Option<String>>),
    Commit(oneshot::Sender<()>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenRequest {
    manifest: Value,
    #[serde(default)]
    secrets_index: Option<Value>,
}

/// `POST /api/v1/user-data/import/batches`
async fn open(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(request): Json<OpenRequest>,
) -> AppResult<(StatusCode, Json<Value>)> {
    // The client's manifest is checked as if read from the archive.
    let manifest = Manifest::parse(request.manifest.to_string().as_bytes())?;
    let secrets_index = match request.secrets_index.filter(|v| !v.is_null()) {
        Some(index) => Some(SecretsIndex::parse(index.to_string().as_bytes())?),
        None => None,
    };
    let reservation = state.jobs().reserve(&user.id).ok_or_else(|| {
        AppError::new(StatusCode::CONFLICT, "import_running", "an import of yours is already under way")
    })?;
    let permit = state.jobs().worker().await.ok_or_else(|| AppError::internal("the worker pool is closed"))?;
    let store = state.store();
    let job_id = new_archive_id();
    let job = state.jobs().create(&store, reservation, job_id.clone(), manifest, secrets_index, None);
    let progress = state.progress().open(&job.id, &job.user_id);
    let (sender, receiver) = mpsc::channel(2);
    let (ready, accepted) = oneshot::channel();
    let key = HpkeKeyPair::from_secret(random_bytes::<32>());
    let public_key = BASE64.encode(key.public_key());
    let worker = Worker { state: state.clone(), job: job.clone(), progress, receiver, key: Some(key) };
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name(format!("batch-import-{job_id}"))
        .spawn(move || {
            let _permit = permit;
            let (state, job) = (worker.state.clone(), worker.job.clone());
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run(runtime, ready)));
            if ran.is_err() {
                tracing::error!("batch import {} panicked", job.id);
                let failure = ("internal".to_string(), "the server could not finish the import".to_string());
                state.progress().open(&job.id, &job.user_id).publish(json!({"phase": "failed", "code": failure.0}));
                state.jobs().finish(&state.store(), &job, Status::Failed, None, Some(failure));
            }
        })
        .map_err(AppError::internal)?;
    // The worker answers whether this account can take the archive's vectors.
    let vectors = accepted.await.map_err(|_| AppError::internal("the import worker did not start"))?;
    let (accept_vectors, vector_reason, columns) = match vectors {
        Ok((None, columns)) => (true, None, columns),
        Ok((Some(reason), columns)) => (false, Some(reason), columns),
        Err((code, message)) => return Err(AppError::new(StatusCode::INTERNAL_SERVER_ERROR, &code, message)),
    };
    let limits = state.limits();
    let stage = ParseStage {
        columns,
        line_cap: limits.line_cap(job.manifest.has_line_cap()),
        inflated: Arc::new(AtomicU64::new(0)),
        cap: limits.max_decompressed_bytes,
    };
    let inflated = stage.inflated.clone();
    let (staged_sender, staged) = mpsc::channel(2);
    std::thread::Builder::new()
        .name(format!("batch-parse-{job_id}"))
        .spawn(move || stage.run(staged, sender))
        .map_err(AppError::internal)?;
    job.set_batches(Arc::new(BatchUpload {
        inflated,
        accept_vectors: AtomicBool::new(false),
        ledger: AsyncMutex::default(),
        sender: staged_sender,
    }));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "jobId": job_id,
            "status": job.status().as_str(),
            // What the account's settings say now; the rows may change it (see vectors-check).
            "acceptVectors": accept_vectors,
            "vectorReason": vector_reason,
            "hpkePublicKey": public_key,
            "nextBatch": 0,
            "maxBatchBytes": MAX_BATCH_WIRE_BYTES,
        })),
    ))
}

/// The job's parse stage: inflates NDJSON batches (the job's total held to the decompressed
/// cap), parses rows into aligned rows and checks vector lines (with the archive's line
/// cap), and passes everything on to the worker in arrival order; stops at the first refusal.
struct ParseStage {
    columns: HashMap<String, Vec<String>>,
    line_cap: u64,
    inflated: Arc<AtomicU64>,
    cap: u64,
}

impl ParseStage {
    fn run(self, mut staged: mpsc::Receiver<Staged>, worker: mpsc::Sender<Command>) {
        while let Some(next) = staged.blocking_recv() {
            let command = match next {
                Staged::Ready(command) => command,
                Staged::Parse { table, first_line, deflated, vectors } => {
                    self.parse(table, first_line, &deflated, vectors).unwrap_or_else(Command::Fail)
                }
            };
            let failed = matches!(command, Command::Fail(_));
            if worker.blocking_send(command).is_err() || failed {
                return;
            }
        }
    }

    fn parse(&self, table: String, first_line: u64, deflated: &[u8], vectors: bool) -> Result<Command, FormatError> {
        let ndjson = inflate_ndjson(deflated)?;
        let total = self.inflated.fetch_add(ndjson.len() as u64, Ordering::Relaxed) + ndjson.len() as u64;
        if total > self.cap {
            return Err(FormatError::DecompressedCap { limit: self.cap });
        }
        let cap = self.line_cap;
        if vectors {
            let entry = format!("lancedb/{table}.ndjson");
            for_each_line(&ndjson, &entry, first_line, cap, |number, line| check_row(&entry, number, line))?;
            return Ok(Command::Apply(Batch::Vectors { table, first_line, lines: 0, ndjson }));
        }
        let entry = format!("database/{table}.ndjson");
        match self.columns.get(&table) {
            Some(columns) => {
                let mut rows = Vec::new();
                for_each_line(&ndjson, &entry, first_line, cap, |number, line| {
                    rows.push(parse_row_aligned(&entry, number, line, columns)?);
                    Ok(())
                })?;
                Ok(Command::Rows { table, rows })
            }
            None => {
                for_each_line(&ndjson, &entry, first_line, cap, |number, line| check_row(&entry, number, line))?;
                Ok(Command::SkipTable(table))
            }
        }
    }
}

fn batches_of(state: &AppState, id: &str, user_id: &str) -> AppResult<(Arc<Job>, Arc<BatchUpload>)> {
    let job = state.jobs().get(id, user_id).ok_or_else(|| AppError::not_found("import job"))?;
    let batches = job.batches().ok_or_else(|| {
        AppError::new(StatusCode::CONFLICT, "not_a_batch_import", "this import takes no batches: it was a raw upload")
    })?;
    Ok((job, batches))
}

/// The answer for a job that has ended: its final status and error.
fn ended(job: &Job) -> AppError {
    let state = job.lock();
    let (code, message) = state.error.clone().unwrap_or_else(|| {
        (format!("import_{}", state.status.as_str()), format!("this import is {}", state.status.as_str()))
    });
    AppError::new(StatusCode::CONFLICT, &code, message)
}

fn gap(next: u64) -> Response {
    let body =
        json!({"code": "batch_gap", "error": format!("batch {next} is the next one expected"), "nextBatch": next});
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// `PUT /api/v1/user-data/import/:jobId/batches/:n`
async fn receive(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, number)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let (job, batches) = batches_of(&state, &id, &user.id)?;
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let claimed = headers.get("x-batch-sha256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !claimed.eq_ignore_ascii_case(&hex(&digest)) {
        return Err(AppError::bad_request(
            "batch_hash_mismatch",
            "the batch does not match its X-Batch-Sha256 header (damaged in transit?)",
        ));
    }
    let mut ledger = batches.ledger.lock().await;
    if let Some((hash, answer)) = ledger.accepted.get(&number) {
        if *hash == digest {
            return Ok(Json(answer.clone()).into_response());
        }
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "batch_conflict",
            format!("batch {number} was already received with other contents"),
        ));
    }
    if job.status().is_final() {
        return Err(ended(&job));
    }
    if number != ledger.next {
        return Ok(gap(ledger.next));
    }
    let limits = state.limits();
    if ledger.wire_bytes + body.len() as u64 > limits.max_archive_bytes {
        return Err(FormatError::TooLarge {
            what: "the upload".into(),
            limit: limits.max_archive_bytes,
            actual: ledger.wire_bytes + body.len() as u64,
        }
        .into());
    }
    let size = body.len();
    // The frame, names and chunk bounds are checked before the batch is acknowledged; NDJSON
    // is inflated (held to its cap) and every line parsed by the job's parse stage, which
    // overlaps with the client preparing the next batch and the worker applying the last.
    let staged = match decode_batch_deflated(&body)? {
        Batch::Rows { table, first_line, ndjson, .. } => {
            Staged::Parse { table, first_line, deflated: ndjson, vectors: false }
        }
        Batch::Vectors { table, first_line, ndjson, .. } => {
            Staged::Parse { table, first_line, deflated: ndjson, vectors: true }
        }
        other => Staged::Ready(Command::Apply(other)),
    };
    let payload = match &staged {
        Staged::Ready(Command::Apply(Batch::FileChunk { bytes, .. })) => bytes.len() as u64,
        Staged::Ready(Command::Apply(Batch::Secrets { sealed, .. })) => sealed.len() as u64,
        _ => 0,
    };
    if batches.inflated.load(Ordering::Relaxed) + payload > limits.max_decompressed_bytes {
        return Err(FormatError::DecompressedCap { limit: limits.max_decompressed_bytes }.into());
    }
    if matches!(staged, Staged::Parse { vectors: true, .. }) && !batches.accept_vectors.load(Ordering::Relaxed) {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "vectors_not_accepted",
            "send vectors only after a vectors check that accepts them",
        ));
    }
    if batches.sender.send(staged).await.is_err() {
        return Err(ended(&job));
    }
    ledger.wire_bytes += size as u64;
    batches.inflated.fetch_add(payload, Ordering::Relaxed);
    ledger.next = number + 1;
    let answer = json!({"batch": number, "accepted": true, "nextBatch": ledger.next});
    ledger.accepted.insert(number, (digest, answer.clone()));
    Ok(Json(answer).into_response())
}

/// `POST /api/v1/user-data/import/:jobId/vectors-check`: once the rows are sent, whether the
/// archive's vectors will be taken (the rows may have brought the embedding settings).
async fn vectors_check(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let (job, batches) = batches_of(&state, &id, &user.id)?;
    let (answer, decided) = oneshot::channel();
    if batches.sender.send(Staged::Ready(Command::CheckVectors(answer))).await.is_err() {
        return Err(ended(&job));
    }
    let blocker = decided.await.map_err(|_| ended(&job))?;
    batches.accept_vectors.store(blocker.is_none(), Ordering::Relaxed);
    Ok(Json(json!({"acceptVectors": blocker.is_none(), "vectorReason": blocker})))
}

#[derive(Deserialize)]
struct CommitRequest {
    batches: u64,
}

/// `POST /api/v1/user-data/import/:jobId/commit`
async fn commit(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(request): Json<CommitRequest>,
) -> AppResult<Response> {
    let (job, batches) = batches_of(&state, &id, &user.id)?;
    {
        let ledger = batches.ledger.lock().await;
        if job.status() == Status::Complete {
            return Ok(Json(job.status_json()).into_response());
        }
        if job.status().is_final() {
            return Err(ended(&job));
        }
        if request.batches != ledger.next {
            return Ok(gap(ledger.next));
        }
    }
    let (done, finished) = oneshot::channel();
    if batches.sender.send(Staged::Ready(Command::Commit(done))).await.is_err() {
        return Err(ended(&job));
    }
    let _ = finished.await;
    if job.status() == Status::Complete {
        Ok(Json(job.status_json()).into_response())
    } else {
        Err(ended(&job))
    }
}

/// A file arriving in chunks, staged until complete.
struct PendingFile {
    bucket: FileBucket,
    name: String,
    size: u64,
    written: u64,
    path: PathBuf,
    file: File,
}

/// The thread that owns the job's [`ImportSession`].
struct Worker {
    state: AppState,
    job: Arc<Job>,
    progress: Progress,
    receiver: mpsc::Receiver<Command>,
    /// The HPKE key the browser seals secrets to (handed to the applier).
    key: Option<HpkeKeyPair>,
}

type Failure = (String, String);
/// What a worker answers once its session is open: why vectors may not come (if so), and
/// the columns of every registry table.
type Opened = (Option<String>, HashMap<String, Vec<String>>);

impl Worker {
    fn run(mut self, runtime: tokio::runtime::Handle, ready: oneshot::Sender<Result<Opened, Failure>>) {
        let store = self.state.store();
        let publish = {
            let progress = self.progress.clone();
            move |event: Value| progress.publish(event)
        };
        let opened = (|| {
            let mut session =
                ImportSession::new(&store, &self.job.user_id, self.job.cancel.clone(), &publish, runtime.clone())?;
            let blocker = session.vector_restore_blocker(&self.job.manifest.embedding_config)?;
            let mut columns = HashMap::new();
            for spec in TABLES {
                if let Some(names) = session.columns_of(spec.name)? {
                    columns.insert(spec.name.to_string(), names);
                }
            }
            Ok::<_, ImportError>((session, blocker, columns))
        })();
        let (session, blocker, columns) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let failure = (error.code().to_string(), error.public_message());
                let _ = ready.send(Err(failure.clone()));
                return self.end(&store, Status::Failed, None, Some(failure));
            }
        };
        let _ = ready.send(Ok((blocker.clone(), columns)));
        self.job.set_status(Status::Running);
        self.progress.publish(json!({"phase": "running"}));

        let Some(key) = self.key.take() else { return };
        let job = self.job.clone();
        let mut applier = BatchApplier {
            session,
            pending: None,
            vectors_applied: false,
            store: &store,
            key,
            aad: self.job.id.clone(),
            dimension: self.job.manifest.embedding_config.dimension.unwrap_or(0),
            job: job.as_ref(),
            blocker: blocker.clone(),
        };
        let outcome = self.serve(&runtime, &mut applier);
        if let Some(pending) = applier.pending.take() {
            let _ = std::fs::remove_file(&pending.path);
        }
        match outcome {
            Ok(done) => {
                let BatchApplier { mut session, vectors_applied, blocker, .. } = applier;
                session.set_vector_outcome(match (vectors_applied, blocker) {
                    (true, _) => None,
                    (false, Some(reason)) => Some(reason),
                    (false, None) => Some("the archive's vectors were not sent".into()),
                });
                match session.finish() {
                    Ok(summary) => {
                        self.progress.publish(json!({"phase": "complete", "summary": summary}));
                        self.end(&store, Status::Complete, Some(summary), None);
                    }
                    Err(error) => self.fail(&store, &error),
                }
                let _ = done.send(());
            }
            Err(ImportError::Cancelled) => {
                self.progress.publish(json!({"phase": "cancelled"}));
                self.end(&store, Status::Cancelled, None, None);
            }
            Err(error) => self.fail(&store, &error),
        }
    }

    /// Applies batches until a commit (answered through the returned sender), a failure,
    /// a cancel or the idle timeout.
    fn serve(
        &mut self,
        runtime: &tokio::runtime::Handle,
        applier: &mut BatchApplier<'_>,
    ) -> Result<oneshot::Sender<()>, ImportError> {
        let mut last_seen = Instant::now();
        loop {
            if self.job.cancel.load(Ordering::Relaxed) {
                applier.session.commit()?;
                return Err(ImportError::Cancelled);
            }
            let receiver = &mut self.receiver;
            let next =
                runtime.block_on(async { tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await });
            match next {
                Ok(Some(Command::Rows { table, rows })) => {
                    last_seen = Instant::now();
                    applier.rows(&table, rows)?;
                }
                Ok(Some(Command::SkipTable(table))) => applier.session.skip_table(&table),
                Ok(Some(Command::Fail(error))) => return Err(error.into()),
                Ok(Some(Command::Apply(batch))) => {
                    last_seen = Instant::now();
                    applier.apply(batch, self.state.limits().line_cap(self.job.manifest.has_line_cap()))?;
                }
                Ok(Some(Command::CheckVectors(answer))) => {
                    applier.finish_files()?;
                    applier.session.commit()?;
                    applier.blocker = applier.session.vector_restore_blocker(&self.job.manifest.embedding_config)?;
                    let _ = answer.send(applier.blocker.clone());
                }
                Ok(Some(Command::Commit(done))) => {
                    applier.finish_files()?;
                    applier.session.commit()?;
                    return Ok(done);
                }
                Ok(None) => return Err(ImportError::Cancelled),
                Err(_) if last_seen.elapsed() > IDLE_TIMEOUT => {
                    applier.session.commit()?;
                    return Err(FormatError::Truncated { what: "the upload (no batch for 15 minutes)".into() }.into());
                }
                Err(_) => applier.session.commit()?,
            }
        }
    }

    fn fail(&self, store: &Store, error: &ImportError) {
        if !matches!(error, ImportError::Format(_)) {
            tracing::error!("batch import {} failed: {error}", self.job.id);
        }
        let failure = (error.code().to_string(), error.public_message());
        self.progress.publish(json!({"phase": "failed", "code": failure.0, "error": failure.1}));
        self.end(store, Status::Failed, None, Some(failure));
    }

    fn end(
        &self,
        store: &Store,
        status: Status,
        summary: Option<super::session::ImportSummary>,
        error: Option<Failure>,
    ) {
        self.state.jobs().finish(store, &self.job, status, summary, error);
    }
}

/// Applies decoded batches to the session.
struct BatchApplier<'a> {
    session: ImportSession<'a>,
    pending: Option<PendingFile>,
    vectors_applied: bool,
    store: &'a Store,
    key: HpkeKeyPair,
    /// What the seal of the secrets is bound to: the job id.
    aad: String,
    /// The archive's embedding dimension.
    dimension: u32,
    job: &'a Job,
    /// Why vectors may not be restored, as last decided.
    blocker: Option<String>,
}

impl BatchApplier<'_> {
    /// Applies parsed rows of a registry table, a transaction step at a time.
    fn rows(&mut self, table: &str, rows: Vec<AlignedRow>) -> Result<(), ImportError> {
        self.finish_files()?;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let step: Vec<_> = rows.by_ref().take(ROWS_PER_STEP).collect();
            self.session.apply_rows(table, step)?;
        }
        let counts = self.session.table_counts(table);
        let processed = counts.imported + counts.skipped + counts.merged + counts.rejected;
        self.session.progress(json!({"phase": "table", "table": table, "processed": processed}));
        Ok(())
    }

    fn apply(&mut self, batch: Batch, line_cap: u64) -> Result<(), ImportError> {
        if !matches!(batch, Batch::FileChunk { .. }) {
            self.finish_files()?;
        }
        match batch {
            Batch::Rows { table, .. } => {
                // Rows arrive parsed (Command::Rows); a raw rows batch is not expected here.
                return Err(FormatError::BadBatch { detail: format!("unparsed rows of {table}") }.into());
            }
            Batch::Vectors { table, first_line, ndjson, .. } => {
                let entry = format!("lancedb/{table}.ndjson");
                let mut rows = Vec::new();
                for_each_line(&ndjson, &entry, first_line, line_cap, |number, line| {
                    rows.push(parse_row(&entry, number, line)?);
                    Ok(())
                })?;
                self.session.apply_vectors(&table, rows, self.dimension)?;
                self.vectors_applied = true;
                self.session.progress(json!({"phase": "lancedb_table", "table": table}));
            }
            Batch::FileChunk { bucket, name, offset, size, bytes } => {
                self.file_chunk(bucket, name, offset, size, &bytes)?
            }
            Batch::Secrets { enc, sealed } => self.secrets(&enc, &sealed)?,
        }
        Ok(())
    }

    /// Appends a chunk to the file being received; the file is applied when complete.
    fn file_chunk(
        &mut self,
        bucket: FileBucket,
        name: String,
        offset: u64,
        size: u64,
        bytes: &[u8],
    ) -> Result<(), ImportError> {
        let continues = self.pending.as_ref().is_some_and(|p| p.bucket == bucket && p.name == name && p.size == size);
        if !continues {
            if self.pending.is_some() {
                return Err(FormatError::BadBatch { detail: "a file ends before all its bytes arrived".into() }.into());
            }
            if offset != 0 {
                return Err(FormatError::BadBatch { detail: "a file's first chunk must start at 0".into() }.into());
            }
            let staging = self.store.staging_dir();
            std::fs::create_dir_all(&staging)?;
            let path = staging.join(format!("upload-{}.partial", hex(&random_bytes::<8>())));
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
            self.pending = Some(PendingFile { bucket, name, size, written: 0, path, file });
        }
        let Some(pending) = self.pending.as_mut() else { return Ok(()) };
        if offset != pending.written {
            return Err(FormatError::BadBatch { detail: "file chunks must arrive in order".into() }.into());
        }
        pending.file.write_all(bytes)?;
        pending.written += bytes.len() as u64;
        if pending.written == pending.size {
            self.finish_files()?;
        }
        Ok(())
    }

    /// Applies the staged file, if complete; a file left incomplete is an error.
    fn finish_files(&mut self) -> Result<(), ImportError> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let outcome = if pending.written == pending.size {
            let mut reader = File::open(&pending.path)?;
            let range = Some((pending.path.as_path(), (0, pending.size)));
            self.session.apply_file(pending.bucket, &pending.name, &mut reader, range)
        } else {
            Err(FormatError::Truncated { what: format!("the file {}", pending.name) }.into())
        };
        drop(pending.file);
        let _ = std::fs::remove_file(&pending.path);
        outcome
    }

    fn secrets(&mut self, enc: &[u8; 32], sealed: &[u8]) -> Result<(), ImportError> {
        let plaintext = self.key.open(enc, SECRETS_INFO, self.aad.as_bytes(), sealed)?;
        let secrets: Vec<PlainSecret> = serde_json::from_slice(&plaintext).map_err(|error| {
            FormatError::BadSecrets { detail: format!("the sealed secrets are not a list: {error}") }
        })?;
        // The ticket was used in the browser: record it, so a reuse is reported as on the raw path.
        // (Other connections write here: the rows' open transaction is committed first.)
        self.session.commit()?;
        let used = self.store.db.record_ticket_use(&self.job.manifest.archive_id, &self.job.user_id, now())?;
        self.job.lock().ticket_use = Some(json!({
            "accepted": true,
            "wasReused": used.was_reused,
            "previouslyConsumedAt": used.previously_consumed_at,
            "uses": used.uses,
        }));
        self.session.apply_plain_secrets(&secrets)
    }
}

/// Runs `each` over the non-blank lines of a batch payload with the archive's line cap;
/// line numbers continue from `first_line`.
fn for_each_line(
    ndjson: &[u8],
    entry: &str,
    first_line: u64,
    cap: u64,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let mut lines = NdjsonLines::new(ndjson, entry, cap);
    let offset = first_line.saturating_sub(1);
    while let Some((number, line)) = lines.next_line()? {
        each(offset + number, line)?;
    }
    Ok(())
}
