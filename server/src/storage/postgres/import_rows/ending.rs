//! What ends an import's rows over PostgreSQL (SQLite's `apply/ending.rs` and the settling
//! half of `remap.rs`): references to copies settled and dangling ones scrubbed (also for
//! every row after a crash), rows marked for re-vectorization, the vectors it recorded, or
//! the whole import taken back — each found by the import's number, `lvbak_import`.

use lvbak_core::registry::{id_text_columns, table_spec, ReferenceRule, TableSpec, TABLES};

use super::{owned_condition, quoted, DbError, DbResult, PostgresRowApplier};

/// Vector ids handed back for removal at a time.
const VECTOR_CHUNK: i64 = 500;
/// Rows read at a time when rewriting ids in text.
const REWRITE_CHUNK: usize = 1000;

impl PostgresRowApplier {
    /// Records vectors this import added, outside the rows' transaction (a rolled-back
    /// transaction would forget them).
    pub(super) fn record_vectors(&mut self, table: &str, dimension: i32, ids: &[String]) -> DbResult<()> {
        self.commit()?;
        self.execute(
            "INSERT INTO lvbak_import_vectors (import_id, tbl, dim, id) SELECT $1, $2, $3, unnest($4::text[])",
            &[&self.import_id, &table, &i64::from(dimension), &ids],
        )?;
        Ok(())
    }

    /// The vectors this import added, a chunk at a time, for `each` to remove; forgets them
    /// as it goes.
    pub(super) fn take_recorded_vectors(
        &mut self,
        each: &mut crate::storage::backend::import_rows::RemoveVectors<'_>,
    ) -> DbResult<()> {
        loop {
            let chunk = self.query(
                "SELECT seq, tbl, dim, id FROM lvbak_import_vectors WHERE import_id = $1 ORDER BY tbl, dim, seq LIMIT $2",
                &[&self.import_id, &VECTOR_CHUNK],
            )?;
            let Some(first) = chunk.first() else { return Ok(()) };
            let (table, dimension): (String, i64) = (first.get(1), first.get(2));
            let same: Vec<(i64, String)> = chunk
                .iter()
                .filter(|row| row.get::<_, String>(1) == table && row.get::<_, i64>(2) == dimension)
                .map(|row| (row.get(0), row.get(3)))
                .collect();
            let ids: Vec<String> = same.iter().map(|(_, id)| id.clone()).collect();
            each(&table, i32::try_from(dimension).unwrap_or(0), &ids)?;
            let seqs: Vec<i64> = same.iter().map(|(seq, _)| *seq).collect();
            self.execute(
                "DELETE FROM lvbak_import_vectors WHERE import_id = $1 AND seq = ANY($2::bigint[])",
                &[&self.import_id, &seqs],
            )?;
        }
    }

