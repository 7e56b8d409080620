//! One import's apply engine. Whatever the archive comes from — a staged upload, a file on
//! the command line, verified batches from the browser — its rows, files, vectors and
//! secrets go through an [`ImportSession`], so there is one set of rules and one set of
//! counts. Rows are applied through the backend's `storage::backend::import_rows::ImportRows` by
//! `crate::policy`'s rules (merge by id, ownership, remap, quota); files, vectors and
//! secrets are decided here, by the same rules.

use crate::embeddings::config::EmbeddingRules as _;
use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lvbak_core::batch::PlainSecret;
pub use lvbak_core::protocol::{FileSummary, ImportSummary, TableCounts};
use lvbak_core::registry::{connection_of_secret, is_vector_table, table_spec};
use lvbak_core::upload::FileClaim;
use lvbak_core::vector::row_vector;
use lvbak_core::{
    classify_entry_name, decode_vector, EmbeddingConfig, EncryptedSecret, EntryKind, FileBucket, FormatError, Row,
    SecretKey, UnknownColumns,
};
use serde_json::Value;
use tokio::runtime::Handle;

pub use super::error::ImportError;
use super::report::{clipped, LISTED};
use crate::failure::OverQuota;
use crate::policy::rows::AlignedRow;
use crate::progress::Event;
use crate::storage::backend::file_storage::WrittenFile;
use crate::storage::backend::import_rows::ImportRows;
use crate::storage::{Store, VectorRow, WriteOutcome};

pub(crate) mod files;
mod preview;
mod secrets;
mod selection;
mod vectors;

pub struct ImportSession<'a> {
    store: &'a Store,
    user_id: String,
    applier: Box<dyn ImportRows>,
    summary: ImportSummary,
    cancel: Arc<AtomicBool>,
    progress: &'a (dyn Fn(Event) + Sync),
    runtime: Handle,
    /// Files written (made durable before the import completes): each one, while few
    /// enough to sync one by one; `None` once there are more, when everything written so
    /// far is made durable at once instead.
    written: Option<Vec<WrittenFile>>,
    /// When the import began, as the filesystem stamps files (a rollback removes the
    /// importer's files from then on).
    started_on_disk: std::time::SystemTime,
    /// Rows were applied since references to remapped rows were last settled.
    unsettled: bool,
    /// The picks a selective restore from the browser declared: what it added must be
    /// their closure (see `session::selection`); with the archive's id when they came as
    /// a copy.
    selection: Option<(lvbak_core::closure::Selection, Option<String>)>,
}

impl<'a> ImportSession<'a> {
    /// A session for `user_id`, held to `quota` (the instance's; an account's own quota
    /// wins).
    pub fn new(
        store: &'a Store,
        user_id: &str,
        quota: Option<u64>,
        cancel: Arc<AtomicBool>,
        progress: &'a (dyn Fn(Event) + Sync),
        runtime: Handle,
    ) -> Result<Self, ImportError> {
        // An account without a recorded use (made before quotas) starts from its files.
        if runtime.block_on(store.accounts().usage_of(user_id))?.is_none() {
            let files = store.files.usage_of(user_id)?;
            runtime.block_on(store.accounts().set_usage(user_id, files))?;
        }
        let applier = store.import_rows(user_id, quota)?;
        let usage = applier.usage();
        if let Some(quota) = usage.quota.filter(|quota| usage.before > *quota) {
            return Err(ImportError::OverQuota(OverQuota { quota, used: usage.before }));
        }
        let started_on_disk = store.files.write_mark(user_id)?;
        Ok(Self::with_applier(store, user_id, applier, cancel, progress, runtime, started_on_disk))
    }

    /// A session over `applier`, `user_id`'s rows, whose files written since
    /// `started_on_disk` are its own (a rollback takes them back).
    fn with_applier(
        store: &'a Store,
        user_id: &str,
        applier: Box<dyn ImportRows>,
        cancel: Arc<AtomicBool>,
        progress: &'a (dyn Fn(Event) + Sync),
        runtime: Handle,
        started_on_disk: std::time::SystemTime,
    ) -> Self {
        Self {
            started_on_disk,
            store,
            user_id: user_id.to_string(),
            applier,
            summary: ImportSummary::default(),
            cancel,
            progress,
            runtime,
            written: Some(Vec::new()),
            unsettled: false,
            selection: None,
        }
    }

