//! How an import records its copies in the id map (`lvbak_id_map`, keyed by user and the
//! archive's random ids): not in the map as they are made, since a transaction of 60,000
//! copies then rewrote most of the map's pages at every commit (a 500,000-character copy
//! wrote 0.4 GB more than its rows), but
//!
//! - appended to `lvbak_id_map_staged` (migrations 0009 and 0010) in the copies' own
//!   transaction, so a committed copy is always recorded somewhere durable: a row per batch
//!   and table, its pairs packed in a blob (`staged_pairs`);
//! - kept for this import's lookups in memory ([`Copies`]: an in-memory table of SQLite's
//!   took 2.5 µs a copy, and a temporary one larger than its page cache took the main
//!   database's pages — the build's page caches share one LRU list — read again for every
//!   row);
//! - added to the map in key order ([`RowApplier::merge_copies`]) whenever they hold
//!   [`COPIES_BYTES`] or the instance's memory budget has no room for more, at the
//!   import's end (when it settles its references, or is dropped), and after a crash when
//!   the database opens or an import of the account starts ([`merge_staged`]). A
//!   transaction rolled back takes staged copies with it: the memory then starts over
//!   from what is staged (merged into the map).
//!
//! The map is read only for ids an earlier import, or this one before a merge, may have
//! copied ([`Merged`]: a filter of the ids this import merged).

use foldhash::{HashMap, HashMapExt as _};

use super::held_copies::{Copies, Merged};
use super::owners::IDS_PER_STATEMENT;
use super::staged_pairs;
use super::*;

/// Id map rows written by one statement (two parameters each besides the user and table).
const ROWS_PER_STATEMENT: usize = 64;

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

/// Adds the staged copies of `user_id` (every import's: an interrupted one left its own)
/// to the id map, a staged row at a time, and forgets them; how many were added. Runs
/// inside the caller's write transaction.
pub(super) fn merge_staged(connection: &Connection, user_id: &str) -> DbResult<u64> {
    let mut added = 0;
    let mut after = 0i64;
    loop {
        let row: Option<(i64, String, Vec<u8>)> = connection
            .prepare_cached(
                "SELECT id, table_name, pairs FROM lvbak_id_map_staged WHERE user_id = ?1 AND id > ?2 \
                 ORDER BY id LIMIT 1",
            )?
            .query_row(rusqlite::params![user_id, after], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        let Some((id, table, pairs)) = row else { break };
        after = id;
        let pairs = staged_pairs::decode(&pairs)
            .ok_or_else(|| DbError::Invalid(format!("staged copies {id} of {user_id} cannot be read")))?;
        let mut sorted: Vec<(&str, &str, &str)> =
            pairs.iter().map(|(original, new_id)| (original.as_str(), table.as_str(), new_id.as_str())).collect();
        sorted.sort_unstable();
        add_to_map(connection, user_id, &sorted)?;
        added += sorted.len() as u64;
    }
    connection.execute("DELETE FROM lvbak_id_map_staged WHERE user_id = ?1", [user_id])?;
    Ok(added)
}

/// Adds `copies` (this import's staged ones, above `before`) to the id map in the order of
/// its keys, and forgets them. Runs inside the caller's write transaction.
fn merge_copies_in(connection: &Connection, user_id: &str, before: i64, copies: &Copies) -> DbResult<()> {
    let started = std::time::Instant::now();
    let sorted = copies.sorted();
    add_to_map(connection, user_id, &sorted)?;
    connection.execute(
        "DELETE FROM lvbak_id_map_staged WHERE id > ?2 AND user_id = ?1",
        rusqlite::params![user_id, before],
    )?;
    tracing::debug!("added {} copies to the id map in {:?}", sorted.len(), started.elapsed());
    Ok(())
}

/// Merges whatever interrupted imports left staged, every account's that still exists
/// (when the database opens): how many map rows were added.
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
    /// The account has rows in the id map from before this import (or ones this import
    /// cannot tell by [`Self::merged`]).
    pub mapped: bool,
    /// The archive ids this import added to the map.
    pub merged: Merged,
    /// This import staged copies not merged yet.
    pub staged: bool,
    /// The largest staged id when the import began: its own are above.
    pub before: i64,
    /// This import's copies not merged yet.
    pub copies: Copies,
    /// A rolled-back transaction took staged copies that [`Self::copies`] still held: they
    /// are merged from what is staged.
    pub lost: bool,
}

impl Staging {
    /// Merges what an interrupted import of `user_id` left staged (in a write turn of
    /// `gate`), then reads where the account stands.
    pub fn load(connection: &mut Connection, gate: &Arc<WriteGate>, user_id: &str) -> DbResult<Self> {
        let left: bool = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM lvbak_id_map_staged WHERE user_id = ?1)",
            [user_id],
            |row| row.get(0),
        )?;
        if left {
            let _turn = gate.enter(WriteKind::Bulk);
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            merge_staged(&transaction, user_id)?;
            transaction.commit()?;
        }
        let mapped = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM lvbak_id_map WHERE user_id = ?1)",
            [user_id],
            |row| row.get(0),
        )?;
        let before =
            connection.query_row("SELECT coalesce(max(id), 0) FROM lvbak_id_map_staged", [], |row| row.get(0))?;
        Ok(Self { mapped, merged: Merged::default(), staged: false, before, copies: Copies::default(), lost: false })
    }

    /// Whether the id map may have a copy of `original` (else it need not be asked).
    pub fn may_map(&self, original: &str) -> bool {
        self.mapped || self.merged.may_hold(original)
    }
}

