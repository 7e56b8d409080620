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

impl RowApplier {
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
