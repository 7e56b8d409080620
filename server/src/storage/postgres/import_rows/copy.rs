//! Runs of new rows written by binary `COPY` in a savepoint: when one of them was there
//! already (a key, or another unique index's value) the savepoint takes the `COPY` back
//! whole, its rows are inserted by `INSERT … ON CONFLICT` instead (`insert.rs`), and so are
//! the table's later runs of the same kind for the rest of the import (a re-import meets
//! its rows at every turn: it pays for one `COPY` per table). A `COPY` skips the `INSERT`'s
//! per-statement planning, its arrays and its speculative insertion: 100,000 characters
//! took 1.58 s of `INSERT`s (binding included) and take 0.95 s of `COPY`s.
//!
//! Rows are placed and encoded a chunk at a time while the `COPY` is open, each chunk sent
//! as soon as it is made, and the `COPY` stays open after the batch that started it: the
//! next batches of the same table and columns add their rows to it while PostgreSQL is
//! still writing the last ones, so it never waits for the import between batches (it did
//! for a third of the import). What it wrote is known only when it is finished
//! ([`PostgresRowApplier::settle_copy`]): before any other statement on the connection, at
//! a commit, once it holds [`OPEN_COPY_BYTES`], or when the import asks (`ImportRows::settle`).
//! Until then its rows are kept, charged to the quota as if all went in, and their counts
//! held back; a `COPY` that met an existing row is redone by `INSERT`s from the rows kept,
//! which give the counts.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::SinkExt as _;
use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::TableSpec;
use serde_json::{Map, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::CopyInSink;

use super::{quoted, DbError, DbResult, Plan, PostgresRowApplier};
use crate::policy::ids::NEW_ID_BYTES;
use crate::policy::rows::AlignedRow;
use crate::storage::postgres::values::{fitting, odd_object, place, Fitting, Typed};

/// The fewest rows of a run that start a `COPY` (below, the savepoint's round trips cost
/// more than the `INSERT`'s planning saves); any run joins one already open.
const COPY_AT_LEAST: usize = 64;

/// Bytes of encoded rows sent to PostgreSQL at a time (a run of 1,000 characters of 1 KiB
/// goes in eight chunks).
const CHUNK_BYTES: usize = 128 * 1024;

/// Encoded bytes after which an open `COPY` takes no more runs: its rows are kept until it
/// is finished (in memory about twice this, and a run), so that one that met an existing
/// row can be redone.
const OPEN_COPY_BYTES: usize = 4 * 1024 * 1024;

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

/// A `COPY` that was not finished yet, with the rows sent to it.
pub(super) struct OpenCopy {
    spec: &'static TableSpec,
    kind: RunKind,
    columns: Vec<usize>,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    /// Encoded rows not sent yet (less than a chunk).
    data: BytesMut,
    /// Encoded bytes sent so far.
    sent: usize,
    /// The rows written, for a redo (then freed by the applier's `RowDisposer`).
    rows: Vec<AlignedRow>,
    /// What they count for, charged already as if every one went in.
    bytes: u64,
    /// The most they could count for once redone (some as copies under new ids).
    most: u64,
}

impl OpenCopy {
    fn new(spec: &'static TableSpec, kind: RunKind, columns: &[usize], sink: CopyInSink<Bytes>) -> Self {
        let mut data = BytesMut::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
        data.extend_from_slice(BINARY_HEADER);
        Self {
            spec,
            kind,
            columns: columns.to_vec(),
            sink: Box::pin(sink),
            data,
            sent: 0,
            rows: Vec::new(),
            bytes: 0,
            most: 0,
        }
    }

    pub(super) fn table(&self) -> &'static str {
        self.spec.name
    }

    /// The rows not sent yet and the end of the `COPY`'s data.
    fn last_data(&mut self) -> Bytes {
        self.data.extend_from_slice(&(-1i16).to_be_bytes());
        self.data.split().freeze()
    }
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

/// A value in binary `COPY`'s form.
fn put_typed(data: &mut BytesMut, value: &Typed) -> DbResult<()> {
    match value {
        Typed::Integer(integer) => put_field(data, integer, &Type::INT8),
        Typed::Real(real) => put_field(data, real, &Type::FLOAT8),
        Typed::Text(text) => put_field(data, text, &Type::TEXT),
    }
}

/// The odd values' object (`JSONB`, whose binary form `postgres-types` writes only for
/// serde's values: a version byte, 1, then the text).
fn put_odd(data: &mut BytesMut, odd: Option<&str>) -> DbResult<()> {
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
    /// Writes the rows of `rows` at `run` (rows of `spec` that have `columns`, whose key is
    /// column `key`) by `COPY`, when a `COPY` of the same table, kind and columns is open
    /// or the run may start one (long enough, and no `COPY` of this table's runs of `kind`
    /// met an existing row yet): how many rows it refused (a key the key column cannot
    /// hold); the others are taken out of `rows` and counted when the `COPY` is settled.
    /// `None` when it wrote nothing: the run goes by `INSERT`.
    // The run as `insert_rows` has it: its table, plan, kind, columns, key and rows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copied(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        kind: RunKind,
        columns: &[usize],
        key: usize,
        rows: &mut [AlignedRow],
        run: &[usize],
    ) -> DbResult<Option<u64>> {
        // A full one is finished here, with the next rows at hand: PostgreSQL waits only for
        // the round trips that end it and start the next.
        let joins = |open: &OpenCopy| {
            open.spec.name == spec.name && open.kind == kind && open.columns == columns && open.sent < OPEN_COPY_BYTES
        };
        if !self.open_copy.as_ref().is_some_and(joins) {
            if run.len() < COPY_AT_LEAST || self.copy_met_existing.contains(&(spec.name, kind)) {
                return Ok(None);
            }
            match self.switch_copy(spec, plan, kind, columns) {
                Ok(Some(open)) => self.open_copy = Some(open),
                Ok(None) => return Ok(None),
                Err(error) => {
                    self.abandon_transaction();
                    return Err(error);
                }
            }
        }
        let Some(mut open) = self.open_copy.take() else { return Ok(None) };
        // An error from here on drops the sink unfinished: the `COPY` fails, and so does the
        // batch (its caller takes the transaction or the batch's savepoint back).
        let mut refused = 0;
        let (mut bytes, mut most) = (0, 0);
        for &position in run {
            let row = &mut rows[position];
            if !self.put_row(&mut open.data, plan, columns, key, row)? {
                refused += 1;
                continue;
            }
            let charge = plan.charge.bytes(row);
            bytes += charge;
            most += charge + NEW_ID_BYTES;
            open.rows.push(std::mem::take(row));
            if open.data.len() >= CHUNK_BYTES {
                open.sent += open.data.len();
                self.db.wait(open.sink.send(open.data.split().freeze()))?;
            }
        }
        self.usage.charge(bytes, false)?;
        self.bytes_in_transaction += bytes;
        open.bytes += bytes;
        open.most += most;
        self.open_copy = Some(open);
        if !self.copy_stays_open {
            self.settle_copy()?;
        }
        Ok(Some(refused))
    }

    /// Puts `row` in binary `COPY`'s form into `data`: the field count, each of its
    /// `columns` where PostgreSQL keeps it (`values::place`; one whose class fits its column
    /// written straight from the row, `values::fitting`), the import's number and the odd
    /// values' object. False, and nothing put, when its key (column `key`) is a value the
    /// key column cannot hold (the row is refused).
    fn put_row(
        &self,
        data: &mut BytesMut,
        plan: &Plan,
        columns: &[usize],
        key: usize,
        row: &AlignedRow,
    ) -> DbResult<bool> {
        let start = data.len();
        let fields = i16::try_from(columns.len() + 2).map_err(|_| DbError::Invalid("too many columns".into()))?;
        data.extend_from_slice(&fields.to_be_bytes());
        let mut odd = Map::new();
        for &index in columns {
            let (affinity, value) = (plan.affinities[index], row[index].as_ref().unwrap_or(&Value::Null));
            match fitting(affinity, value) {
                Some(Fitting::Null) => data.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(Fitting::Integer(integer)) => put_field(data, &integer, &Type::INT8)?,
                Some(Fitting::Real(real)) => put_field(data, &real, &Type::FLOAT8)?,
                Some(Fitting::Text(text)) => put_field(data, &text, &Type::TEXT)?,
                None => {
                    let (typed, entry) = place(affinity, self.stored_values.stored(affinity, value)?);
                    if let Some(entry) = entry {
                        odd.insert(plan.names[index].clone(), entry);
                    }
                    put_typed(data, &typed)?;
                }
            }
        }
        if odd.contains_key(&plan.names[key]) {
            data.truncate(start);
            return Ok(false);
        }
        put_field(data, &self.import_id, &Type::INT8)?;
        put_odd(data, odd_object(odd).as_deref())?;
        Ok(true)
    }

    /// Opens a `COPY` of rows of `spec` that have `columns`, in a savepoint of its own
    /// (taken here if `savepoint`, else already).
    fn start_copy(
        &self,
        spec: &'static TableSpec,
        plan: &Plan,
        kind: RunKind,
        columns: &[usize],
        savepoint: bool,
    ) -> DbResult<OpenCopy> {
        let sql = copy_sql(spec, plan, columns);
        let sink = self.db.wait(async {
            let client = self.db.client();
            let statement = self.db.cached().prepare_cached(&sql).await?;
            let saved = async {
                match savepoint {
                    true => client.batch_execute("SAVEPOINT lvbak_copy").await,
                    false => Ok(()),
                }
            };
            let (saved, sink) = futures::future::join(saved, client.copy_in(&statement)).await;
            saved?;
            sink
        })?;
        Ok(OpenCopy::new(spec, kind, columns, sink))
    }

    /// What the rows of the open `COPY` could count for beyond what they were charged.
    pub(super) fn open_copy_headroom(&self) -> u64 {
        self.open_copy.as_ref().map_or(0, |open| open.most - open.bytes)
    }

    /// Finishes the open `COPY`, if any: its counts are held for `ImportRows::settle` (or
    /// the next batch of its table); when it met an existing row its rows are redone by
    /// `INSERT`. On an error the transaction is taken back, as a failed batch's is.
    pub(super) fn settle_copy(&mut self) -> DbResult<()> {
        let settled = self.finish_open_copies();
        if settled.is_err() {
            self.abandon_transaction();
        }
        settled
    }

    fn finish_open_copies(&mut self) -> DbResult<()> {
        // A redo may open a `COPY` of copies under new ids, finished in the next turn.
        while let Some(mut open) = self.open_copy.take() {
            let data = open.last_data();
            let (written, released) = self.db.wait(async {
                open.sink.send(data).await?;
                // The release goes in the same round trip; after a failed `COPY` it fails
                // too (the transaction is aborted) and the savepoint is still there.
                let (written, released) = futures::future::join(
                    open.sink.as_mut().finish(),
                    self.db.client().batch_execute("RELEASE SAVEPOINT lvbak_copy"),
                )
                .await;
                Ok::<_, tokio_postgres::Error>((written, released))
            })?;
            self.finished(open, written, released)?;
        }
        Ok(())
    }

    /// Finishes the open `COPY` and starts one of rows of `spec` that have `columns`, the
    /// new savepoint taken in the same round trip as the end of the old `COPY`: the new
    /// one, or `None` when the run goes by `INSERT` (the finished one met an existing row of
    /// this table and kind). (Not the new `COPY` itself: one refused in a transaction a
    /// failed `COPY` aborted leaves the connection out of step.)
    fn switch_copy(
        &mut self,
        spec: &'static TableSpec,
        plan: &Plan,
        kind: RunKind,
        columns: &[usize],
    ) -> DbResult<Option<OpenCopy>> {
        let Some(mut open) = self.open_copy.take() else {
            return self.start_copy(spec, plan, kind, columns, true).map(Some);
        };
        let data = open.last_data();
        let (written, released, saved) = self.db.wait(async {
            open.sink.send(data).await?;
            let client = self.db.client();
            // After a failed `COPY` the release and the new savepoint fail too.
            Ok::<_, tokio_postgres::Error>(
                futures::future::join3(
                    open.sink.as_mut().finish(),
                    client.batch_execute("RELEASE SAVEPOINT lvbak_copy"),
                    client.batch_execute("SAVEPOINT lvbak_copy"),
                )
                .await,
            )
        })?;
        let finished_whole = written.is_ok();
        self.finished(open, written, released)?;
        if finished_whole {
            saved?;
            return self.start_copy(spec, plan, kind, columns, false).map(Some);
        }
        if self.copy_met_existing.contains(&(spec.name, kind)) {
            return Ok(None);
        }
        self.start_copy(spec, plan, kind, columns, true).map(Some)
    }

    /// Counts a finished `COPY`'s rows, or redoes them when it met an existing row.
    fn finished(
        &mut self,
        open: OpenCopy,
        written: Result<u64, tokio_postgres::Error>,
        released: Result<(), tokio_postgres::Error>,
    ) -> DbResult<()> {
        match written {
            Ok(_) => {
                released?;
                let inserted = open.rows.len() as u64;
                self.growth.added(open.spec.name, inserted);
                let remapped = if open.kind == RunKind::Copies { inserted } else { 0 };
                self.hold_counts(
                    open.spec.name,
                    TableCounts { imported: inserted, remapped, bytes: open.bytes, ..TableCounts::default() },
                );
                self.disposer.dispose(open.rows);
                Ok(())
            }
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                self.batch("ROLLBACK TO SAVEPOINT lvbak_copy; RELEASE SAVEPOINT lvbak_copy")?;
                self.copy_met_existing.insert((open.spec.name, open.kind));
                self.usage.refund(open.bytes);
                self.bytes_in_transaction = self.bytes_in_transaction.saturating_sub(open.bytes);
                self.redo(open.spec, open.kind, open.rows)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Inserts the rows of a `COPY` that met an existing row, as a batch's would have been
    /// had it not gone by `COPY`: archive ids first, those another account has copied under
    /// new ids; copies under new ids as they are.
    fn redo(&mut self, spec: &'static TableSpec, kind: RunKind, mut rows: Vec<AlignedRow>) -> DbResult<()> {
        let plan = self.plan(spec)?;
        let all: Vec<usize> = (0..rows.len()).collect();
        let stays_open = std::mem::replace(&mut self.copy_stays_open, false);
        let redone = match kind {
            RunKind::Archive => self.insert_fresh(spec, &plan, &mut rows, &all, Vec::new()),
            RunKind::Copies => self.insert_rows(spec, &plan, &mut rows, &all, RunKind::Copies).map(|mut placed| {
                placed.remapped = placed.inserted;
                placed
            }),
        };
        self.copy_stays_open = stays_open;
        let placed = redone?;
        self.usage.charge(placed.bytes, false)?;
        self.bytes_in_transaction += placed.bytes;
        self.growth.added(spec.name, placed.inserted);
        let counts = placed.counts(rows.len());
        self.hold_counts(spec.name, counts);
        Ok(())
    }

    /// Keeps counts of rows of `table` whose outcome became known after their batch
    /// returned.
    fn hold_counts(&mut self, table: &'static str, counts: TableCounts) {
        match self.held_counts.iter_mut().find(|(held, _)| *held == table) {
            Some((_, held)) => held.add(counts),
            None => self.held_counts.push((table, counts)),
        }
    }

    /// The held counts of `table`, handed out.
    pub(super) fn take_held_counts(&mut self, table: &str) -> TableCounts {
        match self.held_counts.iter().position(|(held, _)| *held == table) {
            Some(place) => self.held_counts.swap_remove(place).1,
            None => TableCounts::default(),
        }
    }
}
