//! A selective export's rows: core's closure of the picked items, answered from one
//! snapshot of the account's rows ([`RowSnapshot`]), so it never reaches another account's.
//! The closure holds the chosen ids (a few bytes per row of the selection); rows themselves
//! are streamed by the export as for a full one.

use lvbak_core::closure::{closure, Closure, ClosureError, RowKey, RowSource, Selection};
use lvbak_core::registry::TableSpec;

use crate::storage::backend::row_snapshot::{RowSnapshot, RowValue};
use crate::storage::sqlite::DbError;
use crate::storage::Store;

/// The account's rows as core's closure asks for them.
struct AccountRows<'a> {
    snapshot: &'a dyn RowSnapshot,
    user_id: &'a str,
}

impl RowSource for AccountRows<'_> {
    type Error = DbError;

    fn rows_where(
        &mut self,
        table: &'static TableSpec,
        key: RowKey,
        values: &[String],
        wanted: &[&'static str],
        each: &mut dyn FnMut(&[Option<String>]),
    ) -> Result<(), DbError> {
        let mut positions: Option<Vec<Option<usize>>> = None;
        let mut out = Vec::with_capacity(wanted.len());
        self.snapshot.owned_rows_where(table, self.user_id, key, values, |columns, row| -> Result<(), DbError> {
            let positions = positions.get_or_insert_with(|| {
                wanted.iter().map(|name| columns.iter().position(|column| column == name)).collect()
            });
            out.clear();
            out.extend(positions.iter().map(|index| match index.map(|index| row.value(index)) {
                Some(RowValue::Text(text)) => Some(text.to_string()),
                Some(RowValue::Integer(number)) => Some(number.to_string()),
                _ => None,
            }));
            each(&out);
            Ok(())
        })?;
        Ok(())
    }
}

/// The closure of `selection` in `user_id`'s account, read from a snapshot of its own.
pub fn closure_in_account(
    store: &Store,
    user_id: &str,
    selection: &Selection,
) -> Result<Closure, ClosureError<DbError>> {
    closure_in(store.row_snapshot(), user_id, selection)
}

/// [`closure_in_account`] with the rows of the account's import still open: what a
/// selective restore checks what it added against before it ends.
pub(crate) fn closure_in_account_importing(
    store: &Store,
    user_id: &str,
    selection: &Selection,
) -> Result<Closure, ClosureError<DbError>> {
    closure_in(store.row_snapshot_seeing_open_imports(), user_id, selection)
}

fn closure_in(
    snapshot: Result<Box<dyn RowSnapshot>, DbError>,
    user_id: &str,
    selection: &Selection,
) -> Result<Closure, ClosureError<DbError>> {
    let snapshot = snapshot.map_err(ClosureError::Source)?;
    closure(&mut AccountRows { snapshot: snapshot.as_ref(), user_id }, selection)
}
