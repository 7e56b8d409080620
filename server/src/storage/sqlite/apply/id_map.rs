//! How an import records its copies in the id map. An account's map has two parts:
//!
//! - `lvbak_id_map_staged` (migrations 0009 and 0010): each batch's copies of a table,
//!   appended in the copies' own transaction as one row, its pairs packed in a blob
//!   (`staged_pairs`). A committed copy is always recorded; a rolled-back one never is.
//! - `lvbak_id_map` (keyed by user, archive id and table): the copies that were staged when
//!   they outgrew what memory may hold, added in key order ([`merge_copies_in`]).
//!
//! An import holds every staged copy of its account in memory ([`Copies`]), read from the
//! staged rows when it first needs them (again after it let go of its memory, or after a
//! rollback took rows that were held), and asks `lvbak_id_map` only about ids an earlier
//! merge may have added ([`Staging::may_map`]: whether the account has rows there, and a
//! filter of the ids this import merged). An in-memory table of SQLite's took 2.5 µs a
//! copy; adding every import's copies to `lvbak_id_map` at its end took a second account's
//! 500,000-character copy 0.5 s and most of its commits' writes; reading them back from
//! their blobs takes a tenth of that.
//!
//! When the copies would outgrow [`COPIES_BYTES`] or the instance's memory budget, they are
//! added to `lvbak_id_map` and their staged rows deleted, in the batch's transaction. Readers
//! of the map in SQL read both parts ([`staged_copies_of`]); moving an instance to
//! PostgreSQL merges the staged part first ([`merge_all_staged`]).

use std::ops::ControlFlow;

use foldhash::{HashMap, HashMapExt as _};

use super::held_copies::{Copies, Merged};
use super::owners::IDS_PER_STATEMENT;
use super::staged_pairs;
use super::*;

/// Id map rows written by one statement (two parameters each besides the user and table).
const ROWS_PER_STATEMENT: usize = 64;
/// Staged rows an account may have when an import reads them (a row per batch and table:
/// 500,000 copied characters staged 500): more, and they are added to `lvbak_id_map`
/// instead. Many small imports cannot make each later one read a row at a time for long.
pub(super) const STAGED_ROWS_HELD: i64 = 4096;
/// The fewest bytes a staged pair takes (two UUIDs): a blob of `n` bytes holds at most
/// `n / 33` pairs.
const PAIR_BYTES: usize = 33;

/// `INSERT OR IGNORE` of `rows` id map rows: `?1` the user, then each row's original id,
/// table and new id.
fn map_insert(rows: usize) -> String {
    let values: Vec<String> =
        (0..rows).map(|row| format!("(?1, ?{}, ?{}, ?{})", 2 + 3 * row, 3 + 3 * row, 4 + 3 * row)).collect();
    format!(
        "INSERT OR IGNORE INTO lvbak_id_map (user_id, original_id, table_name, new_id) VALUES {}",
        values.join(", ")
    )
}

