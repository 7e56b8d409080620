//! PostgreSQL's answers for a restore preview (`policy::preview`; SQLite's
//! `apply/preview.rs`): each archive row checked as an import would check it, the ledger's
//! rows standing in for what the restore would have added by then, and the account's row
//! under its id (or its copy's) compared by content hash. Reads only.

use lvbak_core::protocol::RestoreState;
use lvbak_core::registry::TableSpec;
use lvbak_core::row_hash::RowHasher;
use serde_json::Value;

use super::{quoted, DbError, DbResult, Plan, PostgresRowApplier};
use crate::policy::ownership::Owner;
use crate::policy::preview::{state_of, Found, PreviewLedger, RowVerdict};
use crate::policy::rows::{check_row, AlignedRow, RowLookups};
use crate::storage::postgres::values::{read_odd, read_stored, row_value};

/// The importer's store as a preview sees it: the ledger's rows first.
struct PreviewLookups<'a> {
    applier: &'a mut PostgresRowApplier,
    ledger: &'a PreviewLedger,
    unsettled: Vec<&'static str>,
}

impl RowLookups for PreviewLookups<'_> {
    type Error = DbError;

    fn importer(&self) -> &str {
        &self.applier.user_id
    }

    fn remapped(&mut self, table: &'static str, original: &str) -> DbResult<Option<String>> {
        if let Some(stand_in) = self.ledger.copy_of(Some(table), original) {
            return Ok(Some(stand_in));
        }
        self.applier.remapped(Some(table), original)
    }

    fn any_remapped(&self) -> bool {
        self.ledger.any_copies() || self.applier.remaps.any
    }

    fn owner_of(&mut self, table: &'static str, id: &str) -> DbResult<Owner> {
        if self.ledger.added(table, id) {
            return Ok(Owner::Importer);
        }
        self.applier.owner_of(table, id)
    }

    fn note_unsettled(&mut self, _table: &'static str, column: &'static str) {
        self.unsettled.push(column);
    }
}

/// The columns a preview compares, by index, in ascending name order.
fn compared_columns(spec: &TableSpec, plan: &Plan) -> Vec<usize> {
    let rewritten = spec.rewritten_columns();
    let mut columns: Vec<usize> = (0..plan.names.len())
        .filter(|&index| plan.names[index] != "id" && !rewritten.contains(&plan.names[index].as_str()))
        .collect();
    columns.sort_by(|a, b| plan.names[*a].cmp(&plan.names[*b]));
    columns
}

/// Where the account's version of an archive row is.
#[derive(Clone, Copy)]
enum StoredKey<'a> {
    Id(&'a str),
    PrimaryKey,
}

