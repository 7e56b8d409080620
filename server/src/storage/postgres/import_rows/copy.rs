//! A run of new rows written by one binary `COPY` in a savepoint: when one of them was
//! there already (a key, or another unique index's value) the savepoint takes the `COPY`
//! back whole, `insert.rs` inserts the run by `INSERT … ON CONFLICT` instead, and so it
//! does the table's later runs of the same kind for the rest of the import (a re-import
//! meets its rows at every turn: it pays for one `COPY` per table). A `COPY` skips the
//! `INSERT`'s per-statement planning, its arrays and its speculative insertion: 100,000
//! characters took 1.58 s of `INSERT`s (binding included) and take 0.95 s of `COPY`s.

use bytes::{Bytes, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{quoted, DbError, DbResult, Plan, PostgresRowApplier};
use crate::storage::postgres::values::{OddJson, TypedColumn};
use lvbak_core::registry::TableSpec;

/// The fewest rows of a run written by `COPY` (below, the savepoint's round trips cost more
/// than the `INSERT`'s planning saves).
const COPY_AT_LEAST: usize = 64;

/// Whose ids a run of rows has: the archive's, or new ones of copies (a `COPY` meets
/// existing rows in the one without telling about the other: the id map's copies from an
/// earlier import are there, fresh ones are not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum RunKind {
    Archive,
    Copies,
}

/// The binary `COPY` of a run of rows of `spec` that have `columns`.
fn copy_sql(spec: &TableSpec, plan: &Plan, columns: &[usize]) -> String {
    let names: Vec<String> = columns.iter().map(|&index| quoted(&plan.names[index])).collect();
    format!("COPY {} ({}, lvbak_import, lvbak_odd) FROM STDIN (FORMAT binary)", quoted(spec.name), names.join(", "))
}

/// The rows (`values` by column, each row's `lvbak_import` and odd values' object) in binary
/// COPY's form: the signature, then each row's field count and each field's length (-1:
/// NULL) and bytes, then -1. Made whole and sent as one message: `binary_copy`'s writer
/// hands on every 4 KiB through a channel of one, a wake-up of the connection each.
fn binary_rows(values: &[TypedColumn], import_id: i64, odds: &[Option<String>]) -> DbResult<Bytes> {
    let types: Vec<Type> = values.iter().map(TypedColumn::value_type).chain([Type::INT8, Type::JSONB]).collect();
    let field_count = i16::try_from(types.len()).map_err(|_| DbError::Invalid("too many columns".into()))?;
    let mut data = BytesMut::with_capacity(1 << 16);
    data.extend_from_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
    for (row, odd) in odds.iter().enumerate() {
        data.extend_from_slice(&field_count.to_be_bytes());
        let odd = odd.as_deref().map(OddJson);
        let fields = values.iter().map(|column| column.value_at(row));
        for (field, ty) in fields.chain([&import_id as &(dyn ToSql + Sync), &odd]).zip(&types) {
            let length_at = data.len();
            data.extend_from_slice(&[0; 4]);
            let written = field.to_sql_checked(ty, &mut data).map_err(|error| DbError::Invalid(error.to_string()))?;
            let length = match written {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(data.len() - length_at - 4)
                    .map_err(|_| DbError::Invalid("a value over 2 GiB".into()))?,
            };
            data[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        }
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(data.freeze())
}

impl PostgresRowApplier {
    /// Writes a run of rows of `spec` (`values` of `columns`, and their odd values) by
    /// `COPY` if it is long enough and no `COPY` of this table's runs of `kind` met an
    /// existing row yet: whether every row went in (nothing did otherwise).
    pub(super) fn copied(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        kind: RunKind,
        columns: &[usize],
        values: &[TypedColumn],
        odds: &[Option<String>],
    ) -> DbResult<bool> {
        if odds.len() < COPY_AT_LEAST || self.copy_met_existing.contains(&(spec.name, kind)) {
            return Ok(false);
        }
        let sql = copy_sql(spec, plan, columns);
        let data = binary_rows(values, self.import_id, odds)?;
        let written = self.db.wait(async {
            use futures::SinkExt as _;
            let client = self.db.client();
            let statement = self.db.cached().prepare_cached(&sql).await?;
            let (savepoint, sink) =
                futures::future::join(client.batch_execute("SAVEPOINT lvbak_copy"), client.copy_in(&statement)).await;
            savepoint?;
            let mut sink = std::pin::pin!(sink?);
            sink.send(data).await?;
            sink.as_mut().finish().await
        });
        match written {
            Ok(_) => {
                self.batch("RELEASE SAVEPOINT lvbak_copy")?;
                Ok(true)
            }
            Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                self.batch("ROLLBACK TO SAVEPOINT lvbak_copy; RELEASE SAVEPOINT lvbak_copy")?;
                self.copy_met_existing.insert((spec.name, kind));
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }
}
