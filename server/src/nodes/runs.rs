//! Re-vectorization runs across the nodes of an instance: one run per account on any
//! node (`lvbak_open_runs`, the account's run lock held by the node running it), where it
//! goes (requests about it are forwarded there: `embeddings::forward`), how it last ended
//! (`lvbak_run_ends`, so every node answers alike), and which runs' nodes are gone.

use super::{Nodes, Work, SWEEP_LIMIT};
use crate::storage::postgres::{lock_key, OpenRunRow};
use crate::storage::sqlite::DbResult;
use crate::util::now;

/// The lock of `user_id`'s re-vectorization run (one per account across every node).
pub(super) fn run_key(user_id: &str) -> i64 {
    lock_key(&format!("run:{user_id}"))
}

impl Nodes {
    /// Records `user_id`'s re-vectorization run as going here: `false` when it goes on
    /// another node that is still there (a gone node's run becomes this node's).
    pub(crate) async fn claim_run(&self, user_id: &str) -> DbResult<bool> {
        if self.runs_run(user_id) {
            return Ok(self.keeps(Work::Run(user_id)).await == Some(true));
        }
        let key = run_key(user_id);
        if !self.open_jobs.try_hold(key).await? {
            return Ok(false);
        }
        // The lock is this node's: no run goes anywhere else (a row left is a gone node's).
        let row = OpenRunRow { user_id: user_id.to_string(), lock_key: key, node_url: self.url().map(str::to_string) };
        if let Err(error) = self.open_jobs.beat(self.url()).await {
            tracing::error!("cannot say this node is there: {error}");
        }
        let recorded = async {
            self.open_jobs.remove_run(user_id).await?;
            self.open_jobs.insert_run(&row, now()).await
        };
        match recorded.await {
            Ok(_) => {
                self.runs_here.lock().insert(user_id.to_string());
                Ok(true)
            }
            Err(error) => {
                let _ = self.open_jobs.let_go(key).await;
                Err(error)
            }
        }
    }

    /// Whether `user_id`'s run goes on this node.
    pub(crate) fn runs_run(&self, user_id: &str) -> bool {
        self.runs_here.lock().contains(user_id)
    }

    /// Whether `user_id`'s run goes on this node as far as the instance knows (see
    /// [`Self::keeps`]).
    pub(crate) async fn still_runs_run(&self, user_id: &str) -> bool {
        self.runs_run(user_id) && self.keeps(Work::Run(user_id)).await == Some(true)
    }

    /// Forgets `user_id`'s run, which ended here.
    /// The run reads as this node's until both are gone, so a request about it meanwhile
    /// is answered here (never by starting it again).
    pub(crate) async fn release_run(&self, user_id: &str) {
        if !self.still_runs_run(user_id).await {
            // Another node may run it now: its record and lock are not this node's.
            self.runs_here.lock().remove(user_id);
            return;
        }
        if let Err(error) = self.open_jobs.remove_run(user_id).await {
            tracing::error!("cannot forget the run of {user_id}: {error}");
        }
        if let Err(error) = self.open_jobs.let_go(run_key(user_id)).await {
            tracing::error!("cannot let go of the run lock of {user_id}: {error}");
        }
        self.runs_here.lock().remove(user_id);
    }

    /// Records how `user_id`'s run ended (its final status), for every node to answer.
    pub(crate) async fn record_run_end(&self, user_id: &str, status: &lvbak_core::protocol::RunStatus) {
        let text = serde_json::to_string(status).unwrap_or_default();
        if let Err(error) = self.open_jobs.record_run_end(user_id, &text).await {
            tracing::error!("cannot record how the run of {user_id} ended: {error}");
        }
    }

    /// How `user_id`'s last run ended, wherever it went.
    pub(crate) async fn run_end(&self, user_id: &str) -> DbResult<Option<lvbak_core::protocol::RunStatus>> {
        let text = self.open_jobs.run_end(user_id).await?;
        Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// The run of `user_id` as recorded, if one goes on any node.
    pub(crate) async fn run_of(&self, user_id: &str) -> DbResult<Option<OpenRunRow>> {
        self.open_jobs.run_of(user_id).await
    }

    /// Whether `run`'s node is gone (its lock free; given back at once).
    pub(crate) async fn run_is_gone(&self, run: &OpenRunRow) -> DbResult<bool> {
        if self.runs_run(&run.user_id) {
            return Ok(false);
        }
        let gone = self.open_jobs.try_hold(run.lock_key).await?;
        if gone {
            self.open_jobs.let_go(run.lock_key).await?;
        }
        Ok(gone)
    }

    /// The accounts whose run went on a node that is gone.
    pub(super) async fn gone_runs(&self) -> DbResult<Vec<String>> {
        let mut gone = Vec::new();
        for run in self.open_jobs.other_runs(self.url(), SWEEP_LIMIT).await? {
            if self.run_is_gone(&run).await? {
                gone.push(run.user_id);
            }
        }
        Ok(gone)
    }
}
