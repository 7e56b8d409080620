//! [`PostgresRowSnapshot`]: PostgreSQL's [`RowSnapshot`] — one account's registry rows read
//! inside one `REPEATABLE READ, READ ONLY` transaction on a connection of its own, so every
//! table is read at the same moment however long an export takes, by the same ownership
//! rules as SQLite's `TableScan` (`sqlite/rows.rs`).
//!
//! Rows are streamed through a server-side cursor, [`FETCH_ROWS`] at a time, so a table of
//! millions of rows is read in bounded memory. Each row is handed out with the table's
//! registry columns in SQLite's order (`sqlite::schema::shapes`), never `lvbak_import` or
//! `lvbak_odd`; a value is its typed column's, or, where that is NULL, the one the row's
//! `lvbak_odd` keeps for the column (`postgres::values`): the value SQLite would have stored.
//!
//! Order: as SQLite's statements, a table's rows come in the query plan's order (an
//! export's order means nothing; sorting a large table spilled to disk); held ids table by
//! table in registry order, ids bytewise, each followed by the archive ids of its copies
//! (bytewise).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use lvbak_core::closure::RowKey;
use lvbak_core::registry::{table_spec, Ownership, TableSpec, TABLES};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::json_text::json_text_under;
use super::row_tables::{IMPORT_COLUMN, ODD_COLUMN};
use super::values::read_odd;
use super::{BlockingClient, PostgresStores};
use crate::storage::backend::row_snapshot::{Flow, RowSnapshot, RowValue, StoredRow};
use crate::storage::sqlite::schema::{shapes, Affinity, StoredValue, StoredValues, TableShape};
use crate::storage::sqlite::{quoted, DbError, DbResult};

/// Rows fetched from a cursor at a time: what one reading holds in memory at most.
const FETCH_ROWS: usize = 2000;
/// Rows handed out between two looks at the next chunk's arrival.
const YIELD_EVERY_ROWS: usize = 32;

impl PostgresStores {
    /// A snapshot of every account's rows as they are now (see [`PostgresRowSnapshot`]), on
    /// one of the pool's connections, kept until it is dropped. Blocking: call it from a
    /// thread of its own, never from async code.
    pub(crate) fn row_snapshot(&self) -> DbResult<PostgresRowSnapshot> {
        self.snapshot(false)
    }

    /// [`Self::row_snapshot`], or, `sees_open_imports`, one that reads rows of imports
    /// still open too (an import checking its own rows before it ends; an account has one
    /// open import at a time).
    pub(crate) fn snapshot(&self, sees_open_imports: bool) -> DbResult<PostgresRowSnapshot> {
        let shapes = shapes()?.tables.as_slice();
        let connection = self.blocking_client()?;
        // The transaction's moment is taken by its first statement, so one runs at once:
        // rows committed after this returns are not seen.
        connection
            .wait(connection.client().batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1"))?;
        Ok(PostgresRowSnapshot { connection: Some(connection), shapes, cursors: Cell::new(0), sees_open_imports })
    }
}

/// A read-only transaction that every table is read through (see the module
/// documentation); rolled back when dropped.
pub(crate) struct PostgresRowSnapshot {
    /// `None` only once dropped.
    connection: Option<BlockingClient>,
    shapes: &'static [TableShape],
    /// Cursors declared so far (each reading declares its own, so readings may nest).
    cursors: Cell<u64>,
    /// Whether rows of imports still open are read too (see [`owned_condition`]).
    sees_open_imports: bool,
}

impl Drop for PostgresRowSnapshot {
    /// Ends the transaction before the connection goes back to the pool, on the
    /// connection's runtime (this may run in async code, which cannot be blocked); a
    /// connection that cannot end it is not returned to the pool.
    fn drop(&mut self) {
        let Some(BlockingClient { client, handle }) = self.connection.take() else { return };
        handle.spawn(async move {
            if client.batch_execute("ROLLBACK").await.is_err() {
                drop(deadpool_postgres::Object::take(client));
            }
        });
    }
}

/// One table as a reading hands it out.
struct TableColumns<'a> {
    shape: &'a TableShape,
    /// The registry columns' names, in SQLite's order.
    names: Vec<String>,
}

impl<'a> TableColumns<'a> {
    fn affinity(&self, column: &str) -> DbResult<(usize, Affinity)> {
        self.shape
            .columns
            .iter()
            .position(|shape| shape.name == column)
            .map(|index| (index, self.shape.columns[index].affinity))
            .ok_or_else(|| DbError::Invalid(format!("{} has no column {column}", self.shape.name)))
    }
}

