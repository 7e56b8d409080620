//! Cutting one entry into batches, a batch per call: [`LineCutter`] for an NDJSON entry
//! (rows, rows with those the server holds left out, the archive's own deflate stream, or
//! vectors), [`FileCutter`] for a file. Each holds its entry's reader open between calls.

use std::collections::HashSet;
use std::io::{BufReader, Read, Seek};
use std::sync::Arc;

use super::held::{held_id_hash, RowId};
use super::{UploadProgress, UploadReport};
use crate::archive::Archive;
use crate::batch::{deflate_ndjson, Batch, TARGET_BATCH_BYTES};
use crate::closure::{Closure, CopyPlan};
use crate::container::EntryReader;
use crate::entry_name::{EntryKind, FileBucket};
use crate::error::{FormatError, Result};
use crate::ndjson::Row;
use crate::ndjson::{check_row, NdjsonLines};
use crate::registry::TableSpec;
use serde_json::Value;

/// The first batch of a table closes after this many bytes of its lines (the rest after
/// [`TARGET_BATCH_BYTES`]), so the server starts on it sooner.
pub(super) const FIRST_BATCH_BYTES: usize = 1024 * 1024;

/// Bytes of a file per chunk.
pub const FILE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// How an NDJSON entry goes.
pub(super) enum Lines {
    /// As rows batches, deflated again; rows whose id hash is in `held` (never empty) are
    /// left out and counted in their batch's header; with `keep` (a selective restore),
    /// only the rows it keeps are sent, the others left out uncounted.
    Rows { held: Option<HashSet<u64>>, keep: Option<Keep> },
    /// As the archive's own deflate stream (a table none of whose rows the server holds),
    /// cut into segments; every line is still inflated and checked here.
    Stream,
    /// As vectors batches; with a selection, only the vectors of its rows (as a copy, of
    /// the rows' copies).
    Vectors { only: Option<Arc<Closure>>, copy: Option<Arc<CopyPlan>> },
}

/// The rows of one table a selection keeps: those whose `column` (the table's key in the
/// closure) is one of `ids`; none when the table has no such column. Restored as a copy,
/// each kept row is rewritten by `copy` before it is sent.
pub(super) struct Keep {
    pub(super) column: Option<&'static str>,
    pub(super) ids: HashSet<String>,
    pub(super) copy: Option<(Arc<CopyPlan>, &'static TableSpec)>,
}

impl Keep {
    pub(super) fn of(closure: &Closure, spec: &'static TableSpec, copy: Option<&Arc<CopyPlan>>) -> Self {
        Self {
            column: Closure::key_column(spec.name),
            ids: closure.ids(spec.name).map(str::to_string).collect(),
            copy: copy.map(|copy| (copy.clone(), spec)),
        }
    }

    /// What the selection does with a line of the table (one that is not an object is
    /// checked elsewhere; it is not kept).
    fn pick(&self, line: &[u8]) -> Picked {
        let column = self.column?;
        let mut row: Row = serde_json::from_slice(line).ok()?;
        let kept = match row.get(column)? {
            Value::String(key) => self.ids.contains(key),
            Value::Number(number) => self.ids.contains(&number.to_string()),
            _ => false,
        };
        if !kept {
            return None;
        }
        Some(self.copy.as_ref().and_then(|(copy, spec)| {
            copy.rewrite_object(spec, &mut row);
            serde_json::to_vec(&row).ok()
        }))
    }
}

/// What a selection does with one line: leaves it out (`None`), or sends it as it is
/// (`Some(None)`) or rewritten for a copy (`Some(Some(line))`). Each line is parsed once.
type Picked = Option<Option<Vec<u8>>>;

/// What a selection does with a vector line: kept when its source row is among the
/// selection's, as a copy pointed at the source's copy.
fn pick_vector(closure: &Closure, copy: Option<&CopyPlan>, line: &[u8]) -> Picked {
    let mut row: Row = serde_json::from_slice(line).ok()?;
    if !row.get("source_id").and_then(Value::as_str).is_some_and(|id| closure.contains_anywhere(id)) {
        return None;
    }
    Some(copy.and_then(|copy| {
        copy.rewrite_vector(&mut row);
        serde_json::to_vec(&row).ok()
    }))
}

/// What a cutter cut.
pub(super) enum Cut {
    /// A batch; the entry goes on.
    Batch(Batch),
    /// The entry's end, with its last batch if it has one.
    End(Option<Batch>),
}

/// An NDJSON entry being cut into batches. A batch closes after about
/// [`TARGET_BATCH_BYTES`] of the archive's lines (the first after [`FIRST_BATCH_BYTES`]),
/// whether they are sent or held, so batch numbers do not depend on what is held.
pub(super) struct LineCutter<'a, R> {
    lines: NdjsonLines<BufReader<EntryReader<'a, R>>>,
    entry: String,
    table: &'static str,
    how: Lines,
    compressed: u64,
    uncompressed: u64,
    /// Archive bytes read before this entry.
    base: u64,
    /// The lines of the batch being cut (not for a stream).
    payload: Vec<u8>,
    /// The stream's bytes sent in earlier segments.
    offset: u64,
    /// The batch being cut: its first line, lines sent and held, and archive bytes.
    first_line: u64,
    count: u64,
    left_out: u64,
    cut: usize,
    /// The entry's bytes read, and the batches cut from it.
    read: u64,
    batches: u32,
}

