//! WAL checkpoints on a thread of their own. By default SQLite checkpoints at the end of
//! whichever commit pushes the WAL past a threshold, so a sign-in that commits right after
//! an import could spend a quarter of a second copying the import's pages back into the
//! database. Here no connection checkpoints on commit (`wal_autocheckpoint = 0`, see
//! [`super::configure`]); this thread runs a passive checkpoint (which never blocks
//! writers or readers) whenever the WAL has grown past [`CHECKPOINT_AFTER_BYTES`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

/// How large the WAL may grow before a checkpoint.
const CHECKPOINT_AFTER_BYTES: u64 = 64 << 20;
/// How often the WAL's size is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Stops its thread when dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (its WAL is `<path>-wal`).
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, flag) = (path.to_path_buf(), stop.clone());
        std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || run(&path, &flag))?;
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

fn run(path: &Path, stop: &AtomicBool) {
    let wal = wal_of(path);
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(LOOK_EVERY);
        if std::fs::metadata(&wal).map_or(0, |meta| meta.len()) < CHECKPOINT_AFTER_BYTES {
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
