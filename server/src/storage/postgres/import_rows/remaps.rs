//! The importer's copies under new ids (`lvbak_id_map`): which copy an archive id has,
//! looked up on demand or a batch at a time and remembered, and new ids given to rows
//! whose ids another account holds.

use std::collections::HashMap;

use super::insert::IDS_PER_STATEMENT;
use super::statistics;
use super::{DbResult, PostgresRowApplier};
use crate::policy::ids::copy_ids;

impl PostgresRowApplier {
    /// The id the importer's copy of `original` has, when an import gave it a new one: of a
    /// row of `table`, or of any table (`None`).
    pub(super) fn remapped(&mut self, table: Option<&'static str>, original: &str) -> DbResult<Option<String>> {
        if !self.remaps.any {
            return Ok(None);
        }
        let known = match table {
            Some(_) => self.remaps.cache.get(table, original),
            None => self.remaps.cache.find(original, Option::is_some).or_else(|| self.remaps.cache.get(None, original)),
        };
        if let Some(known) = known {
            return Ok(known.clone());
        }
        if self.remaps.complete {
            return Ok(None);
        }
        let found: Option<String> = match table {
            Some(table) => self
                .query(
                    "SELECT new_id FROM lvbak_id_map WHERE user_id = $1 AND original_id = $2 AND table_name = $3",
                    &[&self.user_id, &original, &table],
                )?
                .first()
                .map(|row| row.get(0)),
            None => self
                .query(
                    "SELECT new_id FROM lvbak_id_map WHERE user_id = $1 AND original_id = $2 ORDER BY table_name LIMIT 1",
                    &[&self.user_id, &original],
                )?
                .first()
                .map(|row| row.get(0)),
        };
        self.remember(table, original, found.clone());
        Ok(found)
    }

    /// Asks the id map, 1,000 ids a statement, for the copies of `originals` (archive ids
    /// of rows of `table`, or of any table: `None`) that no lookup has asked about yet, and
    /// remembers every answer, found or not, so the lookups of [`Self::remapped`] that
    /// follow are answered from memory (a cache that starts over to stay bounded keeps
    /// fewer: the copies found are also answered, original → copy). Without it a second
    /// account restoring 160,000 messages asked the database once per message for its
    /// parent's copy.
    pub(super) fn fetch_remaps(
        &mut self,
        table: Option<&'static str>,
        originals: Vec<String>,
    ) -> DbResult<HashMap<String, String>> {
        let mut copies = HashMap::new();
        if !self.remaps.any || self.remaps.complete {
            return Ok(copies);
        }
        let cache = &self.remaps.cache;
        let mut unknown: Vec<String> = originals
            .into_iter()
            .filter(|original| {
                cache.get(table, original).is_none()
                    && (table.is_some() || cache.find(original, Option::is_some).is_none())
            })
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        for chunk in unknown.chunks(IDS_PER_STATEMENT) {
            let list: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let rows = match table {
                Some(table) => self.query(
                    "SELECT m.original_id, m.new_id FROM lvbak_id_map AS m \
                     WHERE m.user_id = $1 AND m.table_name = $2 AND m.original_id = ANY($3::text[])",
                    &[&self.user_id, &table, &list],
                )?,
                None => self.query(
                    "SELECT DISTINCT ON (m.original_id) m.original_id, m.new_id FROM lvbak_id_map AS m \
                     WHERE m.user_id = $1 AND m.original_id = ANY($2::text[]) ORDER BY m.original_id, m.table_name",
                    &[&self.user_id, &list],
                )?,
            };
            let mut found: HashMap<String, String> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
            for original in chunk {
                let new_id = found.remove(original);
                self.remember(table, original, new_id.clone());
                if let Some(new_id) = new_id {
                    copies.insert(original.clone(), new_id);
                }
            }
        }
        Ok(copies)
    }

    fn remember(&mut self, table: Option<&'static str>, original: &str, new_id: Option<String>) {
        if !self.remaps.cache.insert(table, original, new_id) {
            self.remaps.complete = false;
        }
    }

    /// The ids rows of `table` whose archive ids (`originals`, sorted) are another user's
    /// get here, in their order: the one an earlier import gave each, or a fresh one,
    /// recorded in the id map inside the import's transaction.
    pub(super) fn remap_ids(&mut self, table: &'static str, originals: &[&str]) -> DbResult<Vec<String>> {
        // Copies an earlier import made: remembered, or asked of the id map.
        let mut known: HashMap<&str, String> = HashMap::new();
        for &original in originals {
            if let Some(Some(new_id)) = self.remaps.cache.get(Some(table), original) {
                known.insert(original, new_id.clone());
            }
        }
        let asked = originals.iter().map(|original| original.to_string()).collect();
        let found = self.fetch_remaps(Some(table), asked)?;
        for &original in originals {
            if let Some(new_id) = found.get(original) {
                known.insert(original, new_id.clone());
            }
        }
        let (new_ids, fresh) = copy_ids(originals, |original| known.get(original).cloned());
        if !fresh.is_empty() {
            let recorded_originals: Vec<&str> = fresh.iter().map(|&position| originals[position]).collect();
            let recorded_new: Vec<&str> = fresh.iter().map(|&position| new_ids[position].as_str()).collect();
            self.execute(
                "INSERT INTO lvbak_id_map (user_id, original_id, table_name, new_id) \
                 SELECT $1, o, $2, n FROM unnest($3::text[], $4::text[]) AS u(o, n)",
                &[&self.user_id, &table, &recorded_originals, &recorded_new],
            )?;
            self.remaps.any = true;
            self.growth.added(statistics::ID_MAP, fresh.len() as u64);
        }
        for position in fresh {
            self.remember(Some(table), originals[position], Some(new_ids[position].clone()));
        }
        Ok(new_ids)
    }

    /// `text` with every UUID in it (`quoted_only`: every JSON string that is a UUID) that
    /// was remapped replaced by its new id; `None` when nothing changed.
    pub(super) fn rewrite_uuids(&mut self, text: &str, quoted_only: bool) -> DbResult<Option<String>> {
        crate::policy::ids::rewrite_uuids(text, quoted_only, |original| self.remapped(None, original))
    }
}