/// One row being read: its typed values, and its odd ones if it has any.
struct PostgresRow<'a> {
    row: &'a Row,
    table: &'a TableColumns<'a>,
    odd: Option<HashMap<String, StoredValue>>,
}

impl<'a> PostgresRow<'a> {
    fn new(row: &'a Row, table: &'a TableColumns<'a>) -> Self {
        let odd = row.try_get::<_, Option<&str>>(table.names.len()).ok().flatten().map(read_odd);
        Self { row, table, odd }
    }
}

impl StoredRow for PostgresRow<'_> {
    fn value(&self, index: usize) -> RowValue<'_> {
        let Some(column) = self.table.shape.columns.get(index) else { return RowValue::Null };
        let typed = match column.affinity {
            Affinity::Integer => self.row.try_get::<_, Option<i64>>(index).ok().flatten().map(RowValue::Integer),
            Affinity::Real => self.row.try_get::<_, Option<f64>>(index).ok().flatten().map(RowValue::Real),
            Affinity::Text => self.row.try_get::<_, Option<&str>>(index).ok().flatten().map(RowValue::Text),
        };
        if let Some(typed) = typed {
            return typed;
        }
        match self.odd.as_ref().and_then(|odd| odd.get(&column.name)) {
            Some(StoredValue::Integer(integer)) => RowValue::Integer(*integer),
            Some(StoredValue::Real(real)) => RowValue::Real(*real),
            Some(StoredValue::Text(text)) => RowValue::Text(text),
            Some(StoredValue::Null) | None => RowValue::Null,
        }
    }
}

/// The condition (on the table as `t`, the user as `$1`) that selects the rows of `spec`
/// that belong to a user: SQLite's `owned_rows_sql` — less, where `visible` (what exports,
/// previews and closures read), the rows of an import still open (`lvbak_imports`), which
/// stay invisible until it ends, on any node. The held rows an upload leaves out are read
/// whole: a resumed upload leaves out what its own job applied.
fn owned_condition(spec: &TableSpec, table: &TableColumns<'_>, visible: bool) -> DbResult<String> {
    let mut condition = owner_condition(spec)?;
    if visible {
        condition.push_str(&format!(" AND NOT EXISTS (SELECT 1 FROM lvbak_imports i WHERE i.id = t.{IMPORT_COLUMN})"));
    }
    if let Some((column, value)) = spec.row_filter {
        // Text is where a typed TEXT column keeps it (the odd text of one holds a NUL, which
        // the registry's values never do); a filter on another affinity would need SQLite's
        // conversions, which no registry table asks for.
        if table.affinity(column)?.1 != Affinity::Text || value.contains('\0') {
            return Err(DbError::Invalid(format!("{}: a row filter on {column} is not a text one", spec.name)));
        }
        condition.push_str(&format!(" AND t.{} = '{}'", quoted(column), value.replace('\'', "''")));
    }
    Ok(condition)
}

/// Whose rows of `spec` are: the user's (`$1`) directly or through the parent row.
fn owner_condition(spec: &TableSpec) -> DbResult<String> {
    Ok(match spec.ownership {
        Ownership::Direct { column } => format!("t.{} = $1", quoted(column)),
        Ownership::Parent { parent_table, column } => {
            let Some(Ownership::Direct { column: owner }) = table_spec(parent_table).map(|parent| parent.ownership)
            else {
                return Err(DbError::Invalid(format!("{parent_table} is not owned directly")));
            };
            format!("t.{} IN (SELECT id FROM {} WHERE {} = $1)", quoted(column), quoted(parent_table), quoted(owner))
        }
    })
}

/// The registry columns of a table, then its odd values as text, for `SELECT`.
fn select_list(table: &TableColumns<'_>) -> String {
    let mut list: Vec<String> = table.names.iter().map(|name| format!("t.{}", quoted(name))).collect();
    list.push(format!("t.{ODD_COLUMN}::text"));
    list.join(", ")
}

/// The values a selective reading asks for, as SQLite compares them with a column's values
/// (converted by the column's affinity: `'5'` is 5 in an INTEGER column).
#[derive(Default)]
struct Wanted<'a> {
    texts: HashSet<&'a str>,
    owned_texts: HashSet<String>,
    integers: HashSet<i64>,
    reals: Vec<f64>,
}

impl<'a> Wanted<'a> {
    fn of(affinity: Affinity, values: &'a [String]) -> DbResult<Self> {
        let mut wanted = Self::default();
        if affinity == Affinity::Text {
            wanted.texts = values.iter().map(String::as_str).collect();
            return Ok(wanted);
        }
        let converter = StoredValues::new()?;
        for value in values {
            match converter.stored(affinity, &Value::String(value.clone()))? {
                StoredValue::Integer(integer) => {
                    wanted.integers.insert(integer);
                }
                StoredValue::Real(real) => wanted.reals.push(real),
                StoredValue::Text(text) => {
                    wanted.owned_texts.insert(text);
                }
                StoredValue::Null => {}
            }
        }
        Ok(wanted)
    }

