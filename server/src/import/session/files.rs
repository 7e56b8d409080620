//! Files of an import: where each may go (only where one of the importer's rows names it),
//! which the account holds already (read from its own copies, never on the client's word),
//! and each one restored whole or not at all, held to its claimed size and the quota.

use super::*;
use crate::policy::files::{file_rule, sniffs_as_audio, FileRule};

/// Files an import syncs one by one at most; past this it syncs the whole filesystem.
pub(super) const SYNCED_ONE_BY_ONE: usize = 256;

/// A reader that stops with `Cancelled` once the flag is raised.
pub(super) struct Cancellable<'a, R> {
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

/// The CRC-32 of one of `user_id`'s stored files, or `None` if it cannot be read; stops with
/// `Cancelled` once `cancel` is raised.
pub(crate) fn stored_crc32(
    store: &Store,
    user_id: &str,
    bucket: FileBucket,
    name: &str,
    cancel: &AtomicBool,
) -> Result<Option<u32>, ImportError> {
    let Ok(Some((file, _))) = store.files.open(bucket, user_id, name) else { return Ok(None) };
    let mut reader = Cancellable { inner: file, cancel };
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

impl ImportSession<'_> {
    /// Where a file of the archive may go (inside the importer's own folder of its bucket),
    /// or `None` when it must not be written: `policy::files` says which of the importer's
    /// rows must name it, and the backend answers.
    pub(super) fn destination(&mut self, bucket: FileBucket, name: &str) -> Result<Option<String>, ImportError> {
        Ok(match file_rule(bucket, name) {
            FileRule::NamedByAny(questions) => {
                let mut named = false;
                for question in questions {
                    if self.applier.answers(question)? {
                        named = true;
                        break;
                    }
                }
                named.then(|| name.to_string())
            }
            FileRule::PathOf { table, column, id } => self.applier.path_of(table, column, id)?,
            FileRule::Always => Some(name.to_string()),
            FileRule::Nowhere => None,
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
            if !self.store.files.accepts(bucket, &self.user_id, &destination) {
                continue;
            }
            let same_size = matches!(self.store.files.size_of(bucket, &self.user_id, &destination), Ok(Some(size)) if size == claim.size);
            if !same_size || claim.size > left {
                continue;
            }
            left -= claim.size;
            if self.crc32_of(bucket, &destination)? == Some(claim.crc32) {
                self.summary.files.skipped += 1;
                held.push(entry);
            }
        }
        Ok(held)
    }

    /// The CRC-32 of one of the importer's stored files, or `None` if it cannot be read.
    pub(super) fn crc32_of(&self, bucket: FileBucket, name: &str) -> Result<Option<u32>, ImportError> {
        stored_crc32(self.store, &self.user_id, bucket, name, &self.cancel)
    }

    /// Reads an entry that will not be written to its end, so that a damaged archive is
    /// refused whether or not the damage sits in something that is used.
    pub(crate) fn drain(&self, data: &mut dyn Read) -> Result<(), ImportError> {
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

    pub(super) fn write_file(
        &mut self,
        bucket: FileBucket,
        name: &str,
        size: u64,
        data: &mut dyn Read,
        stored: Option<(&std::path::Path, (u64, u64))>,
    ) -> Result<(), ImportError> {
        let destination = self.destination(bucket, name)?;
        let bucket = if bucket == FileBucket::Thumbnails { FileBucket::Images } else { bucket };
        let Some(destination) = destination.filter(|d| self.store.files.accepts(bucket, &self.user_id, d)) else {
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
        if self.store.files.size_of(bucket, &self.user_id, &destination).is_ok_and(|size| size.is_some()) {
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
                self.written = match self.written.take() {
                    Some(mut written) if written.len() < SYNCED_ONE_BY_ONE => {
                        written.push((bucket, self.user_id.clone(), destination.clone()));
                        Some(written)
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
}