    pub fn check_cancelled(&mut self) -> Result<(), ImportError> {
        if self.cancel.load(Ordering::Relaxed) {
            self.commit()?;
            return Err(ImportError::Cancelled);
        }
        Ok(())
    }

    /// Counts what the session's lookup caches hold in the instance's memory budget.
    pub fn count_memory_in(&mut self, budget: &crate::memory::MemoryBudget) {
        self.applier.count_caches_in(budget);
    }

    /// Lets go of the memory the session can rebuild (while a batch import waits).
    pub fn release_memory(&mut self) {
        self.applier.release_memory();
    }

    /// Commits the rows applied so far (before long work that writes no rows).
    pub fn commit(&mut self) -> Result<(), ImportError> {
        self.settle_counts()?;
        Ok(self.applier.commit()?)
    }

    /// Counts the rows whose outcome the applier knew only after their batch (see
    /// `ImportRows::settle`).
    fn settle_counts(&mut self) -> Result<(), ImportError> {
        let settled = self.applier.settle().map_err(ImportError::from);
        for (table, counts) in self.roll_back_if_out_of_room(settled)? {
            self.summary.tables.entry(table.to_string()).or_default().add(counts);
        }
        Ok(())
    }

    pub fn progress(&self, event: Event) {
        (self.progress)(event);
    }

    /// Notes a table of the archive that will not be applied (the first few are named).
    pub fn skip_table(&mut self, table: &str) {
        let table = clipped(table, 64);
        let listed = &mut self.summary.skipped_tables;
        if listed.len() < LISTED && !listed.contains(&table) {
            listed.push(table);
        }
    }

    /// Notes the keys rows of `table` carried that are not its columns (see
    /// [`ImportSummary::dropped_columns`]).
    pub fn note_dropped_columns(&mut self, table: &str, unknown: &UnknownColumns) {
        let names = unknown.listed();
        if names.is_empty() {
            return;
        }
        // A table's rows may come in several batches: their lists are joined, bounded.
        let listed = self.summary.dropped_columns.entry(table.to_string()).or_default();
        let mut more = false;
        for name in listed.drain(..).chain(names).collect::<BTreeSet<_>>() {
            if name == UnknownColumns::MORE || listed.len() == UnknownColumns::LISTED {
                more = true;
            } else {
                listed.push(name);
            }
        }
        if more {
            listed.push(UnknownColumns::MORE.to_string());
        }
    }

    /// The live columns of a registry table: rows are handed to [`Self::apply_rows`]
    /// aligned with these (see `lvbak_core::parse_row_aligned`).
    pub fn columns_of(&mut self, table: &str) -> Result<Option<Vec<String>>, ImportError> {
        match table_spec(table) {
            Some(spec) => Ok(Some(self.applier.columns_of(spec)?)),
            None => Ok(None),
        }
    }

    /// Applies a batch of rows of `table` (one transaction); tables outside the registry are
    /// skipped whole.
    pub fn apply_rows(&mut self, table: &str, rows: Vec<AlignedRow>) -> Result<TableCounts, ImportError> {
        self.check_cancelled()?;
        let Some(spec) = table_spec(table) else {
            self.skip_table(table);
            return Ok(TableCounts::default());
        };
        let counts = self.applier.apply(spec, rows).map_err(ImportError::from);
        let counts = self.roll_back_if_out_of_room(counts)?;
        self.unsettled = true;
        self.summary.tables.entry(table.to_string()).or_default().add(counts);
        Ok(counts)
    }

    /// Counts rows of `table` the client left out because the account has their ids (they
    /// are skipped, as they would be if sent).
    pub fn note_held_rows(&mut self, table: &str, held: u64) {
        if held > 0 && table_spec(table).is_some() {
            self.summary.tables.entry(table.to_string()).or_default().skipped += held;
        }
    }

