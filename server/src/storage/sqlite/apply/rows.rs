//! A batch's rows checked and inserted: forced columns, parents and references (cleared or
//! refused where they are missing or another account's), numbers, and `INSERT OR IGNORE`
//! in id order with one statement per set of columns; a row whose id is another account's
//! becomes a copy (see `remap`).

use super::*;
use crate::policy::ownership::{merge, Merge};

/// Which columns a row has, as bits (registry tables have well under 128).
pub(super) fn row_shape(row: &AlignedRow) -> u128 {
    row.iter().enumerate().filter(|(_, v)| v.is_some()).fold(0u128, |bits, (i, _)| bits | 1u128 << (i % 128))
}

/// Rows in id order: inserted so, they touch neighbouring index pages (ids are random
/// UUIDs, the archive's and the copies' new ones alike).
pub(super) fn sort_by_id(rows: &mut [AlignedRow], id: usize) {
    rows.sort_by(|a, b| a[id].as_ref().and_then(Value::as_str).cmp(&b[id].as_ref().and_then(Value::as_str)));
}

/// `INSERT OR IGNORE` of the columns `row` has.
pub(super) fn insert_sql(spec: &TableSpec, plan: &TablePlan, row: &AlignedRow) -> String {
    let names: Vec<String> =
        plan.columns.iter().zip(row).filter(|(_, value)| value.is_some()).map(|(c, _)| quoted(&c.name)).collect();
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    format!("INSERT OR IGNORE INTO {} ({}) VALUES ({})", quoted(spec.name), names.join(", "), placeholders.join(", "))
}

/// `INSERT OR IGNORE` of each row, with one prepared statement per run of rows that have
/// the same columns: the positions (in `rows`) of the rows not inserted (their key exists), how many
/// were, and the bytes those count for.
pub(super) fn insert_rows<'a>(
    connection: &Connection,
    spec: &TableSpec,
    plan: &TablePlan,
    rows: impl IntoIterator<Item = &'a AlignedRow>,
) -> DbResult<(Vec<usize>, u64, u64)> {
    let (mut ignored, mut inserted, mut bytes) = (Vec::new(), 0, 0);
    let mut current: Option<(u128, rusqlite::CachedStatement<'_>)> = None;
    for (position, row) in rows.into_iter().enumerate() {
        let shape = row_shape(row);
        if current.as_ref().is_none_or(|(known, _)| *known != shape) {
            current = Some((shape, connection.prepare_cached(&insert_sql(spec, plan, row))?));
        }
        let Some((_, statement)) = current.as_mut() else { continue };
        if statement.execute(rusqlite::params_from_iter(row.iter().flatten().map(Param)))? == 0 {
            ignored.push(position);
        } else {
            inserted += 1;
            bytes += plan.charge.bytes(row);
        }
    }
    Ok((ignored, inserted, bytes))
}

/// A JSON value bound as an SQL parameter the way SQLite stores it (JSON columns stay
/// JSON text); strings are bound without copying.
pub(super) struct Param<'a>(pub(super) &'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Bool(flag) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*flag))),
            Value::Number(number) => ToSqlOutput::Owned(match number.as_i64() {
                Some(integer) => SqlValue::Integer(integer),
                None => SqlValue::Real(number.as_f64().unwrap_or(0.0)),
            }),
            Value::String(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            other => ToSqlOutput::Owned(SqlValue::Text(other.to_string())),
        })
    }
}

/// The backend's answers to the row rules' questions (`policy::rows::check_row`).
impl crate::policy::rows::RowLookups for RowApplier {
    type Error = DbError;

    fn importer(&self) -> &str {
        &self.user_id
    }

    fn remapped(&mut self, table: &'static str, original: &str) -> DbResult<Option<String>> {
        RowApplier::remapped(self, Some(table), original)
    }

    fn any_remapped(&self) -> bool {
        self.remaps.any
    }

    fn owner_of(&mut self, table: &'static str, id: &str) -> DbResult<Owner> {
        RowApplier::owner_of(self, table, id)
    }

    fn note_unsettled(&mut self, table: &'static str, column: &'static str) {
        self.unsettled.insert((table, column));
    }
}

