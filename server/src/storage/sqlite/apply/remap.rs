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
//! text and file names are rewritten textually (a quoted UUID, or a UUID inside a name), so
//! Lumiverse's bytes — key order, number text — stay as they were.

use lvbak_core::registry::{json_id_columns, table_spec, text_id_columns, ReferenceRule, TABLES};
use rusqlite::{Connection, OptionalExtension};

use std::collections::{HashMap, HashSet};

use super::cache::LookupCache;
use super::owners::IDS_PER_STATEMENT;
use super::{owned_condition, quoted, DbError, DbResult, RowApplier, WriteKind};

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
}

impl Remaps {
    pub fn load(connection: &Connection, user_id: &str) -> DbResult<Self> {
        let any = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM lvbak_id_map WHERE user_id = ?1)",
            [user_id],
            |row| row.get(0),
        )?;
        Ok(Self { any, complete: !any, cache: LookupCache::default() })
    }

    /// Forgets the remembered lookups (they can be read again).
    pub fn forget(&mut self) {
        self.cache.clear();
        self.complete = false;
    }
}

/// The most a copy's new id adds to what its row counts for (the original id may be empty).
pub(super) const NEW_ID_BYTES: u64 = 36;

/// A fresh row id: a lowercase hyphenated UUID v4, as Lumiverse makes them.
fn fresh_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// `count` fresh row ids, from one read of the operating system's random source (not one
/// per id, as [`fresh_id`]).
fn fresh_ids(count: usize) -> DbResult<Vec<String>> {
    use rand::TryRngCore;
    let mut bytes = vec![0u8; count * 16];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|error| DbError::Invalid(error.to_string()))?;
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| {
            let random: [u8; 16] = chunk.try_into().unwrap_or_default();
            uuid::Builder::from_random_bytes(random).into_uuid().hyphenated().to_string()
        })
        .collect())
}

/// Whether `bytes` is a hyphenated UUID (either case), the shape of Lumiverse's ids.
fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

/// Where the first UUID of `bytes` at or after `from` starts: standing alone (no hex digit
/// either side), or with `quoted_only` a whole JSON string. Found from its first hyphen
/// (`memchr`), so text without one is passed over at memory speed.
fn next_uuid(bytes: &[u8], from: usize, quoted_only: bool) -> Option<usize> {
    let mut search = from + 8;
    while search < bytes.len() {
        let hyphen = search + memchr::memchr(b'-', &bytes[search..])?;
        let start = hyphen - 8;
        let bounded = if quoted_only {
            start > 0 && bytes[start - 1] == b'"' && bytes.get(start + 36) == Some(&b'"')
        } else {
            (start == 0 || !bytes[start - 1].is_ascii_hexdigit())
                && bytes.get(start + 36).is_none_or(|byte| !byte.is_ascii_hexdigit())
        };
        if bounded && bytes.len() >= start + 36 && is_uuid(&bytes[start..start + 36]) {
            return Some(start);
        }
        search = hyphen + 1;
    }
    None
}

