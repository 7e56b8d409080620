//! A batch's accepted rows inserted: numbers given, ids another account holds copied under
//! new ids of the importer's (the id map, `lvbak_id_map`), and each run of rows with the
//! same columns written by a binary `COPY` (`copy.rs`: every row new, as in an import into
//! an account that lacks them) or, when one of them was there already, by one `INSERT …
//! SELECT … FROM unnest(…) ON CONFLICT DO NOTHING`, whose `RETURNING` says which rows went
//! in.

use std::collections::HashSet;

use lvbak_core::protocol::TableCounts;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use super::copy::RunKind;
use super::{quoted, DbError, DbResult, Params, Plan, PostgresRowApplier};
use crate::policy::ownership::{merge, Merge, Owner};
use crate::policy::rows::AlignedRow;
use crate::storage::postgres::values::{odd_object, place, Typed, TypedColumn};
use lvbak_core::registry::{Ownership, TableSpec};

/// Ids asked about in one statement.
pub(super) const IDS_PER_STATEMENT: usize = 1000;

/// What inserting rows did with them.
#[derive(Debug, Default)]
pub(super) struct Placed {
    /// Positions of the rows an `INSERT` left out: their key exists.
    pub(super) ignored: Vec<usize>,
    /// Rows an `INSERT` wrote, of which copies under new ids, and the bytes they count for.
    pub(super) inserted: u64,
    pub(super) remapped: u64,
    pub(super) bytes: u64,
    /// Rows refused: without a key, or one PostgreSQL's key column cannot hold (text with
    /// a NUL character).
    pub(super) refused: u64,
    /// Rows handed to a `COPY`: counted when it is settled (`copy.rs`).
    pub(super) copied: u64,
}

impl Placed {
    /// The counts of `rows` rows so placed: those neither written, refused nor handed to a
    /// `COPY` were there already (skipped).
    pub(super) fn counts(&self, rows: usize) -> TableCounts {
        TableCounts {
            imported: self.inserted,
            remapped: self.remapped,
            skipped: rows as u64 - self.inserted - self.refused - self.copied,
            rejected: self.refused,
            bytes: self.bytes,
            ..TableCounts::default()
        }
    }
}

/// Rows in id order (inserted so, they touch neighbouring index pages).
pub(super) fn sort_by_id(rows: &mut [AlignedRow], id: usize) {
    rows.sort_by(|a, b| a[id].as_ref().and_then(Value::as_str).cmp(&b[id].as_ref().and_then(Value::as_str)));
}

/// Which columns a row has, as bits.
fn row_shape(row: &AlignedRow) -> u128 {
    row.iter().enumerate().filter(|(_, v)| v.is_some()).fold(0u128, |bits, (i, _)| bits | 1u128 << (i % 128))
}

fn id_at(row: &AlignedRow, index: usize) -> Option<&str> {
    row[index].as_ref().and_then(Value::as_str)
}

/// The `INSERT` of a run of rows that have `columns`.
fn insert_sql(spec: &TableSpec, plan: &Plan, columns: &[usize], values: &[TypedColumn], key: usize) -> String {
    let names: Vec<String> = columns.iter().map(|&index| quoted(&plan.names[index])).collect();
    let aliases: Vec<String> = (0..columns.len()).map(|number| format!("a{number}")).collect();
    let arrays: Vec<String> =
        values.iter().enumerate().map(|(number, column)| format!("${}::{}", number + 1, column.sql_type())).collect();
    let odd = columns.len() + 1;
    let import = columns.len() + 2;
    format!(
        "INSERT INTO {table} ({names}, lvbak_import, lvbak_odd) \
         SELECT {selected}, ${import}::bigint, u.odd::jsonb FROM unnest({arrays}, ${odd}::text[]) AS u({aliases}, odd) \
         ON CONFLICT DO NOTHING RETURNING {key}::text",
        table = quoted(spec.name),
        names = names.join(", "),
        selected = aliases.iter().map(|alias| format!("u.{alias}")).collect::<Vec<_>>().join(", "),
        arrays = arrays.join(", "),
        aliases = aliases.join(", "),
        key = quoted(&plan.names[key]),
    )
}

