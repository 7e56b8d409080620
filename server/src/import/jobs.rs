//! Import jobs: one per upload, at most one running per user, a bounded pool of workers
//! (excess jobs wait `queued`), a pause in `awaiting_ticket` for archives with secrets,
//! cancellation, and a record in the database so that a restart can mark unfinished jobs
//! `failed` and the staging file of every ended job is removed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lvbak_core::secrets::SecretsIndex;
use lvbak_core::{Manifest, SecretKey};
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};

use super::batches::BatchUpload;
use super::session::ImportSummary;
use crate::auth::now;
use crate::storage::Store;

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

/// The changing part of a job.
pub struct JobState {
    pub status: Status,
    pub finished_at: Option<i64>,
    pub summary: Option<ImportSummary>,
    pub error: Option<(String, String)>,
    pub decision: Option<SecretsDecision>,
    pub ticket_use: Option<Value>,
}

pub struct Job {
    pub id: String,
    pub user_id: String,
    pub started_at: i64,
    pub manifest: Manifest,
    pub secrets_index: Option<SecretsIndex>,
    /// The staged archive (raw uploads); removed when the job ends.
    pub staged: Option<PathBuf>,
    pub cancel: Arc<AtomicBool>,
    pub state: Mutex<JobState>,
    /// Woken when a secrets decision arrives or the job is cancelled.
    pub wake: Notify,
    /// The receiving end of a batch upload (the browser's path), once opened.
    batches: OnceLock<Arc<BatchUpload>>,
}

impl Job {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn set_status(&self, status: Status) {
        self.lock().status = status;
    }

    pub fn set_batches(&self, batches: Arc<BatchUpload>) {
        let _ = self.batches.set(batches);
    }

    pub fn batches(&self) -> Option<Arc<BatchUpload>> {
        self.batches.get().cloned()
    }

    /// Whether the archive carries secrets the job must ask about.
    pub fn needs_ticket(&self) -> bool {
        self.manifest.has_encrypted_secrets && self.secrets_index.as_ref().is_some_and(|index| !index.keys.is_empty())
    }

    /// FORMAT §8's status shape, plus what lvbak adds.
    pub fn status_json(&self) -> Value {
        let state = self.lock();
        let summary = state.summary.as_ref();
        json!({
            "jobId": self.id,
            "status": state.status.as_str(),
            "startedAt": self.started_at,
            "finishedAt": state.finished_at,
            "manifest": self.manifest,
            "summary": summary.map(|s| {
                let mut tables = json!(s.tables);
                // Lumiverse reports restored secrets beside the tables.
                if s.secrets.applied {
                    tables["secrets"] = json!({"imported": s.secrets.imported, "skipped": s.secrets.skipped, "merged": 0, "rejected": s.secrets.rejected});
                }
                tables
            }),
            "fileSummary": summary.map(|s| json!(s.files)),
            "vectorSummary": summary.map(|s| json!(s.vectors)),
            "secretSummary": summary.map(|s| json!(s.secrets)),
            "skippedTables": summary.map(|s| json!(s.skipped_tables)),
            "scrubbedReferences": summary.map(|s| s.scrubbed_references),
            "revectorized": summary.map(|s| s.revectorized),
            "secretsCount": self.secrets_index.as_ref().map_or(0, |index| index.keys.len()),
            "ticket": state.ticket_use,
            "error": state.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
        })
    }
}

/// Every job this server process knows, and the pool that runs them.
#[derive(Clone)]
pub struct Jobs {
    jobs: Arc<Mutex<HashMap<String, Arc<Job>>>>,
    busy_users: Arc<Mutex<HashSet<String>>>,
    pool: Arc<Semaphore>,
}

/// A user's claim to run an import; released when dropped unless handed to a job.
pub struct Reservation {
    jobs: Jobs,
    user_id: String,
    released: bool,
}

impl Reservation {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.released {
            self.jobs.busy_users.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.user_id);
        }
    }
}

impl Jobs {
    /// `workers` imports run at once; more wait in `queued`.
    pub fn new(workers: usize) -> Self {
        Self { jobs: Arc::default(), busy_users: Arc::default(), pool: Arc::new(Semaphore::new(workers.max(1))) }
    }

    /// Claims the user's one import slot, or `None` if an import of theirs is under way.
    pub fn reserve(&self, user_id: &str) -> Option<Reservation> {
        let mut busy = self.busy_users.lock().unwrap_or_else(|p| p.into_inner());
        busy.insert(user_id.to_string()).then(|| Reservation {
            jobs: self.clone(),
            user_id: user_id.to_string(),
            released: false,
        })
    }

    /// Registers a job under a reservation.
    pub fn create(
        &self,
        store: &Store,
        mut reservation: Reservation,
        id: String,
        manifest: Manifest,
        secrets_index: Option<SecretsIndex>,
        staged: Option<PathBuf>,
    ) -> Arc<Job> {
        reservation.released = true;
        let job = Arc::new(Job {
            id: id.clone(),
            user_id: reservation.user_id.clone(),
            started_at: now(),
            manifest,
            secrets_index,
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
            batches: OnceLock::new(),
        });
        if let Err(error) =
            store.db.record_job(&job.id, &job.user_id, "queued", &job.manifest.archive_id, job.started_at)
        {
            tracing::error!("cannot record import job {}: {error}", job.id);
        }
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, job.clone());
        job
    }

    /// A job of `user_id` (another user's id answers as missing).
    pub fn get(&self, id: &str, user_id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(id).filter(|job| job.user_id == user_id).cloned()
    }

    /// Waits for a worker slot.
    pub async fn worker(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.pool.clone().acquire_owned().await.ok()
    }

    /// Ends a job: final status, the user's slot freed, the staging file removed, the
    /// outcome recorded.
    pub fn finish(
        &self,
        store: &Store,
        job: &Job,
        status: Status,
        summary: Option<ImportSummary>,
        error: Option<(String, String)>,
    ) {
        {
            let mut state = job.lock();
            state.status = status;
            state.finished_at = Some(now());
            state.summary = summary;
            state.error = error;
            state.decision = None;
        }
        if let Some(staged) = &job.staged {
            let _ = std::fs::remove_file(staged);
        }
        self.busy_users.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.user_id);
        let report = job.status_json();
        let (code, message) = job.lock().error.clone().unzip();
        if let Err(failure) = store.db.finish_job(
            &job.id,
            status.as_str(),
            now(),
            code.as_deref(),
            message.as_deref(),
            &report.to_string(),
        ) {
            tracing::error!("cannot record the end of import job {}: {failure}", job.id);
        }
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
        Ok(0) => {}
        Ok(count) => tracing::warn!("marked {count} interrupted import job(s) failed"),
        Err(error) => tracing::error!("cannot mark interrupted imports: {error}"),
    }
    if let Ok(entries) = std::fs::read_dir(store.staging_dir()) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Flags for secret decisions arriving over HTTP.
pub fn decide(job: &Job, decision: SecretsDecision) {
    job.lock().decision = Some(decision);
    job.wake.notify_one();
}
