//! The worker of one batch import: a thread that owns the job's `ImportSession` while the
//! job is open, fed by a short queue from the request handlers. It takes a worker slot
//! from the instance's pool for each batch (never for the job's whole life), and ends —
//! freeing its user, its thread and everything it holds — on commit, on the first failure,
//! on cancel, or when the job stays silent or open too long.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvbak_core::batch::Batch;
use lvbak_core::hpke::HpkeKeyPair;
use lvbak_core::registry::TABLES;
use lvbak_core::upload::FileClaim;
use lvbak_core::FileBucket;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::apply::{BatchApplier, JobMemory};
use crate::failure::JobFailure;
use crate::import::jobs::{Job, Outcome};
use crate::import::session::{ImportError, ImportSession};
use crate::progress::Event;
use crate::state::AppState;
use lvbak_core::protocol::JobStatus;

/// How often a waiting worker looks at its job's cancel flag and clocks.
const POLL: Duration = Duration::from_millis(200);

/// One piece of work for the job, in arrival order.
pub enum Work {
    /// Lines of `database/<table>.ndjson`, still deflated, and how many rows of the same
    /// stretch the client left out as held (already budgeted: see `BatchUpload`).
    Rows {
        table: String,
        first_line: u64,
        held: u64,
        deflated: Vec<u8>,
    },
    /// The next segment of the archive's own deflate stream of `database/<table>.ndjson`.
    RowStream {
        table: String,
        offset: u64,
        last: bool,
        deflated: Vec<u8>,
    },
    /// Lines of `lancedb/<table>.ndjson`, still deflated.
    Vectors {
        table: String,
        first_line: u64,
        deflated: Vec<u8>,
    },
    FileChunk {
        bucket: FileBucket,
        name: String,
        offset: u64,
        size: u64,
        bytes: Vec<u8>,
    },
    Secrets {
        enc: [u8; 32],
        sealed: Vec<u8>,
    },
    /// Several of the above from one bundle, applied in order.
    Bundle(Vec<Work>),
    /// Whether vectors may come (`None`) or why not, once the batches before are applied.
    CheckVectors(oneshot::Sender<Option<String>>),
    /// Apply what is left and complete the job; answered once the job has ended.
    Commit(oneshot::Sender<()>),
}

impl From<Batch> for Work {
    fn from(batch: Batch) -> Self {
        match batch {
            Batch::Rows { table, first_line, held, ndjson, .. } => {
                Self::Rows { table, first_line, held, deflated: ndjson }
            }
            Batch::RowStream { table, offset, last, deflated } => Self::RowStream { table, offset, last, deflated },
            Batch::Vectors { table, first_line, ndjson, .. } => Self::Vectors { table, first_line, deflated: ndjson },
            Batch::FileChunk { bucket, name, offset, size, bytes } => {
                Self::FileChunk { bucket, name, offset, size, bytes }
            }
            Batch::Secrets { enc, sealed } => Self::Secrets { enc, sealed },
            Batch::Bundle(parts) => Self::Bundle(parts.into_iter().map(Self::from).collect()),
        }
    }
}

impl Work {
    /// The pieces of work this stands for: a bundle's parts, or itself.
    pub fn parts_mut(&mut self) -> Vec<&mut Work> {
        match self {
            Work::Bundle(parts) => parts.iter_mut().collect(),
            one => vec![one],
        }
    }
}

/// Work in the queue, with what it holds until it is done: its place in the job's queue
/// and its share of the instance's memory budget.
pub struct Queued {
    pub work: Work,
    pub place: OwnedSemaphorePermit,
    pub memory: Option<crate::memory::Held>,
}

/// What the handler that opened the job learns, or why the job could not start.
pub type Opened = Result<OpenedJob, JobFailure>;

pub struct OpenedJob {
    /// Why vectors would not be restored, if so.
    pub blocker: Option<String>,
    /// The archive's files the account holds already (entry names).
    pub held_files: Vec<String>,
}

pub struct Worker {
    pub state: AppState,
    pub job: Arc<Job>,
    pub queue: Receiver<Queued>,
    pub key: HpkeKeyPair,
    pub inflated: Arc<AtomicU64>,
    pub runtime: Handle,
    /// The archive's files as the client described them.
    pub claims: Vec<FileClaim>,
}

impl Worker {
    /// Starts the worker's thread.
    pub fn spawn(self, ready: oneshot::Sender<Opened>) -> std::io::Result<()> {
        let name = format!("batch-import-{}", self.job.id);
        std::thread::Builder::new().name(name).spawn(move || self.run(ready)).map(|_| ())
    }

    fn run(self, ready: oneshot::Sender<Opened>) {
        let (state, job) = (self.state.clone(), self.job.clone());
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve(ready)));
        let (outcome, done) = served.unwrap_or_else(|_| {
            tracing::error!("batch import {} panicked", job.id);
            (Outcome::Failed(JobFailure::Internal), None)
        });
        state.finish_job(&job, outcome);
        // The commit's answer is sent only once the job's end is recorded.
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn serve(self, ready: oneshot::Sender<Opened>) -> (Outcome, Option<oneshot::Sender<()>>) {
        let store = self.state.store();
        let progress = self.job.progress.clone();
        let publish = move |event: Event| progress.publish(event);
        let opened = (|| {
            let quota = self.state.hosting().quota;
            let mut session = ImportSession::new(
                &store,
                &self.job.user_id,
                quota,
                self.job.cancel.clone(),
                &publish,
                self.runtime.clone(),
            )?;
            session.count_memory_in(self.state.memory());
            let blocker = session.vector_restore_blocker(&self.job.archive.embedding_config)?;
            let held_files = session.held_files(&self.claims, self.state.hosting().held_check_bytes)?;
            let mut columns = HashMap::new();
            for spec in TABLES {
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

        let line_cap = self.state.limits().line_cap(self.job.archive.has_line_cap);
        let cap = self.state.limits().max_decompressed_bytes;
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
            JobMemory { budget: self.state.memory().clone(), runtime: self.runtime.clone() },
        );
        match self.pump(&mut applier) {
            Ok(done) => match applier.finish() {
                Ok(summary) => (Outcome::Complete(summary), Some(done)),
                Err(error) => (error.into_outcome(&self.job.id), Some(done)),
            },
            Err(error) => {
                let outcome = error.into_outcome(&self.job.id);
                applier.abandon();
                (outcome, None)
            }
        }
    }

    /// Applies queued work until a commit (whose answer is returned), a failure, a cancel,
    /// or a timeout.
    fn pump(&self, applier: &mut BatchApplier<'_>) -> Result<oneshot::Sender<()>, ImportError> {
        let hosting = self.state.hosting();
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
                work => applier.apply(work)?,
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
            let jobs = self.state.jobs();
            match self.runtime.block_on(async { tokio::time::timeout(POLL, jobs.worker()).await }) {
                Ok(Some(permit)) => return Ok(permit),
                Ok(None) => return Err(ImportError::Io(std::io::Error::other("the worker pool is closed"))),
                Err(_) => continue,
            }
        }
    }
}
