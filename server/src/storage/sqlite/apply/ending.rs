//! What ends an import's rows: references settled and scrubbed (also for every row after a
//! crash), rows marked for re-vectorization, or the whole import taken back.

use super::*;

/// The temporary tables of an import's connection: the vectors it added.
pub(crate) const IMPORT_TEMP_TABLES: &str =
    "CREATE TEMP TABLE IF NOT EXISTS lvbak_import_vectors (tbl TEXT NOT NULL, dim INTEGER NOT NULL, id TEXT NOT NULL)";

/// Vector ids recorded per chunk handed back for removal.
const VECTOR_CHUNK: usize = 500;

impl RowApplier {
    /// Records vectors this import added (`table`, `dimension`, ids), so a rollback takes
    /// them back with the rows. Kept in a temporary table of the import's connection, not
    /// in memory, and outside the rows' transaction (a rolled-back transaction would forget
    /// them).
    pub fn record_vectors(&mut self, table: &str, dimension: i32, ids: &[String]) -> DbResult<()> {
        self.commit()?;
        self.connection.execute_batch(IMPORT_TEMP_TABLES)?;
        let transaction = self.connection.transaction()?;
        {
            let mut insert = transaction
                .prepare_cached("INSERT INTO temp.lvbak_import_vectors (tbl, dim, id) VALUES (?1, ?2, ?3)")?;
            for id in ids {
                insert.execute(rusqlite::params![table, dimension, id])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// The vectors this import added, a chunk at a time (`table`, `dimension`, ids), for
    /// `each` to remove; forgets them as it goes.
    pub fn take_recorded_vectors(
        &mut self,
        mut each: impl FnMut(&str, i32, &[String]) -> DbResult<()>,
    ) -> DbResult<()> {
        let exists: bool = self.connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM temp.sqlite_schema WHERE name = 'lvbak_import_vectors')",
            [],
            |row| row.get(0),
        )?;
        if !exists {
            return Ok(());
        }
        loop {
            let chunk: Vec<(i64, String, i32, String)> = self
                .connection
                .prepare_cached(&format!(
                    "SELECT rowid, tbl, dim, id FROM temp.lvbak_import_vectors ORDER BY tbl, dim, rowid LIMIT {VECTOR_CHUNK}"
                ))?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect::<Result<_, _>>()?;
            let Some((_, table, dimension, _)) = chunk.first().cloned() else { return Ok(()) };
            let same: Vec<&(i64, String, i32, String)> =
                chunk.iter().filter(|(_, t, d, _)| *t == table && *d == dimension).collect();
            let ids: Vec<String> = same.iter().map(|(_, _, _, id)| id.clone()).collect();
            each(&table, dimension, &ids)?;
            let last = same.iter().map(|(rowid, ..)| *rowid).max().unwrap_or(0);
            let first = same.iter().map(|(rowid, ..)| *rowid).min().unwrap_or(0);
            self.connection.execute(
                "DELETE FROM temp.lvbak_import_vectors WHERE rowid BETWEEN ?1 AND ?2 AND tbl = ?3 AND dim = ?4",
                rusqlite::params![first, last, table, dimension],
            )?;
        }
    }

    /// The key of every row this import added so far (committed first), table by table; a
    /// table keyed by several columns answers `None` per row.
    pub fn inserted_keys(&mut self, each: &mut dyn FnMut(&'static str, Option<&str>)) -> DbResult<()> {
        self.commit()?;
        for spec in TABLES {
            let before = self.rowids_before.get(spec.name).copied().unwrap_or(i64::MAX);
            let key = match spec.primary_key {
                [key] => format!("CAST(t.{} AS TEXT)", quoted(key)),
                _ => "NULL".to_string(),
            };
            let sql = format!(
                "SELECT {key} FROM {} AS t WHERE t.rowid > ?2 AND {}",
                quoted(spec.name),
                owned_condition(spec, "t", 1)
            );
            let mut statement = self.connection.prepare(&sql)?;
            let mut rows = statement.query(rusqlite::params![self.user_id, before])?;
            while let Some(row) = rows.next()? {
                let key: Option<String> = row.get(0)?;
                each(spec.name, key.as_deref());
            }
        }
        Ok(())
    }

    /// Takes back every row this import added (children first) and what they counted for;
    /// used when the import fails over its quota, so that nothing it wrote stays.
    pub fn roll_back_import(&mut self) -> DbResult<u64> {
        if self.open_since.take().is_some() {
            let rolled_back = self.connection.execute_batch("ROLLBACK");
            self.turn = None;
            rolled_back?;
        }
        self.rows_in_transaction = 0;
        self.bytes_in_transaction = 0;
        let deletes: Vec<(String, i64)> = TABLES
            .iter()
            .rev()
            .map(|spec| {
                let sql = format!(
                    "DELETE FROM {} AS t WHERE t.rowid > ?2 AND {}",
                    quoted(spec.name),
                    owned_condition(spec, "t", 1)
                );
                (sql, self.rowids_before.get(spec.name).copied().unwrap_or(i64::MAX))
            })
            .collect();
        let removed = self.in_turn(WriteKind::Bulk, |connection, user_id| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut removed = 0;
            for (sql, before) in &deletes {
                removed += transaction.execute(sql, rusqlite::params![user_id, before])? as u64;
            }
            transaction.commit()?;
            Ok(removed)
        })?;
        self.unstage_copies()?;
        self.usage.added = self.usage.kept;
        self.commit()?;
        Ok(removed)
    }

    /// Clears every nullable reference (FORMAT §4's scrub list) of the importer's rows whose
    /// target is missing or not the importer's; returns how many were cleared. Only the rows
    /// this import added can hold one (imports never delete, and other writes keep foreign
    /// keys), and only the columns [`Self::prepare_row`] left unsettled are read: a
    /// 500,000-character import spent half a second reading every character again for an
    /// `image_id` none of them had.
    pub fn scrub_references(&mut self) -> DbResult<u64> {
        self.commit()?;
        let unsettled = std::mem::take(&mut self.unsettled);
        let rowids_before = self.rowids_before.clone();
        self.in_turn(WriteKind::Bulk, |connection, user_id| {
            let mut cleared = 0;
            for spec in TABLES {
                for reference in spec.references.iter().filter(|r| r.rule == ReferenceRule::ScrubWhenMissing) {
                    let Some(target) = table_spec(reference.table) else { continue };
                    if !unsettled.contains(&(spec.name, reference.column)) {
                        continue;
                    }
                    let column = quoted(reference.column);
                    let sql = format!(
                        "UPDATE {table} AS t SET {column} = NULL WHERE t.rowid > ?2 AND {owned} AND t.{column} IS NOT NULL \
                         AND NOT EXISTS (SELECT 1 FROM {target} x WHERE x.id = t.{column} AND {target_owned})",
                        table = quoted(spec.name),
                        owned = owned_condition(spec, "t", 1),
                        target = quoted(target.name),
                        target_owned = owned_condition(target, "x", 1),
                    );
                    let before = rowids_before.get(spec.name).copied().unwrap_or(0);
                    cleared += connection.execute(&sql, rusqlite::params![user_id, before])? as u64;
                }
            }
            Ok(cleared)
        })
    }

    /// Settles every row of the account as an import's end settles the rows it added: for
    /// an import that was killed before its end (which rows it added is not known then).
    /// How many values changed.
    pub fn settle_all_rows(&mut self) -> DbResult<u64> {
        self.rowids_before.values_mut().for_each(|rowid| *rowid = 0);
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
        Ok(settled + self.scrub_references()?)
    }

    /// Resets the vector state of the rows this import inserted, so they are re-embedded
    /// (FORMAT §3); returns how many rows were marked.
    pub fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        self.commit()?;
        let mut marked = 0;
        for spec in TABLES.iter().filter(|spec| !spec.revectorize.is_empty()) {
            let before = self.rowids_before.get(spec.name).copied().unwrap_or(i64::MAX);
            let sql = format!(
                "UPDATE {} AS t SET {} WHERE t.rowid > ?2 AND {}",
                quoted(spec.name),
                crate::storage::sqlite::embeddings::revectorize_assignments(spec),
                owned_condition(spec, "t", 1),
            );
            marked += self.in_turn(WriteKind::Bulk, |connection, user_id| {
                Ok(connection.execute(&sql, rusqlite::params![user_id, before])?)
            })? as u64;
        }
        Ok(marked)
    }
}
