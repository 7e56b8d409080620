//! [`Embeddings`]: one re-vectorization run per user at a time, on the async runtime. A run
//! queues the user's rows that wait for a vector, then takes them `batch_size` at a time:
//! their text goes to the provider, the vectors are written to LanceDB (replacing any row
//! of the same id), and the rows are marked vectorized and leave the queue in one
//! transaction — so a run killed at any point resumes without duplicates, and memory holds
//! one batch whatever the number of rows. Requests to providers are limited per instance;
//! the vectors count against the account's quota like an import's.

use crate::embeddings::config::EmbeddingRules as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{EmbeddingClient, RUN_ATTEMPTS};
use super::config::{EmbeddingSettings, LEGACY_SECRET_KEY, SETTING_KEY};
use crate::nodes::Nodes;
use crate::storage::sqlite::DbError;
use crate::storage::{SourceKind, SourceRow, Store, VectorRow};

/// Runs remembered (finished ones too, for their status) before finished ones are dropped.
const REMEMBERED_RUNS: usize = 10_000;

impl RunStop {}

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the embeddings setting was restored from a backup and is switched off until you check and save it in this account"
    )]
    NotConfirmed,
    #[error(transparent)]
    Database(#[from] DbError),
}

mod keys;
mod rows;
mod work;

pub use rows::embedded_text;
use work::RunStop;

pub use lvbak_core::protocol::RunStatus;

struct Run {
    cancel: CancellationToken,
    status: watch::Sender<RunStatus>,
    running: bool,
}

/// The user's entry in `runs`, made (not running) if missing. Finished runs are forgotten
/// once the map holds `REMEMBERED_RUNS`: one entry per account at most, running ones kept.
fn run_entry<'a>(
    runs: &'a mut HashMap<String, Run>,
    user_id: &str,
    initial: impl FnOnce() -> RunStatus,
) -> &'a mut Run {
    if runs.len() >= REMEMBERED_RUNS && !runs.contains_key(user_id) {
        runs.retain(|_, run| run.running);
    }
    runs.entry(user_id.to_string()).or_insert_with(|| Run {
        cancel: CancellationToken::new(),
        status: watch::Sender::new(initial()),
        running: false,
    })
}

/// Every user's runs, the provider client and the instance's request limit.
pub struct Embeddings {
    store: Arc<Store>,
    client: EmbeddingClient,
    quota: Option<u64>,
    runs: Mutex<HashMap<String, Run>>,
    runtime: Option<tokio::runtime::Handle>,
    /// The instance's other nodes (with PostgreSQL): one run per account across them.
    nodes: std::sync::OnceLock<Arc<Nodes>>,
}

impl Embeddings {
    /// `concurrent_requests` requests to providers at once across the instance; `quota`
    /// the instance's per-account quota; `private_hosts` whether URLs may reach this
    /// machine's own network.
    pub async fn new(store: Arc<Store>, concurrent_requests: usize, quota: Option<u64>, private_hosts: bool) -> Self {
        let timeout = crate::config::DEFAULT_EMBEDDING_TIMEOUT;
        Self::with_timeout(store, concurrent_requests, quota, private_hosts, timeout).await
    }

    /// As [`Self::new`], with the longest a provider request may take.
    pub async fn with_timeout(
        store: Arc<Store>,
        concurrent_requests: usize,
        quota: Option<u64>,
        private_hosts: bool,
        longest_timeout: std::time::Duration,
    ) -> Self {
        Self::bind_keys_saved_before_bindings(&store).await;
        Self {
            store,
            client: EmbeddingClient::new(private_hosts, concurrent_requests, longest_timeout),
            quota,
            runs: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::try_current().ok(),
            nodes: std::sync::OnceLock::new(),
        }
    }

    /// Runs go on one node of the instance at a time from now on.
    pub(crate) fn join(&self, nodes: Arc<Nodes>) {
        let _ = self.nodes.set(nodes);
    }

    pub fn client(&self) -> &EmbeddingClient {
        &self.client
    }

    /// Where the user's run stands (pending read from the queue when no run is going).
    pub async fn status(&self, user_id: &str) -> Result<RunStatus, DbError> {
        let current = self.runs.lock().get(user_id).map(|run| run.status.borrow().clone());
        if let (Some(nodes), false) = (self.nodes.get(), current.as_ref().is_some_and(|s| s.status == "running")) {
            // Not going here: how it last ended, wherever it went.
            if let Some(mut ended) = nodes.run_end(user_id).await? {
                ended.pending = self.store.embedding_queue().queued_embeddings(user_id).await?;
                return Ok(ended);
            }
        }
        match current {
            Some(status) if status.status == "running" => Ok(status),
            Some(mut status) => {
                status.pending = self.store.embedding_queue().queued_embeddings(user_id).await?;
                Ok(status)
            }
            None => {
                let settings = self.settings(user_id).await?;
                let pending = self.store.embedding_queue().queued_embeddings(user_id).await?;
                Ok(RunStatus {
                    status: "idle".into(),
                    pending,
                    total: pending,
                    batch_size: settings.batch_size,
                    model: settings.model,
                    ..RunStatus::default()
                })
            }
        }
    }

