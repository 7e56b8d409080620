//! Import jobs: one open per user, a bounded number open in the instance, a bounded pool
//! of workers (a raw upload takes a worker for its whole apply, a batch import one per
//! batch), a pause in `awaiting_ticket` for archives with secrets, cancellation, and a
//! record in the database. A job lives in memory only while it is open: [`Jobs::finish`]
//! records its (bounded) report, publishes its final event, frees its user and its staging
//! file, and forgets it; the status of an ended job is read back from the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lvbak_core::secrets::SecretsBinding;
use lvbak_core::{EmbeddingConfig, Manifest, SecretKey};
use parking_lot::{Mutex, MutexGuard};
use serde_json::{json, Value};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::batches::BatchUpload;
use super::report::{bounded_manifest, summary_report};
use super::session::ImportSummary;
use crate::auth::now;
use crate::config::HostingLimits;
use crate::error::AppError;
use crate::progress::{Event, Progress, ProgressHub};
use crate::storage::Store;
use crate::throttle::{Slot, SlotRefusal, Slots};

/// Job statuses (FORMAT §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Queued,
    AwaitingTicket,
    Running,
    Complete,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::AwaitingTicket => "awaiting_ticket",
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Cancelled)
    }
}

/// What the user decided about the archive's secrets.
pub enum SecretsDecision {
    Ticket(SecretKey),
    Skip,
}

/// How a job ended.
pub enum Outcome {
    Complete(ImportSummary),
    Failed { code: String, message: String },
    Cancelled,
}

impl Outcome {
    pub fn failed(code: &str, message: impl Into<String>) -> Self {
        Self::Failed { code: code.to_string(), message: message.into() }
    }
}

/// What a job keeps of its archive: the few facts the import needs and a bounded copy of
/// the manifest for status answers (an archive's manifest may be 16 MiB).
#[derive(Clone, Debug)]
pub struct ArchiveFacts {
    pub archive_id: String,
    pub embedding_config: EmbeddingConfig,
    pub has_line_cap: bool,
    pub has_encrypted_secrets: bool,
    pub secrets: Option<SecretsBinding>,
    pub manifest: Value,
}

impl ArchiveFacts {
    pub fn new(manifest: &Manifest, secrets: Option<SecretsBinding>) -> Self {
        Self {
            archive_id: manifest.archive_id.clone(),
            embedding_config: manifest.embedding_config.clone(),
            has_line_cap: manifest.has_line_cap(),
            has_encrypted_secrets: manifest.has_encrypted_secrets,
            secrets,
            manifest: bounded_manifest(manifest),
        }
    }

    /// How many secrets the archive's index names.
    pub fn secrets_count(&self) -> usize {
        self.secrets.as_ref().map_or(0, |binding| binding.keys)
    }
}

/// The changing part of a job.
pub struct JobState {
    pub status: Status,
    pub finished_at: Option<i64>,
    pub summary: Option<Box<ImportSummary>>,
    pub error: Option<(String, String)>,
    pub decision: Option<SecretsDecision>,
    pub ticket_use: Option<Value>,
}

pub struct Job {
    pub id: String,
    pub user_id: String,
    pub started_at: i64,
    pub archive: ArchiveFacts,
    /// The staged archive (raw uploads); removed when the job ends.
    pub staged: Option<PathBuf>,
    pub cancel: Arc<AtomicBool>,
    state: Mutex<JobState>,
    /// Woken when a secrets decision arrives or the job is cancelled.
    pub wake: Notify,
    pub progress: Progress,
    /// The user's open-import slot, given back when the job ends.
    slot: Mutex<Option<Slot>>,
    /// The receiving end of a batch upload (the browser's path), once opened.
    batches: OnceLock<Arc<BatchUpload>>,
}

impl Job {
    pub fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock()
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// Moves an open job to `status` (a job that has ended stays ended).
    pub fn set_status(&self, status: Status) {
        let mut state = self.lock();
        if !state.status.is_final() {
            state.status = status;
        }
    }

