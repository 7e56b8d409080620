//! [`FileStorage`]: where an account's files live — avatars, gallery images and their
//! thumbnails, databank documents, theme assets, completion sounds — and the seam another
//! backend (object storage) plugs into. `files::FileStore`, a folder tree in the data
//! directory, is today's.
//!
//! What every backend guarantees: a file is named by (bucket, user, name) and only names
//! lvbak-core's `FileBucket::relative_destination` accepts exist, so nothing lands outside
//! its user's place; a new file appears whole or not at all and never replaces one of the
//! same name; what `make_durable` returns from survives a crash; `remove_written_since`
//! takes back exactly the files of one user written from a moment on (an import's).
//! Calls block: imports and exports run on threads of their own.

use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

use lvbak_core::FileBucket;

/// What writing a file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written {
        bytes: u64,
    },
    /// A file of that name was already there; it was kept.
    AlreadyThere,
}

/// A stored file, opened for reading, and its size.
pub type OpenedFile = (Box<dyn Read + Send>, u64);

/// A file an import wrote: (bucket, user, name).
pub type WrittenFile = (FileBucket, String, String);

/// The files of every account (see the module documentation).
pub trait FileStorage: Send + Sync {
    /// Whether `name` can be a file of `bucket` for `user_id` (the layout accepts it).
    fn accepts(&self, bucket: FileBucket, user_id: &str, name: &str) -> bool;
    /// Opens a stored file for reading, or `None` if it is not there.
    fn open(&self, bucket: FileBucket, user_id: &str, name: &str) -> io::Result<Option<OpenedFile>>;
    /// Opens `files` of `user_id` in their order and hands each to `each` with its index
    /// (`None`: not there), stopping at `each`'s first error. A backend may open a few
    /// ahead while `each` reads one (object storage does: a request per file); the default
    /// opens one at a time.
    fn open_each(
        &self,
        user_id: &str,
        files: &[(FileBucket, String)],
        each: &mut dyn FnMut(usize, Option<OpenedFile>) -> io::Result<()>,
    ) -> io::Result<()> {
        for (index, (bucket, name)) in files.iter().enumerate() {
            each(index, self.open(*bucket, user_id, name)?)?;
        }
        Ok(())
    }
    /// The size of a stored file, or `None` if it is not there.
    fn size_of(&self, bucket: FileBucket, user_id: &str, name: &str) -> io::Result<Option<u64>>;
    /// Stores a new file from `data`, unless one of that name exists (it is kept).
    fn write_new(&self, bucket: FileBucket, user_id: &str, name: &str, data: &mut dyn Read)
        -> io::Result<WriteOutcome>;
    /// Stores a new file from `length` bytes at `offset` of the local file `source` (a
    /// staged archive's stored entry) while `verify` reads the same bytes through the
    /// archive's checks; the file appears only if both succeed. (Unless one of that name
    /// exists: `verify` still runs.)
    fn write_new_from_range(
        &self,
        bucket: FileBucket,
        user_id: &str,
        name: &str,
        source: &Path,
        range: (u64, u64),
        verify: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<WriteOutcome>;
    /// Waits for `user_id`'s writes still under way (a backend may answer a write before it
    /// is done: object storage, for small files); the first that failed, if one did. An
    /// import calls it before committing its rows. The default has none.
    fn flush_writes(&self, _user_id: &str) -> io::Result<()> {
        Ok(())
    }
    /// Makes the files an import wrote durable — `written`, or every file written so far
    /// when there were too many to list (`None`).
    fn make_durable(&self, written: Option<&[WrittenFile]>) -> io::Result<()>;
    /// The time as the storage stamps files now: what [`Self::remove_written_since`]
    /// compares with for `user_id`'s files written from now on (an import's).
    fn write_mark(&self, user_id: &str) -> io::Result<SystemTime>;
    /// Removes `user_id`'s files written at or after `since` (one import per user runs at
    /// a time, and a file that was there is never rewritten); how many.
    fn remove_written_since(&self, user_id: &str, since: SystemTime) -> io::Result<u64>;
    /// Bytes of the files `user_id` keeps.
    fn usage_of(&self, user_id: &str) -> io::Result<u64>;
    /// The names of the files of `bucket` (for per-user buckets, `user_id`'s), sorted.
    fn list(&self, bucket: FileBucket, user_id: &str) -> io::Result<Vec<String>>;
    /// Every file `user_id` keeps, in folders below too: its bucket (images' thumbnails as
    /// images: they share a folder) and its name there (`a/b` for a file in a folder).
    fn stored_names(&self, user_id: &str) -> io::Result<Vec<(FileBucket, String)>>;
}