impl PostgresRowApplier {
    /// What restoring `rows` of `spec` would do with each, in their order.
    pub(super) fn preview_rows(
        &mut self,
        spec: &'static TableSpec,
        rows: Vec<AlignedRow>,
        ledger: &mut PreviewLedger,
    ) -> DbResult<Vec<RowVerdict>> {
        let plan = self.plan(spec)?;
        let compared = compared_columns(spec, &plan);
        let mut states = Vec::with_capacity(rows.len());
        let verdict = |state: RestoreState, changed: Option<Vec<String>>| RowVerdict {
            state,
            changed: if state == RestoreState::Differs { changed.unwrap_or_default() } else { Vec::new() },
        };
        for row in rows {
            let id = plan.id.and_then(|index| row[index].as_ref()).and_then(Value::as_str).map(str::to_string);
            let mut lookups = PreviewLookups { applier: self, ledger: &*ledger, unsettled: Vec::new() };
            let checked = check_row(&plan.rules, row, &mut lookups)?;
            let unsettled = lookups.unsettled;
            let Some(mut row) = checked else {
                states.push(verdict(RestoreState::Refused, None));
                continue;
            };
            let mut changed = None;
            let mut same_as = |applier: &mut Self, key: StoredKey<'_>| -> DbResult<Option<bool>> {
                let found = applier.differing_columns(spec, &plan, &compared, &mut row, &unsettled, key)?;
                let same = found.as_ref().map(Vec::is_empty);
                changed = found;
                Ok(same)
            };
            let found = match &id {
                Some(id) if ledger.added(spec.name, id) => Found::Own { same: true },
                Some(id) => match self.owner_of(spec.name, id)? {
                    Owner::Nobody => Found::Nothing,
                    Owner::Importer => Found::Own { same: same_as(self, StoredKey::Id(id))?.unwrap_or(false) },
                    Owner::Someone => match self.remapped(Some(spec.name), id)? {
                        Some(copy) => {
                            Found::Someone { copy: Some(same_as(self, StoredKey::Id(&copy))?.unwrap_or(false)) }
                        }
                        None => Found::Someone { copy: None },
                    },
                },
                None => match same_as(self, StoredKey::PrimaryKey)? {
                    None => Found::Nothing,
                    Some(same) => Found::Own { same },
                },
            };
            let state = state_of(found);
            let changed = changed.take();
            match (state, &id) {
                (RestoreState::New, Some(id)) => ledger.add(spec.name, id),
                (RestoreState::Remapped, Some(id)) => {
                    ledger.copy(spec.name, id);
                }
                _ => {}
            }
            states.push(verdict(state, changed));
        }
        Ok(states)
    }

    /// The columns whose values differ between the account's row under `key` and the
    /// checked archive `row`: empty when the same; `None` when there is no such row.
    fn differing_columns(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        compared: &[usize],
        row: &mut AlignedRow,
        unsettled: &[&'static str],
        key: StoredKey<'_>,
    ) -> DbResult<Option<Vec<String>>> {
        if self.remaps.any {
            for &(index, quoted_only) in &plan.id_text {
                if let Some(Value::String(text)) = &row[index] {
                    if let Some(rewritten) = self.rewrite_uuids(text, quoted_only)? {
                        row[index] = Some(Value::String(rewritten));
                    }
                }
            }
        }
        let kept = |index: usize| row[index].is_some() && !unsettled.contains(&plan.names[index].as_str());
        let mut archived = RowHasher::default();
        for &index in compared.iter().filter(|&&index| kept(index)) {
            archived.json_column(&plan.names[index], row[index].as_ref().unwrap_or(&Value::Null));
        }
        let archived = archived.finish();
        let selected: Vec<String> = plan.names.iter().map(|name| quoted(name)).collect();
        let select = format!("SELECT {}, lvbak_odd::text FROM {}", selected.join(", "), quoted(spec.name));
        let key_text = |value: Option<&Value>| -> Option<String> {
            match value? {
                Value::Null => None,
                Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            }
        };
        let found = match key {
            StoredKey::Id(id) => self.query(&format!("{select} WHERE id = $1"), &[&id])?,
            StoredKey::PrimaryKey => {
                let keys: Vec<usize> = (0..plan.columns.len()).filter(|&i| plan.columns[i].primary_key).collect();
                if keys.is_empty() {
                    return Ok(None);
                }
                let conditions: Vec<String> = keys
                    .iter()
                    .enumerate()
                    .map(|(number, &index)| {
                        format!("{}::text IS NOT DISTINCT FROM ${}", quoted(&plan.names[index]), number + 1)
                    })
                    .collect();
                let values: Vec<Option<String>> = keys.iter().map(|&index| key_text(row[index].as_ref())).collect();
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    values.iter().map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                self.query(&format!("{select} WHERE {}", conditions.join(" AND ")), &params)?
            }
        };
        let Some(stored) = found.first() else { return Ok(None) };
        let odd = stored.get::<_, Option<String>>(plan.names.len()).map(|text| read_odd(&text)).unwrap_or_default();
        let value = |index: usize| read_stored(stored, index, plan.affinities[index], &plan.names[index], &odd);
        let mut hasher = RowHasher::default();
        for &index in compared.iter().filter(|&&index| kept(index)) {
            hasher.column(&plan.names[index], row_value(&value(index)));
        }
        if hasher.finish() == archived {
            return Ok(Some(Vec::new()));
        }
        let mut changed = Vec::new();
        for &index in compared.iter().filter(|&&index| kept(index)) {
            let name = &plan.names[index];
            let (mut ours, mut theirs) = (RowHasher::default(), RowHasher::default());
            ours.column(name, row_value(&value(index)));
            theirs.json_column(name, row[index].as_ref().unwrap_or(&Value::Null));
            if ours.finish() != theirs.finish() {
                changed.push(name.clone());
            }
        }
        Ok(Some(changed))
    }
}