/// Whether a column's value may hold an id: text of an id's length or more, with a hyphen.
fn may_hold_id(value: rusqlite::types::ValueRef<'_>) -> bool {
    match value {
        rusqlite::types::ValueRef::Text(bytes) => bytes.len() >= 36 && memchr::memchr(b'-', bytes).is_some(),
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
        if let Some(known) = self.remaps.cache.get(table, original) {
            return Ok(known.clone());
        }
        if self.remaps.complete {
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

    /// The ids rows of `table` whose archive ids (`originals`) are another user's get
    /// here, in their order: the one an earlier import gave each, or a fresh one, recorded
    /// (inside the import's transaction, so a rolled-back import forgets it too). Earlier
    /// ids are read a statement per [`IDS_PER_STATEMENT`], not one per row.
    pub(super) fn remap_ids(&mut self, table: &'static str, originals: &[&str]) -> DbResult<Vec<String>> {
        let mut known: HashMap<&str, String> = HashMap::new();
        if self.remaps.any {
            let mut unknown = Vec::new();
            for &original in originals {
                match self.remaps.cache.get(Some(table), original) {
                    Some(Some(new_id)) => {
                        known.insert(original, new_id.clone());
                    }
                    Some(None) => {}
                    None if self.remaps.complete => {}
                    None => unknown.push(original),
                }
            }
            for chunk in unknown.chunks(IDS_PER_STATEMENT) {
                let list = serde_json::to_string(chunk).map_err(|error| DbError::Invalid(error.to_string()))?;
                let mut statement = self.connection.prepare_cached(
                    "SELECT m.original_id, m.new_id FROM json_each(?1) AS j CROSS JOIN lvbak_id_map AS m \
                     ON m.user_id = ?2 AND m.original_id = j.value AND m.table_name = ?3",
                )?;
                let found = statement.query_map(rusqlite::params![list, self.user_id, table], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                let asked: HashSet<&str> = chunk.iter().copied().collect();
                for pair in found {
                    let (original, new_id) = pair?;
                    if let Some(&original) = asked.get(original.as_str()) {
                        known.insert(original, new_id);
                    }
                }
            }
        }
        let mut new_ids = Vec::with_capacity(originals.len());
        let mut fresh: Vec<(&str, String)> = Vec::new();
        {
            let mut insert = self.connection.prepare_cached(
                "INSERT INTO lvbak_id_map (user_id, original_id, table_name, new_id) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut ids = fresh_ids(originals.iter().filter(|original| !known.contains_key(*original)).count())?;
            for &original in originals {
                match known.get(original) {
                    Some(new_id) => new_ids.push(new_id.clone()),
                    None => {
                        let new_id = ids.pop().unwrap_or_else(fresh_id);
                        insert.execute([self.user_id.as_str(), original, table, new_id.as_str()])?;
                        fresh.push((original, new_id.clone()));
                        known.insert(original, new_id.clone());
                        new_ids.push(new_id);
                    }
                }
            }
        }
        if !fresh.is_empty() {
            self.remaps.any = true;
        }
        for (original, new_id) in fresh {
            self.remember(Some(table), original, Some(new_id.clone()));
            self.remember(None, original, Some(new_id));
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
    fn rewrite_uuids(&mut self, text: &str, quoted_only: bool) -> DbResult<Option<String>> {
        let mut out = String::new();
        let mut copied = 0;
        let mut at = 0;
        while let Some(start) = next_uuid(text.as_bytes(), at, quoted_only) {
            let original = &text[start..start + 36];
            if let Some(new_id) = self.remapped(None, original)? {
                out.push_str(&text[copied..start]);
                out.push_str(&new_id);
                copied = start + 36;
            }
            at = start + 36;
        }
        if copied == 0 {
            return Ok(None);
        }
        out.push_str(&text[copied..]);
        Ok(Some(out))
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
                // Checked references point backwards (a registry test): settled already.
                if reference.rule != ReferenceRule::ScrubWhenMissing {
                    continue;
                }
                let column = quoted(reference.column);
                let sql = format!(
                    "UPDATE {table} AS t SET {column} = (SELECT m.new_id FROM lvbak_id_map m \
                     WHERE m.user_id = ?1 AND m.original_id = t.{column} AND m.table_name = ?3) \
                     WHERE t.rowid > ?2 AND {owned} AND t.{column} IN \
                     (SELECT original_id FROM lvbak_id_map WHERE user_id = ?1 AND table_name = ?3)",
                    table = quoted(spec.name),
                    owned = owned_condition(spec, "t", 1),
                );
                changed += self.in_turn(WriteKind::Bulk, |connection, user_id| {
                    Ok(connection.execute(&sql, rusqlite::params![user_id, before, target.name])? as u64)
                })?;
            }
            // Settings are merged into rows that may be older than the import: all of them.
            let before = if spec.name == "settings" { 0 } else { before };
            let columns: Vec<(&str, bool)> = (json_id_columns(spec.name).iter().map(|column| (*column, true)))
                .chain(text_id_columns(spec.name).iter().map(|column| (*column, false)))
                .chain(spec.files.iter().map(|file| (file.column, false)))
                .collect();
            changed += self.rewrite_columns(spec, &columns, before)?;
        }
        tracing::debug!("settled {changed} references to copied rows in {:?}", started.elapsed());
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
        if columns.is_empty() {
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
                self.in_turn(WriteKind::Bulk, |connection, _| {
                    for (index, rowid, text) in &rewritten {
                        connection.prepare_cached(&updates[*index])?.execute(rusqlite::params![text, rowid])?;
                    }
                    Ok(())
                })?;
            }
            if chunk.len() < REWRITE_CHUNK {
                break;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn uuids_are_recognised_by_shape() {
        assert!(is_uuid(b"45912865-abcc-4ceb-a966-207567b02a16"));
        assert!(is_uuid(b"45912865-ABCC-4CEB-A966-207567B02A16"));
        assert!(!is_uuid(b"45912865-abcc-4ceb-a966-207567b02a1"));
        assert!(!is_uuid(b"45912865_abcc-4ceb-a966-207567b02a16"));
        assert!(!is_uuid(b"g5912865-abcc-4ceb-a966-207567b02a16"));
        let id = fresh_id();
        assert!(is_uuid(id.as_bytes()) && id == id.to_lowercase());
        let ids = fresh_ids(3).unwrap();
        assert!(ids.iter().all(|id| is_uuid(id.as_bytes()) && id.as_bytes()[14] == b'4' && *id == id.to_lowercase()));
        assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    }

    #[test]
    fn uuids_are_found_where_they_stand_alone_or_quoted() {
        let id = "45912865-abcc-4ceb-a966-207567b02a16";
        let text = format!("a-b {id} /api/v1/images/{id}.png x{id} \"{id}\" {id}");
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(start) = next_uuid(text.as_bytes(), at, false) {
            found.push(start);
            at = start + 36;
        }
        // Not the one glued to a hex digit ("x" is not one, so that one counts too).
        let expected: Vec<usize> = text.match_indices(id).map(|(i, _)| i).collect();
        assert_eq!(found, expected);
        let glued = format!("a{id}");
        assert_eq!(next_uuid(glued.as_bytes(), 0, false), None);
        let quoted = format!("{{\"k\":\"{id}\",\"l\":\"{id}x\"}}");
        assert_eq!(next_uuid(quoted.as_bytes(), 0, true), Some(6));
        assert_eq!(next_uuid(quoted.as_bytes(), 7, true), None);
        assert_eq!(next_uuid(b"no ids - here", 0, false), None);
        assert_eq!(next_uuid(&id.as_bytes()[..35], 0, false), None);
    }
}
