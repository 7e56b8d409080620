//! Files under the data directory, laid out as FORMAT §2's last column says: `images/`
//! (originals and thumbnails), `avatars/`, `databank/<user>/`, `theme-assets/<user>/`,
//! `notification-sounds/<user>/`. Every path is built by lvbak-core's
//! `FileBucket::relative_destination`, so nothing lands outside its folder; new files are
//! written under a temporary name in `staging/` and then hard-linked into place, so an
//! existing file is never replaced and a half-written one is never visible (a process that
//! dies mid-file leaves only a temporary, which start-up removes). Like `cp`, writing does
//! not wait for the disk (`make_durable` does, before an import completes). Today's
//! `FileStorage`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use lvbak_core::{FileBucket, FormatError};

use super::backend::file_storage::{FileStorage, OpenedFile, WriteOutcome, WrittenFile};
use super::identity::random_bytes;

pub struct FileStore {
    root: PathBuf,
    /// Where files are written before they are linked into place (same filesystem).
    scratch: PathBuf,
}

/// The buckets with a folder of their own; thumbnails share the images' folder.
pub(crate) const FOLDER_BUCKETS: [FileBucket; 5] = [
    FileBucket::Images,
    FileBucket::Avatars,
    FileBucket::Databank,
    FileBucket::ThemeAssets,
    FileBucket::NotificationSounds,
];

/// Bytes moved per read and write when storing a file.
const COPY_BUFFER: usize = 1 << 20;

impl FileStore {
    pub fn new(root: &Path, scratch: &Path) -> Self {
        Self { root: root.to_path_buf(), scratch: scratch.to_path_buf() }
    }

    /// Where a file of `bucket` named `inner` lives (for per-user buckets, under `user_id`).
    pub fn path(&self, bucket: FileBucket, user_id: &str, inner: &str) -> Result<PathBuf, FormatError> {
        let segments = bucket.relative_destination(user_id, inner)?;
        Ok(segments.iter().fold(self.root.clone(), |path, segment| path.join(segment)))
    }

