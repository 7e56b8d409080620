//! SQLite's side of an import (`storage::backend::import_rows::ImportRows`): rows applied with
//! merge-by-ID semantics on a connection of the import's own with foreign-key enforcement
//! off (the schema has cycles; FORMAT §4). The rules that keep one user's import away from
//! another user's data are `crate::policy`'s; this module answers their questions (whose is
//! this id, is this number taken) with indexed statements and runs what they decide:
//!
//! - only registry tables are written, only with live columns, `user_id` (and
//!   `installed_by_user_id`) forced to the importer, `has_api_key` forced to 0;
//! - a child row whose parent (chat, world book, pack, vault, session) is not the
//!   importer's — someone else's, or nobody's — is rejected;
//! - a row that refers to another user's row is rejected (or, for the nullable references
//!   of the scrub list, has the reference cleared);
//! - a row keyed by another table's id (a message's breakdown, a session's bible) is
//!   accepted only when that row exists and is the importer's, so nobody can squat a key;
//! - a row whose primary key exists is skipped, whoever owns it; `settings` are deep-merged;
//! - afterwards, nullable references of the importer's rows that point nowhere are cleared.
//!
//! Files rows name live in per-user folders (`storage::files`), so a row can only ever name
//! its own user's files. Memory stays bounded: the ids of inserted rows that may need
//! re-vectorizing go to a table (`lvbak_import_inserted`), not to a list, and the caches of
//! looked-up owners and remapped ids are bounded in bytes (`cache`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::{table_spec, Ownership, ReferenceRule, TableSpec, TABLES};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::gate::{WriteGate, WriteKind, WriteTurn};
use super::{quoted, Database, DbError, DbResult};

mod ending;
mod files;
mod held_copies;
mod id_map;
mod import_rows;
mod owners;
mod plan;
mod preview;
mod remap;
mod rows;
mod settings;
mod staged_pairs;

use crate::policy::ids::NEW_ID_BYTES;
pub(crate) use crate::policy::ownership::Owner;
pub(crate) use crate::policy::quota::Usage;
use crate::policy::rows::check_row;
pub(crate) use crate::policy::rows::AlignedRow;
use crate::storage::row_disposer::RowDisposer;
pub(crate) use ending::IMPORT_TEMP_TABLES;
pub(crate) use id_map::{merge_all_staged, staged_copies_of};
use owners::owned_condition;
use plan::TablePlan;
use rows::sort_by_id;

/// The import's writer.
pub struct RowApplier {
    connection: Connection,
    user_id: String,
    plans: HashMap<&'static str, TablePlan>,
    owners: crate::storage::lookup_cache::LookupCache<&'static str, Owner>,

    /// The write transaction batches share, and when it began (see [`Self::apply`]).
    open_since: Option<std::time::Instant>,
    /// This import's turn at the write gate, held while its transaction is open.
    turn: Option<WriteTurn>,
    gate: Arc<WriteGate>,
    rows_in_transaction: usize,
    /// What the rows of the open transaction count for against the quota.
    bytes_in_transaction: u64,
    /// The largest rowid of every registry table when the import began: rowids only grow
    /// and imports never choose them, so the importer's rows above are the ones it added.
    rowids_before: HashMap<&'static str, i64>,
    /// Per table, the rowid at or below which no row is the importer's (`owners`).
    foreign_below: HashMap<&'static str, i64>,
    usage: Usage,
    /// The importer's rows copied under new ids (see `remap`).
    remaps: remap::Remaps,
    /// Frees applied rows on another thread.
    disposer: RowDisposer,
    /// Scrub-list columns (table, column) to which an applied row gave a value whose target
    /// was not yet the importer's: [`Self::scrub_references`] reads those only.
    unsettled: HashSet<(&'static str, &'static str)>,
    /// Tables where a row this import applied had an id's shape (`policy::ids::next_uuid`)
    /// in a column that may hold ids (JSON and text id columns, file columns): only their
    /// rows are read again when copied ids are settled.
    texts_with_ids: HashSet<&'static str>,
    /// The instance's one larger page cache, while this import holds it (see
    /// [`LARGE_CACHE`]).
    large_cache: Option<tokio::sync::OwnedSemaphorePermit>,
    large_caches: Arc<tokio::sync::Semaphore>,
}

