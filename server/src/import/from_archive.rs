//! Driving an [`ImportSession`] from an opened archive (a staged upload, or a file given to
//! `lvbak import`): tables in the registry's import order, streamed in batches; files in the
//! order they sit in the file; vectors when the embedding configs match; secrets with a
//! verified ticket. Entries are read straight from the archive: nothing is extracted.

use std::io::{Read, Seek};
use std::path::Path;

use lvbak_core::registry::{is_excluded_table, table_spec, TABLES, VECTOR_TABLES};
use lvbak_core::secrets::SECRETS_BLOB_ENTRY;
use lvbak_core::{parse_row, parse_row_aligned, Archive, EncryptedSecret, EntryKind, FormatError, SecretKey};
use serde_json::json;

use super::session::{ImportError, ImportSession};

/// Rows per transaction, at most.
const BATCH_ROWS: usize = 1000;
/// NDJSON bytes per transaction, at most.
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Reads the rows of one NDJSON entry in batches and hands each to `apply` (which checks
/// for cancellation). Reading, inflating and parsing run on a thread of their own, one
/// batch ahead, so they overlap with applying on the other core.
fn for_each_batch<R: Read + Seek + Send, T: Send>(
    archive: &mut Archive<R>,
    index: usize,
    parse: impl Fn(&str, u64, &[u8]) -> Result<T, FormatError> + Send,
    mut apply: impl FnMut(Vec<T>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<T>>(1);
        let reader = std::thread::Builder::new().name("archive-reader".into()).spawn_scoped(
            scope,
            move || -> Result<(), ImportError> {
                let mut lines = archive.ndjson_lines(index)?;
                let entry = lines.entry().to_string();
                let mut batch = Vec::with_capacity(BATCH_ROWS);
                let mut bytes = 0;
                while let Some((number, line)) = lines.next_line()? {
                    bytes += line.len();
                    batch.push(parse(&entry, number, line)?);
                    if batch.len() >= BATCH_ROWS || bytes >= BATCH_BYTES {
                        // A closed channel means the applier stopped; its error is the story.
                        if sender.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS))).is_err() {
                            return Ok(());
                        }
                        bytes = 0;
                    }
                }
                if !batch.is_empty() {
                    let _ = sender.send(batch);
                }
                Ok(())
            },
        )?;
        let mut applied = Ok(());
        for batch in receiver {
            applied = apply(batch);
            if applied.is_err() {
                break;
            }
        }
        let read = reader.join().map_err(|_| ImportError::Io(std::io::Error::other("the archive reader panicked")))?;
        applied.and(read)
    })
}

/// Applies every row table of the archive, parents before children.
fn apply_tables<R: Read + Seek + Send>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
) -> Result<(), ImportError> {
    let unused: Vec<(usize, String)> = archive
        .entries()
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| match &entry.kind {
            EntryKind::Table { table } if table_spec(table).is_none() || is_excluded_table(table) => {
                Some((index, table.clone()))
            }
            _ => None,
        })
        .collect();
    for (index, table) in unused {
        session.skip_table(&table);
        archive.check_lines(index)?;
    }
    for spec in TABLES {
        let Some(index) = archive.table_entry(spec.name) else { continue };
        session.progress(json!({"phase": "table", "table": spec.name, "processed": 0}));
        let columns = session.columns_of(spec.name)?.unwrap_or_default();
        let parse = |entry: &str, number: u64, line: &[u8]| parse_row_aligned(entry, number, line, &columns);
        for_each_batch(archive, index, parse, |rows| {
            session.apply_rows(spec.name, rows)?;
            let counts = session.table_counts(spec.name);
            let processed = counts.imported + counts.skipped + counts.merged + counts.rejected;
            session.progress(json!({"phase": "table", "table": spec.name, "processed": processed}));
            Ok(())
        })?;
        let counts = session.table_counts(spec.name);
        session.progress(json!({"phase": "table_done", "table": spec.name, "counts": counts}));
    }
    session.commit()
}

