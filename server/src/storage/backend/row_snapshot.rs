//! [`RowSnapshot`]: one account's rows read at one moment, however long the reading takes
//! — what an export streams and what the `held-rows` answer hashes — and the seam a second
//! backend plugs into. The registry says which rows are a user's (its ownership rules);
//! a backend reads them with its own statements and hands values out as [`RowValue`], so no
//! caller sees its types.
//!
//! What every backend guarantees: every table read through one snapshot sees the same
//! moment; only the rows the registry says are the user's are handed out; values keep the
//! storage class they were stored with (an export writes them back as they came).

use std::ops::ControlFlow;

use lvbak_core::closure::RowKey;
use lvbak_core::registry::TableSpec;

use crate::storage::sqlite::{DbError, DbResult};

pub use lvbak_core::row_hash::RowValue;

/// One row being read; values are taken column by column, without copying.
pub(crate) trait StoredRow {
    /// The value of column `index` (text that is not UTF-8 is handed out as a blob).
    fn value(&self, index: usize) -> RowValue<'_>;
}

/// What a reader's callback says: go on, or stop here.
pub(crate) type Flow = ControlFlow<()>;

/// A consistent reading of the rows of the registry tables (see the module documentation).
pub(crate) trait RowSnapshot: Send {
    /// Calls `each(table, id)` with the id of every row of a user that an import into the
    /// account would skip: the user's rows of every registry table keyed by `id` (settings
    /// are merged, never skipped), and the archive ids of rows an earlier import copied
    /// under new ids while the copy is still there, table by table in registry order.
    fn scan_held_row_ids(&self, user_id: &str, each: &mut dyn FnMut(&'static str, &str) -> Flow) -> DbResult<()>;
    /// Calls `each` with the column names and each row of `spec` owned by `user_id`; how
    /// many rows there were.
    fn scan_owned_rows(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64>;
    /// [`RowSnapshot::scan_owned_rows`] of only the rows whose `key` (a column, or a key of
    /// the JSON object a column holds) is one of `values` (a selective export and its
    /// closure). This default reads every owned row and keeps the matching ones; a backend
    /// answers it with its indexes instead.
    fn scan_owned_rows_where(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        key: RowKey,
        values: &[String],
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64> {
        let wanted: std::collections::HashSet<&str> = values.iter().map(String::as_str).collect();
        let mut count = 0;
        self.scan_owned_rows(spec, user_id, &mut |columns, row| {
            let matches = |column: &str, found: &mut dyn FnMut(&str) -> bool| {
                let index = columns.iter().position(|c| c == column);
                match index.map(|index| row.value(index)) {
                    Some(RowValue::Text(text)) => found(text),
                    _ => false,
                }
            };
            let keep = match key {
                RowKey::Column(column) => matches(column, &mut |text| wanted.contains(text)),
                RowKey::JsonKey { column, key } => matches(column, &mut |text| {
                    serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|json| json.get(key).and_then(|v| v.as_str().map(|v| wanted.contains(v))))
                        .unwrap_or(false)
                }),
            };
            if !keep {
                return ControlFlow::Continue(());
            }
            count += 1;
            each(columns, row)
        })?;
        Ok(count)
    }
}

impl dyn RowSnapshot + '_ {
    /// [`RowSnapshot::scan_held_row_ids`] with a callback that may fail: its error stops the
    /// reading and is returned.
    pub(crate) fn held_row_ids<E: From<DbError>>(
        &self,
        user_id: &str,
        mut each: impl FnMut(&'static str, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut failed = None;
        self.scan_held_row_ids(user_id, &mut |table, id| stop_on_error(each(table, id), &mut failed))?;
        failed.map_or(Ok(()), Err)
    }

    /// [`RowSnapshot::scan_owned_rows`] with a callback that may fail: its error stops the
    /// reading and is returned.
    pub(crate) fn owned_rows<E: From<DbError>>(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        mut each: impl FnMut(&[String], &dyn StoredRow) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut failed = None;
        let count =
            self.scan_owned_rows(spec, user_id, &mut |columns, row| stop_on_error(each(columns, row), &mut failed))?;
        failed.map_or(Ok(count), Err)
    }

    /// [`RowSnapshot::scan_owned_rows_where`] with a callback that may fail.
    pub(crate) fn owned_rows_where<E: From<DbError>>(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        key: RowKey,
        values: &[String],
        mut each: impl FnMut(&[String], &dyn StoredRow) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut failed = None;
        let count = self.scan_owned_rows_where(spec, user_id, key, values, &mut |columns, row| {
            stop_on_error(each(columns, row), &mut failed)
        })?;
        failed.map_or(Ok(count), Err)
    }
}

/// Keeps a callback's error and says stop, or says go on.
fn stop_on_error<E>(result: Result<(), E>, failed: &mut Option<E>) -> Flow {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => {
            *failed = Some(error);
            ControlFlow::Break(())
        }
    }
}
