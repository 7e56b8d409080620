//! Fault points for the crash tests, which kill a real `lvbak serve` at chosen moments of
//! an import. A moment that lasts a few milliseconds cannot be caught by polling on a busy
//! machine, so the tests ask the server to stop there instead: with
//! `LVBAK_FAULT_HOLD_AFTER=<table>` in its environment, the importer that has just
//! committed rows of `<table>` (while more of it are to come in the same import or not)
//! stops forever in that state, and the test kills the process (so does `lvbak migrate`
//! once it wrote a chunk of `<table>`'s rows into PostgreSQL). Unset (always, outside
//! the tests), every fault point is one comparison.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable naming the table after whose first commit an import holds.
pub const HOLD_AFTER_VAR: &str = "LVBAK_FAULT_HOLD_AFTER";

fn hold_after() -> Option<&'static str> {
    static TABLE: OnceLock<Option<String>> = OnceLock::new();
    TABLE.get_or_init(|| std::env::var(HOLD_AFTER_VAR).ok().filter(|table| !table.is_empty())).as_deref()
}

/// Called after a commit that included rows of `table`: holds the calling thread forever
/// when the tests asked for it (it is then killed with the process).
pub fn committed_rows_of(table: &str) {
    if hold_after() == Some(table) {
        tracing::warn!(table, "holding the import here, as {HOLD_AFTER_VAR} asks");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
