//! One account's rows copied from the data directory's SQLite database into PostgreSQL:
//! a thread of its own reads them table by table (`sqlite::copy_out`, chunks bounded in
//! rows and bytes) while this one writes each chunk (`postgres::copy_in`, rows already
//! there kept), one chunk waiting between them at most. After each chunk the tests' fault
//! point may hold the run (`LVBAK_FAULT_HOLD_AFTER=<table>`), to kill it half-way.

use std::ops::ControlFlow;

use anyhow::Context as _;

use crate::storage::postgres::PostgresStores;
use crate::storage::sqlite::copy_out::MovedTable;
use crate::storage::sqlite::schema::StoredValue;
use crate::storage::{Store, UserRecord};

/// Copies `user`'s rows of every table of `tables`; how many were written, and how many
/// were there already.
pub(super) fn copy_account(
    source: &Store,
    postgres: &PostgresStores,
    runtime: &tokio::runtime::Handle,
    user: &UserRecord,
    tables: &[MovedTable],
) -> anyhow::Result<(u64, u64)> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<(usize, Vec<Vec<StoredValue>>)>(1);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            source.db.copy_out(&user.id, tables, &mut |table, rows| match sender.send((table, rows)) {
                Ok(()) => ControlFlow::Continue(()),
                // The writer stopped (and says why).
                Err(_) => ControlFlow::Break(()),
            })
        });
        let (mut written, mut there) = (0, 0);
        let mut failure = None;
        for (table, rows) in receiver.iter() {
            let table = &tables[table];
            let count = rows.len() as u64;
            match runtime.block_on(postgres.copy_in(table, rows)) {
                Ok(inserted) => {
                    written += inserted;
                    there += count.saturating_sub(inserted);
                    crate::faults::committed_rows_of(table.name);
                }
                Err(error) => {
                    failure = Some(anyhow::Error::new(error).context(format!("cannot write rows of {}", table.name)));
                    break;
                }
            }
        }
        drop(receiver);
        let read = reader.join().map_err(|_| anyhow::anyhow!("the thread reading the rows panicked"))?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        read.context("cannot read the data directory's rows")?;
        Ok((written, there))
    })
}
