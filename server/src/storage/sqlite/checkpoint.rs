//! WAL checkpoints on a thread of their own. By default SQLite checkpoints at the end of
//! whichever commit pushes the WAL past a threshold, so a sign-in that commits right after
//! an import could spend a quarter of a second copying the import's pages back into the
//! database. Here no connection checkpoints on commit (`wal_autocheckpoint = 0`, see
//! [`super::configure`]); this thread runs a passive checkpoint (which never blocks
//! writers or readers) whenever the WAL has grown past [`CHECKPOINT_AFTER_BYTES`].
//!
//! While an import writes (a bulk turn at the write gate now or in the last
//! [`BULK_QUIET`]) the checkpoint waits until the WAL passes [`CHECKPOINT_DURING_BULK_BYTES`]:
//! the import's next commits change the same index pages again, so a checkpoint between
//! them copies those pages again each time, and on two cores it takes a core from the
//! import (a third of a second of copying during a 100k-row browser import).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::gate::WriteGate;

/// How large the WAL may grow before a checkpoint.
const CHECKPOINT_AFTER_BYTES: u64 = 64 << 20;
/// How large it may grow while an import writes.
const CHECKPOINT_DURING_BULK_BYTES: u64 = 512 << 20;
/// How long after its last bulk turn an import counts as writing (the batch path commits
/// between batches, which arrive a few milliseconds apart).
const BULK_QUIET: Duration = Duration::from_secs(1);
/// How often the WAL's size is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Stops its thread when dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (its WAL is `<path>-wal`), whose write
    /// transactions take turns at `gate`.
    pub fn start(path: &Path, gate: Arc<WriteGate>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, flag) = (path.to_path_buf(), stop.clone());
        std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || run(&path, &gate, &flag))?;
        Ok(Self { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Whether a WAL of `bytes` is checkpointed now.
fn due(bytes: u64, bulk_writing: bool) -> bool {
    bytes >= if bulk_writing { CHECKPOINT_DURING_BULK_BYTES } else { CHECKPOINT_AFTER_BYTES }
}

fn run(path: &Path, gate: &WriteGate, stop: &AtomicBool) {
    let wal = wal_of(path);
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(LOOK_EVERY);
        let bytes = std::fs::metadata(&wal).map_or(0, |meta| meta.len());
        if !due(bytes, gate.bulk_within(BULK_QUIET)) {
            continue;
        }
        if connection.is_none() {
            connection = Connection::open(path).ok().filter(|c| super::configure(c).is_ok());
        }
        let Some(open) = &connection else { continue };
        let checkpointed = open.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0));
        if let Err(error) = checkpointed {
            tracing::warn!("WAL checkpoint failed: {error}");
            connection = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_waits_for_a_larger_wal_while_an_import_writes() {
        assert!(!due(CHECKPOINT_AFTER_BYTES - 1, false));
        assert!(due(CHECKPOINT_AFTER_BYTES, false));
        assert!(!due(CHECKPOINT_AFTER_BYTES, true));
        assert!(!due(CHECKPOINT_DURING_BULK_BYTES - 1, true));
        assert!(due(CHECKPOINT_DURING_BULK_BYTES, true));
    }
}
