//! The client's half of a batch import: reads an opened archive in the order the server
//! applies it (tables parents first, vectors, files in file order, secrets last), checks
//! every line (line cap, JSON object), cuts [`crate::batch`] frames of a few MB and hands
//! each to `send`. The browser's Worker drives this with a synchronous request per batch;
//! tests drive it natively. Batch numbers depend only on the archive, so an interrupted
//! upload resumes by producing again from the start and sending from `start_batch` on.
//!
//! A re-import sends almost nothing of what the server already holds: the client lists the
//! archive's files when it opens the job ([`file_claims`]: name, size and CRC-32 from the
//! central directory), the server answers which of them it holds for this account with the
//! same size and its own CRC-32, and those files are never read nor sent
//! ([`UploadPlan::held_files`]). The server fixes that answer for the job's life, so batch
//! numbers stay the same when an upload resumes. Rows go the same way: the server hands the
//! client the hashes ([`held_id_hash`]) of the row ids the account has, per table, and a
//! row whose id is among them is left out of its batch (the batch says how many it left
//! out, so the summary counts them as skipped, as if sent). Row batches are cut by the
//! archive's bytes, not the bytes sent, so their numbers do not depend on what is held.
//! A table the account had no rows of when the job began (the server's `fresh`; see
//! [`HeldRows`]) goes as the archive's own deflate stream, cut into segments
//! ([`crate::row_stream`]): checked line by line here all the same, but not deflated again.
//! Small batches (small tables, small files) go several to a request, as a bundle.

use std::io::{Read, Seek};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::archive::Archive;
use crate::batch::{
    deflate_ndjson, encode_bundle, Batch, PlainSecret, BUNDLE_BYTES, BUNDLE_FRAME_BYTES, MAX_BUNDLE_FRAMES,
    TARGET_BATCH_BYTES,
};
use crate::entry_name::EntryKind;
use crate::error::{FormatError, Result};
use crate::hpke::{seal, SECRETS_INFO};
use crate::ndjson::check_row;
use crate::registry::{TABLES, VECTOR_TABLES};
use crate::vector::NULL_VECTORS;

/// The first batch of a table closes after this many bytes of its lines (the rest after
/// [`TARGET_BATCH_BYTES`]).
const FIRST_BATCH_BYTES: usize = 1024 * 1024;

/// Bytes of a file per chunk.
pub const FILE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Secrets to send, sealed to the server's key for this job.
pub struct SealedSecretsPlan {
    /// The server's HPKE public key.
    pub recipient: [u8; 32],
    /// 32 fresh random bytes from the caller.
    pub ephemeral: [u8; 32],
    /// The job id the seal is bound to.
    pub job_id: String,
    pub secrets: Vec<PlainSecret>,
}

/// What to send.
#[derive(Default)]
pub struct UploadPlan {
    /// Batches below this number were sent before (a resumed upload) and are skipped.
    pub start_batch: u64,
    pub secrets: Option<SealedSecretsPlan>,
    /// File entries (`files/<bucket>/<name>`) the server said it holds: not sent.
    pub held_files: std::collections::HashSet<String>,
    /// Per table, [`held_id_hash`]es of the row ids the server said the account has: rows
    /// with those ids are not sent.
    pub held_rows: std::collections::HashMap<String, std::collections::HashSet<u64>>,
    /// The tables the server said the account had no rows of when the job began (its
    /// `fresh`): sent as the archive's deflate streams, whatever `held_rows` says now (a
    /// resumed upload must cut them as the first one did). Without it, a table with no
    /// held rows goes as a stream.
    pub fresh_tables: Option<std::collections::HashSet<String>>,
}

/// The hash by which client and server compare row ids: 64-bit FNV-1a of the id's UTF-8
/// bytes. Two different ids of one account and archive share it with a probability of
/// about n² / 2⁶⁴ (10⁻⁷ for a million rows on each side); only the account's own ids are
/// ever handed out, so nobody else's rows can make a row of yours be left out.
pub fn held_id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The server's `held-rows` answer, read: per table the hashes of the row ids the account
/// has, and the tables it had no rows of when the job began.
#[derive(Default)]
pub struct HeldRows {
    pub tables: std::collections::HashMap<String, std::collections::HashSet<u64>>,
    pub fresh: Option<std::collections::HashSet<String>>,
}

impl HeldRows {
    /// Reads `{"tables": {"<table>": "<base64 of 8-byte little-endian hashes>"}, "fresh":
    /// ["<table>", …]}`; what is wrong with it, in words.
    pub fn parse(answer: &[u8]) -> std::result::Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            tables: std::collections::HashMap<String, String>,
            fresh: Option<std::collections::HashSet<String>>,
        }
        let answer: Answer = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
        let mut tables = std::collections::HashMap::new();
        for (table, hashes) in answer.tables {
            let bytes = BASE64.decode(hashes).map_err(|e| format!("the held rows of {table}: {e}"))?;
            let hashes =
                bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
            tables.insert(table, hashes.collect());
        }
        Ok(Self { tables, fresh: answer.fresh })
    }
}

