//! [`AppState`]: what every request handler can reach — the store, the caps and hosting
//! limits, progress channels, prepared exports, export slots, import jobs and the sign-in
//! guard. Built once per server; cloning it is cheap.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lvbak_core::Limits;

use crate::config::HostingLimits;
use crate::embeddings::Embeddings;
use crate::export::prepared::PreparedExports;
use crate::import::jobs::{self, Job, Jobs, Outcome};
use crate::import::services::ImportServices;
use crate::memory::MemoryBudget;
use crate::nodes::Nodes;
use crate::progress::ProgressHub;
use crate::sign_in::{SignInBuckets, SignInGuard};
use crate::storage::backend::{PreparedExportStore, SignInLimits};
use crate::storage::postgres::{PostgresPreparedExports, PostgresSignInLimits, PostgresStores};
use crate::storage::Store;
use crate::throttle::Slots;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<Store>,
    web_dir: PathBuf,
    limits: Limits,
    hosting: HostingLimits,
    progress: ProgressHub,
    prepared_exports: Arc<dyn PreparedExportStore>,
    exports: Slots,
    jobs: Jobs,
    sign_in: SignInGuard,
    /// What users' requests and imports hold in memory (see `memory`).
    memory: MemoryBudget,
    /// Requests that reached the import routes (for tests: a refused file sends none).
    import_requests: AtomicU64,
    requests: AtomicU64,
    embeddings: Arc<Embeddings>,
}

/// What every node of an instance must share, and where it is kept: in this process's
/// memory (one node: [`SharedAcrossNodes::in_memory`]) or a database every node reaches.
pub(crate) struct SharedAcrossNodes {
    pub(crate) sign_in_limits: Arc<dyn SignInLimits>,
    pub(crate) prepared_exports: Arc<dyn PreparedExportStore>,
}

impl SharedAcrossNodes {
    /// Kept in PostgreSQL, which every node of the instance reaches.
    pub(crate) fn in_postgres(postgres: &PostgresStores, hosting: &HostingLimits) -> Self {
        Self {
            sign_in_limits: Arc::new(PostgresSignInLimits::new(
                postgres.clone(),
                hosting.login_burst,
                hosting.login_interval,
            )),
            prepared_exports: Arc::new(PostgresPreparedExports::new(
                postgres.clone(),
                hosting.prepared_exports_per_user,
            )),
        }
    }

    /// Kept in this process's memory.
    pub(crate) fn in_memory(hosting: &HostingLimits) -> Self {
        Self {
            sign_in_limits: Arc::new(SignInBuckets::new(hosting)),
            prepared_exports: Arc::new(PreparedExports::new(hosting.prepared_exports_per_user)),
        }
    }
}

impl AppState {
    /// The state of a server over `store`; import jobs a previous process left unfinished
    /// are marked failed.
    pub async fn new(store: Arc<Store>, web_dir: PathBuf, limits: Limits, hosting: HostingLimits) -> Self {
        let shared = match store.postgres() {
            Some(postgres) => SharedAcrossNodes::in_postgres(postgres, &hosting),
            None => SharedAcrossNodes::in_memory(&hosting),
        };
        Self::with_shared(store, web_dir, limits, hosting, shared).await
    }

