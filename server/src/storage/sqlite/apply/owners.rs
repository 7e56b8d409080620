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
    /// Of `ids` of rows of `spec`, those that exist and whose they are: a statement per
    /// [`IDS_PER_STATEMENT`] ids, not one per id (a restore whose every id is another
    /// account's asks this of every row).
    pub(super) fn existing_among<'a>(
        &mut self,
        spec: &TableSpec,
        ids: impl Iterator<Item = &'a str>,
    ) -> DbResult<HashMap<String, Owner>> {
        let sql = match spec.ownership {
            Ownership::Direct { column } => format!(
                "SELECT t.id, t.{column} IS ?2 FROM json_each(?1) AS j CROSS JOIN {table} AS t ON t.id = j.value",
                table = quoted(spec.name),
                column = quoted(column)
            ),
            Ownership::Parent { parent_table, column } => format!(
                "SELECT t.id, p.user_id IS ?2 FROM json_each(?1) AS j CROSS JOIN {table} AS t ON t.id = j.value \
                 LEFT JOIN {parent} AS p ON p.id = t.{column}",
                table = quoted(spec.name),
                parent = quoted(parent_table),
                column = quoted(column)
            ),
        };
        let ids: Vec<&str> = ids.collect();
        let mut existing = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let list = serde_json::to_string(chunk).map_err(|error| DbError::Invalid(error.to_string()))?;
            let mut statement = self.connection.prepare_cached(&sql)?;
            let found = statement.query_map(rusqlite::params![list, self.user_id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
            })?;
            for pair in found {
                let (id, mine) = pair?;
                existing.insert(id, if mine { Owner::Importer } else { Owner::Someone });
            }
        }
        Ok(existing)
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
