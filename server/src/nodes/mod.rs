//! The nodes of an instance on PostgreSQL (issue 22): which node runs each open import job,
//! one open job per account across every node, and what happens to a job whose node is
//! gone. [`Nodes`] records a job when it opens (`lvbak_open_jobs`, with the address other
//! nodes forward its requests to: `import::forward`), holds its advisory lock while it
//! runs, and forgets it when it ends. A node that finds a job's lock free knows its node
//! died (PostgreSQL frees a dead connection's locks) and ends the job as `interrupted` — or,
//! for a batch import whose user asks, opens it again here under the same id
//! ([`Nodes::adopt`]): the upload then starts again from its first batch, the rows and files
//! the dead node applied held already.
//!
//! Every node sweeps the open jobs every [`SWEEP_EVERY`]: a raw upload or preview whose node
//! is gone fails at once (as seen from any node, within that interval); a batch import
//! whose node is gone waits for its user for the import idle timeout, then fails.
//!
//! A node whose lock holder's connection ends while the node stays (PostgreSQL restarted,
//! a network blip) connects again at once and takes back the locks of its jobs and runs
//! that no other node took meanwhile ([`Nodes::keeps`]); work another node took is that
//! node's, and this one records nothing of it. A node that stops serving sweeps no more.

pub(crate) mod forward;
mod runs;

use runs::run_key;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{AppError, AppResult};
use crate::failure::JobFailure;
use crate::storage::postgres::{lock_key, OpenJobRow, PostgresOpenJobs};
use crate::storage::sqlite::DbResult;
use crate::storage::Store;
use crate::util::now;

/// How often a node looks for jobs whose node is gone.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Open jobs of gone nodes one sweep looks at, at most.
const SWEEP_LIMIT: i64 = 100;

/// What kind of job a node runs (`lvbak_open_jobs.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// A raw upload: its archive is on the node's disk, so it cannot move.
    Raw,
    /// A batch import: another node may open it again from its open request.
    Batch,
    /// A restore preview: never recorded, never moved.
    Preview,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Batch => "batch",
            Self::Preview => "preview",
        }
    }

    fn of(name: &str) -> Self {
        match name {
            "batch" => Self::Batch,
            "preview" => Self::Preview,
            _ => Self::Raw,
        }
    }
}

/// This node among the instance's nodes.
pub(crate) struct Nodes {
    open_jobs: PostgresOpenJobs,
    store: Arc<Store>,
    /// The address other nodes reach this node at, once it listens.
    url: OnceLock<String>,
    /// The jobs whose locks this node holds (a lock is taken again by its own holder
    /// without waiting, so a node never asks PostgreSQL about its own jobs).
    running: Mutex<HashSet<String>>,
    /// Jobs this node opened again after their node died: at their end every row of the
    /// account is settled (the dead node's import never settled what it added).
    adopted: Mutex<HashSet<String>>,
    /// The accounts whose re-vectorization runs here (their run locks held).
    runs_here: Mutex<HashSet<String>>,
    /// Fired when the node stops serving: its sweep ends.
    stopped: tokio_util::sync::CancellationToken,
    /// How long another node may stay silent (no beat) before this one fences it.
    silent: Duration,
    /// Told of a job (by id) or a run (by account) this node ran that another node took
    /// over (see [`Self::keep_own`]).
    lost_job: OnceLock<LostWork>,
    lost_run: OnceLock<LostWork>,
}

/// What a node does with work of its that another node took over.
type LostWork = Box<dyn Fn(&str) + Send + Sync>;

/// Work a node runs under a lock of its own.
#[derive(Clone, Copy, Debug)]
enum Work<'a> {
    /// An import job, by id.
    Job(&'a str),
    /// A re-vectorization run, by account.
    Run(&'a str),
}

impl Work<'_> {
    fn lock_key(self) -> i64 {
        match self {
            Self::Job(job_id) => lock_key(job_id),
            Self::Run(user_id) => run_key(user_id),
        }
    }
}

impl Nodes {
    /// This node's view of the instance over `store`'s PostgreSQL; none without one.
    /// Another node silent for longer than `silent` is fenced (see [`Self::answers`]).
    pub(crate) async fn connect(store: &Arc<Store>, silent: Duration) -> DbResult<Option<Arc<Self>>> {
        let Some(postgres) = store.postgres() else { return Ok(None) };
        let open_jobs = PostgresOpenJobs::connect(postgres).await?;
        Ok(Some(Arc::new(Self {
            open_jobs,
            store: store.clone(),
            url: OnceLock::new(),
            running: Mutex::default(),
            adopted: Mutex::default(),
            runs_here: Mutex::default(),
            stopped: tokio_util::sync::CancellationToken::new(),
            silent,
            lost_job: OnceLock::new(),
            lost_run: OnceLock::new(),
        })))
    }

