//! Import in verified batches (the browser's path): the page checks the archive locally and
//! sends it piece by piece (`lvbak_core::batch`). The server decodes and checks each batch
//! again and applies it through the same `ImportSession` as a raw upload.
//!
//! - `POST /api/v1/user-data/import/batches` `{manifest, secretsIndex?, files?}` opens a job
//!   and answers its id, whether vectors will be accepted, an HPKE public key for secrets,
//!   and `heldFiles`: which of the archive's `files` (name, size, CRC-32) the account holds
//!   already, by the server's own reading of its copies; the client leaves those out.
//! - `GET .../held-rows` answers, per table, the hashes of the row ids the account has
//!   (`lvbak_core::upload::held_id_hash`, 8 bytes little-endian each, base64): the client
//!   leaves those rows out and says how many per batch (`held`), up to what it was handed;
//!   and `fresh`, the tables the account had no rows of at the job's first reading, which
//!   the client sends as the archive's deflate streams (a resumed upload the same way).
//! - `PUT /api/v1/user-data/import/:jobId/batches/:n` with `X-Batch-Sha256` sends batch `n`
//!   (0-based). A replay of a recent batch answers the same; a gap answers 409 with
//!   `nextBatch`, so an interrupted upload resumes where it stopped.
//! - `POST .../vectors-check` says whether vectors may come once the rows are in.
//! - `POST /api/v1/user-data/import/:jobId/commit` `{batches}` applies what is queued, runs
//!   the reference scrub and completes the job.
//!
//! - A job opened with `"preview": true` is a restore preview: its held files are every
//!   file claimed (no file is sent; each is previewed from its claim), its held rows none
//!   (every row is sent), it takes no vectors and drops sealed secrets unopened, a file or
//!   vectors batch ends it with `bad_batch`, and its commit answers the `RestorePreview`
//!   (`lvbak import --dry-run --json`'s object). Nothing is written or charged, the job is
//!   never recorded (its id answers 404 once answered), and previews take the user's import
//!   slot and are rate-limited per account (`preview_burst`, `preview_interval`).
//!
//! Status, events and cancel are the raw path's endpoints. The parts: `http` (the
//! handlers: frame checks, the ledger, acknowledging), `ledger` (which batches were taken),
//! `worker` (one thread per open job, fed by a short queue, taking a worker slot from the
//! instance's pool per batch and ending on commit, failure, cancel or a timeout), `apply`
//! (what each kind of batch does to the session: rows inflated and parsed in bounded
//! steps — or segments of the archive's own deflate stream of a table, through one
//! `lvbak_core::row_stream::RowStream` per table — file chunks staged, vectors, sealed
//! secrets).
//!
//! Memory is bounded: a request body counts against the instance's batch memory before it
//! is read, a job queues at most [`QUEUE`] batches, and a batch is inflated and parsed a
//! step at a time. A payload that fails its checks there ends the job with its code
//! (`bad_json`, `line_too_long`, `decompressed_cap`), which the next request answers.

mod apply;
mod held;
mod http;
mod ledger;
mod lookup;
#[cfg(test)]
mod testing;
mod work;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub(crate) use http::reopen;
pub use http::routes;

/// Batches a job holds between acknowledging them and applying them.
pub const QUEUE: usize = 2;

/// Readings of an account's held rows per job: one when the upload starts and a few
/// resumes (each of which may be retried when its connection drops); each reads every id
/// of the account.
pub const HELD_ROWS_READS: u64 = 8;

/// Batch bodies of one job that may arrive at once: the browser sends one at a time, and a
/// retry may overlap the request it replaces.
pub const RECEIVING: usize = 2;

/// One of a job's batch bodies arriving; its place is given back when it ends.
struct Receiving<'a>(&'a AtomicUsize);

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BatchUpload {
    /// A place for one more batch body of this job, or `busy` when [`RECEIVING`] are
    /// arriving already.
    fn receiving(&self) -> Result<Receiving<'_>, crate::error::AppError> {
        if self.receiving.fetch_add(1, Ordering::AcqRel) >= RECEIVING {
            self.receiving.fetch_sub(1, Ordering::AcqRel);
            return Err(crate::error::AppError::Busy {
                what: "batches of this import",
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        Ok(Receiving(&self.receiving))
    }

    /// Notes that `handed` row ids of `table` were handed to the client as held.
    fn hand_out_rows(&self, table: &str, handed: u64) {
        let mut budgets = self.held_rows.lock();
        let budget = budgets.entry(table.to_string()).or_default();
        budget.0 = budget.0.max(handed);
    }

    /// How many of `claimed` rows of `table` a batch may count as held.
    fn take_held_rows(&self, table: &str, claimed: u64) -> u64 {
        let mut budgets = self.held_rows.lock();
        let Some((handed, taken)) = budgets.get_mut(table) else { return 0 };
        let granted = claimed.min(handed.saturating_sub(*taken));
        *taken += granted;
        granted
    }

    fn hold_files(&self, held: Vec<String>) {
        *self.held_files.lock() = held;
    }

    /// What a client resuming the upload needs: the next batch, the key to seal to, and how
    /// many files the server said it holds (their names: [`Self::held_files`]).
    pub fn resume_facts(&self) -> (u64, &str, usize) {
        let held = self.held_files.lock().len();
        (self.next_batch.load(std::sync::atomic::Ordering::Relaxed), &self.public_key, held)
    }

    /// The files the server said it holds (the upload leaves them out, so its batch
    /// numbers depend on them).
    fn held_files(&self) -> Vec<String> {
        self.held_files.lock().clone()
    }
}

/// The server's half of one batch upload, held by its job.
pub struct BatchUpload {
    ledger: tokio::sync::Mutex<ledger::Ledger>,
    /// The batch expected next, as the ledger says once it took one (read by the job's
    /// status, so an interrupted browser resumes there).
    next_batch: AtomicU64,
    /// The job's HPKE public key (base64), for a client that resumes the upload.
    public_key: String,
    /// The archive's files the account holds already (entry names), fixed when the job
    /// opened: the client does not send them.
    held_files: parking_lot::Mutex<Vec<String>>,
    /// Per table: row ids handed to the client as held, and rows it has said it left out.
    /// A batch's `held` count is held to what is left, so a client cannot inflate the
    /// summary's skipped rows past the ids it was given.
    held_rows: parking_lot::Mutex<HashMap<String, (u64, u64)>>,
    /// The tables of which the account had no rows when its held rows were first read
    /// whole: the client sends those as the archive's deflate streams, and must go on doing
    /// so when it resumes (by then the account has the rows this job applied).
    fresh_tables: std::sync::OnceLock<Vec<&'static str>>,
    /// Set while the held rows are being read for this job (one reading at a time), and
    /// how many readings the job has had (at most [`HELD_ROWS_READS`]).
    reading_held_rows: AtomicBool,
    held_rows_reads: AtomicU64,
    /// Set by a vectors check that said yes.
    accept_vectors: AtomicBool,
    /// Batch bodies of this job arriving now (at most [`RECEIVING`]).
    receiving: AtomicUsize,
    /// Payload bytes taken so far, inflated (held to the decompressed cap per job).
    inflated: Arc<AtomicU64>,
    /// Places in the job's queue; a batch takes one until it is applied.
    places: Arc<Semaphore>,
    queue: std::sync::mpsc::SyncSender<work::Queued>,
}