impl<'a, R: Read + Seek> LineCutter<'a, R> {
    pub(super) fn open(
        archive: &'a Archive<R>,
        index: usize,
        table: &'static str,
        how: Lines,
        base: u64,
    ) -> Result<Self> {
        let entry = &archive.entries()[index];
        let (compressed, uncompressed) = (entry.compressed_size, entry.uncompressed_size.max(1));
        let mut lines = archive.ndjson_lines(index)?;
        // A stored entry has no deflate stream to send: its rows are deflated here.
        let how = match how {
            Lines::Stream if !lines.get_mut().get_mut().keep_deflated() => Lines::Rows { held: None, keep: None },
            how => how,
        };
        let capacity = if matches!(how, Lines::Stream) { 0 } else { TARGET_BATCH_BYTES + 64 * 1024 };
        Ok(Self {
            entry: lines.entry().to_string(),
            lines,
            table,
            how,
            compressed,
            uncompressed,
            base,
            payload: Vec::with_capacity(capacity),
            offset: 0,
            first_line: 0,
            count: 0,
            left_out: 0,
            cut: 0,
            read: 0,
            batches: 0,
        })
    }

    /// Reads lines, each checked (line cap, one JSON object), until a batch is cut or the
    /// entry ends.
    pub(super) fn next_batch(&mut self, progress: &mut UploadProgress, report: &mut UploadReport) -> Result<Cut> {
        let stream = matches!(self.how, Lines::Stream);
        while let Some((number, line)) = self.lines.next_line()? {
            check_row(&self.entry, number, line)?;
            // Restored as a copy, a kept line goes (and is looked up as held) rewritten.
            let picked = match &self.how {
                Lines::Rows { keep: Some(keep), .. } => keep.pick(line),
                Lines::Vectors { only: Some(closure), copy } => pick_vector(closure, copy.as_deref(), line),
                _ => Some(None),
            };
            let (picked, rewritten) = (picked.is_some(), picked.flatten());
            let (line, read) = (rewritten.as_deref().unwrap_or(line), line.len());
            let held = match &self.how {
                Lines::Rows { held: Some(held), .. } if picked => serde_json::from_slice::<RowId>(line)
                    .ok()
                    .and_then(|row| row.id)
                    .is_some_and(|id| held.contains(&held_id_hash(&id))),
                _ => false,
            };
            if picked && self.count == 0 && self.left_out == 0 {
                self.first_line = number;
            }
            if !picked {
                // Not part of the selection: neither sent nor counted.
            } else if held {
                self.left_out += 1;
                report.rows_held += 1;
                report.held_row_bytes += line.len() as u64 + 1;
            } else {
                if !stream {
                    self.payload.extend_from_slice(line);
                    self.payload.push(b'\n');
                }
                self.count += 1;
            }
            self.cut += read + 1;
            self.read += read as u64 + 1;
            // A stream read through to its end (the reader reads ahead) goes on to its last
            // segment: only that one may end it.
            let limit = if self.batches == 0 { FIRST_BATCH_BYTES } else { TARGET_BATCH_BYTES };
            if self.cut >= limit && !(stream && self.lines.get_mut().get_mut().deflated_read_through()) {
                self.batches += 1;
                progress.rows += self.count + self.left_out;
                report.rows += self.count;
                progress.bytes_done =
                    self.base + self.compressed * self.read.min(self.uncompressed) / self.uncompressed;
                return self.take_batch(false).map(Cut::Batch);
            }
        }
        let last = if stream && (self.offset > 0 || self.count > 0) {
            // The rest of the stream, to its end (read by now: the entry was read through).
            progress.rows += self.count;
            report.rows += self.count;
            Some(self.take_batch(true)?)
        } else if self.count > 0 || self.left_out > 0 {
            progress.rows += self.count + self.left_out;
            report.rows += self.count;
            Some(self.take_batch(false)?)
        } else {
            None
        };
        Ok(Cut::End(last))
    }

