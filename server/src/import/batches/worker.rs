//! The worker of one batch import: a thread that owns the job's `ImportSession` while the
//! job is open, fed by a short queue from the request handlers. It takes a worker slot
//! from the instance's pool for each batch (never for the job's whole life), and ends —
//! freeing its user, its thread and everything it holds — on commit, on the first failure,
//! on cancel, or when the job stays silent or open too long.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvbak_core::hpke::HpkeKeyPair;
use lvbak_core::registry::{is_applied_table, TABLES};
use lvbak_core::upload::FileClaim;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::apply::{BatchApplier, JobMemory};
use super::work::{Queued, Work};
use crate::failure::JobFailure;
use crate::import::jobs::{Job, Outcome};
use crate::import::services::ImportServices;
use crate::import::session::{ImportError, ImportSession};
use crate::progress::Event;
use lvbak_core::protocol::JobStatus;

/// Why a preview job takes no vectors (its open answer and vectors check say so).
const PREVIEW_TAKES_NO_VECTORS: &str = "a preview does not restore vectors";

/// How often a waiting worker looks at its job's cancel flag and clocks.
const POLL: Duration = Duration::from_millis(200);

/// What the handler that opened the job learns, or why the job could not start.
pub type Opened = Result<OpenedJob, JobFailure>;

pub struct OpenedJob {
    /// Why vectors would not be restored, if so.
    pub blocker: Option<String>,
    /// The archive's files the account holds already (entry names).
    pub held_files: Vec<String>,
}

pub struct Worker {
    pub services: ImportServices,
    pub job: Arc<Job>,
    pub queue: Receiver<Queued>,
    pub key: HpkeKeyPair,
    pub inflated: Arc<AtomicU64>,
    pub runtime: Handle,
    /// The archive's files as the client described them.
    pub claims: Vec<FileClaim>,
    /// The picks of a selective restore, whose closure the client sends, and whether as
    /// a copy.
    pub selection: Option<(lvbak_core::closure::Selection, bool)>,
}

impl Worker {
    /// Starts the worker's thread.
    pub fn spawn(self, ready: oneshot::Sender<Opened>) -> std::io::Result<()> {
        let name = format!("batch-import-{}", self.job.id);
        std::thread::Builder::new().name(name).spawn(move || self.run(ready)).map(|_| ())
    }