/// Only a row's id, borrowed from its line.
#[derive(serde::Deserialize)]
struct RowId<'a> {
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// One file of the archive as the client describes it when opening a batch import, from
/// the central directory (nothing is read).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileClaim {
    /// The archive's folder (`images`, `thumbnails`, `avatars`, …).
    pub bucket: String,
    /// The name inside it.
    pub name: String,
    pub size: u64,
    pub crc32: u32,
}

impl FileClaim {
    /// The archive entry this claim is about.
    pub fn entry_name(&self) -> String {
        format!("files/{}/{}", self.bucket, self.name)
    }
}

/// The archive's files, for the server to say which it already holds.
pub fn file_claims<R: Read + Seek>(archive: &Archive<R>) -> Vec<FileClaim> {
    archive
        .entries()
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::File { bucket, name } => Some(FileClaim {
                bucket: bucket.archive_folder().to_string(),
                name: name.clone(),
                size: entry.uncompressed_size,
                crc32: entry.crc32,
            }),
            _ => None,
        })
        .collect()
}

/// Where an upload is, for a progress bar.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadProgress {
    pub phase: String,
    /// The table or file being read.
    pub item: String,
    /// Rows of the current table read so far.
    pub rows: u64,
    pub files_done: u64,
    pub files_total: u64,
    /// Archive bytes (as stored) read so far, of `bytes_total`.
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub batches_sent: u64,
    pub wire_bytes: u64,
}

/// What an upload sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReport {
    /// Batches produced (the number to commit with).
    pub batches: u64,
    /// Bytes of the batches actually sent.
    pub wire_bytes: u64,
    pub rows: u64,
    pub files: u64,
    /// Why vectors were not sent, if they were not.
    pub vectors_skipped: Option<String>,
    /// Tables of the archive that were checked but not sent (unknown to this version).
    pub skipped_tables: Vec<String>,
    /// Files not sent because the server holds them already (and their bytes).
    pub files_held: u64,
    pub held_bytes: u64,
    /// Rows not sent because the server has their ids already (and their NDJSON bytes).
    pub rows_held: u64,
    pub held_row_bytes: u64,
}

/// The callbacks of an upload.
pub trait BatchSink {
    /// Sends batch `number`; an error stops the upload.
    fn send(&mut self, number: u64, batch: &[u8]) -> Result<()>;
    /// Reports progress (called often; cheap).
    fn progress(&mut self, progress: &UploadProgress);
    /// Asks the server, once every row is sent, whether it takes the archive's vectors
    /// (the answer depends on the embedding settings the rows just brought).
    fn vectors_accepted(&mut self) -> Result<bool>;
}

struct Uploader<'s, S: BatchSink> {
    sink: &'s mut S,
    start_batch: u64,
    next: u64,
    state: UploadProgress,
    report: UploadReport,
    /// Small batches waiting to go together as a bundle.
    bundle: Vec<Vec<u8>>,
}

