//! SQLite, the only module that touches rusqlite: opening the database (WAL, foreign keys,
//! migrations), a writer connection and a small pool of readers, and the queries the rest
//! of the server needs, grouped by concern in the submodules.

mod accounts;
mod apply;
mod checkpoint;
pub mod embeddings;
mod gate;
mod jobs;
mod migrations;
pub mod plans;
mod quotas;
mod rows;
mod secrets;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use gate::{WriteGate, WriteKind};

pub use accounts::{SessionUser, UserRecord};
pub use apply::{merge_setting, AlignedRow, Owner, RowApplier, TableCounts};
pub use jobs::JobRecord;
pub use rows::{RowRef, RowValue, TableScan};
pub use secrets::{StoredSecret, TicketUse};

/// A storage failure; its details are for logs, not for HTTP answers.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
    /// Writing would take the account past its disk quota.
    #[error("over quota: {needed} more bytes on top of {used} of {quota}")]
    QuotaExceeded { quota: u64, used: u64, needed: u64 },
}

impl DbError {
    /// Whether the disk (or the database's filesystem) ran out of room.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => failure.code == rusqlite::ErrorCode::DiskFull,
            _ => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// The database of one data directory.
pub struct Database {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Turns for every write transaction of this process (see [`gate`]).
    gate: Arc<WriteGate>,
    _checkpointer: checkpoint::Checkpointer,
}

/// The page size of a new database. Bulk imports write pages, not rows: with SQLite's
/// 4 KiB default a 500,000-character import wrote 2 GB, most of it the id index's pages
/// again after every commit, one `pwrite` per page; 64 KiB pages (SQLite's largest) wrote
/// 1.4 GB and took half the time (`bench_import rows`). Lookups read a 64 KiB page from
/// the page cache, a few microseconds.
const PAGE_SIZE: i64 = 65536;

/// Readers kept for reuse; more are opened on demand and dropped when over this.
const IDLE_READERS: usize = 4;

fn configure(connection: &Connection) -> DbResult<()> {
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints run on their own thread, never at the end of someone's commit.
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    Ok(())
}

impl Database {
    /// Opens (creating if needed) the database file, switches it to WAL and migrates it.
    pub fn open(path: &Path) -> DbResult<Self> {
        let mut connection = Connection::open(path)?;
        // Wait for other writers (a running server, while a CLI command opens the same
        // database) from the very first statement.
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        // Before the first table: a new database gets large pages (an existing one keeps its own).
        connection.pragma_update(None, "page_size", PAGE_SIZE)?;
        let mode: String = connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Invalid(format!("the database refused WAL mode ({mode})")));
        }
        configure(&connection)?;
        migrations::migrate(&mut connection)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(connection),
            readers: Mutex::new(Vec::new()),
            gate: Arc::default(),
            _checkpointer: checkpoint::Checkpointer::start(path)
                .map_err(|error| DbError::Invalid(error.to_string()))?,
        })
    }

    /// A new connection of its own, for long work (an export's snapshot, an import's apply).
    fn connect(&self) -> DbResult<Connection> {
        let connection = Connection::open(&self.path)?;
        configure(&connection)?;
        if plans::recording() {
            plans::trace(&connection);
        }
        Ok(connection)
    }

    /// Runs `work` on the one writer connection (callers are on blocking threads).
    fn write<T>(&self, work: impl FnOnce(&mut Connection) -> DbResult<T>) -> DbResult<T> {
        let _turn = self.gate.enter(WriteKind::Short);
        let mut connection = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut connection)
    }

    /// Runs `work` on a pooled reader connection.
    fn read<T>(&self, work: impl FnOnce(&Connection) -> DbResult<T>) -> DbResult<T> {
        let pooled = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = work(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if readers.len() < IDLE_READERS {
            readers.push(connection);
        }
        result
    }
}

impl Drop for Database {
    /// Leaves no WAL behind: the next process to open the database (a CLI command, the
    /// server's restart) would otherwise read and checksum all of it before its first query.
    fn drop(&mut self) {
        let connection = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0)) {
            tracing::warn!("final WAL checkpoint failed: {error}");
        }
    }
}

/// The columns every registry table has in this server's schema, in order, read from a
/// freshly migrated database in memory (no data directory needed: `lvbak inspect`).
pub fn registry_columns() -> DbResult<std::collections::BTreeMap<String, Vec<String>>> {
    let connection = migrations::in_memory()?;
    let mut columns = std::collections::BTreeMap::new();
    for spec in lvbak_core::registry::TABLES {
        let names = connection
            .prepare(&format!("PRAGMA table_info({})", quoted(spec.name)))?
            .query_map([], |row| row.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?;
        columns.insert(spec.name.to_string(), names);
    }
    Ok(columns)
}

/// Quotes an identifier known to come from the registry or the schema (never from input).
pub(crate) fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
