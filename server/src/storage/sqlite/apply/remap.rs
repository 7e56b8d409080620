//! Restoring into any account of a shared instance. Row ids are global primary keys, so an
//! archive row whose id already belongs to *another* user (a second account restoring the
//! same backup, a shared pack, or someone who imported your ids first) is imported as a
//! copy under a fresh id of the importer's own, and everything in the same import that
//! refers to it follows: parent and reference columns (as each row is applied, parents
//! come first), forward references, ids kept inside JSON text (`JSON_ID_COLUMNS`) or plain
//! text (`TEXT_ID_COLUMNS`), file names made from ids, and vector rows and their metadata. The archive id → new id pairs are kept per user
//! (`lvbak_id_map`), so importing the same archive again finds the copies and skips them.
//!
//! Lookups cost nothing until the importer has a remapped id at all (`Remaps::any`); JSON
//! text and file names are rewritten textually by `policy::ids` (a quoted UUID, or a UUID
//! inside a name), so Lumiverse's bytes — key order, number text — stay as they were.

use lvbak_core::registry::{id_text_columns, table_spec, ReferenceRule, TABLES};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::id_map::Staging;
use super::{owned_condition, quoted, DbResult, RowApplier, WriteKind};
use crate::policy::ids::copy_ids;
use crate::storage::lookup_cache::LookupCache;

/// Rows read at a time when rewriting JSON text and file names.
const REWRITE_CHUNK: usize = 1000;

/// The importer's remapped ids, looked up on demand and remembered.
#[derive(Debug, Default)]
pub(super) struct Remaps {
    /// Whether the importer has any remapped id; until then nothing is looked up.
    pub any: bool,
    /// Whether every remapped id is in `cache` (the importer had none before this import,
    /// and the cache never started over): a miss then needs no query.
    complete: bool,
    /// `(table or any, archive id)` → the id here, if remapped.
    pub cache: LookupCache<Option<&'static str>, Option<String>>,
    /// Where this import's copies are recorded (see `id_map`).
    pub staging: Staging,
}

impl Remaps {
    /// What the account has remapped.
    pub fn load(connection: &Connection, user_id: &str) -> DbResult<Self> {
        let staging = Staging::load(connection, user_id)?;
        let any = staging.mapped || staging.had_staged;
        Ok(Self { any, complete: !any, cache: LookupCache::default(), staging })
    }

    /// Forgets the remembered lookups (they can be read again).
    pub fn forget(&mut self) {
        self.cache.clear();
        self.complete = false;
    }
}

/// Whether a column's value may hold an id (see `policy::ids::may_hold_id`).
fn may_hold_id(value: rusqlite::types::ValueRef<'_>) -> bool {
    match value {
        rusqlite::types::ValueRef::Text(bytes) => crate::policy::ids::may_hold_id(bytes),
        _ => false,
    }
}

impl RowApplier {
    /// The id the importer's copy of `original` has, when an import gave it a new one:
    /// of a row of `table`, or of any table (`None`).
    pub(super) fn remapped(&mut self, table: Option<&'static str>, original: &str) -> DbResult<Option<String>> {
        if !self.remaps.any {
            return Ok(None);
        }
        // Staged copies are not in the cache, but in memory of their own.
        self.hold_copies()?;
        if let Some(copy) = self.remaps.staging.copies.get(table, original) {
            return Ok(Some(copy));
        }
        // An id remapped in any table answers for "any table" (copies are remembered
        // under their table only).
        let known = match table {
            Some(_) => self.remaps.cache.get(table, original),
            None => self.remaps.cache.find(original, Option::is_some).or_else(|| self.remaps.cache.get(None, original)),
        };
        if let Some(known) = known {
            return Ok(known.clone());
        }
        if self.remaps.complete || !self.remaps.staging.may_map(original) {
            return Ok(None);
        }
        let found: Option<String> = match table {
            Some(table) => self
                .connection
                .prepare_cached(
                    "SELECT new_id FROM lvbak_id_map WHERE user_id = ?1 AND original_id = ?2 AND table_name = ?3",
                )?
                .query_row([self.user_id.as_str(), original, table], |row| row.get(0))
                .optional()?,
            None => self
                .connection
                .prepare_cached("SELECT new_id FROM lvbak_id_map WHERE user_id = ?1 AND original_id = ?2 LIMIT 1")?
                .query_row([self.user_id.as_str(), original], |row| row.get(0))
                .optional()?,
        };
        self.remember(table, original, found.clone());
        Ok(found)
    }