impl RowApplier {
    /// Gives every row of a numbered table a number of its own among the user's rows: one
    /// that is missing, not an integer, or taken (by another of the user's rows, or by an
    /// earlier row of this batch) becomes the next after the highest. A row whose id exists
    /// keeps its number; it will be skipped.
    pub(super) fn number_rows(
        &mut self,
        spec: &'static TableSpec,
        plan: &TablePlan,
        index: usize,
        rows: &mut [AlignedRow],
    ) -> DbResult<()> {
        let (table, column) = (quoted(spec.name), quoted(&plan.names[index]));
        let taken_sql = format!("SELECT 1 FROM {table} WHERE user_id = ?1 AND {column} = ?2 AND id IS NOT ?3");
        let highest_sql = format!("SELECT COALESCE(MAX({column}), 0) FROM {table} WHERE user_id = ?1");
        let highest: i64 = self.connection.query_row(&highest_sql, [&self.user_id], |row| row.get(0))?;
        let mut numbering = crate::policy::numbering::Numbering::new(highest);
        for row in rows {
            let id = plan.id.and_then(|i| row[i].as_ref()).and_then(Value::as_str).map(str::to_string);
            let wanted = row[index].as_ref().and_then(Value::as_i64);
            let number = numbering.next(wanted, |number| -> DbResult<bool> {
                Ok(self.connection.prepare_cached(&taken_sql)?.exists(rusqlite::params![self.user_id, number, id])?)
            })?;
            row[index] = Some(Value::from(number));
        }
        Ok(())
    }

    /// `INSERT OR IGNORE` of rows aligned with `columns`; returns how many were new, how
    /// many of those are copies under new ids, and the bytes they count for. A row whose id
    /// exists is skipped when the importer owns that id, and otherwise imported as a copy
    /// under an id of the importer's own (see `remap`), given to it in `rows`.
    pub(super) fn insert_all(
        &mut self,
        spec: &'static TableSpec,
        plan: &TablePlan,
        rows: &mut [AlignedRow],
    ) -> DbResult<(u64, u64, u64)> {
        let Some(id_index) = plan.id else {
            let (_, inserted, bytes) = insert_rows(&self.connection, spec, plan, rows.iter())?;
            return Ok((inserted, 0, bytes));
        };
        fn id_at(row: &AlignedRow, index: usize) -> Option<&str> {
            row[index].as_ref().and_then(Value::as_str)
        }
        // An importer that has had rows copied is restoring ids others hold: which of the
        // batch's ids exist, and whose they are, is asked first (a statement per thousand
        // rows) rather than learnt from an insert failing for each. Otherwise every row is
        // tried as it is.
        let (fresh, mut foreign) = if self.remaps.any {
            let ids: Vec<Option<&str>> = rows.iter().map(|row| id_at(row, id_index)).collect();
            let (mut fresh, mut foreign) = (Vec::new(), Vec::new());
            for (position, owner) in
                self.existing_among(spec, plan.owner_index.as_deref(), &ids)?.into_iter().enumerate()
            {
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
        let (ignored, mut inserted, mut bytes) =
            insert_rows(&self.connection, spec, plan, fresh.iter().map(|&position| &rows[position]))?;
        // A row not inserted has an id that exists by now: a copy unless the importer's.
        let ignored: Vec<usize> = ignored.into_iter().map(|index| fresh[index]).collect();
        let ids: Vec<Option<&str>> = ignored.iter().map(|&position| id_at(&rows[position], id_index)).collect();
        let owners = self.existing_among(spec, plan.owner_index.as_deref(), &ids)?;
        foreign.extend(
            ignored
                .iter()
                .zip(&ids)
                .zip(owners)
                .filter(|((_, id), owner)| id.is_some() && merge(*owner) != Merge::Skip)
                .map(|((&position, _), _)| position),
        );
        // In the order of their ids, so that repeats of one id are neighbours.
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
        // A copy not inserted was made by an earlier import of this archive: skipped.
        let (_, remapped, copy_bytes) =
            insert_rows(&self.connection, spec, plan, foreign.iter().map(|&position| &rows[position]))?;
        inserted += remapped;
        bytes += copy_bytes;
        Ok((inserted, remapped, bytes))
    }
}