impl<S: BatchSink> Uploader<'_, S> {
    /// Cuts a batch. One under [`BUNDLE_FRAME_BYTES`] (a small table, a small file) waits to
    /// go with the next ones in a bundle; any other sends the bundle first.
    fn emit(&mut self, batch: &Batch) -> Result<()> {
        let frame = batch.encode()?;
        let small = frame.len() < BUNDLE_FRAME_BYTES && !matches!(batch, Batch::Secrets { .. });
        let waiting: usize = self.bundle.iter().map(Vec::len).sum();
        if !small || waiting + frame.len() > BUNDLE_BYTES || self.bundle.len() == MAX_BUNDLE_FRAMES {
            self.flush()?;
        }
        if small {
            self.bundle.push(frame);
            self.sink.progress(&self.state);
            return Ok(());
        }
        self.send(frame)
    }

    /// Sends the small batches waiting (one alone goes as itself).
    fn flush(&mut self) -> Result<()> {
        match self.bundle.len() {
            0 => Ok(()),
            1 => {
                let frame = self.bundle.pop().unwrap_or_default();
                self.send(frame)
            }
            _ => {
                let frame = encode_bundle(&self.bundle)?;
                self.bundle.clear();
                self.send(frame)
            }
        }
    }

    /// Sends a batch under the next number, unless an earlier upload sent it.
    fn send(&mut self, frame: Vec<u8>) -> Result<()> {
        let number = self.next;
        self.next += 1;
        if number >= self.start_batch {
            self.sink.send(number, &frame)?;
            self.state.wire_bytes += frame.len() as u64;
        }
        self.state.batches_sent = self.next;
        self.sink.progress(&self.state);
        Ok(())
    }

    /// Sends one NDJSON entry as rows or vectors batches, or (`as_stream`: rows only, none
    /// held) as its deflate stream. Rows whose id hash is in `held` (never empty) are left
    /// out (counted in the batch's header); a batch closes after about [`TARGET_BATCH_BYTES`]
    /// of the archive's lines (the first after [`FIRST_BATCH_BYTES`]), whether sent or held.
    fn ndjson<R: Read + Seek>(
        &mut self,
        archive: &mut Archive<R>,
        index: usize,
        table: &str,
        vectors: bool,
        held: Option<&std::collections::HashSet<u64>>,
        as_stream: bool,
    ) -> Result<()> {
        let compressed = archive.entries()[index].compressed_size;
        if compressed >= BUNDLE_FRAME_BYTES as u64 {
            // A large entry takes a while to read: the small batches waiting go first.
            self.flush()?;
        }
        let uncompressed = archive.entries()[index].uncompressed_size.max(1);
        let base = self.state.bytes_done;
        self.state.item = table.to_string();
        self.state.rows = 0;
        let mut lines = archive.ndjson_lines(index)?;
        let entry = lines.entry().to_string();
        // Rows asked for as a stream go as the archive's own deflate stream (still inflated
        // and checked here first); the rest are deflated again, held ones left out.
        let stream = as_stream && lines.get_mut().get_mut().keep_deflated();
        let mut offset = 0u64;
        let mut payload = Vec::with_capacity(if stream { 0 } else { TARGET_BATCH_BYTES + 64 * 1024 });
        // The batch being cut: its first line, lines sent and held, and archive bytes.
        let (mut first_line, mut count, mut left_out, mut cut) = (0u64, 0u64, 0u64, 0usize);
        let (mut read, mut batches) = (0u64, 0u32);
        let batch = |first_line, lines, held, offset, last, payload: &[u8]| -> Result<Batch> {
            let table = table.to_string();
            Ok(if vectors {
                Batch::Vectors { table, first_line, lines, deflated: deflate_ndjson(payload)? }
            } else if stream {
                Batch::RowStream { table, offset, last, deflated: payload.to_vec() }
            } else {
                Batch::Rows { table, first_line, lines, held, deflated: deflate_ndjson(payload)? }
            })
        };
        while let Some((number, line)) = lines.next_line()? {
            check_row(&entry, number, line)?;
            if count == 0 && left_out == 0 {
                first_line = number;
            }
            let is_held = held.is_some_and(|held| {
                serde_json::from_slice::<RowId>(line)
                    .ok()
                    .and_then(|row| row.id)
                    .is_some_and(|id| held.contains(&held_id_hash(&id)))
            });
            if is_held {
                left_out += 1;
                self.report.rows_held += 1;
                self.report.held_row_bytes += line.len() as u64 + 1;
            } else {
                if !stream {
                    payload.extend_from_slice(line);
                    payload.push(b'\n');
                }
                count += 1;
            }
            cut += line.len() + 1;
            read += line.len() as u64 + 1;
            // An entry's first batch is smaller, so the server starts on it sooner. A stream
            // read through to its end (the reader reads ahead) goes on to its last segment:
            // only that one may end it.
            let limit = if batches == 0 { FIRST_BATCH_BYTES } else { TARGET_BATCH_BYTES };
            if cut >= limit && !(stream && lines.get_mut().get_mut().deflated_read_through()) {
                batches += 1;
                self.state.rows += count + left_out;
                self.report.rows += count;
                self.state.bytes_done = base + compressed * read.min(uncompressed) / uncompressed;
                if stream {
                    payload = lines.get_mut().get_mut().take_deflated();
                }
                self.emit(&batch(first_line, count, left_out, offset, false, &payload)?)?;
                offset += payload.len() as u64;
                payload.clear();
                (count, left_out, cut) = (0, 0, 0);
            }
        }
        if stream && (offset > 0 || count > 0) {
            // The rest of the stream, to its end (read by now: the entry was read through).
            self.state.rows += count;
            self.report.rows += count;
            let rest = lines.get_mut().get_mut().take_deflated();
            self.emit(&batch(first_line, count, 0, offset, true, &rest)?)?;
        } else if count > 0 || left_out > 0 {
            self.state.rows += count + left_out;
            self.report.rows += count;
            self.emit(&batch(first_line, count, left_out, offset, false, &payload)?)?;
        }
        self.state.bytes_done = base + compressed;
        Ok(())
    }
}

