//! A batch's accepted rows inserted: numbers given, ids another account holds copied under
//! new ids of the importer's (the id map, `lvbak_id_map`), and each run of rows with the
//! same columns written by a binary `COPY` (`copy.rs`: every row new, as in an import into
//! an account that lacks them) or, when one of them was there already, by one `INSERT …
//! SELECT … FROM unnest(…) ON CONFLICT DO NOTHING`, whose `RETURNING` says which rows went
//! in.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use super::copy::RunKind;
use super::statistics;
use super::{quoted, DbError, DbResult, Params, Plan, PostgresRowApplier};
use crate::policy::ids::fresh_ids;
use crate::policy::ownership::{merge, Merge, Owner};
use crate::policy::rows::AlignedRow;
use crate::storage::postgres::values::{odd_object, place, Typed, TypedColumn};
use crate::util::new_id;
use lvbak_core::registry::{Ownership, TableSpec};

/// Ids asked about in one statement.
const IDS_PER_STATEMENT: usize = 1000;

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

    /// Inserts `rows`, a statement per run of rows with the same columns: the positions of
    /// the rows not inserted (their key exists), how many were, the bytes those count for,
    /// and the positions of rows refused because their key is not a value PostgreSQL's key
    /// column can hold (text with a NUL character).
    fn insert_rows(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        rows: &[&AlignedRow],
        kind: RunKind,
    ) -> DbResult<(Vec<usize>, u64, u64, Vec<usize>)> {
        let key = Self::key_column(plan)?;
        let (mut ignored, mut inserted, mut bytes, mut refused) = (Vec::new(), 0, 0, Vec::new());
        let mut start = 0;
        while start < rows.len() {
            let shape = row_shape(rows[start]);
            let end = (start..rows.len()).find(|&position| row_shape(rows[position]) != shape).unwrap_or(rows.len());
            let columns: Vec<usize> = (0..plan.names.len()).filter(|&index| rows[start][index].is_some()).collect();
            let Some(key_place) = columns.iter().position(|&index| index == key) else {
                refused.extend(start..end);
                start = end;
                continue;
            };
            if let Some(copied) = self.copied(spec, plan, kind, &columns, key, &rows[start..end])? {
                inserted += copied.inserted;
                bytes += copied.bytes;
                refused.extend(copied.refused.into_iter().map(|offset| start + offset));
                start = end;
                continue;
            }
            let mut values: Vec<TypedColumn> =
                columns.iter().map(|&index| TypedColumn::new(plan.affinities[index], 0)).collect();
            let mut odds: Vec<Option<String>> = Vec::new();
            let mut positions = Vec::new();
            for (position, row) in rows.iter().enumerate().take(end).skip(start) {
                let Some((placed, odd)) = self.placed_row(plan, &columns, key, row)? else {
                    refused.push(position);
                    continue;
                };
                for (column, typed) in values.iter_mut().zip(placed) {
                    column.push(typed);
                }
                odds.push(odd);
                positions.push(position);
            }
            if !positions.is_empty() {
                let sql = insert_sql(spec, plan, &columns, &values, key);
                let mut params: Vec<&(dyn ToSql + Sync)> = values.iter().map(TypedColumn::as_param).collect();
                params.push(&odds);
                params.push(&self.import_id);
                let returned = self.insert_planned_once(&sql, &params)?;
                let mut new_keys: HashSet<String> = returned.iter().map(|row| row.get::<_, String>(0)).collect();
                for (number, &position) in positions.iter().enumerate() {
                    let went_in = values[key_place].key_text(number).is_some_and(|text| new_keys.remove(&text));
                    if went_in {
                        inserted += 1;
                        bytes += plan.charge.bytes(rows[position]);
                    } else {
                        ignored.push(position);
                    }
                }
            }
            start = end;
        }
        Ok((ignored, inserted, bytes, refused))
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

    /// Inserts rows; how many were new, how many of those are copies under new ids, the
    /// bytes they count for, and how many were refused (as SQLite's `insert_all`: a row
    /// whose id exists is skipped when the importer owns it and copied otherwise).
    pub(super) fn insert_all(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        rows: &mut [AlignedRow],
    ) -> DbResult<(u64, u64, u64, u64)> {
        let Some(id_index) = plan.id else {
            let all: Vec<&AlignedRow> = rows.iter().collect();
            let (_, inserted, bytes, refused) = self.insert_rows(spec, plan, &all, RunKind::Archive)?;
            return Ok((inserted, 0, bytes, refused.len() as u64));
        };
        let (fresh, mut foreign) = if self.remaps.any {
            let ids: Vec<Option<&str>> = rows.iter().map(|row| id_at(row, id_index)).collect();
            let (mut fresh, mut foreign) = (Vec::new(), Vec::new());
            for (position, owner) in self.existing_among(spec, &ids)?.into_iter().enumerate() {
                match merge(owner) {
                    Merge::Insert => fresh.push(position),
                    Merge::Skip => {}
                    Merge::Copy => foreign.push(position),
                }
            }
            (fresh, foreign)
        } else {
            ((0..rows.len()).collect::<Vec<_>>(), Vec::new())
        };
        let fresh_rows: Vec<&AlignedRow> = fresh.iter().map(|&position| &rows[position]).collect();
        let (ignored, mut inserted, mut bytes, refused) =
            self.insert_rows(spec, plan, &fresh_rows, RunKind::Archive)?;
        let mut refused_count = refused.len() as u64;
        let ignored: Vec<usize> = ignored.into_iter().map(|index| fresh[index]).collect();
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
        let copies: Vec<&AlignedRow> = foreign.iter().map(|&position| &rows[position]).collect();
        let (_, remapped, copy_bytes, refused) = self.insert_rows(spec, plan, &copies, RunKind::Copies)?;
        refused_count += refused.len() as u64;
        inserted += remapped;
        bytes += copy_bytes;
        Ok((inserted, remapped, bytes, refused_count))
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
    fn remap_ids(&mut self, table: &'static str, originals: &[&str]) -> DbResult<Vec<String>> {
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
        let first_of_its_id = |position: usize| position == 0 || originals[position - 1] != originals[position];
        let wanted = (0..originals.len())
            .filter(|&position| first_of_its_id(position) && !known.contains_key(originals[position]))
            .count();
        let mut ids = fresh_ids(wanted).into_iter();
        let mut new_ids: Vec<String> = Vec::with_capacity(originals.len());
        let mut fresh: Vec<usize> = Vec::new();
        for (position, &original) in originals.iter().enumerate() {
            let new_id = match known.get(original) {
                Some(new_id) => new_id.clone(),
                None if !first_of_its_id(position) => new_ids[position - 1].clone(),
                None => {
                    fresh.push(position);
                    ids.next().unwrap_or_else(new_id)
                }
            };
            new_ids.push(new_id);
        }
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
