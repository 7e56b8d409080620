//! Writing one account into a `.lvbak`, on blocking threads: a scanner thread reads the
//! tables from a SQLite snapshot and encodes NDJSON, while this thread deflates and writes
//! the ZIP, so the two overlap on two cores. Then files (stored, deduplicated, missing ones
//! reported), vectors with real `vector_b64`, the secrets entries, and the stats trailer.
//! A selective export (`only`: a closure of picked items) writes every entry a full one
//! does, holding only the closure's rows, the files those rows name and the vectors of
//! those rows; no settings, no completion sound, never API keys.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use lvbak_core::closure::{Closure, ClosureError, Pick, RowKey};
use lvbak_core::registry::{table_spec, TableSpec, EXPORT_ORDER, VECTOR_TABLES};
use lvbak_core::{
    encode_vector, table_entry_name, vector_entry_name, write_js_number, ArchiveWriter, EmbeddingConfig, EntrySize,
    FileBucket, FormatError, Manifest, ManifestStats,
};
use tokio::runtime::Handle;

use super::plan::ExportPlan;
use super::rows::{is_valid_entry, write_json_string, FileRef, RowEncoder};
use crate::progress::Event;
use crate::storage::backend::row_snapshot::StoredRow;
use crate::storage::backend::vector_storage::{VectorError, VectorRow};
use crate::storage::sqlite::DbError;
use crate::storage::SourceKind;
use crate::storage::Store;

/// NDJSON is handed from the scanner to the writer in pieces of about this size.
const PIECE_BYTES: usize = 256 * 1024;
/// Pieces in flight between the two threads.
const PIECES_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Vectors(#[from] VectorError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the export was stopped")]
    Stopped,
    /// A selective export whose picks the account no longer holds (named).
    #[error("nothing of {0} is in the account")]
    NotInAccount(String),
}

impl ExportError {
    /// Whether the export ended because its reader went away.
    pub fn is_disconnect(&self) -> bool {
        let broken = |error: &std::io::Error| {
            matches!(error.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::TimedOut)
        };
        match self {
            Self::Io(error) => broken(error),
            Self::Format(FormatError::Io(error)) => broken(error),
            Self::Stopped => true,
            _ => false,
        }
    }