    /// The ids rows of `table` whose archive ids (`originals`, sorted: repeats of one id
    /// are neighbours) are another user's get here, in their order: the one an earlier
    /// import gave each, or a fresh one, recorded (inside the import's transaction, so a
    /// rolled-back import forgets it too).
    ///
    /// Every id the cache does not answer for is given a fresh id and recorded (see
    /// [`Self::record_new_ids`]: this import's copies are held in memory until they join
    /// the id map, which is read only for ids an earlier import may have copied). A
    /// restore whose ids are all new to the importer then records them and reads nothing
    /// back, whether or not the cache still holds every answer.
    pub(super) fn remap_ids(&mut self, table: &'static str, originals: &[&str]) -> DbResult<Vec<String>> {
        // What the cache knows of an earlier copy; every other id is given a fresh one.
        let cache = &self.remaps.cache;
        let (mut new_ids, recorded) =
            copy_ids(originals, |original| cache.get(Some(table), original).cloned().flatten());
        let pairs: Vec<(&str, &str)> =
            recorded.iter().map(|&position| (originals[position], new_ids[position].as_str())).collect();
        let earlier = self.record_new_ids(table, &pairs)?;
        drop(pairs);
        if !recorded.is_empty() {
            self.remaps.any = true;
            self.grow_cache();
        }
        // Copies an earlier import made keep their ids (and so do repeats of their ids).
        if !earlier.is_empty() {
            for position in 0..originals.len() {
                if let Some(known) = earlier.get(originals[position]) {
                    new_ids[position] = known.clone();
                }
            }
        }
        Ok(new_ids)
    }

    fn remember(&mut self, table: Option<&'static str>, original: &str, new_id: Option<String>) {
        if !self.remaps.cache.insert(table, original, new_id) {
            // Some answer is no longer remembered: a miss must be looked up again.
            self.remaps.complete = false;
        }
    }

    /// `id` as the importer's rows know it: its new id if an import remapped it.
    pub fn local_id(&mut self, id: &str) -> DbResult<String> {
        Ok(self.remapped(None, id)?.unwrap_or_else(|| id.to_string()))
    }

    /// `text` with every UUID in it (`quoted`: every JSON string that is a UUID) that was
    /// remapped replaced by its new id; `None` when nothing changed.
    pub(super) fn rewrite_uuids(&mut self, text: &str, quoted_only: bool) -> DbResult<Option<String>> {
        crate::policy::ids::rewrite_uuids(text, quoted_only, |original| self.remapped(None, original))
    }

    /// JSON text (a vector's metadata) with every quoted id that was remapped replaced.
    pub fn local_json(&mut self, text: String) -> DbResult<String> {
        if !self.remaps.any {
            return Ok(text);
        }
        Ok(self.rewrite_uuids(&text, true)?.unwrap_or(text))
    }

    /// An archive file name with the remapped ids in it replaced (an image `<id>.png` of
    /// a copied image, its thumbnails, a databank `<docId>__name`).
    pub fn local_file_name(&mut self, name: &str) -> DbResult<String> {
        if !self.remaps.any {
            return Ok(name.to_string());
        }
        Ok(self.rewrite_uuids(name, false)?.unwrap_or_else(|| name.to_string()))
    }

    /// After every table is in: references that point forward (to a row applied later,
    /// given a new id after the row referring to it was written), ids in JSON text and
    /// file names of the rows this import wrote are rewritten to the new ids. Returns how
    /// many values changed.
    pub fn settle_remapped_references(&mut self) -> DbResult<u64> {
        if !self.remaps.any {
            return Ok(0);
        }
        self.commit()?;
        let started = std::time::Instant::now();
        let mut changed = 0;
        for spec in TABLES {
            let before = self.rowids_before.get(spec.name).copied().unwrap_or(i64::MAX);
            for reference in spec.references {
                let Some(target) = table_spec(reference.table) else { continue };
                // Checked references point backwards (a registry test): settled already. So
                // are references to rows copied before the row was applied (`check_row`
                // brings them to the copy): only those it left unsettled are looked at.
                if reference.rule != ReferenceRule::ScrubWhenMissing
                    || !self.unsettled.contains(&(spec.name, reference.column))
                {
                    continue;
                }
                changed += self.settle_column(spec, reference.column, target.name, before)?;
            }
            // Settings are merged into rows that may be older than the import: all of them.
            let before = if spec.name == "settings" { 0 } else { before };
            let columns: Vec<(&str, bool)> = id_text_columns(spec).collect();
            changed += self.rewrite_columns(spec, &columns, before)?;
        }
        tracing::debug!("settled {changed} references to copied rows in {:?}", started.elapsed());
        Ok(changed)
    }