/// The page cache of an import's connection, in KiB: a whole batch.
const CACHE: i64 = 24 << 10;

/// The page cache of the one import at a time that copies rows under new ids, in KiB.
/// Such an import writes, beside its rows, the id map and the id index of a table that
/// holds the rows it copies too, each keyed by random ids, so every commit touches pages
/// all over three trees: with [`CACHE`], 500,000 characters restored by a second account
/// took 31-42 s, their pages spilled and written again within each transaction; with this,
/// 11 s (the first account's plain import: 3 s). One import of the instance at a time holds
/// it (the others keep [`CACHE`]), so the instance's page caches stay bounded.
const LARGE_CACHE: i64 = 128 << 10;

/// A transaction spanning several batches is committed after this long or this many rows,
/// so that index pages dirtied by many batches are written once, while other imports wait
/// no longer than this (short writes wait for one batch: see [`Self::apply`]).
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
const COMMIT_AFTER_ROWS: usize = 50_000;
/// The same for an import that copies rows (it holds [`LARGE_CACHE`]) while no other import
/// of the process waits for its turn. Such an import writes its id map all over (keyed by
/// the archive's random ids), so every commit writes most of the map again; but while a
/// transaction's dirty pages fill nine tenths of the page cache, SQLite keeps only a tenth
/// for clean pages, and the id index the import reads (which of the batch's ids exist)
/// was read from the file again for every batch — 65,000 reads of 64 KiB at 250,000 rows
/// a transaction, for 500,000 copied characters. At 60,000 rows (the rows' pages about
/// half the larger cache) that copy took 7.9-8.5 s of CPU instead of 9.6 s, a third of the
/// system time.
const ALONE_COMMIT_AFTER: std::time::Duration = std::time::Duration::from_secs(3);
const ALONE_COMMIT_AFTER_ROWS: usize = 60_000;

impl Drop for RowApplier {
    /// Whatever batches were applied stay applied, however the import ends.
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

impl Database {
    /// A writer for one import by `user_id`, whose disk quota is `quota` unless the account
    /// has one of its own.
    pub fn row_applier(&self, user_id: &str, quota: Option<u64>) -> DbResult<RowApplier> {
        let connection = self.connect()?;
        connection.pragma_update(None, "foreign_keys", "OFF")?;
        // A bulk writer: a page cache that holds a whole batch.
        connection.pragma_update(None, "cache_size", -CACHE)?;
        let mut rowids_before = HashMap::new();
        for spec in TABLES {
            let sql = format!("SELECT coalesce(max(rowid), 0) FROM {}", quoted(spec.name));
            rowids_before.insert(spec.name, connection.query_row(&sql, [], |row| row.get(0))?);
        }
        let remaps = remap::Remaps::load(&connection, user_id)?;
        let quota = self.quota_of(user_id)?.unwrap_or(quota);
        let before = self.usage_of(user_id)?.unwrap_or(0);
        Ok(RowApplier {
            connection,
            user_id: user_id.to_string(),
            plans: HashMap::new(),
            owners: crate::storage::lookup_cache::LookupCache::default(),
            open_since: None,
            turn: None,
            gate: Arc::clone(&self.gate),
            rows_in_transaction: 0,
            bytes_in_transaction: 0,
            rowids_before,
            foreign_below: HashMap::new(),
            usage: Usage::new(quota, before),
            remaps,
            disposer: RowDisposer::new("rows-disposer"),
            unsettled: HashSet::new(),
            texts_with_ids: HashSet::new(),
            large_cache: None,
            large_caches: Arc::clone(&self.large_cache),
        })
    }
}

impl RowApplier {
    /// Counts the import's lookup caches in the instance's memory budget.
    pub fn count_caches_in(&mut self, budget: &crate::memory::MemoryBudget) {
        self.owners.count_in(budget);
        self.remaps.cache.count_in(budget);
        self.remaps.staging.copies.count_in(budget);
    }