    /// Whether SQLite's `=` says `value` is one of these.
    fn contains(&self, value: RowValue<'_>) -> bool {
        match value {
            RowValue::Text(text) => self.texts.contains(text) || self.owned_texts.contains(text),
            RowValue::Integer(integer) => self.integers.contains(&integer) || self.reals.contains(&(integer as f64)),
            RowValue::Real(real) => {
                self.reals.contains(&real)
                    || (real.fract() == 0.0 && real.abs() < 9.2e18 && self.integers.contains(&(real as i64)))
            }
            RowValue::Null | RowValue::Blob(_) => false,
        }
    }

    /// The typed column's values to ask for (`= ANY($2)`), and whether some wanted value
    /// can only be among the odd ones.
    fn typed(&self, affinity: Affinity) -> (Box<dyn ToSql + Sync + '_>, bool) {
        let texts = || self.texts.iter().copied().chain(self.owned_texts.iter().map(String::as_str));
        match affinity {
            Affinity::Text => {
                let typed: Vec<&str> = texts().filter(|text| !text.contains('\0')).collect();
                let odd = texts().any(|text| text.contains('\0'));
                (Box::new(typed), odd)
            }
            Affinity::Integer => {
                let typed: Vec<i64> = self.integers.iter().copied().collect();
                (Box::new(typed), !self.reals.is_empty() || texts().next().is_some())
            }
            Affinity::Real => {
                let mut typed = self.reals.clone();
                typed.extend(self.integers.iter().map(|integer| *integer as f64));
                (Box::new(typed), texts().next().is_some())
            }
        }
    }
}

impl PostgresRowSnapshot {
    fn connection(&self) -> DbResult<&BlockingClient> {
        self.connection.as_ref().ok_or_else(|| DbError::Invalid("the snapshot has ended".into()))
    }

