//! [`ImportServices`]: what a running import reaches of the instance — the store, the jobs
//! and their worker pool, re-vectorization (started when an import marked rows), the caps
//! and hosting limits, the memory budget — without the HTTP state (so the import engine
//! does not depend on the layer that serves it).

use std::sync::Arc;

use lvbak_core::Limits;

use super::jobs::{Job, Jobs, Outcome};
use crate::config::HostingLimits;
use crate::embeddings::Embeddings;
use crate::memory::MemoryBudget;
use crate::storage::Store;

#[derive(Clone)]
pub struct ImportServices {
    pub store: Arc<Store>,
    pub jobs: Jobs,
    pub embeddings: Arc<Embeddings>,
    pub hosting: HostingLimits,
    pub limits: Limits,
    pub memory: MemoryBudget,
}

impl ImportServices {
    /// Ends an import job (see [`Jobs::finish`]); an import that marked rows for
    /// re-vectorization queues them and starts the user's run when their settings allow —
    /// before the job says it is complete, so a client that sees it complete and asks for
    /// the run's status sees this run, not the one before it.
    pub async fn finish_job(&self, job: &Job, outcome: Outcome) {
        if matches!(&outcome, Outcome::Complete(summary) if summary.revectorized > 0) {
            self.embeddings.resume(&job.user_id).await;
        }
        self.jobs.finish(&self.store, job, outcome).await;
    }
}