    /// A receiver of the user's run status as it changes (a run is not started for it).
    pub async fn watch(&self, user_id: &str) -> Result<watch::Receiver<RunStatus>, DbError> {
        let initial = self.status(user_id).await?;
        let mut runs = self.runs.lock();
        Ok(run_entry(&mut runs, user_id, || initial).status.subscribe())
    }

    /// Starts the user's run unless one is going; its status. A setting restored from a
    /// backup runs nothing until the user confirms it.
    pub async fn start(self: &Arc<Self>, user_id: &str) -> Result<RunStatus, StartError> {
        let settings = self.settings(user_id).await?;
        if settings.restored {
            return Err(StartError::NotConfirmed);
        }
        let pending = self.store.embedding_queue().queue_pending_embeddings(user_id, &settings.kinds()).await?;
        let status = RunStatus {
            status: "running".into(),
            pending,
            total: pending,
            batch_size: settings.batch_size,
            model: settings.model.clone(),
            ..RunStatus::default()
        };
        let cancel = CancellationToken::new();
        if let Some(nodes) = self.nodes.get() {
            if !self.is_running(user_id) && !nodes.claim_run(user_id).await? {
                // Another node runs it (a request for it is forwarded there).
                return Ok(status);
            }
        }
        {
            let mut runs = self.runs.lock();
            let run = run_entry(&mut runs, user_id, || status.clone());
            if run.running {
                return Ok(run.status.borrow().clone());
            }
            run.cancel = cancel.clone();
            run.running = true;
            run.status.send_replace(status.clone());
        }
        let Some(runtime) = &self.runtime else {
            return Ok(status);
        };
        let (this, user) = (self.clone(), user_id.to_string());
        runtime.spawn(async move {
            let ended = this.run(&user, settings, &cancel).await;
            this.end(&user, ended).await;
        });
        Ok(status)
    }

    /// Queues the user's rows that wait for a vector, and starts their run if their settings
    /// let it start by itself: enabled, and a key stored (or a provider that needs none,
    /// such as a local server). Called after an import marked rows and after a restart.
    pub async fn resume(self: &Arc<Self>, user_id: &str) {
        let startable = async {
            let settings = self.settings(user_id).await?;
            self.store.embedding_queue().queue_pending_embeddings(user_id, &settings.kinds()).await?;
            let keyless = settings.provider == "openai-compatible";
            Ok::<_, DbError>(settings.enabled && (keyless || self.api_key(user_id, &settings).await?.is_some()))
        };
        match startable.await {
            Ok(true) => {
                if let Err(error) = self.start(user_id).await {
                    tracing::warn!("re-vectorization of {user_id} did not start: {error}");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!("re-vectorization of {user_id}: {error}"),
        }
    }

    /// Resumes every run a previous process left with rows queued.
    pub async fn resume_all(self: &Arc<Self>) {
        match self.store.embedding_queue().users_with_queued_embeddings().await {
            Ok(users) => {
                for user in &users {
                    self.resume(user).await;
                }
            }
            Err(error) => tracing::warn!("cannot list queued embeddings: {error}"),
        }
    }

    /// Asks the user's run to stop; whether one was running.
    pub fn cancel(&self, user_id: &str) -> bool {
        let runs = self.runs.lock();
        match runs.get(user_id).filter(|run| run.running) {
            Some(run) => {
                run.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether the user's run is going.
    pub fn is_running(&self, user_id: &str) -> bool {
        self.runs.lock().get(user_id).is_some_and(|run| run.running)
    }

    /// Waits for the user's run to end; its final status.
    pub async fn finished(&self, user_id: &str) -> Option<RunStatus> {
        let mut receiver = {
            let runs = self.runs.lock();
            runs.get(user_id)?.status.subscribe()
        };
        let ended = receiver.wait_for(|status| status.status != "running").await.ok()?.clone();
        Some(ended)
    }

    fn publish(&self, user_id: &str, change: impl FnOnce(&mut RunStatus)) {
        let runs = self.runs.lock();
        if let Some(run) = runs.get(user_id) {
            run.status.send_modify(change);
        }
    }

    async fn end(&self, user_id: &str, ended: Result<(), RunStop>) {
        let pending = self.store.embedding_queue().queued_embeddings(user_id).await.unwrap_or_default();
        let finish = |status: &mut RunStatus| {
            status.pending = pending;
            match &ended {
                Ok(()) => status.status = "complete".into(),
                Err(stop) => {
                    status.failed = pending;
                    status.error = stop.message();
                    status.status = stop.code().into();
                }
            }
        };
        // Recorded and let go before the run reads as ended here: a status asked meanwhile,
        // on this node or another, reads "running" or this end, never the run before's;
        // and a start asked as soon as it reads ended finds the run free to claim.
        if let Some(nodes) = self.nodes.get() {
            let last = self.runs.lock().get(user_id).map(|run| {
                let mut last = run.status.borrow().clone();
                finish(&mut last);
                last
            });
            // A run whose lock went with this node's lock holder (and another node took)
            // records nothing: how it ends there is that node's to say.
            if let (Some(last), true) = (&last, nodes.still_runs_run(user_id).await) {
                nodes.record_run_end(user_id, last).await;
            }
            nodes.release_run(user_id).await;
        }
        if let Some(run) = self.runs.lock().get_mut(user_id) {
            run.running = false;
            run.status.send_modify(finish);
        }
    }
}