impl PostgresRowApplier {
    /// The first primary-key column of a table (its `id` where it has one).
    fn key_column(plan: &Plan) -> DbResult<usize> {
        plan.id
            .or_else(|| plan.columns.iter().position(|column| column.primary_key))
            .ok_or_else(|| DbError::Invalid(format!("{} has no key", plan.table)))
    }

    /// Inserts the rows of `rows` at `positions`, a `COPY` or a statement per run of rows
    /// with the same columns (see [`Placed`]).
    pub(super) fn insert_rows(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        rows: &mut [AlignedRow],
        positions: &[usize],
        kind: RunKind,
    ) -> DbResult<Placed> {
        let key = Self::key_column(plan)?;
        let mut placed = Placed::default();
        let mut start = 0;
        while start < positions.len() {
            let shape = row_shape(&rows[positions[start]]);
            let end = (start..positions.len())
                .find(|&place| row_shape(&rows[positions[place]]) != shape)
                .unwrap_or(positions.len());
            let run = &positions[start..end];
            start = end;
            let columns: Vec<usize> = (0..plan.names.len()).filter(|&index| rows[run[0]][index].is_some()).collect();
            let Some(key_place) = columns.iter().position(|&index| index == key) else {
                placed.refused += run.len() as u64;
                continue;
            };
            if let Some(refused) = self.copied(spec, plan, kind, &columns, key, rows, run)? {
                placed.refused += refused;
                placed.copied += run.len() as u64 - refused;
                continue;
            }
            // The `INSERT` needs the connection.
            self.settle_copy()?;
            let mut values: Vec<TypedColumn> =
                columns.iter().map(|&index| TypedColumn::new(plan.affinities[index], 0)).collect();
            let mut odds: Vec<Option<String>> = Vec::new();
            let mut sent = Vec::new();
            for &position in run {
                let Some((typed, odd)) = self.placed_row(plan, &columns, key, &rows[position])? else {
                    placed.refused += 1;
                    continue;
                };
                for (column, value) in values.iter_mut().zip(typed) {
                    column.push(value);
                }
                odds.push(odd);
                sent.push(position);
            }
            if !sent.is_empty() {
                let sql = insert_sql(spec, plan, &columns, &values, key);
                let mut params: Vec<&(dyn ToSql + Sync)> = values.iter().map(TypedColumn::as_param).collect();
                params.push(&odds);
                params.push(&self.import_id);
                let returned = self.insert_planned_once(&sql, &params)?;
                let mut new_keys: HashSet<String> = returned.iter().map(|row| row.get::<_, String>(0)).collect();
                for (number, &position) in sent.iter().enumerate() {
                    let went_in = values[key_place].key_text(number).is_some_and(|text| new_keys.remove(&text));
                    if went_in {
                        placed.inserted += 1;
                        placed.bytes += plan.charge.bytes(&rows[position]);
                    } else {
                        placed.ignored.push(position);
                    }
                }
            }
        }
        Ok(placed)
    }

    /// The values of `row`'s `columns` where PostgreSQL keeps them (`values::place`): the
    /// typed ones and the odd values' object; `None` when its key (column `key`) is a value
    /// the key column cannot hold (the row is refused).
    pub(super) fn placed_row(
        &self,
        plan: &Plan,
        columns: &[usize],
        key: usize,
        row: &AlignedRow,
    ) -> DbResult<Option<(Vec<Typed>, Option<String>)>> {
        let mut placed = Vec::with_capacity(columns.len());
        let mut odd = Map::new();
        for &index in columns {
            let stored =
                self.stored_values.stored(plan.affinities[index], row[index].as_ref().unwrap_or(&Value::Null))?;
            let (typed, entry) = place(plan.affinities[index], stored);
            if let Some(entry) = entry {
                odd.insert(plan.names[index].clone(), entry);
            }
            placed.push(typed);
        }
        if odd.contains_key(&plan.names[key]) {
            return Ok(None);
        }
        Ok(Some((placed, odd_object(odd))))
    }