/// Sends an opened archive as batches (see the module documentation).
pub fn upload_batches<R: Read + Seek, S: BatchSink>(
    archive: &mut Archive<R>,
    plan: UploadPlan,
    sink: &mut S,
) -> Result<UploadReport> {
    let (mut files, mut held) = (Vec::new(), Vec::new());
    for index in archive.indices_in_file_order() {
        let entry = &archive.entries()[index];
        if matches!(entry.kind, EntryKind::File { .. }) {
            if plan.held_files.contains(&entry.name) {
                held.push(index)
            } else {
                files.push(index)
            }
        }
    }
    let state = UploadProgress {
        phase: "tables".into(),
        files_total: (files.len() + held.len()) as u64,
        bytes_total: archive.entries().iter().map(|e| e.compressed_size).sum(),
        ..UploadProgress::default()
    };
    let mut up = Uploader {
        sink,
        start_batch: plan.start_batch,
        next: 0,
        state,
        report: UploadReport::default(),
        bundle: Vec::new(),
    };

    for spec in TABLES {
        if let Some(index) = archive.table_entry(spec.name) {
            let held = plan.held_rows.get(spec.name).filter(|held| !held.is_empty());
            let (held, as_stream) = match plan.fresh_tables.as_ref().map(|fresh| fresh.contains(spec.name)) {
                Some(true) => (None, true),
                Some(false) => (held, false),
                None => (held, held.is_none()),
            };
            up.ndjson(archive, index, spec.name, false, held, as_stream)?;
        }
    }
    // Tables this version does not apply: checked, so a damaged archive is refused whole.
    for (index, table) in archive.unused_tables() {
        archive.check_lines(index)?;
        up.state.bytes_done += archive.entries()[index].compressed_size;
        up.report.skipped_tables.push(table);
    }

    up.state.phase = "vectors".into();
    let vector_entries: Vec<(&str, usize)> =
        VECTOR_TABLES.iter().filter_map(|&t| archive.vector_table_entry(t).map(|index| (t, index))).collect();
    let send_vectors = match vector_entries.first() {
        None => {
            up.report.vectors_skipped = Some("the archive carries no vectors".into());
            false
        }
        // An entry without rows counts as one without vectors here (the raw path restores
        // what the tables after it hold).
        Some(&(_, index)) if archive.first_row_has_vector(index)? != Some(true) => {
            up.report.vectors_skipped = Some(NULL_VECTORS.into());
            false
        }
        // The server answers once every row before is applied: they must all be sent.
        Some(_) if !up.flush().and_then(|()| up.sink.vectors_accepted())? => {
            up.report.vectors_skipped = Some("this account's embedding settings do not match the archive's".into());
            false
        }
        Some(_) => true,
    };
    for (table, index) in vector_entries {
        if send_vectors {
            up.ndjson(archive, index, table, true, None, false)?;
        } else {
            archive.check_lines(index)?;
        }
    }

    up.state.phase = "files".into();
    for index in held {
        let entry = &archive.entries()[index];
        up.state.files_done += 1;
        up.state.bytes_done += entry.compressed_size;
        up.report.files_held += 1;
        up.report.held_bytes += entry.uncompressed_size;
    }
    let mut chunk = vec![0u8; FILE_CHUNK_BYTES];
    for index in files {
        let entry = &archive.entries()[index];
        let EntryKind::File { bucket, name } = entry.kind.clone() else { continue };
        let (size, compressed) = (entry.uncompressed_size, entry.compressed_size);
        up.state.item = name.clone();
        let mut reader = archive.open_entry(index)?;
        let mut offset = 0u64;
        loop {
            let mut filled = 0;
            while filled < chunk.len() {
                let read = reader.read(&mut chunk[filled..]).map_err(FormatError::from_io)?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            if filled == 0 && offset > 0 {
                break;
            }
            let batch = Batch::FileChunk { bucket, name: name.clone(), offset, size, bytes: chunk[..filled].to_vec() };
            up.emit(&batch)?;
            offset += filled as u64;
            if filled < chunk.len() {
                break;
            }
        }
        up.state.files_done += 1;
        up.state.bytes_done += compressed;
        up.report.files += 1;
    }

    if let Some(secrets) = plan.secrets.filter(|s| !s.secrets.is_empty()) {
        up.state.phase = "secrets".into();
        let plaintext = zeroize::Zeroizing::new(
            serde_json::to_vec(&secrets.secrets).map_err(|e| FormatError::BadSecrets { detail: e.to_string() })?,
        );
        let (enc, sealed) =
            seal(&secrets.recipient, secrets.ephemeral, SECRETS_INFO, secrets.job_id.as_bytes(), &plaintext)?;
        up.emit(&Batch::Secrets { enc, sealed })?;
    }
    up.flush()?;
    up.state.phase = "sent".into();
    up.state.bytes_done = up.state.bytes_total;
    up.sink.progress(&up.state);
    up.report.batches = up.next;
    up.report.wire_bytes = up.state.wire_bytes;
    Ok(up.report)
}
