//! What each kind of batch does to the job's session: rows are inflated and parsed a step
//! at a time (the job's inflated total held to the decompressed cap) and applied as they
//! come; vectors likewise; file chunks are appended to a staged file that is applied once
//! complete; sealed secrets are opened with the job's HPKE key and stored.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lvbak_core::batch::{Batch, InflatingPayload, PlainSecret, MAX_BATCH_PAYLOAD_BYTES};
use lvbak_core::hpke::{HpkeKeyPair, SECRETS_INFO};
use lvbak_core::protocol::RestorePreview;
use lvbak_core::row_stream::RowStream;
use lvbak_core::upload::FileClaim;
use lvbak_core::{
    check_row, parse_row, parse_row_aligned, table_entry_name, vector_entry_name, EmbeddingConfig, FileBucket,
    FormatError, NdjsonLines, UnknownColumns,
};

use crate::import::jobs::Job;
use crate::import::preview::Previewer;
use crate::import::session::{ImportError, ImportSession, ImportSummary};
use crate::import::steps::for_each_step;
use crate::memory::{Held, MemoryBudget};
use crate::progress::Event;
use crate::storage::files::StagedFile;
use crate::storage::identity::random_bytes;
use crate::storage::Store;
use crate::util::now;

/// A file arriving in chunks, staged until complete.
struct PendingFile {
    bucket: FileBucket,
    name: String,
    size: u64,
    written: u64,
    staged: StagedFile,
    file: File,
}

/// Applies a job's batches to its session.
pub struct BatchApplier<'a> {
    session: ImportSession<'a>,
    store: &'a Store,
    job: &'a Job,
    key: &'a HpkeKeyPair,
    pending: Option<PendingFile>,
    vectors_applied: bool,
    secrets_applied: bool,
    /// Why vectors may not be restored, as last decided.
    blocker: Option<String>,
    /// The live columns of every registry table.
    columns: HashMap<String, Vec<String>>,
    inflated: Arc<AtomicU64>,
    decompressed_cap: u64,
    line_cap: u64,
    /// The table whose rows are arriving as the archive's deflate stream, until its last
    /// segment.
    stream: Option<RowStream>,
    /// What the open stream carries between batches, in the instance's memory budget.
    carried: Held,
    runtime: tokio::runtime::Handle,
    /// Bytes the batch being applied inflated to, all its parts together (held to
    /// [`MAX_BATCH_PAYLOAD_BYTES`], so no batch — a bundle neither — is work without end).
    batch_inflated: Arc<AtomicU64>,
    /// A preview job's preview so far: its rows are previewed, not applied, and it takes
    /// no file, vector or secret.
    previewer: Option<Box<Previewer>>,
}

/// How long a stream's carry waits for room in the memory budget before the job fails.
const CARRY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a job's applier may hold in memory, and where it takes it from.
pub struct JobMemory {
    pub budget: MemoryBudget,
    pub runtime: tokio::runtime::Handle,
}

