//! A run of new rows written by one binary `COPY` in a savepoint: when one of them was
//! there already (a key, or another unique index's value) the savepoint takes the `COPY`
//! back whole, `insert.rs` inserts the run by `INSERT … ON CONFLICT` instead, and so it
//! does the table's later runs of the same kind for the rest of the import (a re-import
//! meets its rows at every turn: it pays for one `COPY` per table). A `COPY` skips the
//! `INSERT`'s per-statement planning, its arrays and its speculative insertion: 100,000
//! characters took 1.58 s of `INSERT`s (binding included) and take 0.95 s of `COPY`s.
//!
//! The run's rows are placed and encoded a chunk at a time while the `COPY` is open, each
//! chunk sent as soon as it is made: PostgreSQL writes one chunk while the import's thread
//! makes the next (the whole run made first, then sent, left PostgreSQL idle for the
//! making and the thread idle for the writing).

use bytes::BytesMut;
use futures::SinkExt as _;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{quoted, DbError, DbResult, Plan, PostgresRowApplier};
use crate::policy::rows::AlignedRow;
use crate::storage::postgres::values::Typed;
use lvbak_core::registry::TableSpec;

/// The fewest rows of a run written by `COPY` (below, the savepoint's round trips cost more
/// than the `INSERT`'s planning saves).
const COPY_AT_LEAST: usize = 64;

/// Bytes of encoded rows sent to PostgreSQL at a time (a run of 1,000 characters of 1 KiB
/// goes in eight chunks).
const CHUNK_BYTES: usize = 128 * 1024;

/// Binary `COPY`'s header: the signature, no flags, no extension.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Whose ids a run of rows has: the archive's, or new ones of copies (a `COPY` meets
/// existing rows in the one without telling about the other: the id map's copies from an
/// earlier import are there, fresh ones are not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum RunKind {
    Archive,
    Copies,
}

/// What a `COPY` wrote of a run: every row it did not refuse.
pub(super) struct CopiedRun {
    pub(super) inserted: u64,
    /// The bytes the inserted rows count for.
    pub(super) bytes: u64,
    /// The refused rows (a key the key column cannot hold), by place in the run.
    pub(super) refused: Vec<usize>,
}

/// The binary `COPY` of a run of rows of `spec` that have `columns`.
fn copy_sql(spec: &TableSpec, plan: &Plan, columns: &[usize]) -> String {
    let names: Vec<String> = columns.iter().map(|&index| quoted(&plan.names[index])).collect();
    format!("COPY {} ({}, lvbak_import, lvbak_odd) FROM STDIN (FORMAT binary)", quoted(spec.name), names.join(", "))
}

/// One field of binary `COPY`: its length (-1: NULL), then `value` in `ty`'s binary form,
/// as `postgres-types` writes it for a statement's parameters.
fn put_field(data: &mut BytesMut, value: &impl ToSql, ty: &Type) -> DbResult<()> {
    let length_at = data.len();
    data.extend_from_slice(&[0; 4]);
    let length = match value.to_sql(ty, data).map_err(|error| DbError::Invalid(error.to_string()))? {
        IsNull::Yes => -1,
        IsNull::No => {
            i32::try_from(data.len() - length_at - 4).map_err(|_| DbError::Invalid("a value over 2 GiB".into()))?
        }
    };
    data[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// One row in binary `COPY`'s form: the field count, then each placed value (`BIGINT`,
/// `DOUBLE PRECISION`, `TEXT`), the import's number and the odd values' object (`JSONB`,
/// whose binary form `postgres-types` writes only for serde's values: a version byte, 1,
/// then the text).
fn put_row(data: &mut BytesMut, placed: &[Typed], import_id: i64, odd: Option<&str>) -> DbResult<()> {
    let fields = i16::try_from(placed.len() + 2).map_err(|_| DbError::Invalid("too many columns".into()))?;
    data.extend_from_slice(&fields.to_be_bytes());
    for value in placed {
        match value {
            Typed::Integer(integer) => put_field(data, integer, &Type::INT8)?,
            Typed::Real(real) => put_field(data, real, &Type::FLOAT8)?,
            Typed::Text(text) => put_field(data, text, &Type::TEXT)?,
        }
    }
    put_field(data, &import_id, &Type::INT8)?;
    match odd {
        None => put_field(data, &None::<&str>, &Type::JSONB),
        Some(odd) => {
            let length = i32::try_from(odd.len() + 1).map_err(|_| DbError::Invalid("a value over 2 GiB".into()))?;
            data.extend_from_slice(&length.to_be_bytes());
            data.extend_from_slice(&[1]);
            data.extend_from_slice(odd.as_bytes());
            Ok(())
        }
    }
}

impl PostgresRowApplier {
    /// Writes `run` (rows of `spec` that have `columns`, whose key is column `key`) by
    /// `COPY` if it is long enough and no `COPY` of this table's runs of `kind` met an
    /// existing row yet: what it wrote, or `None` when it wrote nothing (too short, or a
    /// row was there already: the run goes by `INSERT`).
    pub(super) fn copied(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        kind: RunKind,
        columns: &[usize],
        key: usize,
        run: &[&AlignedRow],
    ) -> DbResult<Option<CopiedRun>> {
        if run.len() < COPY_AT_LEAST || self.copy_met_existing.contains(&(spec.name, kind)) {
            return Ok(None);
        }
        let sql = copy_sql(spec, plan, columns);
        let sink = self.db.wait(async {
            let client = self.db.client();
            let statement = self.db.cached().prepare_cached(&sql).await?;
            let (savepoint, sink) =
                futures::future::join(client.batch_execute("SAVEPOINT lvbak_copy"), client.copy_in(&statement)).await;
            savepoint?;
            sink
        })?;
        let mut sink = Box::pin(sink);
        let mut copied = CopiedRun { inserted: 0, bytes: 0, refused: Vec::new() };
        let mut data = BytesMut::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
        data.extend_from_slice(BINARY_HEADER);
        for (place, row) in run.iter().enumerate() {
            // An error here drops the sink unfinished: the `COPY` fails, and so does the
            // batch (its caller takes the transaction or the batch's savepoint back).
            let Some((placed, odd)) = self.placed_row(plan, columns, key, row)? else {
                copied.refused.push(place);
                continue;
            };
            put_row(&mut data, &placed, self.import_id, odd.as_deref())?;
            copied.inserted += 1;
            copied.bytes += plan.charge.bytes(row);
            if data.len() >= CHUNK_BYTES {
                self.db.wait(sink.send(data.split().freeze()))?;
            }
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        let (written, released) = self.db.wait(async {
            sink.send(data.freeze()).await?;
            // The release goes in the same round trip; after a failed `COPY` it fails too
            // (the transaction is aborted) and the savepoint is still there to go back to.
            let (written, released) = futures::future::join(
                sink.as_mut().finish(),
                self.db.client().batch_execute("RELEASE SAVEPOINT lvbak_copy"),
            )
            .await;
            Ok::<_, tokio_postgres::Error>((written, released))
        })?;
        match written {
            Ok(_) => {
                released?;
                Ok(Some(copied))
            }
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                self.batch("ROLLBACK TO SAVEPOINT lvbak_copy; RELEASE SAVEPOINT lvbak_copy")?;
                self.copy_met_existing.insert((spec.name, kind));
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }
}
