//! Driving an [`ImportSession`] from an opened archive (a staged upload, or a file given to
//! `lvbak import`): tables in the registry's import order, streamed in batches; files in the
//! order they sit in the file; vectors when the embedding configs match; secrets with a
//! verified ticket. Entries are read straight from the archive: nothing is extracted.

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::path::Path;

use lvbak_core::import_plan::ImportPlan;
use lvbak_core::secrets::SECRETS_BLOB_ENTRY;
use lvbak_core::vector::NULL_VECTORS;
use lvbak_core::{
    parse_row, parse_row_aligned, Archive, EncryptedSecret, EntryKind, FormatError, SecretKey, UnknownColumns,
};

use super::selection::Picked;
use super::session::{ImportError, ImportSession};
use super::steps::for_each_step;
use crate::progress::Event;

/// Applies every row table of the archive, parents before children.
fn apply_tables<R: Read + Seek + Send>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    plan: &ImportPlan,
    selection: Option<&Picked>,
) -> Result<(), ImportError> {
    for unused in plan.unused_row_tables() {
        session.skip_table(&unused.table);
        archive.check_lines(unused.index)?;
    }
    for &(spec, index) in &plan.tables {
        session.progress(Event::Table { table: spec.name.to_string(), processed: 0 });
        let columns = session.columns_of(spec.name)?.unwrap_or_default();
        let unknown = UnknownColumns::default();
        let parse = |entry: &str, number: u64, line: &[u8]| parse_row_aligned(entry, number, line, &columns, &unknown);
        let keep = selection.map(|picked| picked.rows_of(spec.name, &columns));
        for_each_step(archive.ndjson_lines(index)?, 1, parse, |mut rows| {
            if let (Some(keep), Some(picked)) = (&keep, selection) {
                rows.retain(|row| keep.keeps(row));
                rows.iter_mut().for_each(|row| picked.copy_row(spec, &columns, row));
            }
            session.apply_rows(spec.name, rows)?;
            session.table_progress(spec.name);
            Ok(())
        })?;
        session.note_dropped_columns(spec.name, &unknown);
        let counts = session.settled_table_counts(spec.name)?;
        session.progress(Event::TableDone { table: spec.name.to_string(), counts });
    }
    session.commit()
}

fn apply_files<R: Read + Seek>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    plan: &ImportPlan,
    archive_path: Option<&Path>,
    selection: Option<&Picked>,
) -> Result<(), ImportError> {
    let total = plan.files.len();
    for (done, &index) in plan.files.iter().enumerate() {
        if done % 25 == 0 {
            session.progress(Event::Files { processed: done as u64, total: total as u64 });
        }
        let entry = &archive.entries()[index];
        let EntryKind::File { bucket, name } = entry.kind.clone() else { continue };
        let size = entry.uncompressed_size;
        let mut reader = archive.open_entry(index)?;
        if selection.is_some_and(|picked| !picked.keeps_file(&name)) {
            session.drain(&mut reader)?;
            continue;
        }
        let name = match selection {
            Some(picked) => picked.copy_file_name(&name),
            None => name,
        };
        let stored = archive_path.zip(reader.stored_range());
        session.apply_file(bucket, &name, size, &mut reader, stored)?;
    }
    let (processed, total) = (total as u64, total as u64);
    session.progress(Event::FilesDone { processed, total, summary: session.file_summary() });
    Ok(())
}