    /// Takes the instance's larger page cache for this import if no other import holds it
    /// (an import that copies rows: see [`LARGE_CACHE`]).
    pub(super) fn grow_cache(&mut self) {
        if self.large_cache.is_some() {
            return;
        }
        if let Ok(permit) = Arc::clone(&self.large_caches).try_acquire_owned() {
            if self.connection.pragma_update(None, "cache_size", -LARGE_CACHE).is_ok() {
                self.large_cache = Some(permit);
            }
        }
    }

    /// Lets go of memory that can be rebuilt: the lookup caches and SQLite's page cache
    /// (and the larger cache, for another import to take).
    pub fn release_memory(&mut self) {
        // The copies held are staged: they are read again when next needed.
        self.remaps.staging.let_go();
        self.owners.clear();
        self.remaps.forget();
        if self.large_cache.take().is_some() {
            let _ = self.connection.pragma_update(None, "cache_size", -CACHE);
        }
        let _ = self.connection.execute_batch("PRAGMA shrink_memory");
    }

    /// Commits the open transaction, if any, with the account's disk use as it now is.
    pub fn commit(&mut self) -> DbResult<()> {
        let total = self.usage.total();
        if total != self.usage.persisted {
            self.in_turn(WriteKind::Short, |connection, user_id| {
                connection.execute(
                    "INSERT INTO lvbak_usage (user_id, bytes) VALUES (?1, ?2) ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes",
                    rusqlite::params![user_id, total as i64],
                )?;
                Ok(())
            })?;
            self.usage.persisted = total;
        }
        if self.open_since.take().is_some() {
            self.rows_in_transaction = 0;
            self.bytes_in_transaction = 0;
            let committed = self.connection.execute_batch("COMMIT");
            self.turn = None;
            committed?;
        }
        Ok(())
    }

    /// Runs a write (given the connection and the importer's id) outside the batches'
    /// transaction in a turn of its own, or inside the open transaction's turn.
    fn in_turn<T>(&mut self, kind: WriteKind, work: impl FnOnce(&mut Connection, &str) -> DbResult<T>) -> DbResult<T> {
        let own = self.turn.is_none().then(|| self.gate.enter(kind));
        let result = work(&mut self.connection, &self.user_id);
        drop(own);
        result
    }

    /// The account's disk use during this import.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Counts `bytes` written outside the rows (a file; a vector, which `keep` marks as
    /// staying if the import is rolled back), or refuses them if they do not fit.
    pub fn charge(&mut self, bytes: u64, keep: bool) -> DbResult<()> {
        Ok(self.usage.charge(bytes, keep)?)
    }

    /// Gives back bytes charged for a file that turned out smaller, or was already there.
    pub fn refund(&mut self, bytes: u64) {
        self.usage.refund(bytes);
    }