fn apply_files<R: Read + Seek>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    archive_path: Option<&Path>,
) -> Result<(), ImportError> {
    let files: Vec<usize> = archive
        .indices_in_file_order()
        .into_iter()
        .filter(|&index| matches!(archive.entries()[index].kind, EntryKind::File { .. }))
        .collect();
    let total = files.len();
    for (done, index) in files.into_iter().enumerate() {
        if done % 25 == 0 {
            session.progress(json!({"phase": "files", "processed": done, "total": total}));
        }
        let EntryKind::File { bucket, name } = archive.entries()[index].kind.clone() else { continue };
        let mut reader = archive.open_entry(index)?;
        let stored = archive_path.zip(reader.stored_range());
        session.apply_file(bucket, &name, &mut reader, stored)?;
    }
    session.progress(
        json!({"phase": "files_done", "processed": total, "total": total, "summary": session.file_summary()}),
    );
    Ok(())
}

fn apply_vectors<R: Read + Seek + Send>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
) -> Result<(), ImportError> {
    let present: Vec<(&str, usize)> =
        VECTOR_TABLES.iter().filter_map(|&t| archive.vector_table_entry(t).map(|index| (t, index))).collect();
    let unused: Vec<(usize, String)> = archive
        .entries()
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| match &entry.kind {
            EntryKind::VectorTable { table } if !VECTOR_TABLES.contains(&table.as_str()) => {
                Some((index, table.clone()))
            }
            _ => None,
        })
        .collect();
    for (index, table) in unused {
        session.skip_table(&format!("lancedb:{table}"));
        archive.check_lines(index)?;
    }
    if present.is_empty() {
        session.set_vector_outcome(Some("the archive carries no vectors".into()));
        session.progress(json!({"phase": "lancedb_skipped", "reason": "the archive carries no vectors"}));
        return Ok(());
    }
    let config = archive.manifest().embedding_config.clone();
    let mut blocker = session.vector_restore_blocker(&config)?;
    // Unmodified Lumiverse 1.1 writes `"vector_b64": null` everywhere: no vector to restore.
    if let (None, Some(&(_, index))) = (&blocker, present.first()) {
        let mut lines = archive.ndjson_lines(index)?;
        let entry = lines.entry().to_string();
        if let Some((number, line)) = lines.next_line()? {
            if !parse_row(&entry, number, line)?.get("vector_b64").is_some_and(|v| v.is_string()) {
                blocker = Some("the archive's vectors are empty (vector_b64 is null)".into());
            }
        }
    }
    if let Some(reason) = blocker {
        session.progress(json!({"phase": "lancedb_skipped", "reason": reason}));
        session.set_vector_outcome(Some(reason));
        for (_, index) in present {
            archive.check_lines(index)?;
        }
        return Ok(());
    }
    let dimension = config.dimension.unwrap_or(0);
    for (table, index) in present {
        for_each_batch(archive, index, parse_row, |rows| session.apply_vectors(table, rows, dimension).map(|_| ()))?;
        session.progress(json!({"phase": "lancedb_table_done", "table": table}));
    }
    session.set_vector_outcome(None);
    Ok(())
}

/// Reads the encrypted secret records.
pub fn secret_records<R: Read + Seek>(archive: &mut Archive<R>) -> Result<Vec<EncryptedSecret>, ImportError> {
    let Some(index) = archive.index_of(SECRETS_BLOB_ENTRY) else { return Ok(Vec::new()) };
    let mut records = Vec::new();
    archive.for_each_row(index, |line, row| {
        let record = serde_json::from_value(row.into()).map_err(|error| FormatError::BadJson {
            entry: SECRETS_BLOB_ENTRY.into(),
            line,
            detail: error.to_string(),
        })?;
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// Applies a whole archive. `secrets_key` is the verified ticket's key, or `None` to leave
/// the secrets out; `archive_path`, when the archive is a file, lets stored files be copied
/// in the kernel.
pub fn import_archive<R: Read + Seek + Send>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    secrets_key: Option<&SecretKey>,
    archive_path: Option<&Path>,
) -> Result<(), ImportError> {
    session.progress(json!({"phase": "extracted"}));
    apply_tables(session, archive)?;
    apply_files(session, archive, archive_path)?;
    apply_vectors(session, archive)?;
    // The secret records are read (and so checked) whether or not they are applied.
    let index_keys: Vec<String> = archive.secrets_index().map(|index| index.keys.clone()).unwrap_or_default();
    let records: Vec<EncryptedSecret> =
        secret_records(archive)?.into_iter().filter(|record| index_keys.contains(&record.key)).collect();
    if let Some(key) = secrets_key {
        session.apply_secrets(&records, key)?;
    }
    Ok(())
}
