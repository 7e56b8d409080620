//! Fault points for the crash tests, which kill a real `lvbak serve` at chosen moments of
//! an import. A moment that lasts a few milliseconds cannot be caught by polling on a busy
//! machine, so the tests ask the server to stop there instead: with
//! `LVBAK_FAULT_HOLD_AFTER=<table>` in its environment, the importer that has just
//! committed rows of `<table>` (while more of it are to come in the same import or not)
//! stops forever in that state, and the test kills the process (so does `lvbak migrate`
//! once it wrote a chunk of `<table>`'s rows into PostgreSQL). With
//! `LVBAK_FAULT_HOLD_COMMIT=<path>`, the node that runs a batch import takes the first
//! commit of the instance (the one that creates `<path>`; the nodes of the cluster test
//! share a folder) and never answers it, so that the test kills that node while the page
//! waits for its commit. Unset (always, outside the tests), every fault point is one
//! comparison.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable naming the table after whose first commit an import holds.
pub const HOLD_AFTER_VAR: &str = "LVBAK_FAULT_HOLD_AFTER";

/// The environment variable naming the file whose creation holds a commit.
pub const HOLD_COMMIT_VAR: &str = "LVBAK_FAULT_HOLD_COMMIT";

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

/// Called when a batch import's commit reaches the node running the job: the first commit
/// of the instance never returns when the tests asked for it (the node is then killed).
pub async fn commit_arrived() {
    static FLAG: OnceLock<Option<String>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| std::env::var(HOLD_COMMIT_VAR).ok().filter(|path| !path.is_empty()));
    let Some(flag) = flag else { return };
    if std::fs::OpenOptions::new().write(true).create_new(true).open(flag).is_ok() {
        tracing::warn!("holding this commit, as {HOLD_COMMIT_VAR} asks");
        std::future::pending::<()>().await;
    }
}
