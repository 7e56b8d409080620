//! Whose row an id is, as the importer sees it, and the SQL that says a row is a user's.

use super::*;

/// The SQL condition "row `alias` belongs to user ?N" for a registry table.
pub(super) fn owned_condition(spec: &TableSpec, alias: &str, parameter: usize) -> String {
    match spec.ownership {
        Ownership::Direct { column } => format!("{alias}.{} = ?{parameter}", quoted(column)),
        Ownership::Parent { parent_table, column } => {
            let owner = match table_spec(parent_table).map(|p| p.ownership) {
                Some(Ownership::Direct { column }) => column,
                _ => "user_id",
            };
            format!(
                "{alias}.{} IN (SELECT id FROM {} WHERE {} = ?{parameter})",
                quoted(column),
                quoted(parent_table),
                quoted(owner)
            )
        }
    }
}

/// Ids handed to SQLite in one statement (as a JSON array read by `json_each`).
pub(super) const IDS_PER_STATEMENT: usize = 1000;

impl RowApplier {
    /// Whose each of `ids` (rows of `spec`) is, in their order (`None`: no such row, or no
    /// id): a
    /// statement per [`IDS_PER_STATEMENT`] ids, not one per id (a restore whose every id is
    /// another account's asks this of every row). Rows are matched by their place in the
    /// list, so no id is copied out.
    ///
    /// With an index on the owner column (`owner_index`), whose a row is comes from that
    /// index (the importer's entry at the row's rowid, or none) rather than from the row:
    /// a second account restoring 500,000 rows another holds would otherwise read each of
    /// those rows, all over the table.
    pub(super) fn existing_among(
        &mut self,
        spec: &TableSpec,
        owner_index: Option<&str>,
        ids: &[Option<&str>],
    ) -> DbResult<Vec<Option<Owner>>> {
        let sql = match (spec.ownership, owner_index) {
            (Ownership::Direct { column }, Some(index)) => format!(
                "SELECT j.key, CASE WHEN t.rowid <= ?3 THEN 0 ELSE EXISTS (SELECT 1 FROM {table} AS o \
                 INDEXED BY {index} WHERE o.{column} = ?2 AND o.rowid = t.rowid) END \
                 FROM json_each(?1) AS j CROSS JOIN {table} AS t ON t.id = j.value",
                table = quoted(spec.name),
                index = quoted(index),
                column = quoted(column)
            ),
            (Ownership::Direct { column }, None) => format!(
                "SELECT j.key, t.{column} IS ?2 FROM json_each(?1) AS j CROSS JOIN {table} AS t ON t.id = j.value",
                table = quoted(spec.name),
                column = quoted(column)
            ),
            (Ownership::Parent { parent_table, column }, _) => format!(
                "SELECT j.key, p.user_id IS ?2 FROM json_each(?1) AS j CROSS JOIN {table} AS t ON t.id = j.value \
                 LEFT JOIN {parent} AS p ON p.id = t.{column}",
                table = quoted(spec.name),
                parent = quoted(parent_table),
                column = quoted(column)
            ),
        };
        let foreign_below = match (spec.ownership, owner_index) {
            (Ownership::Direct { column }, Some(_)) => Some(self.foreign_below(spec, column)?),
            _ => None,
        };
        let mut owners = vec![None; ids.len()];
        for (number, chunk) in ids.chunks(IDS_PER_STATEMENT).enumerate() {
            let list = serde_json::to_string(chunk).map_err(|error| DbError::Invalid(error.to_string()))?;
            let mut statement = self.connection.prepare_cached(&sql)?;
            let found = statement.query_map(
                rusqlite::params_from_iter(
                    [Some(list), Some(self.user_id.clone())]
                        .into_iter()
                        .map(|value| value.map(SqlValue::Text))
                        .chain(foreign_below.map(|rowid| Some(SqlValue::Integer(rowid)))),
                ),
                |row| Ok((row.get::<_, usize>(0)?, row.get::<_, bool>(1)?)),
            )?;
            for pair in found {
                let (index, mine) = pair?;
                if let Some(owner) = owners.get_mut(number * IDS_PER_STATEMENT + index) {
                    *owner = Some(if mine { Owner::Importer } else { Owner::Someone });
                }
            }
        }
        Ok(owners)
    }

    /// The rowid at or below which no row of `spec` is the importer's: its rowids when the
    /// import began if none of them was (rowids only grow, and no row changes hands), so
    /// whose such a row is needs no look into the owner index (a second account restoring
    /// 500,000 rows another holds looked into it for each).
    fn foreign_below(&mut self, spec: &TableSpec, column: &str) -> DbResult<i64> {
        if let Some(&known) = self.foreign_below.get(spec.name) {
            return Ok(known);
        }
        let before = self.rowids_before.get(spec.name).copied().unwrap_or(0);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ?1 AND rowid <= ?2)",
            quoted(spec.name),
            quoted(column)
        );
        let mine: bool = self.connection.query_row(&sql, rusqlite::params![self.user_id, before], |row| row.get(0))?;
        let below = if mine { 0 } else { before };
        self.foreign_below.insert(spec.name, below);
        Ok(below)
    }

    /// Whose row `id` of `table` is.
    pub fn owner_of(&mut self, table: &'static str, id: &str) -> DbResult<Owner> {
        if let Some(owner) = self.owners.get(table, id) {
            return Ok(*owner);
        }
        let Some(spec) = table_spec(table) else { return Ok(Owner::Nobody) };
        let sql = match spec.ownership {
            Ownership::Direct { column } => format!("SELECT {} FROM {} WHERE id = ?1", quoted(column), quoted(table)),
            Ownership::Parent { parent_table, column } => format!(
                "SELECT p.user_id FROM {} t JOIN {} p ON p.id = t.{} WHERE t.id = ?1",
                quoted(table),
                quoted(parent_table),
                quoted(column)
            ),
        };
        let found: Option<Option<String>> =
            self.connection.prepare_cached(&sql)?.query_row([id], |row| row.get(0)).optional()?;
        let owner = match found {
            None => Owner::Nobody,
            Some(Some(user)) if user == self.user_id => Owner::Importer,
            Some(_) => Owner::Someone,
        };
        // A missing row may be inserted later in this import; only settled answers are kept.
        if owner != Owner::Nobody {
            self.owners.insert(table, id, owner);
        }
        Ok(owner)
    }
}