    /// Applies a batch of rows of one registry table (aligned with [`Self::columns_of`]):
    /// every row is checked first, then the accepted ones are inserted with one prepared
    /// statement per set of columns. Batches share a transaction that commits every half
    /// second or so.
    ///
    /// An error ends the import. A batch that might not fit the quota runs in a savepoint, so
    /// an over-quota batch leaves nothing and the rows before it stay (the import is then
    /// rolled back as a whole: see `ImportSession`). Any other batch runs without one: a
    /// savepoint copies every page a batch changes that existed before it (a statement
    /// journal) — for rows keyed by random ids that is most of the id index, again for every
    /// batch, several times the rows' own bytes — and on a database error the open
    /// transaction is rolled back whole, as a crash at that moment would leave it.
    pub fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts> {
        let plan = self.plan(spec)?;
        let mut counts = TableCounts::default();
        if self.open_since.is_none() {
            let turn = self.gate.enter(WriteKind::Bulk);
            self.connection.execute_batch("BEGIN IMMEDIATE")?;
            self.turn = Some(turn);
            self.open_since = Some(std::time::Instant::now());
        }
        let batch_rows = rows.len();
        let mut guarded = false;
        let result = (|| -> DbResult<()> {
            if spec.name == "settings" {
                for row in rows {
                    self.apply_setting(&plan, row, &mut counts)?;
                }
                return Ok(());
            }
            let mut accepted = Vec::with_capacity(rows.len());
            for row in rows {
                match check_row(&plan.rules, row, self)? {
                    Some(row) => accepted.push(row),
                    None => counts.rejected += 1,
                }
            }
            // The most these rows can count for: each as it is, or as a copy under a new id
            // (worked out only when there is a quota to exceed).
            let most = || accepted.iter().map(|row| plan.charge.bytes(row) + NEW_ID_BYTES).sum::<u64>();
            if self.usage.quota.is_some() && self.usage.check(most()).is_err() {
                self.connection.execute_batch("SAVEPOINT lvbak_batch")?;
                guarded = true;
            }
            if !self.texts_with_ids.contains(spec.name) && plan.holds_id_text(&accepted) {
                self.texts_with_ids.insert(spec.name);
            }
            if let Some(index) = plan.numbered {
                self.number_rows(spec, &plan, index, &mut accepted)?;
            }
            if let Some(id) = plan.id {
                sort_by_id(&mut accepted, id);
            }
            let (inserted, remapped, bytes) = self.insert_all(spec, &plan, &mut accepted)?;
            self.usage.charge(bytes, false)?;
            counts.imported += inserted;
            counts.remapped += remapped;
            counts.skipped += accepted.len() as u64 - inserted;
            counts.bytes += bytes;
            self.disposer.dispose(accepted);
            self.merge_copies_if_full()
        })();
        if let Err(error) = result {
            if guarded {
                let _ = self.connection.execute_batch("ROLLBACK TO lvbak_batch; RELEASE lvbak_batch");
                let _ = self.commit();
                self.copies_rolled_back();
            } else {
                self.abandon_transaction();
            }
            return Err(error);
        }
        if guarded {
            self.connection.execute_batch("RELEASE lvbak_batch")?;
        }
        self.rows_in_transaction += batch_rows;
        self.bytes_in_transaction += counts.bytes;
        // A short write (a sign-in) waiting goes next, after this batch.
        let (after, after_rows) = if self.large_cache.is_none() || self.gate.bulk_waiting() {
            (COMMIT_AFTER, COMMIT_AFTER_ROWS)
        } else {
            (ALONE_COMMIT_AFTER, ALONE_COMMIT_AFTER_ROWS)
        };
        if self.rows_in_transaction >= after_rows
            || self.open_since.is_some_and(|at| at.elapsed() >= after)
            || self.gate.short_waiting()
        {
            self.commit()?;
            crate::faults::committed_rows_of(spec.name);
        }
        Ok(counts)
    }

    /// Rolls back the open transaction after a database error: the rows it held are gone,
    /// and so is what they counted for (the import ends with the error).
    fn abandon_transaction(&mut self) {
        if self.open_since.take().is_some() {
            let _ = self.connection.execute_batch("ROLLBACK");
            self.turn = None;
        }
        self.usage.refund(self.bytes_in_transaction);
        self.rows_in_transaction = 0;
        self.bytes_in_transaction = 0;
        // Answers read inside the transaction may name rows that are no longer there.
        self.owners.clear();
        self.remaps.forget();
        self.copies_rolled_back();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cache_kib(applier: &RowApplier) -> i64 {
        -applier.connection.pragma_query_value(None, "cache_size", |row| row.get::<_, i64>(0)).unwrap()
    }

    /// One import at a time holds the larger page cache; the next takes it once the first
    /// lets go of it (it waits between batches, or ends).
    #[test]
    fn one_import_at_a_time_holds_the_larger_page_cache() {
        let dir = std::env::temp_dir().join(format!("lvbak-large-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = Database::open(&dir.join("lvbak.sqlite")).unwrap();
        let mut first = database.row_applier("u1", None).unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        assert_eq!((cache_kib(&first), cache_kib(&second)), (CACHE, CACHE));
        first.grow_cache();
        second.grow_cache();
        assert_eq!((cache_kib(&first), cache_kib(&second)), (LARGE_CACHE, CACHE));
        first.release_memory();
        assert_eq!(cache_kib(&first), CACHE);
        second.grow_cache();
        assert_eq!(cache_kib(&second), LARGE_CACHE);
        drop(second);
        let mut third = database.row_applier("u3", None).unwrap();
        third.grow_cache();
        assert_eq!(cache_kib(&third), LARGE_CACHE, "an ended import kept the larger cache");
        drop((first, third, database));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
