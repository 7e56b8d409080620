//! The client's half of a batch import: reads an opened archive in the order the server
//! applies it (tables parents first, vectors, files in file order, secrets last), checks
//! every line (line cap, JSON object) and cuts [`Batch`]es of a few MB. Batch numbers
//! depend only on the archive, so an interrupted upload resumes by producing again from
//! the start and sending from the server's next batch on ([`UploadPlan::start_batch`]).
//!
//! [`Upload`] is a state machine that does no network I/O (as rc-zip steps its reader): its
//! owner calls [`Upload::step`], which reads the archive up to the next thing only the
//! owner can do and says what that is ([`Step`]): send a batch (and say when the server
//! took it, [`Upload::sent`]), ask the server whether it takes the vectors (and give its
//! answer, [`Upload::vectors_answer`]), or commit. [`upload_batches`] drives it through a
//! [`BatchSink`]: the browser's Worker with a synchronous request per batch, tests with an
//! HTTP client.
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

mod cut;
mod held;
mod outbox;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Seek};
use std::sync::Arc;

use crate::archive::Archive;
use crate::batch::{Batch, PlainSecret, BUNDLE_FRAME_BYTES};
use crate::closure::{Closure, CopyPlan};
use crate::entry_name::EntryKind;
use crate::error::{FormatError, Result};
use crate::hpke::{seal, SECRETS_INFO};
use crate::import_plan::ImportPlan;
use crate::vector::NULL_VECTORS;
pub use cut::FILE_CHUNK_BYTES;
use cut::{Cut, FileCutter, Keep, LineCutter, Lines};
use held::entry_name_as;
pub use held::{file_claims, file_claims_as, held_id_hash, FileClaim, HeldRows};
use outbox::Outbox;

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
    pub held_files: HashSet<String>,
    /// Per table, [`held_id_hash`]es of the row ids the server said the account has: rows
    /// with those ids are not sent.
    pub held_rows: HashMap<String, HashSet<u64>>,
    /// The tables the server said the account had no rows of when the job began (its
    /// `fresh`): sent as the archive's deflate streams, whatever `held_rows` says now (a
    /// resumed upload must cut them as the first one did). Without it, a table with no
    /// held rows goes as a stream.
    pub fresh_tables: Option<HashSet<String>>,
    /// A selective restore: only the rows of this closure (of picked items, over this
    /// archive: `closure::closure` with `ArchiveRows`), the files their ids name and the
    /// vectors of those rows are sent; never secrets. Every line is still checked.
    pub only: Option<Closure>,
    /// With `only`, a restore as a copy: what belongs to the picks goes under the ids this
    /// plan gives (`closure::CopyPlan`), file names too. The server is told the files under
    /// those names ([`file_claims_as`]) and answers held files by them.
    pub copy: Option<CopyPlan>,
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

