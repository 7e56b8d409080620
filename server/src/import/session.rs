//! One import's apply engine. Whatever the archive comes from — a staged upload, a file on
//! the command line, verified batches from the browser — its rows, files, vectors and
//! secrets go through an [`ImportSession`], so there is one set of rules and one set of
//! counts. Rows are applied by `storage::sqlite::RowApplier` (merge by id, ownership);
//! files, vectors and secrets are decided here.

use crate::embeddings::config::EmbeddingRules as _;
use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lvbak_core::batch::PlainSecret;
pub use lvbak_core::protocol::{FileSummary, ImportSummary, SecretSummary, TableCounts, VectorSummary};
use lvbak_core::registry::{connection_of_secret, is_vector_table, table_spec};
use lvbak_core::upload::FileClaim;
use lvbak_core::{
    classify_entry_name, decode_vector, EmbeddingConfig, EncryptedSecret, EntryKind, FileBucket, FormatError, Row,
    SecretKey, UnknownColumns,
};
use serde_json::Value;
use tokio::runtime::Handle;

pub use super::error::ImportError;
use super::report::{clipped, LISTED};
use crate::failure::OverQuota;
use crate::progress::Event;
use crate::storage::sqlite::{AlignedRow, RowApplier};
use crate::storage::{Store, VectorRow, WriteOutcome};

/// Files an import syncs one by one at most; past this it syncs the whole filesystem.
const SYNCED_ONE_BY_ONE: usize = 256;

/// The longest secret (name or value) stored, in bytes: API keys are far shorter.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The bytes a stored secret counts for against the quota: its sealed value as stored and
/// its row's keys.
pub fn stored_secret_bytes(secret: &crate::storage::sqlite::StoredSecret) -> u64 {
    (secret.key.len() + secret.encrypted_value.len() + secret.iv.len() + secret.tag.len()) as u64 + 64
}

/// The file formats a completion sound may be, by its first bytes.
pub fn sniffs_as_audio(head: &[u8]) -> bool {
    let starts = |magic: &[u8]| head.starts_with(magic);
    starts(b"ID3")
        || starts(b"OggS")
        || (head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE")
        || (head.len() >= 8 && &head[4..8] == b"ftyp")
        || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
}

/// A reader that stops with `Cancelled` once the flag is raised.
struct Cancellable<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        self.inner.read(buffer)
    }
}

