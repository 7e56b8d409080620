//! [`EmbeddingQueue`]: re-vectorization's side of storage — the four kinds of rows that
//! carry a vector ([`SourceKind`]), each account's queue of rows waiting for one, the rows
//! handed out with their text ([`SourceRow`]), marking them vectorized, and resetting an
//! account's rows when its embedding model changes.
//!
//! A backend must guarantee: every method touches the rows of the account it names only,
//! checked through the row's own owner or its parent's (a chat, a world book); a row leaves
//! the queue in the same write that marks it vectorized, so a run killed at any point
//! resumes without losing or doubling a row; rows recorded as being written
//! (`mark_writing`) come back with `written` set.

use async_trait::async_trait;

use crate::storage::sqlite::DbResult;

/// A kind of row that has a vector, with the facts Lumiverse's vector rows use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    ChatChunk,
    MemoryConsolidation,
    DatabankChunk,
    WorldBookEntry,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] =
        [Self::ChatChunk, Self::MemoryConsolidation, Self::DatabankChunk, Self::WorldBookEntry];

    /// The vector row's `source_type` (and the queue's `source`).
    pub fn source_type(self) -> &'static str {
        match self {
            Self::ChatChunk => "chat_chunk",
            Self::MemoryConsolidation => "memory_consolidation",
            Self::DatabankChunk => "databank",
            Self::WorldBookEntry => "world_book_entry",
        }
    }

    pub fn from_source_type(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.source_type() == text)
    }

    /// The LanceDB table its vectors live in.
    pub fn vector_table(self) -> &'static str {
        match self {
            Self::WorldBookEntry => "embeddings_world_books",
            _ => "embeddings",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Self::ChatChunk => "chat_chunks",
            Self::MemoryConsolidation => "memory_consolidations",
            Self::DatabankChunk => "databank_chunks",
            Self::WorldBookEntry => "world_book_entries",
        }
    }
}

/// One row to embed, as read from its table.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRow {
    pub kind: SourceKind,
    pub id: String,
    /// The chat, databank or world book the row belongs to (the vector's `owner_id`).
    pub owner_id: String,
    pub text: String,
    pub token_count: Option<i64>,
    /// Consolidation title, databank chunk metadata, or world-book entry comment.
    pub label: Option<String>,
    /// World-book entry keys (JSON arrays as text).
    pub keys: Option<String>,
    pub secondary_keys: Option<String>,
    /// An earlier attempt may have written this row's vector (see [`EmbeddingQueue::mark_writing`]).
    pub written: bool,
}

#[async_trait]
pub(crate) trait EmbeddingQueue: Send + Sync {
    /// Queues the account's rows of `kinds` that wait for a vector; how many are queued now.
    async fn queue_pending_embeddings(&self, user_id: &str, kinds: &[SourceKind]) -> DbResult<u64>;

    /// How many rows of the account wait in the queue.
    async fn queued_embeddings(&self, user_id: &str) -> DbResult<u64>;

    /// Accounts with rows in the queue (runs to resume after a restart).
    async fn users_with_queued_embeddings(&self) -> DbResult<Vec<String>>;

    /// Up to `limit` queued rows of the account with their text, in (source type, id)
    /// order after `after` (the last row a run took). Queue entries whose row is gone, no
    /// longer the account's, or no longer waiting are dropped on the way.
    async fn next_embedding_sources(
        &self,
        user_id: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> DbResult<Vec<SourceRow>>;

    /// Records that the rows' vectors are about to be written (before the vector store is
    /// touched).
    async fn mark_writing(&self, user_id: &str, rows: &[(SourceKind, String)]) -> DbResult<()>;

    /// Marks rows vectorized by `model` at `now` and takes them out of the queue, in one
    /// write (their vectors are already stored).
    async fn mark_embedded(&self, user_id: &str, rows: &[(SourceKind, String)], model: &str, now: i64) -> DbResult<()>;

    /// Makes every row of the account wait for a vector again (its model changed) and
    /// empties its queue; how many rows were reset.
    async fn reset_embeddings(&self, user_id: &str) -> DbResult<u64>;
}
