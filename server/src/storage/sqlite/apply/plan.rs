//! What the checks of one table need, worked out once per table from its live columns and
//! the registry: owner, forced and numbered columns, the parent, the references, the charge.

use super::*;

#[derive(Clone, Debug)]
pub(super) struct LiveColumn {
    pub(super) name: String,
    pub(super) required: bool,
    pub(super) nullable: bool,
    pub(super) primary_key: bool,
}

/// What the checks of one table need, by column index (worked out once per table).
#[derive(Clone, Debug)]
pub(super) struct TablePlan {
    pub(super) table: &'static str,
    pub(super) columns: Vec<LiveColumn>,
    pub(super) names: Vec<String>,
    /// `user_id` / `installed_by_user_id`: forced to the importer.
    pub(super) owner_columns: Vec<usize>,
    pub(super) forced_zero: Vec<usize>,
    pub(super) filter: Option<(usize, &'static str)>,
    pub(super) parent: Option<(usize, &'static str)>,
    pub(super) references: Vec<PlannedReference>,
    pub(super) id: Option<usize>,
    /// The column numbering the user's rows (`TableSpec::numbered`).
    pub(super) numbered: Option<usize>,
    /// What a row counts for against the quota.
    pub(super) charge: crate::storage::sqlite::charge::RowCharge,
}

/// A reference column of a table, as its rows are checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct PlannedReference {
    /// The column's place among the live columns, and its name.
    pub(super) index: usize,
    pub(super) column: &'static str,
    /// The table it points into.
    pub(super) target: &'static str,
    pub(super) rule: ReferenceRule,
    /// Whether the target is applied later than this table (or is this table): such a
    /// reference is settled after every table is in.
    pub(super) forward: bool,
    /// Whether the column may be empty (a reference to nothing is then cleared).
    pub(super) nullable: bool,
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
        let position = |name: &str| columns.iter().position(|column| column.name == name);
        let plan = TablePlan {
            table: spec.name,
            names: columns.iter().map(|column| column.name.clone()).collect(),
            owner_columns: OWNER_COLUMNS.iter().filter_map(|name| position(name)).collect(),
            forced_zero: spec.forced_zero.iter().filter_map(|name| position(name)).collect(),
            filter: spec.row_filter.and_then(|(column, value)| position(column).map(|index| (index, value))),
            parent: match spec.ownership {
                Ownership::Parent { parent_table, column } => position(column).map(|index| (index, parent_table)),
                Ownership::Direct { .. } => None,
            },
            references: spec
                .references
                .iter()
                .filter_map(|r| {
                    let order = |name: &str| TABLES.iter().position(|t| t.name == name);
                    let forward = order(r.table) >= order(spec.name);
                    position(r.column).map(|index| PlannedReference {
                        index,
                        column: r.column,
                        target: r.table,
                        rule: r.rule,
                        forward,
                        nullable: columns[index].nullable,
                    })
                })
                .collect(),
            id: position("id"),
            numbered: spec.numbered.and_then(position),
            charge: crate::storage::sqlite::charge::RowCharge::of(
                &self.connection,
                spec.name,
                &columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            )?,
            columns,
        };
        self.plans.insert(spec.name, plan.clone());
        Ok(plan)
    }

    /// The live columns of a registry table, in order: rows are handed to [`Self::apply`]
    /// aligned with these.
    pub fn columns_of(&mut self, spec: &'static TableSpec) -> DbResult<Vec<String>> {
        Ok(self.plan(spec)?.names)
    }
}