    /// The state of a server over `store`, with what nodes share kept in `shared`.
    pub(crate) async fn with_shared(
        store: Arc<Store>,
        web_dir: PathBuf,
        limits: Limits,
        hosting: HostingLimits,
        shared: SharedAcrossNodes,
    ) -> Self {
        let nodes = match Nodes::connect(&store, hosting.node_silent).await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::error!("cannot reach PostgreSQL for this node's job locks: {error}");
                None
            }
        };
        jobs::recover(&store, nodes.as_deref(), hosting.import_idle).await;
        let embeddings = Arc::new(
            Embeddings::with_timeout(
                store.clone(),
                hosting.embedding_requests,
                hosting.quota,
                hosting.embedding_private_hosts,
                hosting.embedding_timeout,
            )
            .await,
        );
        if let Some(nodes) = &nodes {
            embeddings.join(nodes.clone());
            // A run another node took over stops here (recording nothing: see its end).
            let runs = Arc::downgrade(&embeddings);
            nodes.on_lost_run(move |user| {
                if let Some(embeddings) = runs.upgrade() {
                    tracing::warn!("the re-vectorization run of {user} went on another node: it stops here");
                    embeddings.cancel(user);
                }
            });
            // A run whose node is gone goes on here.
            let resumer = Arc::downgrade(&embeddings);
            nodes.sweep_forever(hosting.import_idle, move |user| {
                if let Some(embeddings) = resumer.upgrade() {
                    tokio::spawn(async move { embeddings.resume(&user).await });
                }
            });
        }
        Self {
            inner: Arc::new(Shared {
                jobs: Jobs::new(&hosting, nodes),
                exports: Slots::new(hosting.exports_per_user, hosting.exports),
                prepared_exports: shared.prepared_exports,
                sign_in: SignInGuard::new(&hosting, shared.sign_in_limits),
                memory: MemoryBudget::new(hosting.batch_memory),
                embeddings,
                store,
                web_dir,
                limits,
                hosting,
                progress: ProgressHub::default(),
                import_requests: AtomicU64::new(0),
                requests: AtomicU64::new(0),
            }),
        }
    }

    pub fn store(&self) -> Arc<Store> {
        self.inner.store.clone()
    }

    pub fn web_dir(&self) -> &PathBuf {
        &self.inner.web_dir
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub fn hosting(&self) -> &HostingLimits {
        &self.inner.hosting
    }

    pub fn progress(&self) -> &ProgressHub {
        &self.inner.progress
    }

    pub(crate) fn prepared_exports(&self) -> &dyn PreparedExportStore {
        &*self.inner.prepared_exports
    }

    pub fn exports(&self) -> &Slots {
        &self.inner.exports
    }

    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// This node among the instance's (with PostgreSQL).
    pub(crate) fn nodes(&self) -> Option<&Arc<Nodes>> {
        self.inner.jobs.nodes()
    }

    /// Says where the instance's other nodes reach this one: `--node-url`, or the address
    /// it listens on unless that is every interface's (then it takes no forwarded requests).
    pub fn set_node_url(&self, url: Option<String>, listening: std::net::SocketAddr) {
        let Some(nodes) = self.nodes() else { return };
        let url = url.or_else(|| (!listening.ip().is_unspecified()).then(|| format!("http://{listening}")));
        if let Some(url) = url {
            nodes.set_url(url.trim_end_matches('/').to_string());
        }
    }

    pub fn sign_in(&self) -> &SignInGuard {
        &self.inner.sign_in
    }

    pub(crate) fn memory(&self) -> &MemoryBudget {
        &self.inner.memory
    }

    pub fn embeddings(&self) -> &Arc<Embeddings> {
        &self.inner.embeddings
    }

    /// What a running import reaches of the instance.
    pub fn import_services(&self) -> ImportServices {
        ImportServices {
            store: self.store(),
            jobs: self.jobs().clone(),
            embeddings: self.embeddings().clone(),
            hosting: self.hosting().clone(),
            limits: self.limits(),
            memory: self.memory().clone(),
        }
    }

    /// Ends an import job (see [`ImportServices::finish_job`]).
    pub async fn finish_job(&self, job: &Job, outcome: Outcome) {
        self.import_services().finish_job(job, outcome).await;
    }

    /// Refuses an import before anything is uploaded when the account already keeps more
    /// than its quota (the import itself would refuse it too: see `ImportSession::new`).
    pub(crate) async fn ensure_under_quota(&self, user_id: &str) -> crate::error::AppResult<()> {
        let accounts = self.inner.store.accounts();
        let quota = accounts.quota_of(user_id).await?.unwrap_or(self.hosting().quota);
        let used = accounts.usage_of(user_id).await?.unwrap_or(0);
        match quota {
            Some(quota) if used > quota => {
                Err(crate::error::AppError::OverQuota(crate::failure::OverQuota { quota, used }))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn count_request(&self, to_import: bool) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        if to_import {
            self.inner.import_requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many requests reached the server since start (any route, the page's files too).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// How many requests reached the import routes since start.
    pub fn import_requests(&self) -> u64 {
        self.inner.import_requests.load(Ordering::Relaxed)
    }
}
