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

use super::cache::LookupCache;
use super::{owned_condition, quoted, DbResult, RowApplier, WriteKind};

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

/// Whether `bytes` is a hyphenated UUID (either case), the shape of Lumiverse's ids.
fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
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

    /// The id a row of `table` whose archive id `original` is another user's gets here:
    /// the one an earlier import gave it, or a fresh one, recorded (inside the import's
    /// transaction, so a rolled-back import forgets it too).
    pub(super) fn remap_id(&mut self, table: &'static str, original: &str) -> DbResult<String> {
        if let Some(known) = self.remapped(Some(table), original)? {
            return Ok(known);
        }
        let new_id = fresh_id();
        self.connection
            .prepare_cached(
                "INSERT INTO lvbak_id_map (user_id, original_id, table_name, new_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute([self.user_id.as_str(), original, table, new_id.as_str()])?;
        self.remaps.any = true;
        self.remember(Some(table), original, Some(new_id.clone()));
        self.remember(None, original, Some(new_id.clone()));
        Ok(new_id)
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
        let bytes = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut at = 0;
        while at + 36 <= bytes.len() {
            let candidate = &bytes[at..at + 36];
            let bounded = if quoted_only {
                at > 0 && bytes[at - 1] == b'"' && bytes.get(at + 36) == Some(&b'"')
            } else {
                (at == 0 || !bytes[at - 1].is_ascii_hexdigit())
                    && bytes.get(at + 36).is_none_or(|byte| !byte.is_ascii_hexdigit())
            };
            if bounded && is_uuid(candidate) {
                let original = &text[at..at + 36];
                if let Some(new_id) = self.remapped(None, original)? {
                    out.push_str(&text[copied..at]);
                    out.push_str(&new_id);
                    copied = at + 36;
                }
                at += 36;
            } else {
                at += 1;
            }
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
            for column in json_id_columns(spec.name) {
                changed += self.rewrite_column(spec, column, before, true)?;
            }
            for column in text_id_columns(spec.name) {
                changed += self.rewrite_column(spec, column, before, false)?;
            }
            for file in spec.files {
                changed += self.rewrite_column(spec, file.column, before, false)?;
            }
        }
        tracing::debug!("settled {changed} references to copied rows in {:?}", started.elapsed());
        Ok(changed)
    }

    /// Rewrites remapped ids in one text column of the importer's rows above `before`, a
    /// chunk of rows at a time.
    fn rewrite_column(
        &mut self,
        spec: &'static lvbak_core::registry::TableSpec,
        column: &str,
        before: i64,
        json: bool,
    ) -> DbResult<u64> {
        let select = format!(
            "SELECT t.rowid, t.{column} FROM {table} AS t WHERE t.rowid > ?2 AND {owned} \
             AND t.{column} IS NOT NULL ORDER BY t.rowid LIMIT {REWRITE_CHUNK}",
            column = quoted(column),
            table = quoted(spec.name),
            owned = owned_condition(spec, "t", 1),
        );
        // A key column (settings' `key`) keeps its old value where the new one is taken.
        let update = format!("UPDATE OR IGNORE {} SET {} = ?1 WHERE rowid = ?2", quoted(spec.name), quoted(column));
        let mut changed = 0;
        let mut after = before;
        loop {
            let chunk: Vec<(i64, String)> = self
                .connection
                .prepare_cached(&select)?
                .query_map(rusqlite::params![self.user_id, after], |row| {
                    Ok((row.get(0)?, row.get::<_, Option<String>>(1)?.unwrap_or_default()))
                })?
                .collect::<Result<_, _>>()?;
            let Some(&(last, _)) = chunk.last() else { break };
            after = last;
            let mut rewritten = Vec::new();
            for (rowid, text) in &chunk {
                if let Some(new_text) = self.rewrite_uuids(text, json)? {
                    rewritten.push((*rowid, new_text));
                }
            }
            if !rewritten.is_empty() {
                changed += rewritten.len() as u64;
                self.in_turn(WriteKind::Bulk, |connection, _| {
                    let mut statement = connection.prepare_cached(&update)?;
                    for (rowid, text) in &rewritten {
                        statement.execute(rusqlite::params![text, rowid])?;
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
    fn uuids_are_recognised_by_shape() {
        assert!(is_uuid(b"45912865-abcc-4ceb-a966-207567b02a16"));
        assert!(is_uuid(b"45912865-ABCC-4CEB-A966-207567B02A16"));
        assert!(!is_uuid(b"45912865-abcc-4ceb-a966-207567b02a1"));
        assert!(!is_uuid(b"45912865_abcc-4ceb-a966-207567b02a16"));
        assert!(!is_uuid(b"g5912865-abcc-4ceb-a966-207567b02a16"));
        let id = fresh_id();
        assert!(is_uuid(id.as_bytes()) && id == id.to_lowercase());
    }
}