/// Adds `sorted` (original, table, new id: in the map's key order) to the id map of
/// `user_id`.
fn add_to_map<T: AsRef<str>>(connection: &Connection, user_id: &str, sorted: &[(T, &str, T)]) -> DbResult<()> {
    let (many, one) = (map_insert(ROWS_PER_STATEMENT), map_insert(1));
    let full = sorted.len() - sorted.len() % ROWS_PER_STATEMENT;
    for chunk in sorted[..full].chunks(ROWS_PER_STATEMENT).chain(sorted[full..].chunks(1)) {
        let values = std::iter::once(user_id).chain(chunk.iter().flat_map(|(o, t, n)| [o.as_ref(), *t, n.as_ref()]));
        let sql = if chunk.len() == 1 { &one } else { &many };
        connection.prepare_cached(sql)?.execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}

/// Hands each staged row of `user_id` (its id, table and blob) to `each`, in order, one row
/// in memory at a time, until `each` says to stop.
fn each_staged_row(
    connection: &Connection,
    user_id: &str,
    mut each: impl FnMut(i64, &str, &[u8]) -> DbResult<ControlFlow<()>>,
) -> DbResult<()> {
    let mut after = 0i64;
    loop {
        let row: Option<(i64, String, Vec<u8>)> = connection
            .prepare_cached(
                "SELECT id, table_name, pairs FROM lvbak_id_map_staged WHERE user_id = ?1 AND id > ?2 \
                 ORDER BY id LIMIT 1",
            )?
            .query_row(rusqlite::params![user_id, after], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        let Some((id, table, pairs)) = row else { return Ok(()) };
        after = id;
        if each(id, &table, &pairs)?.is_break() {
            return Ok(());
        }
    }
}

fn unreadable(id: i64, user_id: &str) -> DbError {
    DbError::Invalid(format!("staged copies {id} of {user_id} cannot be read"))
}

/// The staged copies of `user_id`: (table, archive id, new id).
pub(crate) fn staged_copies_of(connection: &Connection, user_id: &str) -> DbResult<Vec<(String, String, String)>> {
    let mut copies = Vec::new();
    each_staged_row(connection, user_id, |id, table, blob| {
        let pairs = staged_pairs::decode(blob).ok_or_else(|| unreadable(id, user_id))?;
        copies.extend(pairs.into_iter().map(|(original, new_id)| (table.to_string(), original, new_id)));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(copies)
}

/// Adds the staged copies of `user_id` to the id map, a staged row at a time, and forgets
/// them; how many were added. Runs inside the caller's write transaction.
pub(super) fn merge_staged(connection: &Connection, user_id: &str) -> DbResult<u64> {
    let mut added = 0;
    each_staged_row(connection, user_id, |id, table, blob| {
        let pairs = staged_pairs::decode(blob).ok_or_else(|| unreadable(id, user_id))?;
        let mut sorted: Vec<(&str, &str, &str)> =
            pairs.iter().map(|(original, new_id)| (original.as_str(), table, new_id.as_str())).collect();
        sorted.sort_unstable();
        add_to_map(connection, user_id, &sorted)?;
        added += sorted.len() as u64;
        Ok(ControlFlow::Continue(()))
    })?;
    connection.execute("DELETE FROM lvbak_id_map_staged WHERE user_id = ?1", [user_id])?;
    Ok(added)
}

/// Adds `copies` (every staged copy of `user_id`) to the id map in the order of its keys,
/// and forgets the staged rows. Runs inside the caller's write transaction.
fn merge_copies_in(connection: &Connection, user_id: &str, copies: &Copies) -> DbResult<()> {
    let started = std::time::Instant::now();
    let sorted = copies.sorted();
    add_to_map(connection, user_id, &sorted)?;
    connection.execute("DELETE FROM lvbak_id_map_staged WHERE user_id = ?1", [user_id])?;
    tracing::debug!("added {} copies to the id map in {:?}", sorted.len(), started.elapsed());
    Ok(())
}

/// Adds every account's staged copies to the id map (before the map is read whole, by a
/// move to PostgreSQL): how many map rows were added. Staged rows of an account that is
/// gone are dropped.
pub(crate) fn merge_all_staged(connection: &mut Connection) -> DbResult<u64> {
    let any: bool = connection.query_row("SELECT EXISTS (SELECT 1 FROM lvbak_id_map_staged)", [], |row| row.get(0))?;
    if !any {
        return Ok(0);
    }
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let users: Vec<String> = transaction
        .prepare(
            "SELECT DISTINCT user_id FROM lvbak_id_map_staged WHERE user_id IN (SELECT id FROM \"user\") ORDER BY 1",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut added = 0;
    for user in users {
        added += merge_staged(&transaction, &user)?;
    }
    transaction.execute("DELETE FROM lvbak_id_map_staged", [])?;
    transaction.commit()?;
    Ok(added)
}

/// Where an import's copies stand (part of `remap::Remaps`).
#[derive(Debug, Default)]
pub(super) struct Staging {
    /// The account has rows in `lvbak_id_map` from before this import (or ones this import
    /// cannot tell by [`Self::merged`]).
    pub mapped: bool,
    /// The account had staged copies when the import began.
    pub had_staged: bool,
    /// The archive ids this import added to `lvbak_id_map`.
    pub merged: Merged,
    /// [`Self::copies`] holds every staged copy of the account (else they are read before
    /// they are next needed).
    pub held: bool,
    /// The largest staged id when the import began: its own are above.
    pub before: i64,
    /// The account's staged copies, earlier imports' and this one's.
    pub copies: Copies,
}

impl Staging {
    /// Where the account of `user_id` stands.
    pub fn load(connection: &Connection, user_id: &str) -> DbResult<Self> {
        let exists = |sql: &str| -> DbResult<bool> { Ok(connection.query_row(sql, [user_id], |row| row.get(0))?) };
        let mapped = exists("SELECT EXISTS (SELECT 1 FROM lvbak_id_map WHERE user_id = ?1)")?;
        let had_staged = exists("SELECT EXISTS (SELECT 1 FROM lvbak_id_map_staged WHERE user_id = ?1)")?;
        let before =
            connection.query_row("SELECT coalesce(max(id), 0) FROM lvbak_id_map_staged", [], |row| row.get(0))?;
        Ok(Self { mapped, had_staged, before, ..Self::default() })
    }

    /// Whether `lvbak_id_map` may have a copy of `original` (else it need not be asked).
    pub fn may_map(&self, original: &str) -> bool {
        self.mapped || self.merged.may_hold(original)
    }

    /// Lets go of the copies held (they are read again when next needed).
    pub fn let_go(&mut self) {
        self.copies.clear();
        self.held = false;
    }
}

impl RowApplier {
    /// Reads the account's staged copies into memory unless they are held; when they do
    /// not fit, they are added to `lvbak_id_map` instead.
    pub(super) fn hold_copies(&mut self) -> DbResult<()> {
        if self.remaps.staging.held {
            return Ok(());
        }
        let rows: i64 = self.connection.query_row(
            "SELECT count(*) FROM lvbak_id_map_staged WHERE user_id = ?1",
            [&self.user_id],
            |row| row.get(0),
        )?;
        let copies = &mut self.remaps.staging.copies;
        let mut fits = rows <= STAGED_ROWS_HELD;
        // Read until they are all held, or until one does not fit (then none are).
        let read = if !fits {
            Ok(())
        } else {
            each_staged_row(&self.connection, &self.user_id, |id, table, blob| {
                let Some(table) = table_spec(table).map(|spec| spec.name) else { return Ok(ControlFlow::Continue(())) };
                if !copies.has_room_for(table, blob.len() / PAIR_BYTES) {
                    fits = false;
                    return Ok(ControlFlow::Break(()));
                }
                staged_pairs::each_pair(blob, |pair| copies.insert_pair(table, pair))
                    .ok_or_else(|| unreadable(id, &self.user_id))?;
                Ok(ControlFlow::Continue(()))
            })
        };
        if let Err(error) = read {
            self.remaps.staging.let_go();
            return Err(error);
        }
        if !fits {
            self.remaps.staging.let_go();
            let open = self.open_since.is_some();
            self.in_turn(WriteKind::Bulk, |connection, user_id| {
                if open {
                    merge_staged(connection, user_id)?;
                } else {
                    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    merge_staged(&transaction, user_id)?;
                    transaction.commit()?;
                }
                Ok(())
            })?;
            // Which ids were added is not known here.
            self.remaps.staging.mapped = true;
            self.remaps.forget();
        }
        self.remaps.staging.held = true;
        Ok(())
    }

    /// Records `(original, new id)` pairs of `table` (originals distinct), leaving out an
    /// original an earlier copy has: returns those, with the earlier copy's id. Staged
    /// copies are held in memory; merged ones are read from `lvbak_id_map`, only when the
    /// account may have them there. The rest are staged.
    pub(super) fn record_new_ids(
        &mut self,
        table: &'static str,
        pairs: &[(&str, &str)],
    ) -> DbResult<HashMap<String, String>> {
        self.hold_copies()?;
        let mut earlier = HashMap::new();
        for (original, mine) in pairs {
            match self.remaps.staging.copies.get(Some(table), original) {
                Some(copy) if copy != *mine => drop(earlier.insert(original.to_string(), copy)),
                _ => {}
            }
        }
        let asked: Vec<&str> = pairs
            .iter()
            .map(|(original, _)| *original)
            .filter(|original| !earlier.contains_key(*original) && self.remaps.staging.may_map(original))
            .collect();
        for originals in asked.chunks(IDS_PER_STATEMENT) {
            let list = serde_json::to_string(&originals).map_err(|error| DbError::Invalid(error.to_string()))?;
            let mut statement = self.connection.prepare_cached(
                "SELECT m.original_id, m.new_id FROM json_each(?1) AS j CROSS JOIN lvbak_id_map AS m \
                 ON m.user_id = ?2 AND m.original_id = j.value AND m.table_name = ?3",
            )?;
            let found = statement.query_map(rusqlite::params![list, self.user_id, table], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            for pair in found {
                let (original, new_id) = pair?;
                earlier.insert(original, new_id);
            }
        }
        let fresh: Vec<(&str, &str)> =
            pairs.iter().filter(|(original, _)| !earlier.contains_key(*original)).copied().collect();
        self.stage(table, &fresh)?;
        Ok(earlier)
    }

    /// Appends pairs to the staged copies, in the open transaction, and holds them (the
    /// copies held go to `lvbak_id_map` first if these would not fit beside them).
    fn stage(&mut self, table: &'static str, pairs: &[(&str, &str)]) -> DbResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        if !self.remaps.staging.copies.has_room_for(table, pairs.len()) {
            self.merge_held_copies()?;
        }
        self.connection
            .prepare_cached("INSERT INTO lvbak_id_map_staged (user_id, table_name, pairs) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![self.user_id, table, staged_pairs::encode(pairs)])?;
        for (original, new_id) in pairs {
            self.remaps.staging.copies.insert(table, original, new_id);
        }
        Ok(())
    }

    /// Adds the copies held to the id map inside the open transaction, when the memory
    /// they take is full.
    pub(super) fn merge_copies_if_full(&mut self) -> DbResult<()> {
        if !self.remaps.staging.copies.full {
            return Ok(());
        }
        self.merge_held_copies()
    }

    /// Adds the copies held (every staged one of the account) to `lvbak_id_map` inside the
    /// open transaction, in the map's key order: each of its pages is written once.
    fn merge_held_copies(&mut self) -> DbResult<()> {
        let staging = &mut self.remaps.staging;
        if !staging.held {
            return Ok(());
        }
        merge_copies_in(&self.connection, &self.user_id, &staging.copies)?;
        staging.copies.add_originals_to(&mut staging.merged);
        staging.copies.clear();
        // The cache may say "not copied" of ids the map now has.
        self.remaps.forget();
        Ok(())
    }

    /// After a rollback of the open transaction (or of a batch's savepoint): the copies
    /// held may name staged rows that are gone, so they are read again.
    pub(super) fn copies_rolled_back(&mut self) {
        self.remaps.staging.let_go();
        self.remaps.forget();
    }

    /// Forgets the copies this import staged (its rows are being taken back).
    pub(super) fn unstage_copies(&mut self) -> DbResult<()> {
        let before = self.remaps.staging.before;
        self.in_turn(WriteKind::Bulk, |connection, user_id| {
            connection.execute(
                "DELETE FROM lvbak_id_map_staged WHERE id > ?2 AND user_id = ?1",
                rusqlite::params![user_id, before],
            )?;
            Ok(())
        })?;
        self.remaps.staging.let_go();
        self.remaps.forget();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use lvbak_core::registry::table_spec;

    use super::super::remap::tests::characters;
    use super::*;
    use crate::storage::sqlite::Database;

    /// (rows of `user` in the id map, staged rows of `user`, `user`'s characters).
    fn counts(database: &Database, user: &str) -> (i64, i64, i64) {
        let connection = Connection::open(&database.path).unwrap();
        let count = |sql: &str| connection.query_row(sql, [user], |row| row.get(0)).unwrap();
        (
            count("SELECT count(*) FROM lvbak_id_map WHERE user_id = ?1"),
            staged_count(&connection, user),
            count("SELECT count(*) FROM characters WHERE user_id = ?1"),
        )
    }

    /// How many copies of `user` are staged.
    fn staged_count(connection: &Connection, user: &str) -> i64 {
        let mut statement = connection.prepare("SELECT pairs FROM lvbak_id_map_staged WHERE user_id = ?1").unwrap();
        let blobs = statement.query_map([user], |row| row.get::<_, Vec<u8>>(0)).unwrap();
        blobs.map(|blob| staged_pairs::decode(&blob.unwrap()).unwrap().len() as i64).sum()
    }

    /// A data directory where `u1` holds characters 0..100 and `u2` exists.
    fn instance(label: &str) -> (std::path::PathBuf, Database) {
        let dir = std::env::temp_dir().join(format!("lvbak-id-map-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let database = Database::open(&dir.join("lvbak.sqlite")).unwrap();
        let mut first = database.row_applier("u1", None).unwrap();
        let rows = characters(&mut first, 0..100);
        assert_eq!(first.apply(table_spec("characters").unwrap(), rows).unwrap().imported, 100);
        drop(first);
        (dir, database)
    }

    /// Copies are staged while the import runs and stay staged when it ends (the B-tree
    /// map is not written), a repeat of an id in the same import finds its copy, and the
    /// same archive imported again finds every copy in what is staged and skips it.
    #[test]
    fn staged_copies_are_the_map_and_a_reimport_skips_them() {
        let (dir, database) = instance("end");
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        for range in [0..60, 60..100] {
            let rows = characters(&mut second, range.clone());
            assert_eq!(second.apply(spec, rows).unwrap().remapped, range.len() as u64);
        }
        second.commit().unwrap();
        assert_eq!(counts(&database, "u2"), (0, 100, 100), "staged, not in the map");
        let rows = characters(&mut second, 50..70);
        let counts_again = second.apply(spec, rows).unwrap();
        assert_eq!((counts_again.imported, counts_again.skipped), (0, 20), "a repeat finds its copy");
        second.settle_remapped_references().unwrap();
        drop(second);
        assert_eq!(counts(&database, "u2"), (0, 100, 100), "still staged at the end");

        let mut again = database.row_applier("u2", None).unwrap();
        assert!(again.remaps.any, "staged copies count as remapped ids");
        let rows = characters(&mut again, 0..100);
        let counts_again = again.apply(spec, rows).unwrap();
        assert_eq!((counts_again.imported, counts_again.skipped), (0, 100));
        assert_eq!(
            again.local_id("c042").unwrap(),
            database.id_map_of("u2").unwrap().iter().find(|(_, o)| o == "c042").unwrap().0
        );
        drop(again);
        assert_eq!(counts(&database, "u2"), (0, 100, 100));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Copies held in memory past their bound are added to the map inside the import, with
    /// every other staged copy of the account; repeats of their ids afterwards are found
    /// there (through the filter of merged ids), and ids never copied are not looked up.
    #[test]
    fn copies_merged_midway_are_still_found() {
        let (dir, database) = instance("midway");
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..50);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 50);
        second.remaps.staging.copies.full = true;
        let rows = characters(&mut second, 50..60);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 10);
        second.commit().unwrap();
        assert_eq!(counts(&database, "u2"), (50, 10, 60), "merged when full, before the next copies");
        assert!(second.remaps.staging.merged.may_hold("c010"));
        assert!(!second.remaps.staging.mapped);
        let rows = characters(&mut second, 0..100);
        let counts_again = second.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (40, 60));
        drop(second);
        assert_eq!(counts(&database, "u2"), (50, 50, 100));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Staged copies too many to hold when an import reads them are added to the map
    /// instead, and found there.
    #[test]
    fn staged_copies_that_do_not_fit_are_merged_when_read() {
        let (dir, database) = instance("overflow");
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..40);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 40);
        drop(second);
        assert_eq!(counts(&database, "u2"), (0, 40, 40));
        let mut again = database.row_applier("u2", None).unwrap();
        again.remaps.staging.copies.full = true;
        let rows = characters(&mut again, 0..50);
        let counts_again = again.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (10, 40));
        assert!(again.remaps.staging.mapped);
        drop(again);
        assert_eq!(counts(&database, "u2"), (40, 10, 50));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An account with more staged rows than an import reads (a hostile one's many small
    /// imports) has them added to the map at its next import, which still finds every
    /// copy; another account's import reads none of them and leaves them staged.
    #[test]
    fn too_many_staged_rows_are_merged_and_another_account_never_reads_them() {
        let (dir, database) = instance("many");
        let connection = Connection::open(&database.path).unwrap();
        connection.execute_batch(r#"INSERT INTO "user" (id, name, email) VALUES ('u3', 'three', 'c@x')"#).unwrap();
        let uuid = |n: i64| format!("00000000-0000-4000-8000-{n:012x}");
        let mut stage = connection
            .prepare("INSERT INTO lvbak_id_map_staged (user_id, table_name, pairs) VALUES ('u3', 'characters', ?1)")
            .unwrap();
        for n in 0..=STAGED_ROWS_HELD {
            stage.execute([staged_pairs::encode(&[(&format!("x{n}"), &uuid(n))])]).unwrap();
        }
        drop(stage);
        let staged_of = |user: &str| staged_count(&connection, user);
        assert_eq!(staged_of("u3"), STAGED_ROWS_HELD + 1);

        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..10);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 10);
        assert_eq!(second.remaps.staging.copies.len(), 10, "only its own copies are held");
        drop(second);
        assert_eq!(staged_of("u3"), STAGED_ROWS_HELD + 1, "another account's rows stay staged");

        let mut hostile = database.row_applier("u3", None).unwrap();
        assert_eq!(hostile.local_id("x7").unwrap(), uuid(7), "found in the map once merged");
        assert!(hostile.remaps.staging.mapped);
        assert_eq!(hostile.remaps.staging.copies.len(), 0);
        drop(hostile);
        assert_eq!(counts(&database, "u3").0, STAGED_ROWS_HELD + 1);
        assert_eq!(staged_of("u3"), 0);
        drop((connection, database));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A rolled-back transaction takes its staged copies with it: the copies held are read
    /// again, so the ids it copied are copied afresh and the committed ones still skipped;
    /// copies let go of (a batch import waiting) are read again too.
    #[test]
    fn copies_are_read_again_after_a_rollback_or_letting_go() {
        let (dir, database) = instance("reread");
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..30);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 30);
        second.commit().unwrap();
        let rows = characters(&mut second, 30..40);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 10);
        second.abandon_transaction();
        assert!(!second.remaps.staging.held);
        assert_eq!(counts(&database, "u2"), (0, 30, 30));
        let rows = characters(&mut second, 25..40);
        let counts_again = second.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (10, 5));
        second.commit().unwrap();
        second.release_memory();
        assert!(!second.remaps.staging.held);
        let rows = characters(&mut second, 0..45);
        let counts_again = second.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (5, 40));
        drop(second);
        assert_eq!(counts(&database, "u2"), (0, 45, 45));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An import that dies (nothing of it runs again) leaves its committed copies staged:
    /// they are part of the map, for the next import after the database opens again.
    #[test]
    fn a_crashed_import_leaves_its_copies_in_the_map() {
        let (dir, database) = instance("crash");
        Connection::open(&database.path)
            .unwrap()
            .execute_batch(r#"INSERT INTO "user" (id, name, email) VALUES ('u1', 'one', 'a@x'), ('u2', 'two', 'b@x')"#)
            .unwrap();
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..40);
        second.apply(spec, rows).unwrap();
        second.commit().unwrap();
        std::mem::forget(second);
        assert_eq!(counts(&database, "u2"), (0, 40, 40));
        let reopened = Database::open(&database.path).unwrap();
        let mut third = reopened.row_applier("u2", None).unwrap();
        let rows = characters(&mut third, 0..50);
        let counts_again = third.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (10, 40));
        drop(third);
        assert_eq!(counts(&database, "u2"), (0, 50, 50));
        assert_eq!(reopened.merge_staged_copies().unwrap(), 50, "a move to PostgreSQL merges them");
        assert_eq!(counts(&database, "u2"), (50, 0, 50));
        drop((reopened, database));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An import taken back (over its quota) leaves no staged copies and none in the map.
    #[test]
    fn a_rolled_back_import_leaves_no_copies_recorded() {
        let (dir, database) = instance("rollback");
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..30);
        second.apply(spec, rows).unwrap();
        second.commit().unwrap();
        second.roll_back_import().unwrap();
        drop(second);
        assert_eq!(counts(&database, "u2"), (0, 0, 0));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Whose an existing row is, with and without rows of the importer's from before the
    /// import (`owners`' rowid floor): the holder's rows are skipped, another's copied.
    #[test]
    fn existing_rows_are_told_apart_by_owner_with_or_without_older_rows() {
        let (dir, database) = instance("owners");
        let spec = table_spec("characters").unwrap();
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..10);
        assert_eq!(second.apply(spec, rows).unwrap().remapped, 10);
        drop(second);
        let mut first = database.row_applier("u1", None).unwrap();
        let rows = characters(&mut first, 0..100);
        let counts_again = first.apply(spec, rows).unwrap();
        assert_eq!((counts_again.imported, counts_again.skipped), (0, 100), "the holder's own rows");
        drop(first);
        let mut second = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut second, 0..20);
        let counts_again = second.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (10, 10));
        drop(second);
        assert_eq!(counts(&database, "u2"), (0, 20, 20));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