impl<'a> BatchApplier<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session: ImportSession<'a>,
        store: &'a Store,
        job: &'a Job,
        key: &'a HpkeKeyPair,
        blocker: Option<String>,
        columns: HashMap<String, Vec<String>>,
        inflated: Arc<AtomicU64>,
        decompressed_cap: u64,
        line_cap: u64,
        memory: JobMemory,
    ) -> Self {
        Self {
            carried: memory.budget.hold(),
            runtime: memory.runtime,
            batch_inflated: Arc::default(),
            session,
            store,
            job,
            key,
            pending: None,
            vectors_applied: false,
            secrets_applied: false,
            blocker,
            columns,
            inflated,
            decompressed_cap,
            line_cap,
            stream: None,
            previewer: job.preview.then(Box::default),
        }
    }

    /// Holds a preview job's preview to `rows` rows in memory (see `Previewer::bounded`).
    pub fn bound_preview(&mut self, rows: usize) {
        if let Some(previewer) = self.previewer.as_mut() {
            **previewer = Previewer::bounded(rows);
        }
    }

    /// Applies one batch (a bundle's parts in order; no bundle holds another).
    pub fn apply(&mut self, batch: Batch) -> Result<(), ImportError> {
        self.batch_inflated.store(0, Ordering::Relaxed);
        batch.into_parts().into_iter().try_for_each(|part| self.apply_part(part))
    }

    fn apply_part(&mut self, batch: Batch) -> Result<(), ImportError> {
        if !matches!(batch, Batch::RowStream { .. }) {
            self.ensure_no_open_stream()?;
        }
        if !matches!(batch, Batch::FileChunk { .. }) {
            self.finish_files()?;
        }
        if !matches!(batch, Batch::Rows { .. } | Batch::RowStream { .. }) {
            // Only rows share the open write transaction; files and vectors take their time
            // without holding anyone's turn to write.
            self.session.commit()?;
        }
        if self.previewer.is_some() {
            match batch {
                Batch::FileChunk { .. } | Batch::Vectors { .. } => {
                    return Err(FormatError::BadBatch { detail: "a preview takes rows only".into() }.into())
                }
                // Dropped unopened: a preview restores no API keys.
                Batch::Secrets { .. } => return self.secrets_once(),
                _ => {}
            }
        }
        match batch {
            Batch::Rows { table, first_line, held, deflated, .. } => {
                self.session.note_held_rows(&table, held);
                self.rows(&table, first_line, &deflated)
            }
            Batch::RowStream { table, offset, last, deflated } => self.row_stream(&table, offset, last, &deflated),
            Batch::Vectors { table, first_line, deflated, .. } => self.vectors(&table, first_line, &deflated),
            Batch::FileChunk { bucket, name, offset, size, bytes } => {
                self.file_chunk(bucket, name, offset, size, &bytes)
            }
            Batch::Secrets { enc, sealed } => self.secrets(&enc, &sealed),
            // `into_parts` took it apart above.
            Batch::Bundle(parts) => parts.into_iter().try_for_each(|part| self.apply_part(part)),
        }
    }

    /// Counts inflated bytes against the batch's cap and the job's decompressed cap.
    fn cap_counter(&self) -> impl FnMut(u64) -> Result<(), FormatError> + Send + 'static {
        let (total, cap, batch) = (self.inflated.clone(), self.decompressed_cap, self.batch_inflated.clone());
        move |bytes| {
            if batch.fetch_add(bytes, Ordering::Relaxed) + bytes > MAX_BATCH_PAYLOAD_BYTES {
                return Err(FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES });
            }
            if total.fetch_add(bytes, Ordering::Relaxed) + bytes > cap {
                return Err(FormatError::DecompressedCap { limit: cap });
            }
            Ok(())
        }
    }

    /// The lines of a deflated payload, inflating as they are read; every inflated byte
    /// counts against the job's decompressed cap.
    fn lines<'p>(&self, entry: String, deflated: &'p [u8]) -> NdjsonLines<BufReader<impl std::io::Read + Send + 'p>> {
        let payload = InflatingPayload::new(deflated, self.cap_counter());
        NdjsonLines::new(BufReader::with_capacity(256 * 1024, payload), entry, self.line_cap)
    }

    /// A table's rows that came as the archive's deflate stream must all have come before
    /// anything else does (or the job commits).
    fn ensure_no_open_stream(&self) -> Result<(), ImportError> {
        match &self.stream {
            Some(stream) => Err(FormatError::BadBatch {
                detail: format!("the rows of {} stopped before their stream ended", stream.table()),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The next segment of a table's deflate stream (the first one starts the stream); its
    /// whole lines are applied as any batch's, numbered on from the segment before.
    fn row_stream(&mut self, table: &str, offset: u64, last: bool, deflated: &[u8]) -> Result<(), ImportError> {
        let mut stream = match self.stream.take() {
            Some(stream) if stream.table() == table => stream,
            Some(stream) => {
                return Err(FormatError::BadBatch {
                    detail: format!("rows of {table} came before those of {} ended", stream.table()),
                }
                .into())
            }
            None => RowStream::new(table),
        };
        let first_line = stream.lines() + 1;
        let counter = self.cap_counter();
        let segment = stream.segment(offset, deflated, last, self.line_cap, counter)?;
        let lines =
            NdjsonLines::new(BufReader::with_capacity(256 * 1024, segment), table_entry_name(table), self.line_cap);
        self.rows_from(table, first_line, lines)?;
        // The part of a line the segment ended in waits for the next one: in the budget.
        let carried = if last { 0 } else { stream.carried() as u64 };
        self.carried.shrink_to(carried);
        if !self.runtime.block_on(self.carried.cover(carried, CARRY_WAIT)) {
            return Err(ImportError::Busy("the server has no memory free to hold a line split between batches"));
        }
        if !last {
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Applies the rows of a registry table a step at a time; a table this server does not
    /// apply (`registry::is_applied_table`: the worker has no columns for it) has its
    /// lines checked and is noted.
    fn rows(&mut self, table: &str, first_line: u64, deflated: &[u8]) -> Result<(), ImportError> {
        let lines = self.lines(table_entry_name(table), deflated);
        self.rows_from(table, first_line, lines)
    }

    fn rows_from<R: std::io::BufRead + Send>(
        &mut self,
        table: &str,
        first_line: u64,
        lines: NdjsonLines<R>,
    ) -> Result<(), ImportError> {
        let Some(columns) = self.columns.get(table) else {
            // Checked and dropped; a cancel stops it between steps, as it stops applying.
            let session = &mut self.session;
            for_each_step(lines, first_line, check_row, |_| session.check_cancelled())?;
            self.session.skip_table(table);
            return Ok(());
        };
        let session = &mut self.session;
        let unknown = UnknownColumns::default();
        let parse = |entry: &str, number: u64, line: &[u8]| parse_row_aligned(entry, number, line, columns, &unknown);
        match self.previewer.as_deref_mut() {
            Some(previewer) => {
                for_each_step(lines, first_line, parse, |rows| session.preview_rows(previewer, table, columns, rows))?
            }
            None => for_each_step(lines, first_line, parse, |rows| session.apply_rows(table, rows).map(|_| ()))?,
        }
        self.session.note_dropped_columns(table, &unknown);
        self.session.table_progress(table);
        Ok(())
    }

    fn vectors(&mut self, table: &str, first_line: u64, deflated: &[u8]) -> Result<(), ImportError> {
        let lines = self.lines(vector_entry_name(table), deflated);
        let dimension = self.job.archive.embedding_config.dimension.unwrap_or(0);
        let session = &mut self.session;
        let mut processed = 0;
        for_each_step(lines, first_line, parse_row, |rows| {
            processed += rows.len() as u64;
            session.apply_vectors(table, rows, dimension).map(|_| ())
        })?;
        self.vectors_applied = true;
        self.session.progress(Event::Lancedb { table: table.to_string(), processed });
        Ok(())
    }

    /// Appends a chunk to the file being received; the file is applied when complete.
    fn file_chunk(
        &mut self,
        bucket: FileBucket,
        name: String,
        offset: u64,
        size: u64,
        bytes: &[u8],
    ) -> Result<(), ImportError> {
        let continues = self.pending.as_ref().is_some_and(|p| p.bucket == bucket && p.name == name && p.size == size);
        if !continues {
            if self.pending.is_some() {
                return Err(FormatError::BadBatch { detail: "a file ends before all its bytes arrived".into() }.into());
            }
            if offset != 0 {
                return Err(FormatError::BadBatch { detail: "a file's first chunk must start at 0".into() }.into());
            }
            // Nothing is staged for a file the account has no room for.
            self.session.ensure_fits(size)?;
            let staging = self.store.staging_dir();
            std::fs::create_dir_all(&staging)?;
            let staged = StagedFile::new(staging.join(format!("upload-{}.partial", hex::encode(random_bytes::<8>()))));
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(staged.path())?;
            self.pending = Some(PendingFile { bucket, name, size, written: 0, staged, file });
        }
        let Some(pending) = self.pending.as_mut() else { return Ok(()) };
        if offset != pending.written {
            return Err(FormatError::BadBatch { detail: "file chunks must arrive in order".into() }.into());
        }
        pending.file.write_all(bytes)?;
        pending.written += bytes.len() as u64;
        if pending.written == pending.size {
            self.finish_files()?;
        }
        Ok(())
    }

    /// Applies the staged file, if complete; a file left incomplete is an error. The staged
    /// copy is removed either way.
    pub fn finish_files(&mut self) -> Result<(), ImportError> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        if pending.written != pending.size {
            return Err(FormatError::Truncated { what: format!("the file {}", pending.name) }.into());
        }
        let mut reader = File::open(pending.staged.path())?;
        let range = Some((pending.staged.path(), (0, pending.size)));
        self.session.apply_file(pending.bucket, &pending.name, pending.size, &mut reader, range)
    }

    /// The archive's secrets come sealed together, once: a second batch of them would let a
    /// client store any number past the index's count.
    fn secrets_once(&mut self) -> Result<(), ImportError> {
        if std::mem::replace(&mut self.secrets_applied, true) {
            return Err(FormatError::BadSecrets { detail: "the secrets came in more than one batch".into() }.into());
        }
        Ok(())
    }

    fn secrets(&mut self, enc: &[u8; 32], sealed: &[u8]) -> Result<(), ImportError> {
        self.secrets_once()?;
        let plaintext = self.key.open(enc, SECRETS_INFO, self.job.id.as_bytes(), sealed)?;
        let secrets: Vec<PlainSecret> = serde_json::from_slice(&plaintext).map_err(|error| {
            FormatError::BadSecrets { detail: format!("the sealed secrets are not a list: {error}") }
        })?;
        if secrets.len() > self.job.archive.secrets_count() {
            return Err(FormatError::BadSecrets {
                detail: format!(
                    "{} secrets sealed for an index of {}",
                    secrets.len(),
                    self.job.archive.secrets_count()
                ),
            }
            .into());
        }
        // The ticket was used in the browser: record it, so a reuse is reported as on the raw
        // path. (Other connections write here: the rows' open transaction is committed first.)
        self.session.commit()?;
        // On the job's worker thread, outside the runtime (see `worker`): it may wait on it.
        let ticket = self.store.secrets().record_ticket_use(&self.job.archive.archive_id, &self.job.user_id, now());
        let used = self.runtime.block_on(ticket)?;
        self.job.lock().ticket_use = Some(used.answer());
        self.session.apply_plain_secrets(&secrets)
    }

    /// Applies what is pending and decides again whether vectors may come (the rows may
    /// have brought the embedding settings).
    pub fn check_vectors(&mut self, archive: &EmbeddingConfig) -> Result<Option<String>, ImportError> {
        self.ensure_no_open_stream()?;
        if self.previewer.is_some() {
            // Its answer when it opened: a preview takes no vectors.
            return Ok(self.blocker.clone());
        }
        self.finish_files()?;
        self.session.commit()?;
        self.blocker = self.session.vector_restore_blocker(archive)?;
        Ok(self.blocker.clone())
    }

    /// Commits what is applied and lets go of memory while the job waits (a file still
    /// arriving stays staged).
    pub fn pause(&mut self) -> Result<(), ImportError> {
        self.session.commit()?;
        self.session.release_memory();
        Ok(())
    }

    /// Ends a job that stopped before its commit: a file left half-received is dropped (its
    /// staged copy goes with it) and the rows applied are settled as a commit settles them
    /// (a preview applied none).
    pub fn abandon(mut self) {
        self.pending = None;
        if self.previewer.is_none() {
            self.session.settle_after_stop();
        }
    }

    /// Completes a preview job: the preview, with the files `claims` describe (at most
    /// `budget` bytes of the account's own files read to compare).
    pub fn finish_preview(mut self, claims: &[FileClaim], budget: u64) -> Result<RestorePreview, ImportError> {
        self.ensure_no_open_stream()?;
        let previewer = self.previewer.take().unwrap_or_default();
        self.session.finish_preview(*previewer, claims, budget)
    }

    /// Completes the import: the vector outcome, the reference scrub, the summary.
    pub fn finish(mut self) -> Result<ImportSummary, ImportError> {
        if let Err(error) = self.ensure_no_open_stream().and_then(|()| self.finish_files()) {
            self.abandon();
            return Err(error);
        }
        let outcome = match (self.vectors_applied, self.blocker.take()) {
            (true, _) => None,
            (false, Some(reason)) => Some(reason),
            (false, None) => Some("the archive's vectors were not sent".into()),
        };
        self.session.set_vector_outcome(outcome);
        self.session.finish()
    }
}