    /// An import that ran out of quota or of disk, or whose object store stopped answering,
    /// takes back everything it wrote — rows and files — before it fails, so the account is
    /// as it was (on a full disk or without the store, as far as they let it).
    fn roll_back_if_out_of_room<T>(&mut self, result: Result<T, ImportError>) -> Result<T, ImportError> {
        let Err(error) = &result else { return result };
        let taken_back = matches!(error, ImportError::QuotaExceeded(_) | ImportError::OpenSelection(_));
        if taken_back || error.is_disk_full() || error.is_storage_unavailable() {
            let rows = self.applier.roll_back_import();
            let files = self.store.files.remove_written_since(&self.user_id, self.started_on_disk);
            let (store, runtime, user_id) = (self.store, &self.runtime, self.user_id.as_str());
            let vectors = self.applier.take_recorded_vectors(&mut |table, dimension, ids| {
                runtime
                    .block_on(store.vectors.delete_ids(table, dimension, user_id, ids))
                    .map(|_| ())
                    .map_err(|error| crate::storage::sqlite::DbError::Invalid(error.to_string()))
            });
            tracing::info!(
                "an import by {} ran out of room ({error}): {rows:?} rows, {files:?} files and its vectors ({vectors:?}) taken back",
                self.user_id
            );
        }
        result
    }

    /// Once the rows are in (before files, vectors and the end): references to rows copied
    /// under new ids are brought to the new ids (see `storage::sqlite` `remap`).
    fn settle_references(&mut self) -> Result<(), ImportError> {
        if self.unsettled {
            let settled = self.applier.settle_remapped_references().map_err(ImportError::from);
            self.roll_back_if_out_of_room(settled)?;
            self.unsettled = false;
        }
        Ok(())
    }

    /// Whether `bytes` more would fit in the account's quota.
    pub fn fits_quota(&self, bytes: u64) -> bool {
        self.applier.usage().fits(bytes)
    }

    /// Fails the import (rolled back, `quota_exceeded`) unless `bytes` more fit in the
    /// account's quota: for a file announced before its bytes arrive.
    pub fn ensure_fits(&mut self, bytes: u64) -> Result<(), ImportError> {
        let checked = self.applier.usage().check(bytes).map_err(ImportError::QuotaExceeded);
        self.roll_back_if_out_of_room(checked)
    }

    /// Publishes how many rows of `table` were processed so far.
    pub fn table_progress(&self, table: &str) {
        let counts = self.table_counts(table);
        let processed = counts.imported + counts.skipped + counts.merged + counts.rejected;
        self.progress(Event::Table { table: table.to_string(), processed });
    }

    /// The counts of one table so far.
    pub fn table_counts(&self, table: &str) -> TableCounts {
        self.summary.tables.get(table).copied().unwrap_or_default()
    }

    /// The counts of a table whose rows have all been applied, every row's outcome known.
    pub fn settled_table_counts(&mut self, table: &str) -> Result<TableCounts, ImportError> {
        self.settle_counts()?;
        Ok(self.table_counts(table))
    }

    /// Brings references to rows copied under new ids to the copies, and clears those that
    /// point at rows that are missing or another account's: what every import does with
    /// what it applied, however it ends.
    fn settle_and_scrub(&mut self) -> Result<(), ImportError> {
        self.settle_references()?;
        self.summary.scrubbed_references += self.applier.scrub_references()?;
        Ok(())
    }

    /// An import that stops before its end (cancelled, failed, timed out) settles the rows
    /// it applied exactly as a complete one does, so nothing the account keeps points at
    /// another account's rows; the stop itself is the story, so a failure here is logged.
    pub fn settle_after_stop(mut self) {
        let settled = self.settle_and_scrub().and_then(|()| self.commit());
        if let Err(error) = settled {
            tracing::warn!("an import by {} stopped and could not settle its references: {error}", self.user_id);
        }
    }

    /// Clears dangling references, marks what must be re-vectorized, and makes restored
    /// files durable; the summary.
    pub fn finish(mut self) -> Result<ImportSummary, ImportError> {
        self.settle_counts()?;
        self.settle_and_scrub()?;
        let closed = self.check_selection();
        self.roll_back_if_out_of_room(closed)?;
        if !self.summary.vectors.restored {
            self.summary.revectorized = self.applier.mark_inserted_for_revectorization()?;
        }
        // Rows are committed once the files they name are stored (object storage writes
        // small files in the background).
        let flushed = self.store.files.flush_writes(&self.user_id).map_err(ImportError::from);
        self.roll_back_if_out_of_room(flushed)?;
        self.commit()?;
        // A small import syncs its own files only, so it never waits for other users'
        // unwritten data; a large one syncs the filesystem (cheaper than thousands of fsyncs).
        self.store.files.make_durable(self.written.as_deref())?;
        Ok(self.summary)
    }
}
