//! SQLite, the only module that touches rusqlite: opening the database (WAL, foreign keys,
//! migrations), a writer connection and a small pool of readers, and the queries the rest
//! of the server needs, grouped by concern in the submodules.

mod accounts;
mod apply;
pub(crate) mod charge;
mod checkpoint;
pub(crate) mod copy_out;
mod embedding_trust;
pub mod embeddings;
mod gate;
mod jobs;
mod migrations;
pub mod plans;
mod quotas;
mod rows;
pub(crate) mod schema;
mod secrets;
mod stores;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

use gate::{WriteGate, WriteKind};

pub use apply::RowApplier;
pub use embedding_trust::is_embedding_key;
pub(crate) use stores::SqliteStores;
// The record types the storage traits speak in, where callers have always found them.
pub use crate::storage::backend::{JobRecord, SessionUser, StoredSecret, TicketUse, UnboundKey, UserRecord};
pub use rows::{ColumnFacts, ForeignKeyFacts, TableFacts, TableScan};

/// A storage failure; its details are for logs, not for HTTP answers.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A statement of the PostgreSQL backend (`storage::postgres`) failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had from the pool.
    #[error("postgres pool: {0}")]
    PostgresPool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    QuotaExceeded(#[from] crate::failure::QuotaExceeded),
    /// An account of that name exists.
    #[error("the user name {0:?} is taken")]
    NameTaken(String),
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
    /// A lock without poisoning: a write that panicked leaves this connection fit for the
    /// next one, since every write on it runs in a rusqlite `Transaction` (rolled back
    /// when dropped, unwinding included) or is a single autocommit statement.
    writer: Mutex<Connection>,
    /// Idle readers; a read that panicked drops its connection instead of returning it.
    readers: Mutex<Vec<Connection>>,
    /// Turns for every write transaction of this process (see [`gate`]).
    gate: Arc<WriteGate>,
    /// The one larger page cache an import may hold at a time (see `apply::LARGE_CACHE`).
    large_cache: Arc<tokio::sync::Semaphore>,
    _checkpointer: checkpoint::Checkpointer,
}

/// The page size of a new database. Bulk imports write pages, not rows: with SQLite's
/// 4 KiB default a 500,000-character import wrote 2 GB, most of it the id index's pages
/// again after every commit, one `pwrite` per page; 64 KiB pages (SQLite's largest) wrote
/// 1.4 GB and took half the time (`bench_import rows`). Lookups read a 64 KiB page from
/// the page cache, a few microseconds.
const PAGE_SIZE: i64 = 65536;

/// An existing database up to this size is rewritten with [`PAGE_SIZE`] pages when it is
/// opened (a `VACUUM`: about a second per few hundred MB here, and as much free disk); a
/// larger one keeps its pages.
const ENLARGE_PAGES_UP_TO: u64 = 2 << 30;

/// Rewrites an existing database with [`PAGE_SIZE`] pages if its pages are smaller and it
/// is no larger than [`ENLARGE_PAGES_UP_TO`]. A WAL database keeps its page size, so this
/// leaves WAL (which needs the database to itself: with another process on it, nothing
/// changes) and the caller goes back to it.
fn enlarge_pages(connection: &Connection, path: &Path) -> DbResult<()> {
    let pages: i64 = connection.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let tables: i64 = connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    let size = std::fs::metadata(path).map_or(0, |meta| meta.len());
    if pages >= PAGE_SIZE || tables == 0 || size > ENLARGE_PAGES_UP_TO {
        return Ok(());
    }
    let started = std::time::Instant::now();
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let mode: String = connection.pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(DbError::Invalid(format!("the database stayed in {mode} mode")));
    }
    connection.pragma_update(None, "page_size", PAGE_SIZE)?;
    connection.execute_batch("VACUUM")?;
    tracing::info!("the database was rewritten with {PAGE_SIZE}-byte pages (from {pages}) in {:?}", started.elapsed());
    Ok(())
}

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
        // Before the first table: a new database gets large pages; an existing one of a
        // moderate size is rewritten with them.
        connection.pragma_update(None, "page_size", PAGE_SIZE)?;
        // Another process on the database (a server, while a command opens it) is not waited for.
        connection.busy_timeout(std::time::Duration::from_millis(100))?;
        if let Err(error) = enlarge_pages(&connection, path) {
            tracing::warn!("the database keeps its page size: {error}");
        }
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        let mode: String = connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Invalid(format!("the database refused WAL mode ({mode})")));
        }
        configure(&connection)?;
        migrations::migrate(&mut connection)?;
        let gate: Arc<WriteGate> = Arc::default();
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(connection),
            readers: Mutex::new(Vec::new()),
            gate: gate.clone(),
            large_cache: Arc::new(tokio::sync::Semaphore::new(1)),
            _checkpointer: checkpoint::Checkpointer::start(path, gate)
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

    /// A connection of its own whose statements are never recorded (`plans`): for the
    /// one-time maintenance that is meant to read every table whole (the usage recount).
    fn connect_for_maintenance(&self) -> DbResult<Connection> {
        let connection = Connection::open(&self.path)?;
        configure(&connection)?;
        Ok(connection)
    }

    /// Runs `work` on the one writer connection (callers are on blocking threads).
    /// Adds every account's staged copies to the id map, so that `lvbak_id_map` alone
    /// holds it (before a move to PostgreSQL reads it): how many map rows were added.
    pub(crate) fn merge_staged_copies(&self) -> DbResult<u64> {
        let _turn = self.gate.enter(WriteKind::Bulk);
        apply::merge_all_staged(&mut self.writer.lock())
    }

    fn write<T>(&self, work: impl FnOnce(&mut Connection) -> DbResult<T>) -> DbResult<T> {
        let _turn = self.gate.enter(WriteKind::Short);
        let mut connection = self.writer.lock();
        work(&mut connection)
    }

    /// Runs `work` on a pooled reader connection.
    fn read<T>(&self, work: impl FnOnce(&Connection) -> DbResult<T>) -> DbResult<T> {
        let pooled = self.readers.lock().pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = work(&connection);
        let mut readers = self.readers.lock();
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
        let connection = self.writer.lock();
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A database made with 4 KiB pages (every one before 64 KiB pages) is rewritten with
    /// them when opened, its rows all there, and stays in WAL mode.
    #[test]
    fn an_existing_database_gets_large_pages_and_keeps_its_rows() {
        let dir = std::env::temp_dir().join(format!("lvbak-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lvbak.sqlite");
        {
            let mut old = Connection::open(&path).unwrap();
            old.pragma_update(None, "page_size", 4096).unwrap();
            old.pragma_update(None, "journal_mode", "WAL").unwrap();
            migrations::migrate(&mut old).unwrap();
            old.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
            let insert = old.prepare("INSERT INTO characters (id, name, user_id) VALUES (?1, ?2, 'u1')");
            let mut insert = insert.unwrap();
            for i in 0..2000 {
                insert.execute([format!("c{i}"), format!("Character {i}")]).unwrap();
            }
        }
        let database = Database::open(&path).unwrap();
        database
            .read(|connection| {
                let pages: i64 = connection.pragma_query_value(None, "page_size", |row| row.get(0))?;
                let mode: String = connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
                let (rows, last): (i64, String) = connection.query_row(
                    "SELECT count(*), max(name) FROM characters WHERE user_id = 'u1'",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                assert_eq!((pages, mode.as_str(), rows, last.as_str()), (PAGE_SIZE, "wal", 2000, "Character 999"));
                Ok(())
            })
            .unwrap();
        drop(database);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
