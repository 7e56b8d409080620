//! PostgreSQL's statistics of the tables an import grows, taken as it grows them. A table
//! no statistics were taken of since it was small is planned as small: a second account's
//! copy of 100,000 characters looked each 1,000 of its copies up in the id map by scanning
//! every one of the account's (28–54 ms a lookup; 6 ms after `ANALYZE`), and settling a
//! large import's references once ran nested loops for minutes (its rows estimated as one).
//! Every `ANALYZE` runs between transactions, so its lock is held for its own run only.

use std::collections::HashMap;

use super::{quoted, DbResult, PostgresRowApplier};
use crate::storage::postgres::row_tables::IMPORT_COLUMN;

/// Rows an import adds to a table before it has the table's statistics taken.
const ANALYZE_AFTER_ROWS: u64 = 10_000;
/// The id map's name, among the tables an import grows.
pub(super) const ID_MAP: &str = "lvbak_id_map";

/// What an import added to each table (and to the id map) since statistics of it were taken.
#[derive(Debug, Default)]
pub(super) struct Growth {
    rows: HashMap<&'static str, u64>,
    /// How many times the id map's statistics were taken during this import.
    id_map_analyses: u32,
}

impl Growth {
    pub(super) fn added(&mut self, table: &'static str, rows: u64) {
        *self.rows.entry(table).or_default() += rows;
    }
}

impl PostgresRowApplier {
    /// Takes the id map's statistics when this import has grown it by
    /// [`ANALYZE_AFTER_ROWS`], then by twice that, four times… (40 ms a run at 100,000
    /// copies: a few per import).
    pub(super) fn analyze_grown_id_map(&mut self) -> DbResult<()> {
        let growth = &mut self.growth;
        let grown = growth.rows.get(ID_MAP).copied().unwrap_or(0);
        if grown >= ANALYZE_AFTER_ROWS << growth.id_map_analyses.min(20) {
            growth.rows.remove(ID_MAP);
            growth.id_map_analyses += 1;
            self.batch(&format!("ANALYZE {ID_MAP}"))?;
        }
        Ok(())
    }

    /// Before a statement that settles or scrubs the rows this import added to `table`:
    /// statistics of the number of the import that added each row, if it grew the table by
    /// [`ANALYZE_AFTER_ROWS`] since they were last taken (so once, at the end: sampling a
    /// table of 100,000 characters takes 0.15–0.25 s, even for one column).
    pub(super) fn analyze_added_rows(&mut self, table: &'static str) -> DbResult<()> {
        if self.growth.rows.get(table).is_some_and(|&rows| rows >= ANALYZE_AFTER_ROWS) {
            self.growth.rows.remove(table);
            self.batch(&format!("ANALYZE {} ({IMPORT_COLUMN})", quoted(table)))?;
        }
        Ok(())
    }
}