    /// Calls `each` with every regular file under `user_id`'s folders (below too): the
    /// bucket whose folder it is in, that folder, the file's path and its metadata.
    fn walk_user_files(
        &self,
        user_id: &str,
        each: &mut dyn FnMut(FileBucket, &Path, &Path, &fs::Metadata) -> io::Result<()>,
    ) -> io::Result<()> {
        for bucket in FOLDER_BUCKETS {
            // A user id the layout refuses has no folders.
            let Ok(probe) = self.path(bucket, user_id, "probe") else { continue };
            let Some(folder) = probe.parent() else { continue };
            let mut pending = vec![folder.to_path_buf()];
            while let Some(current) = pending.pop() {
                let entries = match fs::read_dir(&current) {
                    Ok(entries) => entries,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                };
                for entry in entries {
                    let entry = entry?;
                    let metadata = entry.metadata()?;
                    if metadata.is_dir() {
                        pending.push(entry.path());
                    } else if metadata.is_file() {
                        each(bucket, folder, &entry.path(), &metadata)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl FileStorage for FileStore {
    fn accepts(&self, bucket: FileBucket, user_id: &str, name: &str) -> bool {
        self.path(bucket, user_id, name).is_ok()
    }

    fn open(&self, bucket: FileBucket, user_id: &str, inner: &str) -> io::Result<Option<OpenedFile>> {
        let path = self.path(bucket, user_id, inner).map_err(io::Error::other)?;
        match File::open(&path) {
            Ok(file) => {
                let metadata = file.metadata()?;
                if !metadata.is_file() {
                    return Ok(None);
                }
                Ok(Some((Box::new(file), metadata.len())))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn size_of(&self, bucket: FileBucket, user_id: &str, name: &str) -> io::Result<Option<u64>> {
        let path = self.path(bucket, user_id, name).map_err(io::Error::other)?;
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn write_new(
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
        let temporary = self.scratch.join(format!("file-{}.partial", hex::encode(random_bytes::<8>())));
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

    /// Copies the bytes in the kernel (`copy_file_range`), while `verify` reads them on
    /// another thread.
    fn write_new_from_range(
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
        let temporary = self.scratch.join(format!("file-{}.partial", hex::encode(random_bytes::<8>())));
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

    /// Listed files and the folders that name them are made durable one `fsync` each, so
    /// nothing waits for other users' writes; otherwise one `syncfs` of the data
    /// directory's filesystem flushes every file written so far.
    fn make_durable(&self, written: Option<&[WrittenFile]>) -> io::Result<()> {
        let Some(written) = written else {
            let root = File::open(&self.root)?;
            return rustix::fs::syncfs(&root).map_err(io::Error::from);
        };
        let mut folders = std::collections::BTreeSet::new();
        for (bucket, user_id, name) in written {
            let path = self.path(*bucket, user_id, name).map_err(io::Error::other)?;
            File::open(&path)?.sync_all()?;
            if let Some(folder) = path.parent() {
                folders.insert(folder.to_path_buf());
            }
        }
        for folder in folders {
            File::open(folder)?.sync_all()?;
        }
        Ok(())
    }

    /// The filesystem's clock can lag the system's by a few milliseconds and ticks
    /// coarsely: a file is made and its stamp read, again until the stamp moved on, so that
    /// a file written just before has an older stamp than the mark (a tick, ~4 ms, at most).
    fn write_mark(&self, _user_id: &str) -> io::Result<std::time::SystemTime> {
        fs::create_dir_all(&self.scratch)?;
        let stamp = || -> io::Result<std::time::SystemTime> {
            let marker = self.scratch.join(format!("clock-{}.partial", hex::encode(random_bytes::<8>())));
            let stamped = File::create(&marker).and_then(|file| file.metadata()).and_then(|m| m.modified());
            let _ = fs::remove_file(&marker);
            stamped
        };
        let first = stamp()?;
        for _ in 0..1_000 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            let next = stamp()?;
            if next > first {
                return Ok(next);
            }
        }
        Err(io::Error::other("the filesystem's clock does not move"))
    }

    fn usage_of(&self, user_id: &str) -> io::Result<u64> {
        let mut bytes = 0;
        self.walk_user_files(user_id, &mut |_, _, _, metadata| {
            bytes += metadata.len();
            Ok(())
        })?;
        Ok(bytes)
    }

    fn remove_written_since(&self, user_id: &str, since: std::time::SystemTime) -> io::Result<u64> {
        let mut doomed = Vec::new();
        self.walk_user_files(user_id, &mut |_, _, path, metadata| {
            if metadata.modified().is_ok_and(|at| at >= since) {
                doomed.push(path.to_path_buf());
            }
            Ok(())
        })?;
        for path in &doomed {
            fs::remove_file(path)?;
        }
        Ok(doomed.len() as u64)
    }

    fn stored_names(&self, user_id: &str) -> io::Result<Vec<(FileBucket, String)>> {
        let mut names = Vec::new();
        self.walk_user_files(user_id, &mut |bucket, folder, path, _| {
            let relative = path.strip_prefix(folder).map_err(io::Error::other)?;
            let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
            if let Some(parts) = parts {
                names.push((bucket, parts.join("/")));
            }
            Ok(())
        })?;
        names.sort();
        Ok(names)
    }

    fn list(&self, bucket: FileBucket, user_id: &str) -> io::Result<Vec<String>> {
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

/// A file under `staging/` that is removed when this guard is dropped — however the code
/// holding it ends, a returned error, a panic, or a request handler dropped because its
/// client went away — unless [`StagedFile::keep`] hands the path on.
pub struct StagedFile {
    path: Option<PathBuf>,
}

impl StagedFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or_else(|| Path::new(""))
    }

    /// Gives the path up: the file stays (its new owner removes it).
    pub fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
    }
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
