//! [`ImportRows`]: what an import asks of the backend that keeps rows, and the seam another
//! backend plugs into. `import::ImportSession` drives it from the import's own thread
//! (reading, inflating and parsing an archive are blocking work, so the calls are
//! synchronous; a backend with an async driver blocks on it there); the rules it applies —
//! which rows are accepted, what references become, copies under new ids, the quota, the
//! settings merge, where files go — are `crate::policy`'s, and a backend only answers
//! their questions and runs the statements they decide on.
//!
//! What every backend guarantees:
//! - rows are written for the one importer it was opened for, and every question is
//!   answered about that importer's rows only;
//! - batches may share a transaction, but what `commit` returns from is durable, and a
//!   batch that fails leaves the rows before it (rolled back whole, as a crash would, when
//!   it was not guarded by the quota);
//! - every applied row is counted once: by `apply`, or later by `settle` (a `commit`
//!   finishes writing the rows and keeps their counts for it);
//! - `roll_back_import` takes back every row the import added (and what they counted for),
//!   however many commits ago; `take_recorded_vectors` hands back the vectors it recorded;
//! - nothing of another account is read out: answers are yes/no, the importer's own
//!   values, or the importer's own copies' ids.

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::TableSpec;

use crate::memory::MemoryBudget;
use crate::policy::files::FileQuestion;
use crate::policy::preview::{PreviewLedger, RowVerdict};
use crate::policy::quota::Usage;
use crate::policy::rows::AlignedRow;
use crate::storage::sqlite::DbResult;

/// Removes a chunk of vectors an import recorded: (table, dimension, ids).
pub(crate) type RemoveVectors<'a> = dyn FnMut(&str, i32, &[String]) -> DbResult<()> + 'a;

/// One import's access to the rows of its account (see the module documentation).
pub(crate) trait ImportRows: Send {
    /// The live columns of a registry table, in order: rows are handed to [`Self::apply`]
    /// aligned with these.
    fn columns_of(&mut self, spec: &'static TableSpec) -> DbResult<Vec<String>>;
    /// Applies a batch of rows of one registry table, merge by id (see `policy::rows`):
    /// the counts of what was imported, remapped, skipped and refused. A backend may still
    /// be writing some of the rows when it returns (PostgreSQL's `COPY` left open for the
    /// next batch): their counts come with a later batch of the same table or from
    /// [`Self::settle`].
    fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts>;
    /// Finishes writing the rows applied so far: the counts of those [`Self::apply`] did
    /// not report yet, by table (nothing where `apply` reports every row at once).
    fn settle(&mut self) -> DbResult<Vec<(&'static str, TableCounts)>> {
        Ok(Vec::new())
    }
    /// What applying `rows` would do with each, in their order, writing nothing (a restore
    /// preview, `policy::preview`); `ledger` stands in for the rows the restore would have
    /// added by then, and learns those of `rows`.
    fn preview(
        &mut self,
        spec: &'static TableSpec,
        rows: Vec<AlignedRow>,
        ledger: &mut PreviewLedger,
    ) -> DbResult<Vec<RowVerdict>>;
    /// Makes what was applied so far durable, with the account's use as it now is.
    fn commit(&mut self) -> DbResult<()>;

    /// The account's disk use during this import.
    fn usage(&self) -> Usage;
    /// Counts `bytes` written outside the rows (a file; a vector or key, which `keep`
    /// marks as staying if the import is rolled back), or refuses them over the quota.
    fn charge(&mut self, bytes: u64, keep: bool) -> DbResult<()>;
    /// Gives back bytes charged for a file that turned out smaller, or was already there.
    fn refund(&mut self, bytes: u64);

    /// `id` as the importer's rows know it: its copy's id if an import gave it one.
    fn local_id(&mut self, id: &str) -> DbResult<String>;
    /// JSON text with every quoted id that was copied under a new id replaced.
    fn local_json(&mut self, text: String) -> DbResult<String>;
    /// A file name with the copied ids in it replaced.
    fn local_file_name(&mut self, name: &str) -> DbResult<String>;

    /// The answer to a question of `policy::files` about the importer's rows.
    fn answers(&mut self, question: FileQuestion<'_>) -> DbResult<bool>;
    /// The `column` of the importer's row `id` of `table`, if it has that row and a value.
    fn path_of(&mut self, table: &'static str, column: &'static str, id: &str) -> DbResult<Option<String>>;
    /// The text a vector was computed from: the importer's own row's text, an empty text
    /// for a source that is nobody's, `None` for another account's (refused: it would
    /// leak).
    fn vector_source_text(&mut self, source_type: &str, source_id: &str) -> DbResult<Option<String>>;
    /// Whether the importer's row behind a vector waits for re-vectorization.
    fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool>;
    /// The importer's embedding configuration setting, as JSON text.
    fn embedding_setting(&mut self) -> DbResult<Option<String>>;
    /// Turns on `has_api_key` of one of the importer's connections (a restored key).
    fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool>;

    /// Brings references to rows copied under new ids (forward references, ids in JSON and
    /// text, file names) to the new ids; how many values changed.
    fn settle_remapped_references(&mut self) -> DbResult<u64>;
    /// Clears the scrub-list references of the import's rows that point at rows missing
    /// or not the importer's; how many.
    fn scrub_references(&mut self) -> DbResult<u64>;
    /// Marks the rows the import added for re-vectorization (their vectors were not
    /// restored); how many.
    fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64>;
    /// Records vectors the import added, so a rollback takes them back with the rows.
    fn record_vectors(&mut self, table: &str, dimension: i32, ids: &[String]) -> DbResult<()>;
    /// Takes back every row the import added and what they counted for; how many rows.
    fn roll_back_import(&mut self) -> DbResult<u64>;
    /// Calls `each(table, key)` with the key (the one primary-key column's value, as text)
    /// of every row the import added so far, committed first; a table keyed by several
    /// columns answers `None` for each of its rows.
    fn inserted_keys(&mut self, each: &mut dyn FnMut(&'static str, Option<&str>)) -> DbResult<()>;
    /// Hands the recorded vectors to `each` (table, dimension, ids) to remove, a chunk at a
    /// time, forgetting them as it goes.
    fn take_recorded_vectors(&mut self, each: &mut RemoveVectors<'_>) -> DbResult<()>;

    /// After a crash: settles and scrubs every row of the account, as an import's end
    /// would have; how many values changed.
    fn settle_all_rows(&mut self) -> DbResult<u64>;

    /// Counts the import's lookup caches in the instance's memory budget.
    fn count_caches_in(&mut self, budget: &MemoryBudget);
    /// Lets go of memory that can be rebuilt (while a batch import waits).
    fn release_memory(&mut self);
}