    /// The batch cut so far (`last`: the stream's last segment), and a fresh one begun.
    fn take_batch(&mut self, last: bool) -> Result<Batch> {
        let (table, first_line, lines) = (self.table.to_string(), self.first_line, self.count);
        let batch = match &self.how {
            Lines::Rows { .. } => {
                Batch::Rows { table, first_line, lines, held: self.left_out, deflated: deflate_ndjson(&self.payload)? }
            }
            Lines::Vectors { .. } => {
                Batch::Vectors { table, first_line, lines, deflated: deflate_ndjson(&self.payload)? }
            }
            Lines::Stream => {
                let deflated = self.lines.get_mut().get_mut().take_deflated();
                let offset = self.offset;
                self.offset += deflated.len() as u64;
                Batch::RowStream { table, offset, last, deflated }
            }
        };
        self.payload.clear();
        (self.count, self.left_out, self.cut) = (0, 0, 0);
        Ok(batch)
    }

    /// Archive bytes read once the entry is read whole.
    pub(super) fn bytes_done_at_end(&self) -> u64 {
        self.base + self.compressed
    }
}

/// A file being cut into chunks of [`FILE_CHUNK_BYTES`].
pub(super) struct FileCutter<'a, R> {
    reader: EntryReader<'a, R>,
    bucket: FileBucket,
    name: String,
    size: u64,
    compressed: u64,
    /// The file's bytes cut so far.
    offset: u64,
}

impl<'a, R: Read + Seek> FileCutter<'a, R> {
    /// The file of entry `index`, sent under its name as `copy` writes it, if given.
    pub(super) fn open(archive: &'a Archive<R>, index: usize, copy: Option<&CopyPlan>) -> Result<Self> {
        let entry = &archive.entries()[index];
        let EntryKind::File { bucket, name } = entry.kind.clone() else {
            return Err(FormatError::BadBatch { detail: format!("{} is not a file", entry.name) });
        };
        let name = copy.map_or(name.clone(), |copy| copy.file_name(&name));
        let (size, compressed) = (entry.uncompressed_size, entry.compressed_size);
        Ok(Self { reader: archive.open_entry(index)?, bucket, name, size, compressed, offset: 0 })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn compressed(&self) -> u64 {
        self.compressed
    }

    /// Reads the next chunk (an empty file is one empty chunk; a file that fills its last
    /// chunk ends with the read that finds nothing more, which checks its CRC-32).
    pub(super) fn next_chunk(&mut self) -> Result<Cut> {
        let left = usize::try_from(self.size.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(left.min(FILE_CHUNK_BYTES));
        (&mut self.reader).take(FILE_CHUNK_BYTES as u64).read_to_end(&mut bytes).map_err(FormatError::from_io)?;
        let filled = bytes.len();
        if filled == 0 && self.offset > 0 {
            return Ok(Cut::End(None));
        }
        let (bucket, name, offset, size) = (self.bucket, self.name.clone(), self.offset, self.size);
        let batch = Batch::FileChunk { bucket, name, offset, size, bytes };
        self.offset += filled as u64;
        Ok(if filled < FILE_CHUNK_BYTES { Cut::End(Some(batch)) } else { Cut::Batch(batch) })
    }
}