    /// Runs each `(update, rowid, value)` (an update's `?1` the value, `?2` the rowid) in one
    /// transaction of its own: a chunk of rows settled or rewritten at an import's end.
    fn write_rows<'a>(&mut self, rows: impl Iterator<Item = (&'a str, i64, &'a str)>) -> DbResult<()> {
        self.in_turn(WriteKind::Bulk, |connection, _| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (update, rowid, value) in rows {
                transaction.prepare_cached(update)?.execute(rusqlite::params![value, rowid])?;
            }
            Ok(transaction.commit()?)
        })
    }

    /// Points `column` (a reference to rows of `target`) of the importer's rows above
    /// `before` to the copies of the rows it names, a chunk of rows at a time: how many
    /// changed.
    fn settle_column(
        &mut self,
        spec: &'static lvbak_core::registry::TableSpec,
        column: &str,
        target: &'static str,
        before: i64,
    ) -> DbResult<u64> {
        let select = format!(
            "SELECT t.rowid, t.{column} FROM {table} AS t WHERE t.rowid > ?2 AND {owned} \
             AND t.{column} IS NOT NULL ORDER BY t.rowid LIMIT {REWRITE_CHUNK}",
            column = quoted(column),
            table = quoted(spec.name),
            owned = owned_condition(spec, "t", 1),
        );
        let update = format!("UPDATE {} SET {} = ?1 WHERE rowid = ?2", quoted(spec.name), quoted(column));
        let mut changed = 0;
        let mut after = before;
        loop {
            let chunk: Vec<(i64, Option<String>)> = self
                .connection
                .prepare_cached(&select)?
                .query_map(rusqlite::params![self.user_id, after], |row| {
                    let value = row.get_ref(1)?;
                    Ok((row.get(0)?, if let ValueRef::Text(_) = value { row.get(1)? } else { None }))
                })?
                .collect::<Result<_, _>>()?;
            let Some(&(last, _)) = chunk.last() else { break };
            after = last;
            let mut settled: Vec<(i64, String)> = Vec::new();
            for (rowid, value) in &chunk {
                let Some(value) = value else { continue };
                if let Some(copy) = self.remapped(Some(target), value)? {
                    settled.push((*rowid, copy));
                }
            }
            if !settled.is_empty() {
                changed += settled.len() as u64;
                self.write_rows(settled.iter().map(|(rowid, copy)| (update.as_str(), *rowid, copy.as_str())))?;
            }
            if chunk.len() < REWRITE_CHUNK {
                break;
            }
        }
        Ok(changed)
    }

    /// Rewrites remapped ids in text columns (`(column, json)`: in JSON, only quoted
    /// ids) of the importer's rows above `before`, a chunk of rows at a time, reading each
    /// row once for all its columns (a character has eleven).
    fn rewrite_columns(
        &mut self,
        spec: &'static lvbak_core::registry::TableSpec,
        columns: &[(&str, bool)],
        before: i64,
    ) -> DbResult<u64> {
        // Only a table where a row of this import had an id's shape in such a column can
        // hold one to rewrite (every table after a crash: `settle_all_rows`); settings are
        // merged into older rows, so they are always read. A second account's copy of
        // 500,000 characters (none with an id in its text) read every one again here: 0.55 s.
        if columns.is_empty() || !(self.texts_with_ids.contains(spec.name) || spec.name == "settings") {
            return Ok(0);
        }
        let names: Vec<String> = columns.iter().map(|(column, _)| format!("t.{}", quoted(column))).collect();
        let select = format!(
            "SELECT t.rowid, {names} FROM {table} AS t WHERE t.rowid > ?2 AND {owned} \
             ORDER BY t.rowid LIMIT {REWRITE_CHUNK}",
            names = names.join(", "),
            table = quoted(spec.name),
            owned = owned_condition(spec, "t", 1),
        );
        // A key column (settings' `key`) keeps its old value where the new one is taken.
        let updates: Vec<String> = columns
            .iter()
            .map(|(column, _)| {
                format!("UPDATE OR IGNORE {} SET {} = ?1 WHERE rowid = ?2", quoted(spec.name), quoted(column))
            })
            .collect();
        let mut changed = 0;
        let mut after = before;
        loop {
            let chunk: Vec<(i64, Vec<Option<String>>)> = self
                .connection
                .prepare_cached(&select)?
                .query_map(rusqlite::params![self.user_id, after], |row| {
                    // Only values that may hold an id are copied out.
                    let texts = (1..=columns.len())
                        .map(|index| Ok(if may_hold_id(row.get_ref(index)?) { row.get(index)? } else { None }))
                        .collect::<rusqlite::Result<_>>()?;
                    Ok((row.get(0)?, texts))
                })?
                .collect::<Result<_, _>>()?;
            let Some(last) = chunk.last().map(|(rowid, _)| *rowid) else { break };
            after = last;
            // (column index, rowid, new text)
            let mut rewritten: Vec<(usize, i64, String)> = Vec::new();
            for (rowid, texts) in &chunk {
                for (index, text) in texts.iter().enumerate() {
                    let Some(text) = text else { continue };
                    if let Some(new_text) = self.rewrite_uuids(text, columns[index].1)? {
                        rewritten.push((index, *rowid, new_text));
                    }
                }
            }
            if !rewritten.is_empty() {
                changed += rewritten.len() as u64;
                self.write_rows(
                    rewritten.iter().map(|(index, rowid, text)| (updates[*index].as_str(), *rowid, text.as_str())),
                )?;
            }
            if chunk.len() < REWRITE_CHUNK {
                break;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use lvbak_core::registry::table_spec;

    /// Characters `ids` (ids `c000`…), aligned with the applier's columns (the id map's
    /// tests take them too).
    pub(in crate::storage::sqlite::apply) fn characters(
        applier: &mut RowApplier,
        ids: std::ops::Range<usize>,
    ) -> Vec<super::super::AlignedRow> {
        let names = applier.columns_of(table_spec("characters").unwrap()).unwrap();
        ids.map(|n| {
            names
                .iter()
                .map(|name| match name.as_str() {
                    "id" => Some(serde_json::json!(format!("c{n:03}"))),
                    "name" => Some(serde_json::json!(format!("Character {n}"))),
                    _ => None,
                })
                .collect()
        })
        .collect()
    }

    /// An image `i<n>` (file `i<n>.png`) whose owner is character `c<n>`, aligned with the
    /// applier's columns.
    fn images_owned(applier: &mut RowApplier, ids: std::ops::Range<usize>) -> Vec<super::super::AlignedRow> {
        let names = applier.columns_of(table_spec("images").unwrap()).unwrap();
        ids.map(|n| {
            names
                .iter()
                .map(|name| match name.as_str() {
                    "id" => Some(serde_json::json!(format!("i{n:03}"))),
                    "filename" => Some(serde_json::json!(format!("i{n:03}.png"))),
                    "owner_character_id" => Some(serde_json::json!(format!("c{n:03}"))),
                    _ => None,
                })
                .collect()
        })
        .collect()
    }

    /// A reference that points forward (an image's owner, a character applied after the
    /// images) to a row copied under a new id is settled at the import's end from the
    /// copies held: the second account's images point at its own copies, the first's are
    /// untouched.
    #[test]
    fn forward_references_to_copies_are_settled_from_the_copies_held() {
        let dir = std::env::temp_dir().join(format!("lvbak-remap-forward-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let database = crate::storage::sqlite::Database::open(&dir.join("lvbak.sqlite")).unwrap();
        let (images, characters_spec) = (table_spec("images").unwrap(), table_spec("characters").unwrap());
        for user in ["u1", "u2"] {
            let mut applier = database.row_applier(user, None).unwrap();
            let rows = images_owned(&mut applier, 0..20);
            applier.apply(images, rows).unwrap();
            let rows = characters(&mut applier, 0..20);
            applier.apply(characters_spec, rows).unwrap();
            assert_eq!(applier.settle_remapped_references().unwrap() > 0, user == "u2");
            drop(applier);
        }
        let connection = Connection::open(dir.join("lvbak.sqlite")).unwrap();
        let map = id_map(&connection, "u2");
        assert_eq!(map.len(), 40, "20 images and 20 characters copied");
        let owners = |user: &str| -> Vec<(String, String)> {
            let mut statement = connection
                .prepare("SELECT id, owner_character_id FROM images WHERE user_id = ?1 ORDER BY filename")
                .unwrap();
            statement.query_map([user], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect()
        };
        for (n, (image, owner)) in owners("u2").into_iter().enumerate() {
            assert_eq!(image, map[&format!("i{n:03}")]);
            assert_eq!(owner, map[&format!("c{n:03}")], "the copy's owner is the copied character");
            let mine: i64 = connection
                .query_row("SELECT count(*) FROM characters WHERE id = ?1 AND user_id = 'u2'", [&owner], |row| {
                    row.get(0)
                })
                .unwrap();
            assert_eq!(mine, 1);
        }
        assert!(owners("u1")
            .iter()
            .enumerate()
            .all(|(n, (image, owner))| *image == format!("i{n:03}") && *owner == format!("c{n:03}")));
        drop((connection, database));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The id map of `user` (both parts), archive id → id here.
    fn id_map(connection: &Connection, user: &str) -> std::collections::BTreeMap<String, String> {
        let mut statement =
            connection.prepare("SELECT original_id, new_id FROM lvbak_id_map WHERE user_id = ?1").unwrap();
        let mut map: std::collections::BTreeMap<String, String> =
            statement.query_map([user], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect();
        let staged = super::super::id_map::staged_copies_of(connection, user).unwrap();
        map.extend(staged.into_iter().map(|(_, original, new_id)| (original, new_id)));
        map
    }

    /// Copies are recorded in the id map without reading it first; a later import whose
    /// ids the map has (a statement of 64 rows with some of them, rows one at a time) finds
    /// the earlier copies through the map, keeps their ids and writes no second copy, and
    /// whose a row is comes from the owner column's index.
    #[test]
    fn copies_recorded_once_are_found_again_through_the_id_map() {
        let dir = std::env::temp_dir().join(format!("lvbak-remap-ids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = crate::storage::sqlite::Database::open(&dir.join("lvbak.sqlite")).unwrap();
        let spec = table_spec("characters").unwrap();
        let mut first = database.row_applier("u1", None).unwrap();
        let rows = characters(&mut first, 0..100);
        assert_eq!(first.apply(spec, rows).unwrap().imported, 100);
        drop(first);

        let mut second = database.row_applier("u2", None).unwrap();
        assert_eq!(second.plan(spec).unwrap().owner_index.as_deref(), Some("lvbak_characters_user"));
        let rows = characters(&mut second, 0..50);
        let counts = second.apply(spec, rows).unwrap();
        assert_eq!((counts.imported, counts.remapped), (50, 50));
        drop(second);
        let connection = Connection::open(dir.join("lvbak.sqlite")).unwrap();
        let earlier = id_map(&connection, "u2");
        assert_eq!(earlier.len(), 50);
        assert!(earlier.iter().all(|(original, new_id)| original != new_id));

        // Nothing remembered: every id is offered to the map and the first 50 are refused.
        let mut again = database.row_applier("u2", None).unwrap();
        let rows = characters(&mut again, 0..100);
        let counts = again.apply(spec, rows).unwrap();
        assert_eq!((counts.imported, counts.remapped, counts.skipped), (50, 50, 50));
        drop(again);
        let map = id_map(&connection, "u2");
        assert_eq!(map.len(), 100);
        assert!(earlier.iter().all(|(original, new_id)| map[original] == *new_id), "earlier copies keep their ids");
        let mine: std::collections::BTreeSet<String> = connection
            .prepare("SELECT id FROM characters WHERE user_id = 'u2'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(mine, map.values().cloned().collect(), "one copy of each, under the map's ids");
        let theirs: i64 =
            connection.query_row("SELECT count(*) FROM characters WHERE user_id = 'u1'", [], |row| row.get(0)).unwrap();
        assert_eq!(theirs, 100);
        drop((connection, database));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