/// What the owner of an [`Upload`] is to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'u> {
    /// Part of the archive was read (an entry, or its lines up to a batch): call
    /// [`Upload::step`] again.
    Read,
    /// Send batch `number`, then call [`Upload::sent`] once the server took it. Until then
    /// every `step` hands out the same batch: after a dropped connection it goes again
    /// (the server answers a batch it has as it answered it the first time).
    Send { number: u64, batch: &'u [u8] },
    /// Ask the server whether it takes the archive's vectors (it answers once every batch
    /// before is applied; all of them have been sent) and give its answer to
    /// [`Upload::vectors_answer`]. Until then every `step` asks again.
    AskVectors,
    /// Every batch is sent: commit the job with [`UploadReport::batches`].
    Done(&'u UploadReport),
}

/// What is left to do, in order (see [`Upload::new`]).
enum Task {
    /// Cut a table's or vector table's lines into batches.
    Lines { index: usize, table: &'static str, lines: Lines },
    /// Check the lines of a table this version does not apply, and list it.
    Unused { index: usize, table: String },
    /// Check the lines of an entry that is not sent (vectors the server does not take).
    Check { index: usize },
    /// See whether the archive's vectors are worth asking about, and ask.
    DecideVectors { entries: Vec<(&'static str, usize)> },
    /// Count the files the server holds (never read).
    HeldFiles { indices: Vec<usize> },
    /// Cut a file into chunks.
    File { index: usize },
    /// Seal the secrets to the server's key and send them.
    Secrets(SealedSecretsPlan),
    /// Send what waits and end.
    Finish,
}

/// What the uploader is doing.
enum State<'a, R> {
    /// Between two tasks.
    Idle,
    /// Cutting an NDJSON entry into batches.
    Lines(Box<LineCutter<'a, R>>),
    /// Cutting a file into chunks.
    File(Box<FileCutter<'a, R>>),
    /// Waiting for the server to say whether it takes these vector entries.
    AskingVectors { entries: Vec<(&'static str, usize)> },
    /// Every batch is cut; done once the last one is sent.
    Done,
}

/// An upload of one opened archive (see the module documentation).
pub struct Upload<'a, R> {
    archive: &'a Archive<R>,
    tasks: VecDeque<Task>,
    state: State<'a, R>,
    out: Outbox,
    progress: UploadProgress,
    report: UploadReport,
    /// A selective restore's closure (see [`UploadPlan::only`]).
    only: Option<Arc<Closure>>,
    /// A restore as a copy's ids (see [`UploadPlan::copy`]).
    copy: Option<Arc<CopyPlan>>,
}

impl<'a, R: Read + Seek> Upload<'a, R> {
    /// Plans the upload of `archive`: the registry's tables in import order (each as rows,
    /// rows without those held, or its deflate stream), the tables this version does not
    /// apply (checked), the vectors (once the server says it takes them), the files in file
    /// order (those the server holds counted, not read), the secrets.
    pub fn new(archive: &'a Archive<R>, mut plan: UploadPlan) -> Self {
        let mut tasks = VecDeque::new();
        let import = ImportPlan::of(archive);
        let only = plan.only.take().map(Arc::new);
        let copy = plan.copy.take().filter(|_| only.is_some()).map(Arc::new);
        for &(spec, index) in &import.tables {
            let held = plan.held_rows.remove(spec.name).filter(|held| !held.is_empty());
            let lines = match (&only, plan.fresh_tables.as_ref().map(|fresh| fresh.contains(spec.name)), held) {
                // A selection's rows are picked out one by one.
                (Some(closure), _, held) => Lines::Rows { held, keep: Some(Keep::of(closure, spec, copy.as_ref())) },
                // A fresh table goes as a stream whatever is held now; without the server's
                // list, a table none of whose rows are held does.
                (None, Some(true), _) | (None, None, None) => Lines::Stream,
                (None, Some(false) | None, held) => Lines::Rows { held, keep: None },
            };
            tasks.push_back(Task::Lines { index, table: spec.name, lines });
        }
        // Tables this version does not apply: checked, so a damaged archive is refused whole.
        for unused in import.unused {
            tasks.push_back(Task::Unused { index: unused.index, table: unused.table });
        }
        tasks.push_back(Task::DecideVectors { entries: import.vectors });
        // A selection takes the files its rows' ids name (the others are not read at all).
        let files = import.files.into_iter().filter(|&index| match (&only, &archive.entries()[index].kind) {
            (Some(closure), EntryKind::File { name, .. }) => closure.names_file(name),
            (Some(_), _) => false,
            (None, _) => true,
        });
        let (files, held): (Vec<usize>, Vec<usize>) =
            files.partition(|&index| !plan.held_files.contains(&entry_name_as(archive, index, copy.as_deref())));
        let progress = UploadProgress {
            phase: "tables".into(),
            files_total: (files.len() + held.len()) as u64,
            bytes_total: archive.entries().iter().map(|e| e.compressed_size).sum(),
            ..UploadProgress::default()
        };
        tasks.push_back(Task::HeldFiles { indices: held });
        tasks.extend(files.into_iter().map(|index| Task::File { index }));
        // A selection never restores API keys.
        if let Some(secrets) = plan.secrets.filter(|s| !s.secrets.is_empty() && only.is_none()) {
            tasks.push_back(Task::Secrets(secrets));
        }
        tasks.push_back(Task::Finish);
        Self {
            archive,
            tasks,
            state: State::Idle,
            out: Outbox::new(plan.start_batch),
            progress,
            report: UploadReport::default(),
            only,
            copy,
        }
    }

    /// Reads the archive up to the next thing to do and says what it is. A refused line,
    /// entry or secret ends the upload with its error.
    pub fn step(&mut self) -> Result<Step<'_>> {
        while self.out.waiting().is_none() {
            match self.advance()? {
                Advanced::Quietly => {}
                Advanced::Read => return Ok(Step::Read),
                Advanced::AskVectors => return Ok(Step::AskVectors),
                Advanced::Done => return Ok(Step::Done(&self.report)),
            }
        }
        // The loop ended on a batch waiting to be sent.
        let (number, batch) = self.out.waiting().unwrap_or_default();
        Ok(Step::Send { number, batch })
    }

    /// The server took the batch [`Step::Send`] handed out: the next one may go.
    pub fn sent(&mut self) {
        if let Some(bytes) = self.out.sent() {
            self.progress.wire_bytes += bytes;
        }
    }

    /// The server's answer to [`Step::AskVectors`]: whether it takes the archive's vectors.
    /// (Nothing happens when nothing was asked.)
    pub fn vectors_answer(&mut self, accepted: bool) {
        let State::AskingVectors { entries } = std::mem::replace(&mut self.state, State::Idle) else { return };
        if !accepted {
            self.report.vectors_skipped = Some("this account's embedding settings do not match the archive's".into());
        }
        for (table, index) in entries.into_iter().rev() {
            let task = if accepted {
                Task::Lines { index, table, lines: Lines::Vectors { only: self.only.clone(), copy: self.copy.clone() } }
            } else {
                Task::Check { index }
            };
            self.tasks.push_front(task);
        }
    }

    /// Where the upload is, for a progress bar.
    pub fn progress(&self) -> UploadProgress {
        UploadProgress { batches_sent: self.out.done(), ..self.progress.clone() }
    }

    /// One step of the state: a task started, a batch cut, or what the state waits for.
    fn advance(&mut self) -> Result<Advanced> {
        match &mut self.state {
            State::Idle => self.start_task(),
            State::Lines(cutter) => {
                let cut = cutter.next_batch(&mut self.progress, &mut self.report)?;
                self.take_cut(cut)?;
                Ok(Advanced::Read)
            }
            State::File(cutter) => {
                let cut = cutter.next_chunk()?;
                self.take_cut(cut)?;
                Ok(Advanced::Read)
            }
            State::AskingVectors { .. } => Ok(Advanced::AskVectors),
            // Reached once the last batch was sent.
            State::Done => {
                self.progress.phase = "sent".into();
                self.progress.bytes_done = self.progress.bytes_total;
                self.report.wire_bytes = self.progress.wire_bytes;
                Ok(Advanced::Done)
            }
        }
    }

    /// Takes a batch a cutter cut; at the end of its entry, counts it and goes idle.
    fn take_cut(&mut self, cut: Cut) -> Result<()> {
        match cut {
            Cut::Batch(batch) => self.out.emit(&batch),
            Cut::End(last) => {
                if let Some(batch) = last {
                    self.out.emit(&batch)?;
                }
                match std::mem::replace(&mut self.state, State::Idle) {
                    State::Lines(cutter) => self.progress.bytes_done = cutter.bytes_done_at_end(),
                    State::File(cutter) => {
                        self.progress.files_done += 1;
                        self.progress.bytes_done += cutter.compressed();
                        self.report.files += 1;
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }

    /// Starts the next task: sets its state up, or does it whole when it is quick.
    fn start_task(&mut self) -> Result<Advanced> {
        let Some(task) = self.tasks.pop_front() else {
            self.state = State::Done;
            return Ok(Advanced::Quietly);
        };
        let archive = self.archive;
        match task {
            Task::Lines { index, table, lines } => {
                let entry = &archive.entries()[index];
                if entry.compressed_size >= BUNDLE_FRAME_BYTES as u64 {
                    // A large entry takes a while to read: the small batches waiting go first.
                    self.out.flush()?;
                }
                self.progress.item = table.to_string();
                self.progress.rows = 0;
                let cutter = LineCutter::open(archive, index, table, lines, self.progress.bytes_done)?;
                self.state = State::Lines(Box::new(cutter));
            }
            Task::Unused { index, table } => {
                archive.check_lines(index)?;
                self.progress.bytes_done += archive.entries()[index].compressed_size;
                self.report.skipped_tables.push(table);
                return Ok(Advanced::Read);
            }
            Task::Check { index } => {
                archive.check_lines(index)?;
                return Ok(Advanced::Read);
            }
            Task::DecideVectors { entries } => {
                self.progress.phase = "vectors".into();
                match entries.first() {
                    None => self.report.vectors_skipped = Some("the archive carries no vectors".into()),
                    // An entry without rows counts as one without vectors here (the raw path
                    // restores what the tables after it hold).
                    Some(&(_, index)) if archive.first_row_has_vector(index)? != Some(true) => {
                        self.report.vectors_skipped = Some(NULL_VECTORS.into());
                        for &(_, index) in entries.iter().rev() {
                            self.tasks.push_front(Task::Check { index });
                        }
                        return Ok(Advanced::Read);
                    }
                    // The server answers once every row before is applied: all must be sent.
                    Some(_) => {
                        self.out.flush()?;
                        self.state = State::AskingVectors { entries };
                    }
                }
            }
            Task::HeldFiles { indices } => {
                self.progress.phase = "files".into();
                for index in indices {
                    let entry = &archive.entries()[index];
                    self.progress.files_done += 1;
                    self.progress.bytes_done += entry.compressed_size;
                    self.report.files_held += 1;
                    self.report.held_bytes += entry.uncompressed_size;
                }
            }
            Task::File { index } => {
                let cutter = FileCutter::open(archive, index, self.copy.as_deref())?;
                self.progress.item = cutter.name().to_string();
                self.state = State::File(Box::new(cutter));
            }
            Task::Secrets(secrets) => {
                self.progress.phase = "secrets".into();
                let plaintext = zeroize::Zeroizing::new(
                    serde_json::to_vec(&secrets.secrets)
                        .map_err(|e| FormatError::BadSecrets { detail: e.to_string() })?,
                );
                let (enc, sealed) =
                    seal(&secrets.recipient, secrets.ephemeral, SECRETS_INFO, secrets.job_id.as_bytes(), &plaintext)?;
                self.out.emit(&Batch::Secrets { enc, sealed })?;
            }
            Task::Finish => {
                self.out.flush()?;
                self.report.batches = self.out.numbered();
                self.state = State::Done;
            }
        }
        Ok(Advanced::Quietly)
    }
}

/// What one step of [`Upload::advance`] did.
enum Advanced {
    /// Set the next state up, or cut a batch that waits (nothing to tell the owner yet).
    Quietly,
    /// Read part of the archive.
    Read,
    /// Waits for the server's word on vectors.
    AskVectors,
    /// Every batch is sent.
    Done,
}

/// Sends an opened archive as batches through `sink` (see the module documentation): drives
/// an [`Upload`] to its end, reporting progress after every step.
pub fn upload_batches<R: Read + Seek, S: BatchSink>(
    archive: &Archive<R>,
    plan: UploadPlan,
    sink: &mut S,
) -> Result<UploadReport> {
    let mut upload = Upload::new(archive, plan);
    loop {
        match upload.step()? {
            Step::Read => {}
            Step::Send { number, batch } => {
                sink.send(number, batch)?;
                upload.sent();
            }
            Step::AskVectors => {
                let accepted = sink.vectors_accepted()?;
                upload.vectors_answer(accepted);
            }
            Step::Done(report) => {
                let report = report.clone();
                sink.progress(&upload.progress());
                return Ok(report);
            }
        }
        sink.progress(&upload.progress());
    }
}