    pub fn set_batches(&self, batches: Arc<BatchUpload>) {
        let _ = self.batches.set(batches);
    }

    pub fn batches(&self) -> Option<Arc<BatchUpload>> {
        self.batches.get().cloned()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Whether the archive carries secrets the job must ask about.
    pub fn needs_ticket(&self) -> bool {
        self.archive.has_encrypted_secrets && self.archive.secrets_count() > 0
    }

    /// FORMAT §8's status shape, plus what lvbak adds; bounded whatever the archive holds.
    pub fn status_json(&self) -> Value {
        let state = self.lock();
        let mut report = summary_report(state.summary.as_deref());
        report["jobId"] = json!(self.id);
        report["status"] = json!(state.status.as_str());
        report["startedAt"] = json!(self.started_at);
        report["finishedAt"] = json!(state.finished_at);
        report["manifest"] = self.archive.manifest.clone();
        report["secretsCount"] = json!(self.archive.secrets_count());
        report["ticket"] = state.ticket_use.clone().unwrap_or(Value::Null);
        report["error"] =
            state.error.as_ref().map_or(Value::Null, |(code, message)| json!({"code": code, "message": message}));
        drop(state);
        if let Some(batches) = self.batches.get() {
            let (next, public_key, held_files) = batches.resume_facts();
            report["nextBatch"] = json!(next);
            // The names themselves: GET .../held-files (a status is polled often).
            report["heldFiles"] = json!(held_files);
            report["hpkePublicKey"] = json!(public_key);
        }
        report
    }
}

/// Every open job of this server process, and the pool that runs them.
#[derive(Clone)]
pub struct Jobs {
    open: Arc<Mutex<HashMap<String, Arc<Job>>>>,
    /// One open import per user, and a bounded number in the instance.
    slots: Slots,
    workers: Arc<Semaphore>,
    worker_count: usize,
}

/// A user's claim to open an import; handed to the job it becomes.
pub struct Reservation {
    slot: Slot,
    user_id: String,
}

impl Reservation {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl Jobs {
    pub fn new(hosting: &HostingLimits) -> Self {
        let workers = hosting.import_workers.max(1);
        Self {
            open: Arc::default(),
            slots: Slots::new(1, hosting.open_imports),
            workers: Arc::new(Semaphore::new(workers)),
            worker_count: workers,
        }
    }

    /// Claims the user's one import slot: `import_running` if an import of theirs is open,
    /// `busy` if the instance holds as many open imports as it allows.
    pub fn reserve(&self, user_id: &str) -> Result<Reservation, AppError> {
        match self.slots.try_take(user_id) {
            Ok(slot) => Ok(Reservation { slot, user_id: user_id.to_string() }),
            Err(SlotRefusal::User(_)) => Err(AppError::ImportRunning),
            Err(SlotRefusal::Instance) => Err(AppError::Busy { what: "imports", retry_after: Duration::from_secs(30) }),
        }
    }

    /// Registers a job under a reservation, records it and opens its progress channel.
    pub fn create(
        &self,
        store: &Store,
        hub: &ProgressHub,
        reservation: Reservation,
        id: String,
        archive: ArchiveFacts,
        staged: Option<PathBuf>,
    ) -> Arc<Job> {
        let Reservation { slot, user_id } = reservation;
        let job = Arc::new(Job {
            progress: hub.open(&id, &user_id),
            id: id.clone(),
            user_id,
            started_at: now(),
            archive,
            staged,
            cancel: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(JobState {
                status: Status::Queued,
                finished_at: None,
                summary: None,
                error: None,
                decision: None,
                ticket_use: None,
            }),
            wake: Notify::new(),
            slot: Mutex::new(Some(slot)),
            batches: OnceLock::new(),
        });
        // Called from handlers: the write may wait its turn behind an import's transaction.
        let recorded = tokio::task::block_in_place(|| {
            store.db.record_job(&job.id, &job.user_id, "queued", &job.archive.archive_id, job.started_at)
        });
        if let Err(error) = recorded {
            tracing::error!("cannot record import job {}: {error}", job.id);
        }
        self.open.lock().insert(id, job.clone());
        job
    }

