//! What the checks and the charge of one table need, worked out once per table from its
//! live columns (`PRAGMA table_info`) and the registry: the backend-neutral [`RowRules`]
//! and what a row counts for as SQLite stores it.

use super::*;
use crate::policy::rows::{LiveColumn, RowRules};
use lvbak_core::registry::id_text_columns;

/// A table's rules and its rows' charge.
#[derive(Clone, Debug)]
pub(super) struct TablePlan {
    pub(super) rules: RowRules,
    /// What a row counts for against the quota.
    pub(super) charge: crate::storage::sqlite::charge::RowCharge,
    /// The columns that may hold ids of other rows as text: JSON and text id columns, file
    /// columns (registry).
    /// By index, with whether only whole JSON strings count (`registry::id_text_columns`).
    pub(super) id_text: Vec<(usize, bool)>,
    /// An index of the table on its owner column alone (a table owned directly), which
    /// says whose a row is without reading the row (see `owners::existing_among`).
    pub(super) owner_index: Option<String>,
}

impl TablePlan {
    /// Whether any of `rows` has an id's shape in a column that may hold ids.
    pub(super) fn holds_id_text(&self, rows: &[AlignedRow]) -> bool {
        rows.iter().any(|row| {
            self.id_text.iter().any(|&(index, _)| match &row[index] {
                Some(Value::String(text)) => crate::policy::ids::next_uuid(text.as_bytes(), 0, false).is_some(),
                _ => false,
            })
        })
    }
}

impl std::ops::Deref for TablePlan {
    type Target = RowRules;
    fn deref(&self) -> &RowRules {
        &self.rules
    }
}

impl RowApplier {
    pub(super) fn plan(&mut self, spec: &'static TableSpec) -> DbResult<TablePlan> {
        if let Some(plan) = self.plans.get(spec.name) {
            return Ok(plan.clone());
        }
        let mut statement = self.connection.prepare(&format!("PRAGMA table_info({})", quoted(spec.name)))?;
        let columns = statement
            .query_map([], |row| {
                let notnull: i64 = row.get(3)?;
                let default: Option<String> = row.get(4)?;
                let pk: i64 = row.get(5)?;
                Ok(LiveColumn {
                    name: row.get(1)?,
                    required: notnull != 0 && default.is_none(),
                    nullable: notnull == 0,
                    primary_key: pk > 0,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let rules = RowRules::new(spec, columns);
        let charge = crate::storage::sqlite::charge::RowCharge::of(&self.connection, spec.name, &rules.names)?;
        let id_text = (rules.names.iter().enumerate())
            .filter_map(|(index, name)| {
                id_text_columns(spec).find(|(column, _)| column == name).map(|(_, quoted_only)| (index, quoted_only))
            })
            .collect();
        let owner_index = match spec.ownership {
            Ownership::Direct { column } => owner_index(&self.connection, spec.name, column)?,
            Ownership::Parent { .. } => None,
        };
        let plan = TablePlan { rules, charge, id_text, owner_index };
        self.plans.insert(spec.name, plan.clone());
        Ok(plan)
    }

    /// The live columns of a registry table, in order: rows are handed to [`Self::apply`]
    /// aligned with these.
    pub fn columns_of(&mut self, spec: &'static TableSpec) -> DbResult<Vec<String>> {
        Ok(self.plan(spec)?.rules.names.clone())
    }
}

/// The name of an index of `table` on `column` alone, without a `WHERE` (it holds every
/// row), if there is one.
pub(super) fn owner_index(connection: &Connection, table: &str, column: &str) -> DbResult<Option<String>> {
    Ok(connection
        .query_row(
            "SELECT l.name FROM pragma_index_list(?1) AS l WHERE l.partial = 0 \
             AND (SELECT count(*) FROM pragma_index_info(l.name)) = 1 \
             AND (SELECT i.name FROM pragma_index_info(l.name) AS i) = ?2 ORDER BY l.name LIMIT 1",
            [table, column],
            |row| row.get(0),
        )
        .optional()?)
}