    /// The node stops serving: it sweeps no more (nor takes its own locks again).
    pub(crate) fn stop(&self) {
        self.stopped.cancel();
    }

    /// Says where other nodes reach this one (set once, when it listens).
    pub(crate) fn set_url(&self, url: String) {
        let _ = self.url.set(url);
    }

    pub(crate) fn url(&self) -> Option<&str> {
        self.url.get().map(String::as_str)
    }

    /// Whether the node at `url` still answers for its work: a node silent for longer than
    /// the `node_silent` setting (hung: its connections open, its locks held) is fenced
    /// first — every connection it opened is ended, its locks freed — and its work is the
    /// caller's to take over, as a gone node's.
    pub(crate) async fn answers(&self, url: &str) -> bool {
        match self.open_jobs.is_silent(url, self.silent).await {
            Ok(false) => true,
            Ok(true) => {
                self.fence().await;
                false
            }
            Err(error) => {
                tracing::error!("cannot tell whether the node at {url} is there: {error}");
                true
            }
        }
    }

    /// Fences the other nodes silent for too long.
    async fn fence(&self) {
        if let Err(error) = self.open_jobs.fence_silent(self.silent).await {
            tracing::error!("cannot fence the nodes that went silent: {error}");
        }
    }

    /// Says this node is there every quarter of the silence that fences a node, until it
    /// stops serving.
    fn beat_forever(self: &Arc<Self>) {
        let nodes = Arc::downgrade(self);
        let every = (self.silent / 4).clamp(Duration::from_millis(250), SWEEP_EVERY);
        let stopped = self.stopped.clone();
        tokio::spawn(async move {
            let mut beats = tokio::time::interval(every);
            beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = beats.tick() => {}
                    () = stopped.cancelled() => return,
                }
                let Some(nodes) = nodes.upgrade() else { return };
                if let Err(error) = nodes.open_jobs.beat(nodes.url()).await {
                    tracing::error!("cannot say this node is there: {error}");
                }
            }
        });
    }

    /// Whether this node runs job `job_id`.
    pub(crate) fn runs(&self, job_id: &str) -> bool {
        self.running.lock().contains(job_id)
    }

    /// Whether this node still runs job `job_id` as far as the instance knows (see
    /// [`Self::keeps`]); when not, the job may be another node's now, and this node records
    /// nothing of it.
    pub(crate) async fn still_runs(&self, job_id: &str) -> bool {
        self.runs(job_id) && self.keeps(Work::Job(job_id)).await == Some(true)
    }

    /// Whether this node still holds the lock of `work` it runs: `Some(false)` when another
    /// node took it, `None` when the database cannot say. A node whose lock holder's
    /// connection ended lost the lock with it: it takes the lock again when no other node
    /// took it meanwhile and the work is still recorded as this node's.
    async fn keeps(&self, work: Work<'_>) -> Option<bool> {
        let key = work.lock_key();
        if self.open_jobs.holds(key) {
            return Some(true);
        }
        if !self.open_jobs.try_hold(key).await.ok()? {
            return Some(false);
        }
        let recorded = match work {
            Work::Job(job_id) => self.open_jobs.get(job_id).await.map(|job| job.map(|job| job.node_url)),
            Work::Run(user_id) => self.open_jobs.run_of(user_id).await.map(|run| run.map(|run| run.node_url)),
        };
        let ours = match &recorded {
            Ok(Some(node_url)) => node_url.as_deref() == self.url(),
            Ok(None) => false,
            Err(_) => {
                let _ = self.open_jobs.let_go(key).await;
                return None;
            }
        };
        if ours {
            tracing::warn!("took the lock of {work:?} again after this node's lock holder connected again");
            return Some(true);
        }
        let _ = self.open_jobs.let_go(key).await;
        Some(false)
    }

    /// Records a new job of `user_id` as run here: `import_running` when the account runs
    /// one on any node (a job whose node is gone is ended first).
    pub(crate) async fn claim(
        &self,
        job_id: &str,
        user_id: &str,
        kind: JobKind,
        opened: Option<String>,
    ) -> AppResult<()> {
        let key = lock_key(job_id);
        if !self.open_jobs.try_hold(key).await? {
            return Err(AppError::internal(format!("the lock of job {job_id} is held already")));
        }
        self.running.lock().insert(job_id.to_string());
        let row = OpenJobRow {
            job_id: job_id.to_string(),
            user_id: user_id.to_string(),
            lock_key: key,
            node_url: self.url().map(str::to_string),
            kind: kind.as_str().to_string(),
            opened,
            orphaned_at: None,
        };
        // A job recorded with this node's address finds that address beating.
        if let Err(error) = self.open_jobs.beat(self.url()).await {
            tracing::error!("cannot say this node is there: {error}");
        }
        let claimed = self.claim_row(&row).await;
        if !matches!(claimed, Ok(true)) {
            self.running.lock().remove(job_id);
            let _ = self.open_jobs.let_go(key).await;
        }
        match claimed? {
            true => Ok(()),
            false => Err(AppError::ImportRunning),
        }
    }

    /// Inserts `row`; when the account has an open job whose node is gone, ends that one
    /// and tries once more.
    async fn claim_row(&self, row: &OpenJobRow) -> DbResult<bool> {
        for _ in 0..2 {
            if self.open_jobs.insert(row, now()).await? {
                return Ok(true);
            }
            let Some(existing) = self.open_jobs.of_user(&row.user_id).await? else { continue };
            if !self.is_gone(&existing).await? {
                return Ok(false);
            }
            self.end_abandoned(&existing).await;
        }
        Ok(false)
    }

    /// The open job `job_id` as recorded, if it is open anywhere.
    pub(crate) async fn open_job(&self, job_id: &str) -> DbResult<Option<OpenJobRow>> {
        self.open_jobs.get(job_id).await
    }

    /// Whether `job`'s node is gone. When it is, this node holds the job's lock now: the
    /// caller ends it ([`Self::end_abandoned`]), adopts it, or lets it go ([`Self::let_go`]).
    pub(crate) async fn is_gone(&self, job: &OpenJobRow) -> DbResult<bool> {
        if self.runs(&job.job_id) {
            return Ok(false);
        }
        self.open_jobs.try_hold(job.lock_key).await
    }

    /// Whether this node holds `job`'s lock (it runs the job, or is ending or taking over
    /// a gone node's).
    pub(crate) fn holds_lock_of(&self, job: &OpenJobRow) -> bool {
        self.open_jobs.holds(job.lock_key)
    }

    /// Gives back the lock of a job [`Self::is_gone`] found gone and this node leaves be.
    pub(crate) async fn let_go(&self, job: &OpenJobRow) {
        if let Err(error) = self.open_jobs.let_go(job.lock_key).await {
            tracing::error!("cannot let go of job {}'s lock: {error}", job.job_id);
        }
    }

    /// Ends a job whose node is gone (its lock held here): a recorded job fails with
    /// `interrupted` and what it applied is settled, as a restarted node does with its own.
    pub(crate) async fn end_abandoned(&self, job: &OpenJobRow) {
        if JobKind::of(&job.kind) != JobKind::Preview {
            let failure = JobFailure::Interrupted;
            let recorded = self
                .store
                .jobs()
                .finish_job(&job.job_id, "failed", now(), Some(failure.code()), Some(&failure.message()), "")
                .await;
            if let Err(error) = recorded {
                tracing::error!("cannot record the end of interrupted job {}: {error}", job.job_id);
            }
            self.settle(&job.user_id).await;
        }
        if let Err(error) = self.open_jobs.remove(&job.job_id).await {
            tracing::error!("cannot forget interrupted job {}: {error}", job.job_id);
        }
        self.let_go(job).await;
        tracing::warn!("import job {} of a node that is gone ended as interrupted", job.job_id);
    }

    /// Makes a batch job whose node is gone (its lock held here) this node's: the caller
    /// opens it again from its open request, and the import it starts takes what the gone
    /// node's import applied as its own.
    pub(crate) async fn adopt(&self, job: &OpenJobRow) -> DbResult<()> {
        self.open_jobs.hand_on_imports(&job.user_id).await?;
        self.open_jobs.move_to(&job.job_id, self.url()).await?;
        self.running.lock().insert(job.job_id.clone());
        self.adopted.lock().insert(job.job_id.clone());
        tracing::warn!("took over batch import {} from a node that is gone", job.job_id);
        Ok(())
    }

    /// Forgets a job that ended on this node, once its end is recorded.
    pub(crate) async fn release(&self, job_id: &str, user_id: &str) {
        if self.adopted.lock().remove(job_id) {
            self.settle(user_id).await;
        }
        if let Err(error) = self.open_jobs.remove(job_id).await {
            tracing::error!("cannot forget ended job {job_id}: {error}");
        }
        if self.running.lock().remove(job_id) {
            if let Err(error) = self.open_jobs.let_go(lock_key(job_id)).await {
                tracing::error!("cannot let go of job {job_id}'s lock: {error}");
            }
        }
    }

    /// Forgets a job that ended on this node after another may have taken it over (see
    /// [`Self::still_runs`]): its record and lock are not this node's to touch.
    pub(crate) fn forget(&self, job_id: &str) {
        self.adopted.lock().remove(job_id);
        self.running.lock().remove(job_id);
    }

    /// Settles every row of `user_id`'s (what an interrupted import added was never
    /// settled), and forgets the imports the account left open, whose rows exports show
    /// again. Only while the account runs no job: its open job is this node's to end.
    async fn settle(&self, user_id: &str) {
        self.store.settle_after_interrupted_import(user_id).await;
        if let Err(error) = self.open_jobs.forget_imports_of(user_id).await {
            tracing::error!("cannot forget the open imports of {user_id}: {error}");
        }
    }

    /// One look at the jobs of other nodes: those whose node is gone are ended (a batch
    /// import once it stayed so for `batch_wait`); recorded jobs no node runs fail.
    pub(crate) async fn sweep(&self, batch_wait: Duration) -> DbResult<()> {
        self.fence().await;
        for job in self.open_jobs.others(self.url(), SWEEP_LIMIT).await? {
            if !self.is_gone(&job).await? {
                continue;
            }
            let waited = job.orphaned_at.map(|since| now().saturating_sub(since));
            let wait = i64::try_from(batch_wait.as_secs()).unwrap_or(i64::MAX);
            match (JobKind::of(&job.kind), waited) {
                (JobKind::Batch, None) => {
                    self.open_jobs.mark_orphaned(&job.job_id, now()).await?;
                    self.let_go(&job).await;
                }
                (JobKind::Batch, Some(waited)) if waited < wait => self.let_go(&job).await,
                _ => self.end_abandoned(&job).await,
            }
        }
        let failure = JobFailure::Interrupted;
        for user in self.open_jobs.fail_unowned_jobs(now(), failure.code(), &failure.message()).await? {
            self.settle(&user).await;
        }
        Ok(())
    }

    /// Says what to do with a job of this node's that another node took over.
    pub(crate) fn on_lost_job(&self, lost: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.lost_job.set(Box::new(lost));
    }

    /// Says what to do with an account's run that went on here and another node took over.
    pub(crate) fn on_lost_run(&self, lost: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.lost_run.set(Box::new(lost));
    }

    /// Takes again the locks of this node's jobs and runs that went with its lock holder's
    /// connection, before other nodes find them free (see [`Self::keeps`]); a job another
    /// node took meanwhile is forgotten here and stopped.
    async fn keep_own(&self) {
        let jobs: Vec<String> = self.running.lock().iter().cloned().collect();
        for job_id in &jobs {
            if self.keeps(Work::Job(job_id)).await == Some(false) {
                self.forget(job_id);
                if let Some(lost) = self.lost_job.get() {
                    lost(job_id);
                }
            }
        }
        let runs: Vec<String> = self.runs_here.lock().iter().cloned().collect();
        for user_id in &runs {
            if self.keeps(Work::Run(user_id)).await == Some(false) {
                self.runs_here.lock().remove(user_id);
                if let Some(lost) = self.lost_run.get() {
                    lost(user_id);
                }
            }
        }
    }

    /// Sweeps every [`SWEEP_EVERY`] (and at once when its lock holder's connection ended,
    /// its own work first) until the node stops serving; the accounts whose
    /// re-vectorization ran on a node that is gone are handed to `resume` (which starts
    /// them here, if no other node did first).
    pub(crate) fn sweep_forever(
        self: &Arc<Self>,
        batch_wait: Duration,
        resume: impl Fn(String) + Send + Sync + 'static,
    ) {
        self.beat_forever();
        let nodes = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let Some((stopped, ended)) =
                nodes.upgrade().map(|nodes| (nodes.stopped.clone(), nodes.open_jobs.connection_ended()))
            else {
                return;
            };
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = ended.notified() => {}
                    () = stopped.cancelled() => return,
                }
                let Some(nodes) = nodes.upgrade() else { return };
                // Its own first, before other nodes find their locks free.
                nodes.keep_own().await;
                if let Err(error) = nodes.sweep(batch_wait).await {
                    tracing::error!("cannot look for jobs of gone nodes: {error}");
                }
                match nodes.gone_runs().await {
                    Ok(users) => users.into_iter().for_each(&resume),
                    Err(error) => tracing::error!("cannot look for runs of gone nodes: {error}"),
                }
            }
        });
    }
}