fn apply_vectors<R: Read + Seek + Send>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    plan: &ImportPlan,
    selection: Option<&Picked>,
) -> Result<(), ImportError> {
    let present = &plan.vectors;
    for unused in plan.unused_vector_tables() {
        session.skip_table(&unused.table);
        archive.check_lines(unused.index)?;
    }
    if present.is_empty() {
        let reason = "the archive carries no vectors".to_string();
        session.set_vector_outcome(Some(reason.clone()));
        session.progress(Event::LancedbSkipped { reason });
        return Ok(());
    }
    let config = archive.manifest().embedding_config.clone();
    let mut blocker = session.vector_restore_blocker(&config)?;
    // Vectors that would not fit in the quota are left out (the chunks are re-vectorized)
    // rather than failing an import whose rows and files are in. The entries cannot inflate
    // past their claimed sizes.
    let claimed: u64 = present.iter().map(|&(_, index)| archive.entries()[index].uncompressed_size).sum();
    if blocker.is_none() && !session.fits_quota(claimed) {
        blocker = Some("the vectors do not fit in the account's disk quota".into());
    }
    // Unmodified Lumiverse 1.1 writes `"vector_b64": null` everywhere: no vector to restore.
    if let (None, Some(&(_, index))) = (&blocker, present.first()) {
        if archive.first_row_has_vector(index)? == Some(false) {
            blocker = Some(NULL_VECTORS.into());
        }
    }
    if let Some(reason) = blocker {
        session.progress(Event::LancedbSkipped { reason: reason.clone() });
        session.set_vector_outcome(Some(reason));
        for &(_, index) in present {
            archive.check_lines(index)?;
        }
        return Ok(());
    }
    let dimension = config.dimension.unwrap_or(0);
    for &(table, index) in present {
        let lines = archive.ndjson_lines(index)?;
        for_each_step(lines, 1, parse_row, |mut rows| {
            if let Some(picked) = selection {
                rows.retain(|row| picked.keeps_vector(row));
                rows.iter_mut().for_each(|row| picked.copy_vector(row));
            }
            session.apply_vectors(table, rows, dimension).map(|_| ())
        })?;
        session.progress(Event::LancedbTableDone { table: table.to_string() });
    }
    session.set_vector_outcome(None);
    Ok(())
}

/// Reads the encrypted secret records one at a time (each is checked whether or not it is
/// applied) and, with the ticket's key, restores those the index names. An archive with
/// more records than its index has keys, or a key twice, is refused (`bad_secrets`).
fn apply_secrets<R: Read + Seek>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    plan: &ImportPlan,
    key: Option<&SecretKey>,
) -> Result<(), ImportError> {
    let Some(index) = plan.secrets else { return Ok(()) };
    let keys = archive.secrets_index().map(|index| index.keys.iter().collect::<HashSet<_>>().len()).unwrap_or_default();
    if key.is_some() {
        session.begin_secrets(keys);
    }
    check_secret_records(archive, index, |record| match key {
        Some(key) => session.apply_secret(record, key),
        None => Ok(()),
    })?;
    if key.is_some() {
        session.end_secrets();
    }
    Ok(())
}

/// Reads and checks every encrypted secret record of entry `index` (more records than the
/// index has keys, or a key twice: `bad_secrets`) and hands those the index names to
/// `each`, in their order.
pub(crate) fn check_secret_records<R: Read + Seek>(
    archive: &mut Archive<R>,
    index: usize,
    mut each: impl FnMut(&EncryptedSecret) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let keys: HashSet<String> =
        archive.secrets_index().map(|index| index.keys.iter().cloned().collect()).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut lines = archive.ndjson_lines(index)?;
    let mut records = 0usize;
    while let Some((number, line)) = lines.next_line()? {
        let bad = |detail: String| FormatError::BadSecrets {
            detail: format!("{SECRETS_BLOB_ENTRY} line {number}: {detail}"),
        };
        records += 1;
        if records > keys.len() {
            return Err(bad(format!("more records than the {} keys of the index", keys.len())).into());
        }
        let record: EncryptedSecret = serde_json::from_slice(line).map_err(|error| bad(error.to_string()))?;
        if !seen.insert(record.key.clone()) {
            return Err(bad(format!("the key {:?} appears twice", record.key)).into());
        }
        if keys.contains(&record.key) {
            each(&record)?;
        }
    }
    Ok(())
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
    import_archive_part(session, archive, secrets_key, archive_path, None)
}

/// [`import_archive`] of only the rows, files and vectors of `selection`, when given (a
/// selective restore: never its API keys).
pub fn import_archive_part<R: Read + Seek + Send>(
    session: &mut ImportSession<'_>,
    archive: &mut Archive<R>,
    secrets_key: Option<&SecretKey>,
    archive_path: Option<&Path>,
    selection: Option<&Picked>,
) -> Result<(), ImportError> {
    session.progress(Event::Extracted);
    let plan = ImportPlan::of(archive);
    apply_tables(session, archive, &plan, selection)?;
    apply_files(session, archive, &plan, archive_path, selection)?;
    apply_vectors(session, archive, &plan, selection)?;
    apply_secrets(session, archive, &plan, secrets_key.filter(|_| selection.is_none()))
}
