//! Files under the data directory, laid out as FORMAT §2's last column says: `images/`
//! (originals and thumbnails), `avatars/`, `databank/<user>/`, `theme-assets/<user>/`,
//! `notification-sounds/<user>/`. Every path is built by lvbak-core's
//! `FileBucket::relative_destination`, so nothing lands outside its folder; new files are
//! written to a temporary name and then linked into place, so an existing file is never
//! replaced and a half-written one is never visible.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use lvbak_core::{FileBucket, FormatError};

use super::identity::random_bytes;

pub struct FileStore {
    root: PathBuf,
}

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
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
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
        let temporary = folder.join(format!(".lvbak-partial-{}", hex(&random_bytes::<8>())));
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&temporary)?;
            let bytes = io::copy(data, &mut file)?;
            file.flush()?;
            file.sync_data()?;
            Ok::<u64, io::Error>(bytes)
        })();
        let outcome = match written {
            // A hard link is an exclusive create: it fails if the name appeared meanwhile.
            Ok(bytes) => match fs::hard_link(&temporary, &destination) {
                Ok(()) => Ok(WriteOutcome::Written { bytes }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(WriteOutcome::AlreadyThere),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        let _ = fs::remove_file(&temporary);
        outcome
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
                    if !name.starts_with(".lvbak-partial-") {
                        names.push(name.to_string());
                    }
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