    /// An open job of `user_id` (another user's id answers as missing).
    pub fn get(&self, id: &str, user_id: &str) -> Option<Arc<Job>> {
        self.open.lock().get(id).filter(|job| job.user_id == user_id).cloned()
    }

    /// Open jobs in the instance.
    pub fn open_count(&self) -> usize {
        self.open.lock().len()
    }

    /// Waits for a worker slot.
    pub async fn worker(&self) -> Option<OwnedSemaphorePermit> {
        self.workers.clone().acquire_owned().await.ok()
    }

    /// Workers not taken now (for tests and benchmarks).
    pub fn idle_workers(&self) -> usize {
        self.workers.available_permits()
    }

    pub fn worker_count(&self) -> usize {
        self.worker_count
    }

    /// Ends a job, once: the final state, the staging file removed, the bounded report
    /// recorded, the final event published, the user's slot freed, the job forgotten.
    pub fn finish(&self, store: &Store, job: &Job, outcome: Outcome) {
        let event = {
            let mut state = job.lock();
            if state.status.is_final() {
                return;
            }
            state.finished_at = Some(now());
            state.decision = None;
            match outcome {
                Outcome::Complete(summary) => {
                    state.status = Status::Complete;
                    let event = Event::ImportComplete { summary: Box::new(summary.clone()) };
                    state.summary = Some(Box::new(summary));
                    event
                }
                Outcome::Failed { code, message } => {
                    state.status = Status::Failed;
                    let event = Event::Failed { code: code.clone(), error: message.clone() };
                    state.error = Some((code, message));
                    event
                }
                Outcome::Cancelled => {
                    state.status = Status::Cancelled;
                    Event::Cancelled { reason: None }
                }
            }
        };
        if let Some(staged) = &job.staged {
            let _ = std::fs::remove_file(staged);
        }
        let report = job.status_json();
        let status = job.status();
        let (code, message) = job.lock().error.clone().unzip();
        let recorded = tokio::task::block_in_place(|| {
            store.db.finish_job(
                &job.id,
                status.as_str(),
                now(),
                code.as_deref(),
                message.as_deref(),
                &report.to_string(),
            )
        });
        if let Err(failure) = recorded {
            tracing::error!("cannot record the end of import job {}: {failure}", job.id);
        }
        job.progress.publish(event);
        drop(job.slot.lock().take());
        self.open.lock().remove(&job.id);
    }

    /// Asks a job to stop; answers whether it was still running.
    pub fn cancel(&self, job: &Job) -> bool {
        if job.status().is_final() {
            return false;
        }
        job.cancel.store(true, Ordering::Relaxed);
        job.wake.notify_one();
        true
    }
}

/// Called at start-up: jobs a previous process left unfinished are marked failed, and
/// staging files are removed.
pub fn recover(store: &Store) {
    match store.db.fail_unfinished_jobs(
        now(),
        "interrupted",
        "the server stopped during this import; import the archive again to finish (rows and files already restored are kept and skipped)",
    ) {
        Ok(users) => {
            if !users.is_empty() {
                tracing::warn!("marked the interrupted import jobs of {} account(s) failed", users.len());
            }
            // What those imports applied was never settled: settle every row of theirs as an
            // import's end would (the rows each import added are not known any more).
            for user in users {
                match store.db.row_applier(&user, None).and_then(|mut applier| applier.settle_all_rows()) {
                    Ok(changed) => tracing::info!("settled {changed} references of {user} after an interrupted import"),
                    Err(error) => tracing::error!("cannot settle the references of {user}: {error}"),
                }
            }
        }
        Err(error) => tracing::error!("cannot mark interrupted imports: {error}"),
    }
    if let Ok(entries) = std::fs::read_dir(store.staging_dir()) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Hands a secrets decision arriving over HTTP to the job.
pub fn decide(job: &Job, decision: SecretsDecision) {
    job.lock().decision = Some(decision);
    job.wake.notify_one();
}