    fn run(self, ready: oneshot::Sender<Opened>) {
        let (services, job, runtime) = (self.services.clone(), self.job.clone(), self.runtime.clone());
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve(ready)));
        let (outcome, done) = served.unwrap_or_else(|_| {
            tracing::error!("batch import {} panicked", job.id);
            (Outcome::Failed(JobFailure::Internal), None)
        });
        // This thread is the worker's own, outside the runtime: it may wait on it.
        runtime.block_on(services.finish_job(&job, outcome));
        // The commit's answer is sent only once the job's end is recorded.
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn serve(self, ready: oneshot::Sender<Opened>) -> (Outcome, Option<oneshot::Sender<()>>) {
        let store = self.services.store.clone();
        let progress = self.job.progress.clone();
        let publish = move |event: Event| progress.publish(event);
        let opened = (|| {
            let cancel = self.job.cancel.clone();
            let (mut session, blocker, held_files) = if self.job.preview {
                // Nothing is sent but rows: every file is previewed from its claim, and no
                // vector is taken.
                let mut session =
                    ImportSession::for_preview(&store, &self.job.user_id, cancel, &publish, self.runtime.clone())?;
                session.count_memory_in(&self.services.memory);
                let mut held: Vec<String> = self.claims.iter().map(FileClaim::entry_name).collect();
                held.sort();
                held.dedup();
                (session, Some(PREVIEW_TAKES_NO_VECTORS.to_string()), held)
            } else {
                let quota = self.services.hosting.quota;
                let mut session =
                    ImportSession::new(&store, &self.job.user_id, quota, cancel, &publish, self.runtime.clone())?;
                session.count_memory_in(&self.services.memory);
                if let Some((selection, as_copy)) = self.selection.clone() {
                    let copy_of = as_copy.then(|| self.job.archive.archive_id.clone());
                    session.declare_selection(selection, copy_of);
                }
                let blocker = session.vector_restore_blocker(&self.job.archive.embedding_config)?;
                let held_files = session.held_files(&self.claims, self.services.hosting.held_check_bytes)?;
                (session, blocker, held_files)
            };
            let mut columns = HashMap::new();
            // Only the tables an import applies: rows of any other are checked and listed.
            for spec in TABLES.iter().filter(|spec| is_applied_table(spec.name)) {
                if let Some(names) = session.columns_of(spec.name)? {
                    columns.insert(spec.name.to_string(), names);
                }
            }
            Ok::<_, ImportError>((session, blocker, columns, held_files))
        })();
        let (session, blocker, columns, held_files) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let failure = error.into_failure(&self.job.id).unwrap_or(JobFailure::Internal);
                let _ = ready.send(Err(failure.clone()));
                return (Outcome::Failed(failure), None);
            }
        };
        if let Some(batches) = self.job.batches() {
            batches.hold_files(held_files.clone());
        }
        let _ = ready.send(Ok(OpenedJob { blocker: blocker.clone(), held_files }));
        self.job.set_status(JobStatus::Running);
        self.job.progress.publish(Event::Running);

        let line_cap = self.services.limits.line_cap(self.job.archive.has_line_cap);
        let cap = self.services.limits.max_decompressed_bytes;
        let mut applier = BatchApplier::new(
            session,
            &store,
            &self.job,
            &self.key,
            blocker,
            columns,
            self.inflated.clone(),
            cap,
            line_cap,
            JobMemory { budget: self.services.memory.clone(), runtime: self.runtime.clone() },
        );
        applier.bound_preview(self.services.hosting.preview_rows);
        match self.pump(&mut applier) {
            Ok(done) if self.job.preview => {
                match applier.finish_preview(&self.claims, self.services.hosting.held_check_bytes) {
                    Ok(preview) => (Outcome::Previewed(Box::new(preview)), Some(done)),
                    Err(error) => (Outcome::of_error(error, &self.job.id), Some(done)),
                }
            }
            Ok(done) => match applier.finish() {
                Ok(summary) => (Outcome::Complete(summary), Some(done)),
                Err(error) => (Outcome::of_error(error, &self.job.id), Some(done)),
            },
            Err(error) => {
                let outcome = Outcome::of_error(error, &self.job.id);
                applier.abandon();
                (outcome, None)
            }
        }
    }

    /// Applies queued work until a commit (whose answer is returned), a failure, a cancel,
    /// or a timeout.
    fn pump(&self, applier: &mut BatchApplier<'_>) -> Result<oneshot::Sender<()>, ImportError> {
        let hosting = &self.services.hosting;
        let opened_at = Instant::now();
        let mut last_batch: Option<Instant> = None;
        let mut idle = false;
        loop {
            if self.job.is_cancelled() {
                applier.pause()?;
                return Err(ImportError::Cancelled);
            }
            if opened_at.elapsed() > hosting.import_lifetime {
                return Err(ImportError::TimedOut(format!(
                    "the import stayed open longer than {} minutes",
                    hosting.import_lifetime.as_secs() / 60
                )));
            }
            let queued = match self.queue.recv_timeout(POLL) {
                Ok(queued) => queued,
                Err(RecvTimeoutError::Timeout) => {
                    if !idle {
                        applier.pause()?;
                        idle = true;
                    }
                    let (since, limit, what) = match last_batch {
                        Some(at) => (at, hosting.import_idle, "no batch came"),
                        None => (opened_at, hosting.import_open, "no first batch came"),
                    };
                    if since.elapsed() > limit {
                        return Err(ImportError::TimedOut(format!("{what} for {} seconds", limit.as_secs())));
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Err(ImportError::Cancelled),
            };
            idle = false;
            last_batch = Some(Instant::now());
            let Queued { work, place, memory } = queued;
            let _worker = self.worker_slot()?;
            match work {
                Work::CheckVectors(answer) => {
                    let blocker = applier.check_vectors(&self.job.archive.embedding_config)?;
                    let _ = answer.send(blocker);
                }
                Work::Commit(done) => {
                    applier.finish_files()?;
                    applier.pause()?;
                    return Ok(done);
                }
                Work::Batch(batch) => applier.apply(batch)?,
            }
            drop((place, memory));
        }
    }

    /// A worker slot from the instance's pool, for one batch.
    fn worker_slot(&self) -> Result<OwnedSemaphorePermit, ImportError> {
        loop {
            if self.job.is_cancelled() {
                return Err(ImportError::Cancelled);
            }
            let jobs = &self.services.jobs;
            match self.runtime.block_on(async { tokio::time::timeout(POLL, jobs.worker()).await }) {
                Ok(Some(permit)) => return Ok(permit),
                Ok(None) => return Err(ImportError::Io(std::io::Error::other("the worker pool is closed"))),
                Err(_) => continue,
            }
        }
    }
}