pub struct ImportSession<'a> {
    store: &'a Store,
    user_id: String,
    applier: RowApplier,
    summary: ImportSummary,
    cancel: Arc<AtomicBool>,
    progress: &'a (dyn Fn(Event) + Sync),
    runtime: Handle,
    /// Files written (made durable before the import completes): each one, while few
    /// enough to sync one by one; `None` once there are more, when the whole filesystem is
    /// synced instead.
    written: Option<Vec<std::path::PathBuf>>,
    /// When the import began, as the filesystem stamps files (a rollback removes the
    /// importer's files from then on).
    started_on_disk: std::time::SystemTime,
    /// Rows were applied since references to remapped rows were last settled.
    unsettled: bool,
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
        if store.db.usage_of(user_id)?.is_none() {
            store.db.set_usage(user_id, store.files.usage_of(user_id)?)?;
        }
        let applier = store.db.row_applier(user_id, quota)?;
        let usage = applier.usage();
        if let Some(quota) = usage.quota.filter(|quota| usage.before > *quota) {
            return Err(ImportError::OverQuota(OverQuota { quota, used: usage.before }));
        }
        Ok(Self {
            started_on_disk: store.files.disk_time()?,
            store,
            user_id: user_id.to_string(),
            applier,
            summary: ImportSummary::default(),
            cancel,
            progress,
            runtime,
            written: Some(Vec::new()),
            unsettled: false,
        })
    }

    pub fn check_cancelled(&mut self) -> Result<(), ImportError> {
        if self.cancel.load(Ordering::Relaxed) {
            self.applier.commit()?;
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
        Ok(self.applier.commit()?)
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

    /// An import that ran out of quota or of disk takes back everything it wrote — rows
    /// and files — before it fails, so the account is as it was (on a full disk, as far as
    /// the disk lets it).
    fn roll_back_if_out_of_room<T>(&mut self, result: Result<T, ImportError>) -> Result<T, ImportError> {
        let Err(error) = &result else { return result };
        if matches!(error, ImportError::QuotaExceeded(_)) || error.is_disk_full() {
            let rows = self.applier.roll_back_import();
            let files = self.store.files.remove_written_since(&self.user_id, self.started_on_disk);
            tracing::info!(
                "an import by {} ran out of room ({error}): {rows:?} rows and {files:?} files taken back",
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
        self.applier.fits(bytes)
    }

    /// Fails the import (rolled back, `quota_exceeded`) unless `bytes` more fit in the
    /// account's quota: for a file announced before its bytes arrive.
    pub fn ensure_fits(&mut self, bytes: u64) -> Result<(), ImportError> {
        let checked = self.applier.usage().check(bytes).map_err(ImportError::from);
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

    /// Where a file of the archive may go (inside the importer's own folder of its bucket),
    /// or `None` when it must not be written: a file is restored only when one of the
    /// importer's rows names it — images and thumbnails by an image row, avatars by a
    /// character or persona, theme assets by a theme-asset row, databank documents (under
    /// their row's path) by a document row. A completion sound has no row; it is held to
    /// its five possible names and must sniff as audio.
    fn destination(&mut self, bucket: FileBucket, name: &str) -> Result<Option<String>, ImportError> {
        Ok(match bucket {
            FileBucket::Images => {
                self.applier.importer_names_file("images", "filename", name)?.then(|| name.to_string())
            }
            FileBucket::Thumbnails => {
                let stem = name.split('_').next().unwrap_or_default();
                self.applier.importer_has_image_stem(stem)?.then(|| name.to_string())
            }
            FileBucket::Avatars => (self.applier.importer_names_avatar("characters", name)?
                || self.applier.importer_names_avatar("personas", name)?)
            .then(|| name.to_string()),
            FileBucket::Databank => match name.split_once("__") {
                Some((document_id, _)) => self.applier.databank_file_path(document_id)?,
                None => None,
            },
            FileBucket::ThemeAssets => match name.split_once('/') {
                Some((bundle, file)) => {
                    self.applier.importer_names_theme_asset(bundle, file)?.then(|| name.to_string())
                }
                None => None,
            },
            FileBucket::NotificationSounds => Some(name.to_string()),
        })
    }

    /// Which of the files a client describes (archive name, size, CRC-32) the account holds
    /// already where this import would put them: the server reads its own copy to compare,
    /// so nothing is taken on the client's word. Held files count as skipped, as they would
    /// if their bytes were sent (a file whose name is taken is kept); answers their archive
    /// entry names. At most `budget` bytes of the account's files are read; claims past
    /// it are not held (their files are sent again).
    pub fn held_files(&mut self, claims: &[FileClaim], budget: u64) -> Result<Vec<String>, ImportError> {
        let mut held = Vec::new();
        let mut left = budget;
        // A file is held once, however often it is claimed (an archive names it once).
        let mut claimed = std::collections::HashSet::new();
        for claim in claims {
            self.check_cancelled()?;
            let entry = claim.entry_name();
            if !claimed.insert(entry.clone()) {
                continue;
            }
            let Ok(EntryKind::File { bucket, name }) = classify_entry_name(entry.as_bytes()) else { continue };
            let name = self.applier.local_file_name(&name)?;
            let Some(destination) = self.destination(bucket, &name)? else { continue };
            let bucket = if bucket == FileBucket::Thumbnails { FileBucket::Images } else { bucket };
            let Ok(path) = self.store.files.path(bucket, &self.user_id, &destination) else { continue };
            let same_size = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == claim.size);
            if !same_size || claim.size > left {
                continue;
            }
            left -= claim.size;
            if self.crc32_of(&path)? == Some(claim.crc32) {
                self.summary.files.skipped += 1;
                held.push(entry);
            }
        }
        Ok(held)
    }

    /// The CRC-32 of a stored file, or `None` if it cannot be read.
    fn crc32_of(&self, path: &std::path::Path) -> Result<Option<u32>, ImportError> {
        let Ok(file) = std::fs::File::open(path) else { return Ok(None) };
        let mut reader = Cancellable { inner: file, cancel: &self.cancel };
        let mut hasher = crc32fast::Hasher::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return Ok(Some(hasher.finalize())),
                Ok(read) => hasher.update(&buffer[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return Err(ImportError::Cancelled),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Reads an entry that will not be written to its end, so that a damaged archive is
    /// refused whether or not the damage sits in something that is used.
    fn drain(&self, data: &mut dyn Read) -> Result<(), ImportError> {
        let mut reader = Cancellable { inner: data, cancel: &self.cancel };
        match io::copy(&mut reader, &mut io::sink()) {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(ImportError::Cancelled),
            Err(error) => Err(FormatError::from_io(error).into()),
        }
    }

    /// Restores one file of `size` bytes (as its archive claims: it cannot inflate past
    /// that), unless a file of that name exists (it is kept) or the file may not be written
    /// (it is rejected). The bytes go to a temporary name first and appear only once
    /// complete and checked. `stored` is the archive file and the byte range of a stored
    /// entry, which is then copied in the kernel while `data` is read for its checks. A file
    /// that does not fit in the account's quota fails the import (`quota_exceeded`).
    pub fn apply_file(
        &mut self,
        bucket: FileBucket,
        name: &str,
        size: u64,
        data: &mut dyn Read,
        stored: Option<(&std::path::Path, (u64, u64))>,
    ) -> Result<(), ImportError> {
        self.check_cancelled()?;
        self.settle_references()?;
        let name = self.applier.local_file_name(name)?;
        let written = self.write_file(bucket, &name, size, data, stored);
        self.roll_back_if_out_of_room(written)
    }

    fn write_file(
        &mut self,
        bucket: FileBucket,
        name: &str,
        size: u64,
        data: &mut dyn Read,
        stored: Option<(&std::path::Path, (u64, u64))>,
    ) -> Result<(), ImportError> {
        let destination = self.destination(bucket, name)?;
        let bucket = if bucket == FileBucket::Thumbnails { FileBucket::Images } else { bucket };
        let Some(destination) = destination.filter(|d| self.store.files.path(bucket, &self.user_id, d).is_ok()) else {
            self.drain(data)?;
            self.summary.files.rejected += 1;
            return Ok(());
        };
        let mut head = [0u8; 16];
        let mut got = 0;
        if bucket == FileBucket::NotificationSounds {
            while got < head.len() {
                let read = data.read(&mut head[got..]).map_err(FormatError::from_io)?;
                if read == 0 {
                    break;
                }
                got += read;
            }
            if !sniffs_as_audio(&head[..got]) {
                self.drain(data)?;
                self.summary.files.rejected += 1;
                return Ok(());
            }
        }
        if self.store.files.path(bucket, &self.user_id, &destination).is_ok_and(|path| path.exists()) {
            self.drain(&mut (&head[..got]).chain(data))?;
            self.summary.files.skipped += 1;
            return Ok(());
        }
        self.applier.charge(size, false)?;
        let mut reader = Cancellable { inner: (&head[..got]).chain(data), cancel: &self.cancel };
        let written = match stored.filter(|_| got == 0) {
            Some((archive, range)) => {
                let mut verify = || io::copy(&mut reader, &mut io::sink()).map(|_| ());
                self.store.files.write_new_from_range(bucket, &self.user_id, &destination, archive, range, &mut verify)
            }
            None => self.store.files.write_new(bucket, &self.user_id, &destination, &mut reader),
        };
        match written {
            Ok(WriteOutcome::Written { bytes }) => {
                self.summary.files.imported += 1;
                self.summary.files.bytes += bytes;
                let path = self.store.files.path(bucket, &self.user_id, &destination).ok();
                self.written = match (self.written.take(), path) {
                    (Some(mut paths), Some(path)) if paths.len() < SYNCED_ONE_BY_ONE => {
                        paths.push(path);
                        Some(paths)
                    }
                    _ => None,
                };
                self.applier.refund(size.saturating_sub(bytes));
            }
            Ok(WriteOutcome::AlreadyThere) => {
                if stored.is_none() {
                    self.drain(&mut reader)?;
                }
                self.summary.files.skipped += 1;
                self.applier.refund(size);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Err(ImportError::Cancelled),
            // Archive faults (CRC, size, bombs) surface as wrapped format errors.
            Err(error) => return Err(FormatError::from_io(error).into()),
        }
        Ok(())
    }

    pub fn file_summary(&self) -> FileSummary {
        self.summary.files
    }

    /// Whether vectors made under `archive` may be restored for the importer, or why not.
    pub fn vector_restore_blocker(&mut self, archive: &EmbeddingConfig) -> Result<Option<String>, ImportError> {
        let mine = self
            .applier
            .embedding_setting()?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|value| EmbeddingConfig::from_setting_value(&value))
            .unwrap_or_default();
        Ok(if archive.dimension.is_none() {
            Some("the archive records no embedding dimension".into())
        } else if !archive.vectors_restore_into(&mine) {
            Some("the embedding provider, model or dimension differs from this account's".into())
        } else {
            None
        })
    }

    /// Restores a batch of vector rows of `table`; `dimension` is the archive's. A row
    /// without a vector, of the wrong length, or whose source row is another user's is
    /// rejected; an id that exists is skipped.
    pub fn apply_vectors(&mut self, table: &str, rows: Vec<Row>, dimension: u32) -> Result<TableCounts, ImportError> {
        self.check_cancelled()?;
        self.settle_references()?;
        let mut counts = TableCounts::default();
        if !is_vector_table(table) {
            self.skip_table(&format!("lancedb:{table}"));
            return Ok(counts);
        }
        let text = |row: &Row, key: &str| row.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let mut accepted = Vec::with_capacity(rows.len());
        for row in rows {
            let source_type = text(&row, "source_type");
            let source_id = self.applier.local_id(&text(&row, "source_id"))?;
            let owner_id = self.applier.local_id(&text(&row, "owner_id"))?;
            let chunk_index = row.get("chunk_index").and_then(Value::as_f64).unwrap_or(0.0);
            let vector = match row.get("vector_b64").and_then(Value::as_str).map(|b64| decode_vector(b64, "vector_b64"))
            {
                Some(Ok(vector)) if vector.len() == dimension as usize => vector,
                _ => {
                    counts.rejected += 1;
                    continue;
                }
            };
            let Some(content) = self.applier.vector_source_text(&source_type, &source_id)? else {
                counts.rejected += 1;
                continue;
            };
            if self.applier.vector_source_pending(&source_type, &source_id)? {
                counts.skipped += 1;
                continue;
            }
            let mut index_text = Vec::new();
            lvbak_core::write_js_number(&mut index_text, chunk_index);
            accepted.push(VectorRow {
                id: format!("{}:{source_type}:{source_id}:{}", self.user_id, String::from_utf8_lossy(&index_text)),
                user_id: self.user_id.clone(),
                source_type,
                source_id,
                owner_id,
                chunk_index,
                content,
                vector,
                metadata_json: self.applier.local_json(text(&row, "metadata_json"))?,
                updated_at: row.get("updated_at").and_then(Value::as_f64).unwrap_or(0.0),
            });
        }
        let dimension = i32::try_from(dimension).unwrap_or(i32::MAX);
        let ids: Vec<String> = accepted.iter().map(|row| row.id.clone()).collect();
        let existing = self.runtime.block_on(self.store.vectors.existing_ids(table, dimension, &ids))?;
        let fresh: Vec<VectorRow> = accepted.into_iter().filter(|row| !existing.contains(&row.id)).collect();
        counts.skipped += existing.len() as u64;
        let bytes: u64 = fresh.iter().map(|row| row.stored_bytes()).sum();
        // Vectors stay if a later step rolls the import back (their source rows go; they
        // count against the quota like anything else).
        let charged = self.applier.charge(bytes, true).map_err(ImportError::from);
        self.roll_back_if_out_of_room(charged)?;
        let added = self.runtime.block_on(self.store.vectors.add(table, &fresh, dimension)).map_err(ImportError::from);
        self.roll_back_if_out_of_room(added)?;
        counts.imported += fresh.len() as u64;
        self.summary.vectors.tables.entry(table.to_string()).or_default().add(counts);
        Ok(counts)
    }

    /// Records that vectors were (or were not) restored.
    pub fn set_vector_outcome(&mut self, blocker: Option<String>) {
        self.summary.vectors.restored = blocker.is_none();
        self.summary.vectors.reason = blocker;
    }

    /// Starts applying secrets: `count` records will follow (see [`Self::apply_secret`]).
    pub fn begin_secrets(&mut self, count: usize) {
        self.progress(Event::SecretsApplyStart { count });
        self.summary.secrets.applied = true;
    }

    /// Decrypts one secret record with the ticket's key and stores it (see
    /// [`Self::store_secret`]); a record that fails is skipped alone. Plaintext only lives
    /// in memory.
    pub fn apply_secret(&mut self, record: &EncryptedSecret, key: &SecretKey) -> Result<(), ImportError> {
        match record.open(key) {
            Ok(plaintext) => self.store_secret(&record.key, &plaintext),
            Err(_) => {
                self.reject_secret(&record.key);
                Ok(())
            }
        }
    }

    fn reject_secret(&mut self, key: &str) {
        self.summary.secrets.rejected += 1;
        if self.summary.secrets.rejected_keys.len() < LISTED {
            self.summary.secrets.rejected_keys.push(clipped(key, 128));
        }
    }

    /// Stores secrets the browser decrypted itself (and sent sealed to this import's key),
    /// by the same rules as [`Self::apply_secret`].
    pub fn apply_plain_secrets(&mut self, secrets: &[PlainSecret]) -> Result<(), ImportError> {
        self.begin_secrets(secrets.len());
        for secret in secrets {
            self.store_secret(&secret.key, &secret.value)?;
        }
        self.end_secrets();
        Ok(())
    }

    pub fn end_secrets(&self) {
        self.progress(Event::SecretsApplyDone {
            imported: self.summary.secrets.imported,
            skipped: self.summary.secrets.skipped,
        });
    }

    /// Stores one secret sealed under this instance's identity key, unless the importer
    /// already has a secret of that name (kept, as rows are). A value over
    /// [`MAX_SECRET_BYTES`] is no API key: it is rejected.
    fn store_secret(&mut self, key: &str, plaintext: &str) -> Result<(), ImportError> {
        if plaintext.len() > MAX_SECRET_BYTES || key.len() > MAX_SECRET_BYTES {
            self.reject_secret(key);
            return Ok(());
        }
        let sealed = self.store.identity.seal(&self.user_id, key, plaintext);
        // A secret takes room like a row (and stays, like a vector, if the import is rolled
        // back: secrets are not among the rows a rollback removes).
        let bytes = stored_secret_bytes(&sealed);
        self.ensure_fits(bytes)?;
        // The secret goes in through the database's own writer: no transaction of ours open.
        self.applier.commit()?;
        // A restored embeddings key may go only where this account's own confirmed setting
        // sends requests; with none confirmed, nowhere until the user confirms one.
        let endpoint = self.confirmed_embedding_endpoint()?;
        if !self.store.db.put_secret_if_absent(&self.user_id, &sealed, crate::util::now(), endpoint.as_deref())? {
            self.summary.secrets.skipped += 1;
            return Ok(());
        }
        self.applier.charge(bytes, true)?;
        if let Some((table, id)) = connection_of_secret(key) {
            self.applier.mark_has_api_key(table, id)?;
        }
        self.summary.secrets.imported += 1;
        Ok(())
    }

    /// The endpoint of the account's embeddings setting if the user confirmed it in this
    /// account (not one an import restored).
    fn confirmed_embedding_endpoint(&self) -> Result<Option<String>, ImportError> {
        let setting = self.store.db.setting(&self.user_id, crate::embeddings::SETTING_KEY)?;
        if setting.is_none() || self.store.db.embedding_unconfirmed(&self.user_id)? {
            return Ok(None);
        }
        Ok(Some(crate::embeddings::EmbeddingSettings::from_setting(setting.as_deref()).endpoint()))
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
        let settled = self.settle_and_scrub().and_then(|()| Ok(self.applier.commit()?));
        if let Err(error) = settled {
            tracing::warn!("an import by {} stopped and could not settle its references: {error}", self.user_id);
        }
    }

    /// Clears dangling references, marks what must be re-vectorized, and makes restored
    /// files durable; the summary.
    pub fn finish(mut self) -> Result<ImportSummary, ImportError> {
        self.settle_and_scrub()?;
        if !self.summary.vectors.restored {
            self.summary.revectorized = self.applier.mark_inserted_for_revectorization()?;
        }
        self.applier.commit()?;
        // A small import syncs its own files only, so it never waits for other users'
        // unwritten data; a large one syncs the filesystem (cheaper than thousands of fsyncs).
        match &self.written {
            Some(paths) => self.store.files.sync_files(paths)?,
            None => self.store.files.sync()?,
        }
        Ok(self.summary)
    }
}