    fn table(&self, name: &str) -> DbResult<TableColumns<'static>> {
        let shape = self
            .shapes
            .iter()
            .find(|shape| shape.name == name)
            .ok_or_else(|| DbError::Invalid(format!("{name} is not a registry table")))?;
        let names = shape.columns.iter().map(|column| column.name.clone()).collect();
        Ok(TableColumns { shape, names })
    }

    /// Runs `sql` through a cursor of its own, calling `each` with every row until it says
    /// stop; the cursor is closed however the reading ends but by an error (which aborts
    /// the transaction).
    fn stream(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
        each: &mut dyn FnMut(&Row) -> Flow,
    ) -> DbResult<()> {
        let connection = self.connection()?;
        let client = connection.client();
        let number = self.cursors.get();
        self.cursors.set(number + 1);
        let cursor = format!("lvbak_snapshot_{number}");
        connection.wait(client.execute(&format!("DECLARE {cursor} NO SCROLL CURSOR FOR {sql}"), parameters))?;
        let fetch = connection.wait(client.prepare(&format!("FETCH {FETCH_ROWS} FROM {cursor}")))?;
        let mut rows = connection.wait(client.query(&fetch, &[]))?;
        loop {
            if rows.len() < FETCH_ROWS {
                rows.iter().any(|row| each(row).is_break());
                break;
            }
            // The next chunk is asked for before this one is handed out (`join` polls the
            // fetch first, which sends it), so the database reads it meanwhile. tokio-postgres
            // passes an answer on through a channel of one message buffer, so the hand-out
            // yields every few rows and `join` drains that channel: without it the database
            // waited for each chunk to be handed out before it could send the next (an export
            // of 100,000 characters spent 18 ms in each FETCH of 2,000 rows).
            let handed_out = async {
                for (number, row) in rows.iter().enumerate() {
                    if each(row).is_break() {
                        return true;
                    }
                    if number % YIELD_EVERY_ROWS == YIELD_EVERY_ROWS - 1 {
                        tokio::task::yield_now().await;
                    }
                }
                false
            };
            let (next, stopped) = connection.wait(futures::future::join(client.query(&fetch, &[]), handed_out));
            let next = next?;
            if stopped {
                break;
            }
            rows = next;
        }
        connection.wait(client.batch_execute(&format!("CLOSE {cursor}")))?;
        Ok(())
    }

    /// Hands out the rows `sql` selects (`select_list`'s columns) that `keep` keeps; how
    /// many `each` took before it said stop (as SQLite's count: the row it stopped at is
    /// not counted).
    fn scan_rows(
        &self,
        table: &TableColumns<'_>,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
        keep: &dyn Fn(&PostgresRow<'_>) -> bool,
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64> {
        let mut count = 0;
        self.stream(sql, parameters, &mut |row| {
            let row = PostgresRow::new(row, table);
            if !keep(&row) {
                return Flow::Continue(());
            }
            let flow = each(&table.names, &row);
            if flow.is_continue() {
                count += 1;
            }
            flow
        })?;
        Ok(count)
    }
}

impl RowSnapshot for PostgresRowSnapshot {
    fn scan_held_row_ids(&self, user_id: &str, each: &mut dyn FnMut(&'static str, &str) -> Flow) -> DbResult<()> {
        for spec in TABLES.iter().filter(|spec| spec.primary_key == ["id"]) {
            let table = self.table(spec.name)?;
            let sql = format!(
                "SELECT t.id, m.original_id FROM {} t LEFT JOIN lvbak_id_map m \
                 ON m.user_id = $1 AND m.table_name = $2 AND m.new_id = t.id \
                 WHERE {} AND t.id IS NOT NULL ORDER BY t.id, m.original_id",
                quoted(spec.name),
                owned_condition(spec, &table, false)?
            );
            let mut stopped = false;
            let mut last: Option<String> = None;
            self.stream(&sql, &[&user_id, &spec.name], &mut |row| {
                let (Ok(id), Ok(original)) = (row.try_get::<_, &str>(0), row.try_get::<_, Option<&str>>(1)) else {
                    return Flow::Continue(());
                };
                if last.as_deref() != Some(id) {
                    if each(spec.name, id).is_break() {
                        stopped = true;
                        return Flow::Break(());
                    }
                    last = Some(id.to_string());
                }
                if let Some(original) = original {
                    if each(spec.name, original).is_break() {
                        stopped = true;
                        return Flow::Break(());
                    }
                }
                Flow::Continue(())
            })?;
            if stopped {
                return Ok(());
            }
        }
        Ok(())
    }

    fn scan_owned_rows(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64> {
        let table = self.table(spec.name)?;
        let sql = format!(
            "SELECT {} FROM {} t WHERE {}{}",
            select_list(&table),
            quoted(spec.name),
            owned_condition(spec, &table, !self.sees_open_imports)?,
            ""
        );
        self.scan_rows(&table, &sql, &[&user_id], &|_| true, each)
    }

    fn scan_owned_rows_where(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        key: RowKey,
        values: &[String],
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64> {
        let table = self.table(spec.name)?;
        let owned = owned_condition(spec, &table, !self.sees_open_imports)?;
        // In no order, as SQLite's (its plan's): sorting 100,000 characters by key spilled
        // 100 MB to disk and took a third of an export.
        let (select, order) = (select_list(&table), "");
        let name = quoted(spec.name);
        match key {
            RowKey::Column(column) => {
                let (index, affinity) = table.affinity(column)?;
                let wanted = Wanted::of(affinity, values)?;
                let (typed, odd) = wanted.typed(affinity);
                let column = quoted(column);
                let mut matched = format!("t.{column} = ANY($2)");
                if odd {
                    let key = table.names[index].replace('\'', "''");
                    matched = format!("({matched} OR (t.{column} IS NULL AND t.{ODD_COLUMN} ? '{key}'))");
                }
                let sql = format!("SELECT {select} FROM {name} t WHERE {owned} AND {matched}{order}");
                let keep = |row: &PostgresRow<'_>| wanted.contains(row.value(index));
                self.scan_rows(&table, &sql, &[&user_id, &*typed], &keep, each)
            }
            RowKey::JsonKey { column, key } => {
                if !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    return Err(DbError::Invalid(format!("{key:?} is not a plain JSON key")));
                }
                let (index, _) = table.affinity(column)?;
                // PostgreSQL 15 cannot ask whether text is JSON without failing the
                // statement on text that is not (`IS JSON` is 16's), so the statement keeps
                // only the rows whose text could hold the key (it names it, or has an escape
                // that could spell it) and each is read here as SQLite reads it
                // (`json_text_under`): text that is not JSON does not match.
                let column = quoted(column);
                let matched = format!("(strpos(t.{column}, '\"{key}\"') > 0 OR strpos(t.{column}, '\\') > 0)");
                let sql = format!("SELECT {select} FROM {name} t WHERE {owned} AND {matched}{order}");
                let wanted: HashSet<&str> = values.iter().map(String::as_str).collect();
                let keep = |row: &PostgresRow<'_>| match row.value(index) {
                    RowValue::Text(text) => json_text_under(text, key).is_some_and(|value| wanted.contains(&*value)),
                    _ => false,
                };
                self.scan_rows(&table, &sql, &[&user_id], &keep, each)
            }
        }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
