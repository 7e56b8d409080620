//! Files under the data directory, laid out as FORMAT §2's last column says: `images/`
//! (originals and thumbnails), `avatars/`, `databank/<user>/`, `theme-assets/<user>/`,
//! `notification-sounds/<user>/`. Every path is built by lvbak-core's
//! `FileBucket::relative_destination`, so nothing lands outside its folder; new files are
//! written under a temporary name in `staging/` and then hard-linked into place, so an
//! existing file is never replaced and a half-written one is never visible (a process that
//! dies mid-file leaves only a temporary, which start-up removes). Like `cp`, writing does
//! not wait for the disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use lvbak_core::{FileBucket, FormatError};

use super::identity::random_bytes;

pub struct FileStore {
    root: PathBuf,
    /// Where files are written before they are linked into place (same filesystem).
    scratch: PathBuf,
}

/// Bytes moved per read and write when storing a file.
const COPY_BUFFER: usize = 1 << 20;

/// What writing a file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written {
        bytes: u64,
    },
    /// A file of that name was already there; it was kept.
    AlreadyThere,
}

impl FileStore {
    pub fn new(root: &Path, scratch: &Path) -> Self {
        Self { root: root.to_path_buf(), scratch: scratch.to_path_buf() }
    }

    /// Where a file of `bucket` named `inner` lives (for per-user buckets, under `user_id`).
    pub fn path(&self, bucket: FileBucket, user_id: &str, inner: &str) -> Result<PathBuf, FormatError> {
        let segments = bucket.relative_destination(user_id, inner)?;
        Ok(segments.iter().fold(self.root.clone(), |path, segment| path.join(segment)))
    }

    /// Opens a stored file for reading, or `None` if it is not there.
    pub fn open(&self, bucket: FileBucket, user_id: &str, inner: &str) -> io::Result<Option<(File, u64)>> {
        let path = self.path(bucket, user_id, inner).map_err(io::Error::other)?;
        match File::open(&path) {
            Ok(file) => {
                let metadata = file.metadata()?;
                if !metadata.is_file() {
                    return Ok(None);
                }
                Ok(Some((file, metadata.len())))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Stores a new file from `data`, unless one of that name exists.
    pub fn write_new(
        &self,
        bucket: FileBucket,
        user_id: &str,
        inner: &str,
        data: &mut dyn Read,
    ) -> io::Result<WriteOutcome> {
        let destination = self.path(bucket, user_id, inner).map_err(io::Error::other)?;
        if destination.exists() {
            return Ok(WriteOutcome::AlreadyThere);
        }
        let folder = destination.parent().ok_or_else(|| io::Error::other("a file path without a folder"))?;
        fs::create_dir_all(folder)?;
        fs::create_dir_all(&self.scratch)?;
        let temporary = self.scratch.join(format!("file-{}.partial", hex(&random_bytes::<8>())));
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&temporary)?;
            let mut buffer = vec![0u8; COPY_BUFFER];
            let mut bytes = 0u64;
            loop {
                let read = match data.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted && error.get_ref().is_none() => continue,
                    Err(error) => return Err(error),
                };
                file.write_all(&buffer[..read])?;
                bytes += read as u64;
            }
            file.flush()?;
            Ok::<u64, io::Error>(bytes)
        })();
        publish(&temporary, &destination, written)
    }

    /// Stores a new file by copying `length` bytes at `offset` of `source` in the kernel
    /// (`copy_file_range`), while `verify` reads the same bytes through the archive's checks
    /// on another thread; the file appears only if both succeed.
    pub fn write_new_from_range(
        &self,
        bucket: FileBucket,
        user_id: &str,
        inner: &str,
        source: &Path,
        (offset, length): (u64, u64),
        verify: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<WriteOutcome> {
        let destination = self.path(bucket, user_id, inner).map_err(io::Error::other)?;
        if destination.exists() {
            verify()?;
            return Ok(WriteOutcome::AlreadyThere);
        }
        let folder = destination.parent().ok_or_else(|| io::Error::other("a file path without a folder"))?;
        fs::create_dir_all(folder)?;
        fs::create_dir_all(&self.scratch)?;
        let temporary = self.scratch.join(format!("file-{}.partial", hex(&random_bytes::<8>())));
        let copied = std::thread::scope(|scope| {
            let copier = scope.spawn(|| -> io::Result<u64> {
                let mut from = File::open(source)?;
                std::io::Seek::seek(&mut from, std::io::SeekFrom::Start(offset))?;
                let mut to = OpenOptions::new().write(true).create_new(true).open(&temporary)?;
                let copied = io::copy(&mut (&from).take(length), &mut to)?;
                if copied != length {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a file"));
                }
                Ok(copied)
            });
            let verified = verify();
            let copied = copier.join().map_err(|_| io::Error::other("the file copy panicked"))?;
            verified.and(copied)
        });
        publish(&temporary, &destination, copied)
    }

    /// The names of the files in a folder of `bucket` (for per-user buckets, `user_id`'s).
    pub fn list(&self, bucket: FileBucket, user_id: &str) -> io::Result<Vec<String>> {
        let probe = self.path(bucket, user_id, "probe").map_err(io::Error::other)?;
        let Some(folder) = probe.parent() else {
            return Ok(Vec::new());
        };
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives a fully written temporary file its final name, or drops it if writing failed.
/// A hard link is an exclusive create: it fails if the name appeared meanwhile, in which
/// case the file already there wins.
fn publish(temporary: &Path, destination: &Path, written: io::Result<u64>) -> io::Result<WriteOutcome> {
    let outcome = written.and_then(|bytes| match fs::hard_link(temporary, destination) {
        Ok(()) => Ok(WriteOutcome::Written { bytes }),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(WriteOutcome::AlreadyThere),
        Err(error) => Err(error),
    });
    let _ = fs::remove_file(temporary);
    outcome
}