    /// Runs an `INSERT` of a run of rows under a generic plan (made once per statement):
    /// the import's lookups are planned for their values (`force_custom_plan`, see
    /// `row_applier`), but a custom plan of an `INSERT` from `unnest` copies every array into
    /// the plan — 2.3 ms of planning per 1,000 characters, a tenth of the statement. The
    /// setting goes there and back in the same round trip; a failing `INSERT` aborts the
    /// transaction, whose rollback takes the `SET` back too.
    fn insert_planned_once(&self, sql: &str, params: &Params<'_>) -> DbResult<Vec<tokio_postgres::Row>> {
        Ok(self.db.wait(async {
            let statement = self.db.cached().prepare_cached(sql).await?;
            let client = self.db.client();
            let (generic, rows, custom) = futures::future::join3(
                client.batch_execute("SET plan_cache_mode = force_generic_plan"),
                client.query(&statement, params),
                client.batch_execute("SET plan_cache_mode = force_custom_plan"),
            )
            .await;
            generic?;
            let rows = rows?;
            custom?;
            Ok::<_, tokio_postgres::Error>(rows)
        })?)
    }

    /// Gives every row of a numbered table a number of its own among the user's rows (as
    /// SQLite's `number_rows`).
    pub(super) fn number_rows(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        index: usize,
        rows: &mut [AlignedRow],
    ) -> DbResult<()> {
        let (table, column) = (quoted(spec.name), quoted(&plan.names[index]));
        let taken_sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE user_id = $1 AND {column} = $2 AND id IS DISTINCT FROM $3)"
        );
        let highest_sql = format!("SELECT COALESCE(MAX({column}), 0)::bigint FROM {table} WHERE user_id = $1");
        let highest: i64 = self.query(&highest_sql, &[&self.user_id])?.first().map_or(0, |row| row.get(0));
        let mut numbering = crate::policy::numbering::Numbering::new(highest);
        for row in rows {
            let id = plan.id.and_then(|i| row[i].as_ref()).and_then(Value::as_str).map(str::to_string);
            let wanted = row[index].as_ref().and_then(Value::as_i64);
            let number = numbering.next(wanted, |number| -> DbResult<bool> {
                Ok(self.query(&taken_sql, &[&self.user_id, &number, &id])?.first().is_some_and(|row| row.get(0)))
            })?;
            row[index] = Some(Value::from(number));
        }
        Ok(())
    }

    /// Inserts a batch's rows (as SQLite's `insert_all`: a row whose id exists is skipped
    /// when the importer owns it and copied under a new id otherwise).
    pub(super) fn insert_all(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        rows: &mut [AlignedRow],
    ) -> DbResult<Placed> {
        let all: Vec<usize> = (0..rows.len()).collect();
        let Some(id_index) = plan.id else {
            let mut placed = self.insert_rows(spec, plan, rows, &all, RunKind::Archive)?;
            placed.ignored.clear();
            return Ok(placed);
        };
        if !self.remaps.any {
            return self.insert_fresh(spec, plan, rows, &all, Vec::new());
        }
        self.settle_copy()?;
        let ids: Vec<Option<&str>> = rows.iter().map(|row| id_at(row, id_index)).collect();
        let (mut fresh, mut foreign) = (Vec::new(), Vec::new());
        for (position, owner) in self.existing_among(spec, &ids)?.into_iter().enumerate() {
            match merge(owner) {
                Merge::Insert => fresh.push(position),
                Merge::Skip => {}
                Merge::Copy => foreign.push(position),
            }
        }
        self.insert_fresh(spec, plan, rows, &fresh, foreign)
    }

    /// Inserts the rows at `fresh` under their own ids; those whose id turns out to be
    /// another account's, and the rows at `foreign`, are copied under new ids.
    pub(super) fn insert_fresh(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        rows: &mut [AlignedRow],
        fresh: &[usize],
        mut foreign: Vec<usize>,
    ) -> DbResult<Placed> {
        let mut placed = self.insert_rows(spec, plan, rows, fresh, RunKind::Archive)?;
        let ignored = std::mem::take(&mut placed.ignored);
        let Some(id_index) = plan.id else { return Ok(placed) };
        if !ignored.is_empty() {
            self.settle_copy()?;
        }
        let ids: Vec<Option<&str>> = ignored.iter().map(|&position| id_at(&rows[position], id_index)).collect();
        let owners = self.existing_among(spec, &ids)?;
        foreign.extend(
            ignored
                .iter()
                .zip(&ids)
                .zip(owners)
                .filter(|((_, id), owner)| id.is_some() && merge(*owner) != Merge::Skip)
                .map(|((&position, _), _)| position),
        );
        if foreign.is_empty() {
            return Ok(placed);
        }
        self.settle_copy()?;
        foreign.sort_by(|a, b| id_at(&rows[*a], id_index).cmp(&id_at(&rows[*b], id_index)));
        let new_ids = {
            let originals: Vec<&str> =
                foreign.iter().filter_map(|&position| id_at(&rows[position], id_index)).collect();
            self.remap_ids(spec.name, &originals)?
        };
        for (&position, new_id) in foreign.iter().zip(new_ids) {
            rows[position][id_index] = Some(Value::String(new_id));
        }
        foreign.sort_by(|a, b| id_at(&rows[*a], id_index).cmp(&id_at(&rows[*b], id_index)));
        let copies = self.insert_rows(spec, plan, rows, &foreign, RunKind::Copies)?;
        placed.inserted += copies.inserted;
        placed.remapped += copies.inserted;
        placed.bytes += copies.bytes;
        placed.refused += copies.refused;
        placed.copied += copies.copied;
        Ok(placed)
    }

    /// Whose each of `ids` (rows of `spec`) is, in their order (`None`: no such row).
    pub(super) fn existing_among(&mut self, spec: &TableSpec, ids: &[Option<&str>]) -> DbResult<Vec<Option<Owner>>> {
        let sql = match spec.ownership {
            Ownership::Direct { column } => format!(
                "SELECT j.i, coalesce(t.{column} = $2, false) FROM unnest($1::text[]) WITH ORDINALITY AS j(id, i) \
                 JOIN {table} AS t ON t.id = j.id",
                table = quoted(spec.name),
                column = quoted(column)
            ),
            Ownership::Parent { parent_table, column } => format!(
                "SELECT j.i, coalesce(p.user_id = $2, false) FROM unnest($1::text[]) WITH ORDINALITY AS j(id, i) \
                 JOIN {table} AS t ON t.id = j.id LEFT JOIN {parent} AS p ON p.id = t.{column}",
                table = quoted(spec.name),
                parent = quoted(parent_table),
                column = quoted(column)
            ),
        };
        let mut owners = vec![None; ids.len()];
        for (number, chunk) in ids.chunks(IDS_PER_STATEMENT).enumerate() {
            let list: Vec<Option<&str>> = chunk.to_vec();
            for row in self.query(&sql, &[&list, &self.user_id])? {
                let (index, mine): (i64, bool) = (row.get(0), row.get(1));
                let place = number * IDS_PER_STATEMENT + usize::try_from(index - 1).unwrap_or(usize::MAX);
                if let Some(owner) = owners.get_mut(place) {
                    *owner = Some(if mine { Owner::Importer } else { Owner::Someone });
                }
            }
        }
        Ok(owners)
    }
}