    /// Whether the export stopped because its reader stayed connected but stopped reading.
    pub fn is_stall(&self) -> bool {
        let stalled = |error: &std::io::Error| error.kind() == std::io::ErrorKind::TimedOut;
        match self {
            Self::Io(error) | Self::Format(FormatError::Io(error)) => stalled(error),
            _ => false,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Format(error) => error.code(),
            Self::NotInAccount(_) => "not_in_account",
            _ if self.is_disconnect() => "client_gone",
            _ => "internal",
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub rows: u64,
    pub tables: BTreeMap<String, u64>,
    pub files: u64,
    pub missing_files: Vec<String>,
    pub vectors: BTreeMap<String, u64>,
    pub secrets: u64,
}

impl ExportReport {
    /// What an export that wrote `bytes` in `seconds` reports (HTTP `complete`, CLI `--json`).
    pub fn outcome(self, bytes: u64, seconds: f64) -> crate::progress::ExportOutcome {
        crate::progress::ExportOutcome {
            rows: self.rows,
            files: self.files,
            missing_files: self.missing_files,
            vectors: self.vectors,
            secrets: self.secrets,
            bytes,
            seconds,
        }
    }
}

enum Piece {
    Table(&'static TableSpec),
    Lines { bytes: Vec<u8>, rows: u64 },
}

/// Reads every registry table of the user in export order (only the rows of `only`, when
/// given) and sends NDJSON pieces; returns the files the rows name.
fn scan_tables(
    store: &Store,
    user_id: &str,
    only: Option<&Closure>,
    line_cap: u64,
    pieces: SyncSender<Piece>,
) -> Result<Vec<FileRef>, ExportError> {
    let scan = store.row_snapshot()?;
    let mut files = Vec::new();
    for name in EXPORT_ORDER {
        let spec = table_spec(name).ok_or_else(|| DbError::Invalid(format!("{name} is not in the registry")))?;
        pieces.send(Piece::Table(spec)).map_err(|_| ExportError::Stopped)?;
        let mut encoder: Option<RowEncoder> = None;
        let mut bytes = Vec::with_capacity(PIECE_BYTES + 64 * 1024);
        let mut rows = 0;
        let mut each_row = |columns: &[String], row: &dyn StoredRow| -> Result<(), ExportError> {
            let encoder = encoder.get_or_insert_with(|| RowEncoder::new(spec, columns, line_cap));
            if encoder.encode(|index| row.value(index), &mut bytes)? {
                rows += 1;
                encoder.files_of(|index| row.value(index), &mut files);
            }
            if bytes.len() >= PIECE_BYTES {
                let full = std::mem::replace(&mut bytes, Vec::with_capacity(PIECE_BYTES + 64 * 1024));
                pieces.send(Piece::Lines { bytes: full, rows }).map_err(|_| ExportError::Stopped)?;
                rows = 0;
            }
            Ok(())
        };
        match only {
            None => {
                scan.owned_rows(spec, user_id, each_row)?;
            }
            Some(closure) => {
                let ids: Vec<String> = closure.ids(name).map(str::to_string).collect();
                if let (Some(key), false) = (Closure::key_column(name), ids.is_empty()) {
                    scan.owned_rows_where(spec, user_id, RowKey::Column(key), &ids, &mut each_row)?;
                }
            }
        }
        if !bytes.is_empty() {
            pieces.send(Piece::Lines { bytes, rows }).map_err(|_| ExportError::Stopped)?;
        }
    }
    if only.is_some() {
        return Ok(files);
    }
    // A custom completion sound is not named by any row: it is the file in the folder.
    for name in store.files.list(FileBucket::NotificationSounds, user_id)? {
        let entry = FileBucket::NotificationSounds.entry_name(&name);
        if is_valid_entry(&entry) {
            files.push(FileRef { entry, bucket: FileBucket::NotificationSounds, inner: name, required: true });
        }
    }
    Ok(files)
}

/// Writes the tables, as the scanner thread hands them over.
fn write_tables<W: Write>(
    writer: &mut ArchiveWriter<W>,
    pieces: Receiver<Piece>,
    report: &mut ExportReport,
    progress: &dyn Fn(Event),
) -> Result<(), ExportError> {
    let mut current: Option<&'static TableSpec> = None;
    let mut rows_in_table = 0u64;
    let finish_table = |current: Option<&'static TableSpec>, rows: u64, report: &mut ExportReport| {
        if let Some(spec) = current {
            report.tables.insert(spec.name.to_string(), rows);
            report.rows += rows;
        }
    };
    for piece in pieces {
        match piece {
            Piece::Table(spec) => {
                finish_table(current, rows_in_table, report);
                writer.start_ndjson(&table_entry_name(spec.name), EntrySize::Small)?;
                progress(Event::Table { table: spec.name.to_string(), processed: 0 });
                current = Some(spec);
                rows_in_table = 0;
            }
            Piece::Lines { bytes, rows } => {
                writer.write_lines(&bytes, rows)?;
                rows_in_table += rows;
                if let Some(spec) = current {
                    progress(Event::Table { table: spec.name.to_string(), processed: rows_in_table });
                }
            }
        }
    }
    finish_table(current, rows_in_table, report);
    Ok(())
}

fn write_files<W: Write>(
    store: &Store,
    user_id: &str,
    writer: &mut ArchiveWriter<W>,
    files: Vec<FileRef>,
    report: &mut ExportReport,
    progress: &dyn Fn(Event),
) -> Result<(), ExportError> {
    let mut seen = HashSet::new();
    let mut unique: Vec<FileRef> = Vec::new();
    for file in files.into_iter().filter(|file| seen.insert(file.entry.clone())) {
        match (is_valid_entry(&file.entry), file.required) {
            (true, _) => unique.push(file),
            (false, true) => report.missing_files.push(file.entry),
            (false, false) => {}
        }
    }
    let total = unique.len();
    let names: Vec<(FileBucket, String)> = unique.iter().map(|file| (file.bucket, file.inner.clone())).collect();
    // What stopped the export inside `open_each` (the writer's error, not a file's).
    let mut stopped = None;
    let opened = store.files.open_each(user_id, &names, &mut |done, opened| {
        if done % 50 == 0 {
            progress(Event::Files { processed: done as u64, total: total as u64 });
        }
        let file = &unique[done];
        match opened {
            Some((mut data, size)) => {
                let size_class = if size > u64::from(u32::MAX) { EntrySize::MayExceed4GiB } else { EntrySize::Small };
                if let Err(error) = writer.write_file(&file.entry, &mut data, size_class) {
                    stopped = Some(error);
                    return Err(std::io::Error::other("the export stopped"));
                }
                report.files += 1;
            }
            None if file.required => report.missing_files.push(file.entry.clone()),
            None => {}
        }
        Ok(())
    });
    if let Some(error) = stopped {
        return Err(error.into());
    }
    opened?;
    progress(Event::Files { processed: total as u64, total: total as u64 });
    Ok(())
}

/// One `lancedb/` line, with `user_id` left out and the vector as `vector_b64`.
fn encode_vector_row(row: &VectorRow, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    write_json_string(out, &row.id);
    out.extend_from_slice(b",\"source_type\":");
    write_json_string(out, &row.source_type);
    out.extend_from_slice(b",\"source_id\":");
    write_json_string(out, &row.source_id);
    out.extend_from_slice(b",\"owner_id\":");
    write_json_string(out, &row.owner_id);
    out.extend_from_slice(b",\"chunk_index\":");
    write_js_number(out, row.chunk_index);
    out.extend_from_slice(b",\"metadata_json\":");
    write_json_string(out, &row.metadata_json);
    out.extend_from_slice(b",\"updated_at\":");
    write_js_number(out, row.updated_at);
    out.extend_from_slice(b",\"vector_b64\":");
    write_json_string(out, &encode_vector(&row.vector));
    out.extend_from_slice(b"}\n");
}

/// Whether a vector row is one of `only`'s rows (every row, without a selection).
fn is_selected(row: &VectorRow, only: Option<&Closure>) -> bool {
    only.is_none_or(|closure| {
        SourceKind::from_source_type(&row.source_type)
            .is_some_and(|kind| closure.contains(kind.table(), &row.source_id))
    })
}

#[allow(clippy::too_many_arguments)]
fn write_vectors<W: Write>(
    store: &Store,
    runtime: &Handle,
    user_id: &str,
    only: Option<&Closure>,
    dimension: Option<u32>,
    writer: &mut ArchiveWriter<W>,
    report: &mut ExportReport,
    progress: &dyn Fn(Event),
) -> Result<(), ExportError> {
    for table in VECTOR_TABLES {
        writer.start_ndjson(&vector_entry_name(table), EntrySize::Small)?;
        // Only vectors of the account's configured dimension travel: the manifest names one.
        let Some(dimension) = dimension.and_then(|d| i32::try_from(d).ok()) else {
            report.vectors.insert(table.to_string(), 0);
            continue;
        };
        let mut rows = runtime.block_on(store.vectors.rows_of_dimension(table, dimension, user_id))?;
        let mut count = 0u64;
        let mut line = Vec::new();
        // Each batch is fetched inside the runtime, then written outside it: writing may
        // block on the HTTP pipe, which must not happen on a runtime thread.
        while let Some(batch) = runtime.block_on(rows.next_batch())? {
            for row in batch.iter().filter(|row| is_selected(row, only)) {
                line.clear();
                encode_vector_row(row, &mut line);
                writer.write_lines(&line, 1)?;
                count += 1;
            }
            progress(Event::Lancedb { table: table.to_string(), processed: count });
        }
        report.vectors.insert(table.to_string(), count);
    }
    Ok(())
}

/// Writes the whole archive of `plan` into `out`.
pub fn write_archive<W: Write>(
    store: &Store,
    runtime: &Handle,
    plan: &ExportPlan,
    out: W,
    progress: &dyn Fn(Event),
) -> Result<(W, ExportReport), ExportError> {
    let Some(selection) = &plan.only else { return write_archive_of(store, runtime, plan, None, out, progress) };
    let closure = match crate::export::selection::closure_in_account(store, &plan.user.id, selection) {
        Ok(closure) => closure,
        Err(ClosureError::NotFound(picks)) => return Err(ExportError::NotInAccount(Pick::named(&picks))),
        Err(ClosureError::Source(error)) => return Err(error.into()),
    };
    write_archive_of(store, runtime, plan, Some(&closure), out, progress)
}

/// Writes the archive of `plan` into `out`: the whole account, or only the rows of a
/// selection's closure (`only`; then without API keys, whatever the plan holds).
pub fn write_archive_of<W: Write>(
    store: &Store,
    runtime: &Handle,
    plan: &ExportPlan,
    only: Option<&Closure>,
    out: W,
    progress: &dyn Fn(Event),
) -> Result<(W, ExportReport), ExportError> {
    let user_id = plan.user.id.as_str();
    let line_cap = lvbak_core::Limits::STANDARD.max_line_bytes;
    let mut manifest = Manifest::new(plan.archive_id.clone(), plan.exported_at);
    manifest.include_vectors = plan.include_vectors;
    manifest.embedding_config = embedding_config_of(store, runtime, user_id)?;
    let secrets = plan.secrets.as_ref().filter(|_| only.is_none());
    if let Some(secrets) = secrets {
        manifest.has_encrypted_secrets = !secrets.index.keys.is_empty();
        manifest.secrets_count = secrets.index.keys.len() as u64;
    }

    let mut writer = ArchiveWriter::new(out, plan.exported_at, line_cap);
    writer.write_manifest(&manifest)?;
    let mut report = ExportReport::default();
    let files = std::thread::scope(|scope| -> Result<Vec<FileRef>, ExportError> {
        let (sender, receiver) = sync_channel(PIECES_IN_FLIGHT);
        let scanner = scope.spawn(move || scan_tables(store, user_id, only, line_cap, sender));
        let written = write_tables(&mut writer, receiver, &mut report, progress);
        let scanned =
            scanner.join().map_err(|_| ExportError::Io(std::io::Error::other("the table scanner panicked")))?;
        // A writer failure (the client left) explains a scanner that was stopped.
        written?;
        scanned
    })?;
    write_files(store, user_id, &mut writer, files, &mut report, progress)?;
    if plan.include_vectors {
        let dimension = manifest.embedding_config.dimension;
        write_vectors(store, runtime, user_id, only, dimension, &mut writer, &mut report, progress)?;
    }
    if let Some(secrets) = secrets.filter(|secrets| !secrets.index.keys.is_empty()) {
        progress(Event::Secrets { count: secrets.records.len() });
        writer.write_secrets(&secrets.index, &secrets.records)?;
        report.secrets = secrets.records.len() as u64;
    }
    let mut stats = ManifestStats {
        counts: report.tables.clone().into_iter().collect(),
        missing_files: report.missing_files.clone(),
    };
    for (table, count) in &report.vectors {
        stats.counts.insert(format!("lancedb:{table}"), *count);
    }
    writer.write_stats(&stats)?;
    let out = writer.finish()?;
    Ok((out, report))
}

/// The user's embedding configuration, from their `embeddingConfig` setting (on the
/// export's own thread, outside the runtime: it waits on it, as for the vectors).
pub fn embedding_config_of(store: &Store, runtime: &Handle, user_id: &str) -> Result<EmbeddingConfig, ExportError> {
    let text = runtime.block_on(store.settings().setting(user_id, "embeddingConfig"))?;
    Ok(text
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|value| EmbeddingConfig::from_setting_value(&value))
        .unwrap_or_default())
}
