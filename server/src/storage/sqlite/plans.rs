//! Query plans, for proving that imports and exports cost the same whatever else the
//! instance holds: while recording, the connections opened for imports, exports and reads
//! note the text of every statement they run; [`Database::full_scans`] then asks SQLite
//! how it would run one, and names every table it would read whole.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::Connection;

use super::{Database, DbResult};

static RECORDING: AtomicBool = AtomicBool::new(false);
static RECORDED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Starts noting statements (on connections opened from now on), or stops and returns
/// what was noted.
pub fn record_statements(on: bool) -> BTreeSet<String> {
    RECORDING.store(on, Ordering::SeqCst);
    let mut recorded = RECORDED.lock();
    if on {
        recorded.clear();
        BTreeSet::new()
    } else {
        std::mem::take(&mut recorded)
    }
}

pub(super) fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

pub(super) fn trace(connection: &Connection) {
    connection.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(note));
}

fn note(event: TraceEvent<'_>) {
    if !recording() {
        return;
    }
    if let TraceEvent::Stmt(statement, _) = event {
        let sql = statement.sql();
        // Statements inside triggers arrive as comments.
        if !sql.trim_start().starts_with("--") {
            RECORDED.lock().insert(sql.into_owned());
        }
    }
}

impl Database {
    /// The tables `sql` would read whole (`SCAN` in its query plan, an index scan
    /// included), by the names or aliases the plan gives them.
    pub fn full_scans(&self, sql: &str) -> DbResult<Vec<String>> {
        self.read(|connection| {
            // Statements of an import's connection may name its temporary tables.
            connection.execute_batch(super::apply::IMPORT_TEMP_TABLES)?;
            let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            // Planning needs no values: every parameter is NULL.
            let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
            let details: Vec<String> =
                statement.query_map(rusqlite::params_from_iter(nulls), |row| row.get(3))?.collect::<Result<_, _>>()?;
            Ok(details
                .into_iter()
                .filter_map(|detail| {
                    let scanned = detail.strip_prefix("SCAN ")?;
                    let name = scanned.split_whitespace().next()?.to_string();
                    (name != "CONSTANT" && !name.starts_with('(')).then_some(name)
                })
                .collect())
        })
    }
}
