//! [`VectorStorage`]: the vectors of every account — the archive tables `embeddings` and
//! `embeddings_world_books` in Lumiverse's column layout (FORMAT §5), kept apart by vector
//! dimension — and the seam another backend (LanceDB on object storage) plugs into.
//! `vectors::VectorStore`, LanceDB in the data directory, is today's.
//!
//! What every backend guarantees: rows are read and deleted per user (`user_id` is a
//! column of every row, and the only filter callers give is theirs); `add` never changes
//! another row; `replace` swaps rows of the same ids; two writers of one table never
//! interleave within one call.

use std::collections::HashSet;

/// One vector row, as an archive's `lancedb/` entries hold it with its owner.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorRow {
    pub id: String,
    pub user_id: String,
    pub source_type: String,
    pub source_id: String,
    pub owner_id: String,
    pub chunk_index: f64,
    pub content: String,
    pub vector: Vec<f32>,
    pub metadata_json: String,
    pub updated_at: f64,
}

impl VectorRow {
    /// The bytes the row counts for against a quota.
    pub fn stored_bytes(&self) -> u64 {
        let text = self.id.len() + self.user_id.len() + self.source_type.len() + self.source_id.len();
        (text + self.owner_id.len() + self.content.len() + self.metadata_json.len() + 4 * self.vector.len() + 16) as u64
    }
}

/// A vector backend's failure; its details are for logs.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Invalid(String),
}

impl VectorError {
    /// Whether the disk ran out of room under the backend.
    pub fn is_disk_full(&self) -> bool {
        let text = self.to_string();
        text.contains("No space left on device") || text.contains("os error 28")
    }
}

/// Rows being read, a batch at a time.
#[async_trait::async_trait]
pub trait VectorRowReader: Send {
    /// The next batch of rows, or `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<Vec<VectorRow>>, VectorError>;
}

/// Rows being read (see [`VectorRowReader`]).
pub type VectorRows = Box<dyn VectorRowReader>;

/// The vectors of every account (see the module documentation). `name` is an archive
/// table's name.
#[async_trait::async_trait]
pub trait VectorStorage: Send + Sync {
    /// `user_id`'s rows of `name`, every dimension.
    async fn rows_of(&self, name: &str, user_id: &str) -> Result<VectorRows, VectorError>;
    /// `user_id`'s rows of `name` of one dimension.
    async fn rows_of_dimension(&self, name: &str, dimension: i32, user_id: &str) -> Result<VectorRows, VectorError>;
    /// Which of `ids` a row of `name` of `dimension` has, whoever's (ids are global).
    async fn existing_ids(&self, name: &str, dimension: i32, ids: &[String]) -> Result<HashSet<String>, VectorError>;
    /// Adds rows, all of `dimension`.
    async fn add(&self, name: &str, rows: &[VectorRow], dimension: i32) -> Result<(), VectorError>;
    /// Removes `user_id`'s rows of `ids`; how many.
    async fn delete_ids(&self, name: &str, dimension: i32, user_id: &str, ids: &[String]) -> Result<u64, VectorError>;
    /// Replaces the rows of the same ids by `rows` (adds those that are new).
    async fn replace(&self, name: &str, rows: &[VectorRow], dimension: i32) -> Result<(), VectorError>;
    /// Removes every vector of `user_id`, every table and dimension; how many.
    async fn delete_user(&self, user_id: &str) -> Result<u64, VectorError>;
    /// What `user_id`'s vectors count for against the quota (`VectorRow::stored_bytes`).
    async fn usage_of(&self, user_id: &str) -> Result<u64, VectorError>;
    /// Number of rows of `user_id` in `name`, every dimension.
    async fn count_of(&self, name: &str, user_id: &str) -> Result<u64, VectorError>;
}
