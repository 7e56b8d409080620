//! Import jobs: one open per user, a bounded number open in the instance, a bounded pool
//! of workers (a raw upload takes a worker for its whole apply, a batch import one per
//! batch), a pause in `awaiting_ticket` for archives with secrets, cancellation, and a
//! record in the database. A job lives in memory only while it is open: [`Jobs::finish`]
//! records its (bounded) report, publishes its final event, frees its user and its staging
//! file, and forgets it; the status of an ended job is read back from the database.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lvbak_core::secrets::SecretsBinding;
use lvbak_core::{EmbeddingConfig, Manifest, SecretKey};
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::batches::BatchUpload;
use super::error::ImportError;
use super::report::bounded_manifest;
use crate::config::HostingLimits;
use crate::error::AppError;
use crate::failure::JobFailure;
use crate::nodes::{JobKind, Nodes};
use crate::progress::{Event, Progress, ProgressHub};
use crate::storage::Store;
use crate::throttle::{RateLimiter, Slot, SlotRefusal, Slots};
use crate::util::now;
use lvbak_core::protocol::ImportSummary;
use lvbak_core::protocol::{JobError, JobReport, JobStatus, ManifestReport, RestorePreview, SummaryReport, TicketUse};

/// How a job came to be, as the instance's other nodes are told.
pub enum Opening {
    /// A raw upload.
    Raw,
    /// A batch import, with its open request (JSON), from which another node may open it
    /// again once this one is gone.
    Batch(String),
    /// A restore preview.
    Preview,
    /// A batch import opened on a node that is gone, taken over here (recorded already).
    Adopted,
}

/// What the user decided about the archive's secrets.
pub enum SecretsDecision {
    Ticket(SecretKey),
    Skip,
}

/// How a job ended.
pub enum Outcome {
    Complete(ImportSummary),
    /// A preview job's answer (nothing was written).
    Previewed(Box<RestorePreview>),
    Failed(JobFailure),
    Cancelled,
}

impl Outcome {
    /// How a job that stopped with `error` ends.
    pub fn of_error(error: ImportError, job_id: &str) -> Self {
        match error.into_failure(job_id) {
            Some(failure) => Self::Failed(failure),
            None => Self::Cancelled,
        }
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
    pub manifest: ManifestReport,
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
    pub status: JobStatus,
    pub finished_at: Option<i64>,
    pub summary: Option<Box<ImportSummary>>,
    pub error: Option<JobError>,
    pub decision: Option<SecretsDecision>,
    pub ticket_use: Option<TicketUse>,
    /// A preview job's answer, once it is complete, until the commit takes it.
    pub preview: Option<Box<RestorePreview>>,
}

pub struct Job {
    pub id: String,
    pub user_id: String,
    pub started_at: i64,
    pub archive: ArchiveFacts,
    /// The staged archive (raw uploads); removed when the job ends.
    pub staged: Option<PathBuf>,
    /// A restore preview: the batches are previewed, not applied, and the job is never
    /// recorded (its id is forgotten once it ends).
    pub preview: bool,
    pub cancel: Arc<AtomicBool>,
    state: Mutex<JobState>,
    /// Woken when a secrets decision arrives or the job is cancelled.
    pub wake: Notify,
    pub progress: Progress,
    /// The user's open-import slot (and a preview's place among the instance's previews),
    /// given back when the job ends.
    slots: Mutex<Vec<Slot>>,
    /// The receiving end of a batch upload (the browser's path), once opened.
    batches: OnceLock<Arc<BatchUpload>>,
}

impl Job {
    pub fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock()
    }

    pub fn status(&self) -> JobStatus {
        self.lock().status
    }

