//! [`Work`]: one piece of a batch job's work in arrival order (a batch, a vectors check,
//! the commit) and [`Queued`], work in the job's queue with the places it holds.

use lvbak_core::batch::Batch;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// One piece of work for the job, in arrival order.
pub enum Work {
    /// A batch as decoded (`lvbak_core::batch`: payloads still deflated), a bundle's parts
    /// applied in order. A rows batch's `held` is what the job's held-rows budget granted
    /// (see `BatchUpload`), not what the client claimed.
    Batch(Batch),
    /// Whether vectors may come (`None`) or why not, once the batches before are applied.
    CheckVectors(oneshot::Sender<Option<String>>),
    /// Apply what is left and complete the job; answered once the job has ended.
    Commit(oneshot::Sender<()>),
}

/// Work in the queue, with what it holds until it is done: its place in the job's queue
/// and its share of the instance's memory budget.
pub struct Queued {
    pub work: Work,
    pub place: OwnedSemaphorePermit,
    pub memory: Option<crate::memory::Held>,
}
