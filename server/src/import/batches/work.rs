//! [`Work`]: one piece of a batch job's work in arrival order (rows, a row stream's
//! segment, vectors, a file chunk, sealed secrets, a bundle of those, a vectors check, the
//! commit) and [`Queued`], work in the job's queue with the places it holds.

use lvbak_core::batch::Batch;
use lvbak_core::FileBucket;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

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