    /// Moves an open job to `status` (a job that has ended stays ended).
    pub fn set_status(&self, status: JobStatus) {
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
    pub fn report(&self) -> JobReport {
        let state = self.lock();
        let mut report = JobReport {
            job_id: self.id.clone(),
            status: state.status,
            started_at: self.started_at,
            finished_at: state.finished_at,
            manifest: Some(self.archive.manifest.clone()),
            secrets_count: self.archive.secrets_count(),
            ticket: state.ticket_use.clone(),
            error: state.error.clone(),
            outcome: state.summary.as_deref().map(SummaryReport::from),
            next_batch: None,
            held_files: None,
            hpke_public_key: None,
        };
        drop(state);
        if let Some(batches) = self.batches.get() {
            let (next, public_key, held_files) = batches.resume_facts();
            report.next_batch = Some(next);
            // The names themselves: GET .../held-files (a status is polled often).
            report.held_files = Some(held_files);
            report.hpke_public_key = Some(public_key.to_string());
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
    /// Restore previews each user may ask for.
    previews: Arc<RateLimiter>,
    /// Restore previews open at once in the instance (each may hold up to the hosting
    /// limit `preview_rows` rows' ids in memory).
    preview_slots: Slots,
    /// The last status of previews that failed or were cancelled (previews are not
    /// recorded): the newest per user, [`ENDED_PREVIEWS`] in the instance, so the commit or
    /// status that comes next learns why.
    ended_previews: Arc<Mutex<VecDeque<(String, String, JobReport)>>>,
    /// The instance's other nodes (with PostgreSQL): where each job runs, one per account.
    nodes: Option<Arc<Nodes>>,
}

/// Ended previews' statuses the instance keeps (see `Jobs::ended_previews`).
const ENDED_PREVIEWS: usize = 256;

/// A user's claim to open an import (or a preview); handed to the job it becomes.
pub struct Reservation {
    slots: Vec<Slot>,
    user_id: String,
    preview: bool,
}

impl Reservation {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl Jobs {
    pub(crate) fn new(hosting: &HostingLimits, nodes: Option<Arc<Nodes>>) -> Self {
        let workers = hosting.import_workers.max(1);
        let open: Arc<Mutex<HashMap<String, Arc<Job>>>> = Arc::default();
        if let Some(nodes) = &nodes {
            // A job another node took over while this one could not hold it (its lock went
            // with its lock holder's connection, or it hung and was fenced) is that node's:
            // requests go there from now on, and this one stops, recording nothing.
            let open = Arc::downgrade(&open);
            nodes.on_lost_job(move |job_id| {
                let Some(job) = open.upgrade().and_then(|open| open.lock().remove(job_id)) else { return };
                tracing::warn!("import job {job_id} went on another node: it stops here");
                job.cancel.store(true, Ordering::Relaxed);
                job.wake.notify_one();
            });
        }
        Self {
            open,
            slots: Slots::new(1, hosting.open_imports),
            workers: Arc::new(Semaphore::new(workers)),
            worker_count: workers,
            previews: Arc::new(RateLimiter::new(hosting.preview_burst, hosting.preview_interval)),
            preview_slots: Slots::new(1, hosting.open_previews),
            ended_previews: Arc::default(),
            nodes,
        }
    }

    /// The instance's nodes, when it has more than this process (PostgreSQL).
    pub(crate) fn nodes(&self) -> Option<&Arc<Nodes>> {
        self.nodes.as_ref()
    }

    /// Claims the user's one import slot: `import_running` if an import of theirs is open,
    /// `busy` if the instance holds as many open imports as it allows.
    pub fn reserve(&self, user_id: &str) -> Result<Reservation, AppError> {
        match self.slots.try_take(user_id) {
            Ok(slot) => Ok(Reservation { slots: vec![slot], user_id: user_id.to_string(), preview: false }),
            Err(SlotRefusal::User(_)) => Err(AppError::ImportRunning),
            Err(SlotRefusal::Instance) => Err(AppError::Busy { what: "imports", retry_after: Duration::from_secs(30) }),
        }
    }

    /// Claims the user's one import slot for a restore preview, within the user's previews
    /// (`rate_limited` past them); refused as [`Jobs::reserve`] is (a refused claim does not
    /// count as a preview).
    pub fn reserve_preview(&self, user_id: &str) -> Result<Reservation, AppError> {
        self.previews.take(user_id).map_err(|retry_after| AppError::RateLimited { retry_after })?;
        let mut reservation = self.reserve(user_id).inspect_err(|_| self.previews.give_back(user_id))?;
        let Ok(place) = self.preview_slots.try_take(user_id) else {
            self.previews.give_back(user_id);
            return Err(AppError::Busy { what: "previews", retry_after: Duration::from_secs(10) });
        };
        reservation.slots.push(place);
        Ok(Reservation { preview: true, ..reservation })
    }

    /// Registers a job under a reservation, records it (unless it is a preview) and opens
    /// its progress channel; `import_running` when the account runs an import on another
    /// node of the instance.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        store: &Store,
        hub: &ProgressHub,
        reservation: Reservation,
        id: String,
        archive: ArchiveFacts,
        staged: Option<PathBuf>,
        opening: Opening,
    ) -> Result<Arc<Job>, AppError> {
        let Reservation { slots, user_id, preview } = reservation;
        let adopted = matches!(opening, Opening::Adopted);
        if let Some(nodes) = &self.nodes {
            let (kind, opened) = match opening {
                Opening::Raw => (Some(JobKind::Raw), None),
                Opening::Batch(request) => (Some(JobKind::Batch), Some(request)),
                Opening::Preview => (Some(JobKind::Preview), None),
                Opening::Adopted => (None, None),
            };
            if let Some(kind) = kind {
                nodes.claim(&id, &user_id, kind, opened).await?;
            }
        }
        let job = Arc::new(Job {
            progress: hub.open(&id, &user_id),
            id: id.clone(),
            user_id,
            started_at: now(),
            archive,
            staged,
            preview,
            cancel: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(JobState {
                status: JobStatus::Queued,
                finished_at: None,
                summary: None,
                error: None,
                decision: None,
                ticket_use: None,
                preview: None,
            }),
            wake: Notify::new(),
            slots: Mutex::new(slots),
            batches: OnceLock::new(),
        });
        if !job.preview && !adopted {
            let recorded =
                store.jobs().record_job(&job.id, &job.user_id, "queued", &job.archive.archive_id, job.started_at).await;
            if let Err(error) = recorded {
                tracing::error!("cannot record import job {}: {error}", job.id);
            }
        }
        self.open.lock().insert(id, job.clone());
        Ok(job)
    }

    /// The status of `user_id`'s preview `id` that failed or was cancelled, while kept.
    pub fn ended_preview(&self, id: &str, user_id: &str) -> Option<JobReport> {
        let ended = self.ended_previews.lock();
        ended.iter().find(|(job, user, _)| job == id && user == user_id).map(|(_, _, report)| report.clone())
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

    /// Ends a job, once: the final state (and with it the user's slot freed), the staging
    /// file removed, the bounded report recorded, the final event published, the job
    /// forgotten.
    pub async fn finish(&self, store: &Store, job: &Job, outcome: Outcome) {
        let event = {
            let mut state = job.lock();
            if state.status.is_final() {
                return;
            }
            state.finished_at = Some(now());
            state.decision = None;
            let event = match outcome {
                Outcome::Complete(summary) => {
                    state.status = JobStatus::Complete;
                    let event = Event::ImportComplete { summary: Box::new(summary.clone()) };
                    state.summary = Some(Box::new(summary));
                    event
                }
                Outcome::Previewed(preview) => {
                    state.status = JobStatus::Complete;
                    state.preview = Some(preview);
                    Event::Previewed
                }
                Outcome::Failed(failure) => {
                    state.status = JobStatus::Failed;
                    let error = failure.to_error();
                    let event = Event::Failed { code: error.code.clone(), error: error.message.clone() };
                    state.error = Some(error);
                    event
                }
                Outcome::Cancelled => {
                    state.status = JobStatus::Cancelled;
                    Event::Cancelled { reason: None }
                }
            };
            // Freed as the status turns final: whoever reads that status may start the
            // next import at once (nothing below is shared with it).
            drop(std::mem::take(&mut *job.slots.lock()));
            event
        };
        if let Some(staged) = &job.staged {
            let _ = std::fs::remove_file(staged);
        }
        if job.preview && job.status() != JobStatus::Complete {
            let mut ended = self.ended_previews.lock();
            ended.retain(|(_, user, _)| *user != job.user_id);
            if ended.len() >= ENDED_PREVIEWS {
                ended.pop_front();
            }
            ended.push_back((job.id.clone(), job.user_id.clone(), job.report()));
        }
        // A node that lost its hold on the job (another may run it now) records nothing.
        let still_runs = match &self.nodes {
            Some(nodes) => nodes.still_runs(&job.id).await,
            None => true,
        };
        if !job.preview && still_runs {
            let report = serde_json::to_string(&job.report()).unwrap_or_default();
            let status = job.status();
            let (code, message) = job.lock().error.clone().map(|error| (error.code, error.message)).unzip();
            let recorded = store
                .jobs()
                .finish_job(&job.id, status.as_str(), now(), code.as_deref(), message.as_deref(), &report)
                .await;
            if let Err(failure) = recorded {
                tracing::error!("cannot record the end of import job {}: {failure}", job.id);
            }
        }
        // Recorded first: another node asked about the job reads its end once it is gone here.
        match &self.nodes {
            Some(nodes) if still_runs => nodes.release(&job.id, &job.user_id).await,
            Some(nodes) => nodes.forget(&job.id),
            None => {}
        }
        job.progress.publish(event);
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

/// Called at start-up: jobs a previous process left unfinished are marked failed (with
/// PostgreSQL, those of gone nodes: see `nodes`), and staging files are removed.
pub(crate) async fn recover(store: &Arc<Store>, nodes: Option<&Nodes>, batch_wait: Duration) {
    match nodes {
        Some(nodes) => {
            if let Err(error) = nodes.sweep(batch_wait).await {
                tracing::error!("cannot look for jobs of gone nodes: {error}");
            }
        }
        None => fail_unfinished(store).await,
    }
    if let Ok(entries) = std::fs::read_dir(store.staging_dir()) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Marks every unfinished job failed and settles what each applied (one node: they were
/// all its own).
async fn fail_unfinished(store: &Arc<Store>) {
    let interrupted = JobFailure::Interrupted;
    match store.jobs().fail_unfinished_jobs(now(), interrupted.code(), &interrupted.message()).await {
        Ok(users) => {
            if !users.is_empty() {
                tracing::warn!("marked the interrupted import jobs of {} account(s) failed", users.len());
            }
            // What those imports applied was never settled: settle every row of theirs as an
            // import's end would (the rows each import added are not known any more).
            for user in users {
                store.settle_after_interrupted_import(&user).await;
            }
        }
        Err(error) => tracing::error!("cannot mark interrupted imports: {error}"),
    }
}

/// Hands a secrets decision arriving over HTTP to the job.
pub fn decide(job: &Job, decision: SecretsDecision) {
    job.lock().decision = Some(decision);
    job.wake.notify_one();
}