impl RowApplier {
    /// Records `(original, new id)` pairs of `table` (originals distinct), leaving out an
    /// original an earlier copy has: returns those, with the earlier copy's id. This
    /// import's copies are in memory; earlier imports' are read from the map, only when the
    /// account has any. The rest are staged.
    pub(super) fn record_new_ids(
        &mut self,
        table: &'static str,
        pairs: &[(&str, &str)],
    ) -> DbResult<HashMap<String, String>> {
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

    /// Appends pairs to the staged copies, in the open transaction, and holds them.
    fn stage(&mut self, table: &'static str, pairs: &[(&str, &str)]) -> DbResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.connection
            .prepare_cached("INSERT INTO lvbak_id_map_staged (user_id, table_name, pairs) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![self.user_id, table, staged_pairs::encode(pairs)])?;
        for (original, new_id) in pairs {
            self.remaps.staging.copies.insert(table, original, new_id);
        }
        self.remaps.staging.staged = true;
        Ok(())
    }

    /// Adds this import's copies to the id map inside the open transaction, when the
    /// memory they take is full.
    pub(super) fn merge_copies_if_full(&mut self) -> DbResult<()> {
        if !self.remaps.staging.copies.full || self.remaps.staging.lost {
            return Ok(());
        }
        merge_copies_in(&self.connection, &self.user_id, self.remaps.staging.before, &self.remaps.staging.copies)?;
        self.copies_merged();
        Ok(())
    }

    /// Adds this import's copies to the id map (committing first), in the map's key
    /// order: each of its pages is written once, not once per commit.
    pub(super) fn merge_copies(&mut self) -> DbResult<()> {
        if !self.remaps.staging.staged {
            return Ok(());
        }
        self.commit()?;
        let (before, lost) = (self.remaps.staging.before, self.remaps.staging.lost);
        let copies = std::mem::take(&mut self.remaps.staging.copies);
        let merged = self.in_turn(WriteKind::Bulk, |connection, user_id| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if lost {
                merge_staged(&transaction, user_id)?;
            } else {
                merge_copies_in(&transaction, user_id, before, &copies)?;
            }
            transaction.commit()?;
            Ok(())
        });
        self.remaps.staging.copies = copies;
        merged?;
        self.copies_merged();
        Ok(())
    }

    fn copies_merged(&mut self) {
        let staging = &mut self.remaps.staging;
        if staging.lost {
            // Merged from what was staged: which ids is not known here.
            staging.mapped = true;
        }
        staging.copies.add_originals_to(&mut staging.merged);
        (staging.staged, staging.lost) = (false, false);
        staging.copies.clear();
        // The cache may say "not copied" of ids the map now has.
        self.remaps.forget();
    }

    /// After a rollback of the open transaction (or of a batch's savepoint): the copies in
    /// memory may name staged rows that are gone, so what is staged is merged instead.
    pub(super) fn copies_rolled_back(&mut self) {
        if self.remaps.staging.staged {
            self.remaps.staging.lost = true;
            self.remaps.staging.copies.clear();
            let _ = self.merge_copies();
        }
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
        let staging = &mut self.remaps.staging;
        (staging.staged, staging.lost) = (false, false);
        staging.copies.clear();
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

    /// Copies are staged while the import runs (the map is not written), a repeat of an id
    /// in the same import finds its copy, the import's end adds them to the map, and the
    /// same archive imported again skips every copy.
    #[test]
    fn staged_copies_reach_the_map_at_the_end_and_a_reimport_skips_them() {
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
        assert_eq!(counts(&database, "u2"), (100, 0, 100), "in the map at the end");
        drop(second);

        let mut again = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut again, 0..100);
        let counts_again = again.apply(spec, rows).unwrap();
        assert_eq!((counts_again.imported, counts_again.skipped), (0, 100));
        drop(again);
        assert_eq!(counts(&database, "u2"), (100, 0, 100));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Copies held in memory past their bound are added to the map inside the import;
    /// repeats of their ids afterwards are found there (through the filter of merged ids),
    /// and ids never copied are not looked up.
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
        assert_eq!(counts(&database, "u2"), (60, 0, 60), "merged when full");
        assert!(second.remaps.staging.merged.may_hold("c010"));
        assert!(!second.remaps.staging.mapped);
        let rows = characters(&mut second, 0..100);
        let counts_again = second.apply(spec, rows).unwrap();
        assert_eq!((counts_again.remapped, counts_again.skipped), (40, 60));
        drop(second);
        assert_eq!(counts(&database, "u2"), (100, 0, 100));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An import that dies (nothing of it runs again) leaves its committed copies staged:
    /// the next import of the account, or the database's next opening, adds them to the
    /// map, so a re-import finds them.
    #[test]
    fn a_crashed_import_leaves_its_copies_to_the_next_start() {
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
        assert_eq!(counts(&database, "u2"), (40, 0, 40), "merged when the database opens");
        drop(reopened);

        let mut third = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut third, 40..50);
        third.apply(spec, rows).unwrap();
        third.commit().unwrap();
        std::mem::forget(third);
        let mut again = database.row_applier("u2", None).unwrap();
        assert_eq!(counts(&database, "u2"), (50, 0, 50), "merged when an import starts");
        let rows = characters(&mut again, 0..50);
        assert_eq!(again.apply(spec, rows).unwrap().skipped, 50);
        drop(again);
        assert_eq!(counts(&database, "u2"), (50, 0, 50));
        drop(database);
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
        assert_eq!(counts(&database, "u2"), (20, 0, 20));
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