    /// The key of every row this import added so far (committed first), table by table.
    pub(super) fn inserted_keys(&mut self, each: &mut dyn FnMut(&'static str, Option<&str>)) -> DbResult<()> {
        self.commit()?;
        for spec in TABLES {
            let key = match spec.primary_key {
                [key] => format!("t.{}::text", quoted(key)),
                _ => "NULL::text".to_string(),
            };
            let sql = format!(
                "SELECT {key} FROM {} AS t WHERE {} AND {}",
                quoted(spec.name),
                self.added_condition("t"),
                owned_condition(spec, "t", 1)
            );
            for row in self.query(&sql, &[&self.user_id])? {
                let key: Option<String> = row.get(0);
                each(spec.name, key.as_deref());
            }
        }
        Ok(())
    }

    /// Takes back every row this import added (children first) and what they counted for.
    pub(super) fn roll_back_import(&mut self) -> DbResult<u64> {
        if self.open_since.take().is_some() {
            self.batch("ROLLBACK")?;
        }
        self.rows_in_transaction = 0;
        self.bytes_in_transaction = 0;
        self.batch("BEGIN")?;
        let result = (|| -> DbResult<u64> {
            let mut removed = 0;
            for spec in TABLES.iter().rev() {
                let sql = format!(
                    "DELETE FROM {} AS t WHERE t.lvbak_import = $2 AND {}",
                    quoted(spec.name),
                    owned_condition(spec, "t", 1)
                );
                removed += self.execute(&sql, &[&self.user_id, &self.import_id])?;
            }
            Ok(removed)
        })();
        match result {
            Ok(removed) => {
                self.batch("COMMIT")?;
                self.usage.added = self.usage.kept;
                self.owners.clear();
                self.remaps.cache.clear();
                self.remaps.complete = false;
                self.commit()?;
                Ok(removed)
            }
            Err(error) => {
                let _ = self.batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Clears every nullable reference (the scrub list) of the import's rows whose target
    /// is missing or not the importer's; how many were cleared.
    pub(super) fn scrub_references(&mut self) -> DbResult<u64> {
        self.commit()?;
        let unsettled = std::mem::take(&mut self.unsettled);
        let mut cleared = 0;
        for spec in TABLES {
            for reference in spec.references.iter().filter(|r| r.rule == ReferenceRule::ScrubWhenMissing) {
                let Some(target) = table_spec(reference.table) else { continue };
                if !unsettled.contains(&(spec.name, reference.column)) {
                    continue;
                }
                self.analyze_added_rows(spec.name)?;
                self.analyze_added_rows(target.name)?;
                let column = quoted(reference.column);
                let sql = format!(
                    "UPDATE {table} AS t SET {column} = NULL WHERE {added} AND {owned} AND t.{column} IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM {target} x WHERE x.id = t.{column} AND {target_owned})",
                    table = quoted(spec.name),
                    added = self.added_condition("t"),
                    owned = owned_condition(spec, "t", 1),
                    target = quoted(target.name),
                    target_owned = owned_condition(target, "x", 1),
                );
                cleared += self.execute(&sql, &[&self.user_id])?;
            }
        }
        Ok(cleared)
    }

    /// Settles every row of the account as an import's end settles the rows it added (for
    /// an import killed before its end); how many values changed.
    pub(super) fn settle_all_rows(&mut self) -> DbResult<u64> {
        self.every_row = true;
        self.unsettled = TABLES
            .iter()
            .flat_map(|spec| {
                spec.references
                    .iter()
                    .filter(|r| r.rule == ReferenceRule::ScrubWhenMissing)
                    .map(move |r| (spec.name, r.column))
            })
            .collect();
        self.texts_with_ids = TABLES.iter().map(|spec| spec.name).collect();
        let settled = self.settle_remapped_references()?;
        let scrubbed = self.scrub_references();
        self.every_row = false;
        Ok(settled + scrubbed?)
    }

    /// Resets the vector state of the rows this import inserted, so they are re-embedded;
    /// how many rows were marked.
    pub(super) fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        self.commit()?;
        let mut marked = 0;
        for spec in TABLES.iter().filter(|spec| !spec.revectorize.is_empty()) {
            let sql = format!(
                "UPDATE {} AS t SET {} WHERE {} AND {}",
                quoted(spec.name),
                crate::storage::sqlite::embeddings::revectorize_assignments(spec),
                self.added_condition("t"),
                owned_condition(spec, "t", 1),
            );
            marked += self.execute(&sql, &[&self.user_id])?;
        }
        Ok(marked)
    }

    /// After every table is in: references pointing forward to copies, ids in JSON text and
    /// file names of the rows this import wrote, rewritten to the copies' ids; how many
    /// values changed.
    pub(super) fn settle_remapped_references(&mut self) -> DbResult<u64> {
        if !self.remaps.any {
            return Ok(0);
        }
        self.commit()?;
        let mut changed = 0;
        for spec in TABLES {
            for reference in spec.references {
                let Some(target) = table_spec(reference.table) else { continue };
                if reference.rule != ReferenceRule::ScrubWhenMissing
                    || !self.unsettled.contains(&(spec.name, reference.column))
                {
                    continue;
                }
                self.analyze_added_rows(spec.name)?;
                let column = quoted(reference.column);
                let sql = format!(
                    "UPDATE {table} AS t SET {column} = m.new_id FROM lvbak_id_map AS m \
                     WHERE m.user_id = $1 AND m.original_id = t.{column} AND m.table_name = $2 AND {added} AND {owned}",
                    table = quoted(spec.name),
                    added = self.added_condition("t"),
                    owned = owned_condition(spec, "t", 1),
                );
                changed += self.execute(&sql, &[&self.user_id, &target.name])?;
            }
            let columns: Vec<(&str, bool)> = id_text_columns(spec).collect();
            changed += self.rewrite_columns(spec, &columns)?;
        }
        Ok(changed)
    }

    /// Rewrites remapped ids in text columns (`(column, json)`) of the import's rows (all
    /// the importer's settings: they are merged into older rows), read through a cursor a
    /// chunk at a time, in one transaction (the cursor sees the rows as they were before
    /// the rewrites).
    fn rewrite_columns(&mut self, spec: &'static TableSpec, columns: &[(&str, bool)]) -> DbResult<u64> {
        if columns.is_empty() || !(self.every_row || self.texts_with_ids.contains(spec.name) || spec.name == "settings")
        {
            return Ok(0);
        }
        let Some(&key) = spec.primary_key.iter().find(|key| **key != "user_id").or(spec.primary_key.first()) else {
            return Ok(0);
        };
        self.analyze_added_rows(spec.name)?;
        let added = if spec.name == "settings" { "TRUE".to_string() } else { self.added_condition("t") };
        let names: Vec<String> = columns.iter().map(|(column, _)| format!("t.{}::text", quoted(column))).collect();
        let select = format!(
            "SELECT t.{key}, {names} FROM {table} AS t WHERE {added} AND {owned}",
            key = quoted(key),
            names = names.join(", "),
            table = quoted(spec.name),
            owned = owned_condition(spec, "t", 1),
        );
        let updates: Vec<String> = columns
            .iter()
            .map(|(column, _)| {
                // A chunk's rewrites of one column in one statement (keys are text).
                format!(
                    "UPDATE {table} AS t SET {column} = u.value \
                     FROM unnest($1::text[], $2::text[]) AS u(value, key) \
                     WHERE t.{key} = u.key COLLATE \"C\" AND {owned} AND NOT EXISTS \
                     (SELECT 1 FROM {table} AS o WHERE o.{column} = u.value COLLATE \"C\" AND {key_is_column} AND {owned_o})",
                    table = quoted(spec.name),
                    column = quoted(column),
                    key = quoted(key),
                    owned = owned_condition(spec, "t", 3),
                    owned_o = owned_condition(spec, "o", 3),
                    key_is_column = if *column == key { "TRUE" } else { "FALSE" },
                )
            })
            .collect();
        self.batch("BEGIN")?;
        let result = (|| -> DbResult<u64> {
            self.execute(&format!("DECLARE lvbak_rewrite NO SCROLL CURSOR FOR {select}"), &[&self.user_id])?;
            // Prepared for this cursor's columns (a cached statement would keep the columns
            // of the table it was first prepared for).
            let fetch = format!("FETCH {REWRITE_CHUNK} FROM lvbak_rewrite");
            let fetch = self.db.wait(self.db.client().prepare(&fetch))?;
            let mut changed = 0;
            loop {
                let chunk = self.db.wait(self.db.client().query(&fetch, &[]))?;
                // The texts that may hold ids, whose ids are asked of the id map at once.
                let mut candidates: Vec<(usize, String, String)> = Vec::new();
                for row in &chunk {
                    for index in 0..columns.len() {
                        let Some(text) = row.get::<_, Option<String>>(index + 1) else { continue };
                        if crate::policy::ids::may_hold_id(text.as_bytes()) {
                            candidates.push((index, row.get(0), text));
                        }
                    }
                }
                let mut ids = Vec::new();
                for (index, _, text) in &candidates {
                    let _ = crate::policy::ids::rewrite_uuids(text, columns[*index].1, |id| {
                        ids.push(id.to_string());
                        Ok::<_, DbError>(None)
                    });
                }
                self.fetch_remaps(None, ids)?;
                let mut rewritten: Vec<(usize, String, String)> = Vec::new();
                for (index, key, text) in candidates {
                    if let Some(new_text) = self.rewrite_uuids(&text, columns[index].1)? {
                        rewritten.push((index, key, new_text));
                    }
                }
                for (index, update) in updates.iter().enumerate() {
                    let (keys, texts): (Vec<&str>, Vec<&str>) = rewritten
                        .iter()
                        .filter(|(column, _, _)| *column == index)
                        .map(|(_, key, text)| (key.as_str(), text.as_str()))
                        .unzip();
                    if !keys.is_empty() {
                        changed += self.execute(update, &[&texts, &keys, &self.user_id])?;
                    }
                }
                if chunk.len() < REWRITE_CHUNK {
                    return Ok(changed);
                }
            }
        })();
        match result {
            Ok(changed) => {
                self.batch("COMMIT")?;
                Ok(changed)
            }
            Err(error) => {
                let _ = self.batch("ROLLBACK");
                Err(error)
            }
        }
    }
}
