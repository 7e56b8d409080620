//! Accounts' files in object storage: the `FileStorage` of an instance started with
//! `--object-store`. A file of (bucket, user, name) is the key `files/` + the segments of
//! lvbak-core's `FileBucket::relative_destination` under the instance's prefix (each
//! segment one key part, so no name reaches another user's keys).
//!
//! How the guarantees of `FileStorage` hold here:
//! - a new file never replaces one: files up to [`SINGLE_PUT`] are one create-only PUT
//!   (`If-None-Match: *`; the store refuses when the key exists); larger ones are a
//!   multipart upload after a check that the key is free — one import per user runs at a
//!   time and keys are per user, so nothing else writes that key meanwhile;
//! - a file appears whole or not at all: a PUT is atomic and a multipart upload is
//!   visible only once completed (an upload that fails is aborted);
//! - durable on success: the store answers once it has the object; files up to 1 MiB are
//!   PUT in the background (`background.rs`) and `flush_writes` waits for them before an
//!   import commits its rows;
//! - `remove_written_since` compares the store's own stamps (`Last-Modified`) with a mark
//!   the store stamped too (`write_mark`), and takes back the keys written since the mark
//!   by name (`marks.rs`), which covers the mark's own second on stores that stamp whole
//!   seconds.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt as _;
use lvbak_core::FileBucket;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload};

use super::background::{Uploads, BACKGROUND_PUT};
use super::marks::Marks;
use super::{put_new, ObjectStorage};
use crate::storage::backend::file_storage::{FileStorage, OpenedFile, WriteOutcome, WrittenFile};
use crate::storage::files::FOLDER_BUCKETS;
use crate::storage::identity::random_bytes;

/// Files up to this size are stored by one create-only PUT, read into memory first;
/// larger ones by a multipart upload of parts this size.
const SINGLE_PUT: usize = 8 << 20;

/// Chunks of a file being read that wait between the store and the reader.
const READ_AHEAD: usize = 4;

/// Files whose requests an export keeps in flight ahead of the one it reads (each holds
/// no more than its connection's buffers until read).
const OPEN_AHEAD: usize = 8;

/// Accounts' files in one instance's object storage.
pub struct ObjectFileStore {
    storage: ObjectStorage,
    /// Small files' PUTs under way.
    uploads: Uploads,
    /// Per user, its last write mark (an import's start), until the import settles.
    marks: Arc<Marks>,
}

fn storage_error(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error.to_string()),
        other => io::Error::other(super::Unavailable(other.to_string())),
    }
}

impl ObjectFileStore {
    pub fn new(storage: ObjectStorage) -> Self {
        Self { storage, uploads: Uploads::new(), marks: Arc::new(Marks::default()) }
    }

    /// Every object under `user_id`'s folders as key and size, unless there are more than
    /// `cap`.
    fn listing_up_to(&self, user_id: &str, cap: usize) -> io::Result<Option<HashMap<ObjectPath, u64>>> {
        let mut listed = HashMap::new();
        for bucket in FOLDER_BUCKETS {
            let room = cap.saturating_sub(listed.len()) + 1;
            let objects = self.list_folder(self.folder(bucket, user_id)?, room)?;
            listed.extend(objects.into_iter().map(|object| (object.location, object.size)));
            if listed.len() > cap {
                return Ok(None);
            }
        }
        Ok(Some(listed))
    }

    /// The objects under `folder`, below too, the first `limit` of them.
    fn list_folder(&self, folder: ObjectPath, limit: usize) -> io::Result<Vec<object_store::ObjectMeta>> {
        let store = self.storage.store();
        let listed: object_store::Result<Vec<object_store::ObjectMeta>> = self
            .storage
            .run(async move { store.list(Some(&folder)).take(limit).collect::<Vec<_>>().await.into_iter().collect() });
        listed.map_err(storage_error)
    }

    /// The size of the object at `key`, or `None` if there is none (one request).
    fn head_size(&self, key: &ObjectPath) -> io::Result<Option<u64>> {
        let (store, key) = (self.storage.store(), key.clone());
        match self.storage.run(async move { store.head(&key).await }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(storage_error(error)),
        }
    }

    /// The key of a file, or why the name is refused.
    fn key(&self, bucket: FileBucket, user_id: &str, name: &str) -> io::Result<ObjectPath> {
        let segments = bucket.relative_destination(user_id, name).map_err(io::Error::other)?;
        Ok(self.storage.path_of(std::iter::once("files").chain(segments.iter().map(String::as_str))))
    }

    /// The key of the folder a bucket's files of `user_id` are under.
    fn folder(&self, bucket: FileBucket, user_id: &str) -> io::Result<ObjectPath> {
        let segments = bucket.relative_destination(user_id, "probe").map_err(io::Error::other)?;
        let folder = &segments[..segments.len().saturating_sub(1)];
        Ok(self.storage.path_of(std::iter::once("files").chain(folder.iter().map(String::as_str))))
    }

    /// Every object under `user_id`'s folders: key, size, stamp.
    fn objects_of(&self, user_id: &str) -> io::Result<Vec<object_store::ObjectMeta>> {
        Ok(self.objects_by_bucket(user_id)?.into_iter().flat_map(|(_, _, objects)| objects).collect())
    }

    /// The same, by the bucket (and its folder's key) they are under.
    fn objects_by_bucket(
        &self,
        user_id: &str,
    ) -> io::Result<Vec<(FileBucket, ObjectPath, Vec<object_store::ObjectMeta>)>> {
        let mut found = Vec::new();
        for bucket in FOLDER_BUCKETS {
            let folder = self.folder(bucket, user_id)?;
            found.push((bucket, folder.clone(), self.list_folder(folder, usize::MAX)?));
        }
        Ok(found)
    }

    /// Reads up to [`SINGLE_PUT`] + 1 bytes of `data`: the whole file if it is small.
    fn read_head(data: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut head = Vec::new();
        Read::take(data, SINGLE_PUT as u64 + 1).read_to_end(&mut head)?;
        Ok(head)
    }

    /// Stores `head` and the rest of `data` at `key`, unless `ready` says otherwise once
    /// everything is read (the file then never appears).
    fn store_new(
        &self,
        user_id: &str,
        key: &ObjectPath,
        head: Vec<u8>,
        data: &mut dyn Read,
        ready: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<WriteOutcome> {
        if head.len() <= BACKGROUND_PUT {
            ready()?;
            return self.uploads.put(&self.storage, &self.marks, user_id, key, head);
        }
        if head.len() <= SINGLE_PUT {
            ready()?;
            let bytes = head.len() as u64;
            let (store, put_key) = (self.storage.store(), key.clone());
            let stored = self.storage.run(async move { put_new(&*store, &put_key, PutPayload::from(head)).await });
            if !stored.map_err(storage_error)? {
                return Ok(WriteOutcome::AlreadyThere);
            }
            self.marks.record(user_id, key, bytes);
            return Ok(WriteOutcome::Written { bytes });
        }
        if self.head_size(key)?.is_some() {
            ready()?;
            return Ok(WriteOutcome::AlreadyThere);
        }
        let (store, upload_key) = (self.storage.store(), key.clone());
        let mut upload =
            self.storage.run(async move { store.put_multipart(&upload_key).await }).map_err(storage_error)?;
        let uploaded = (|| {
            let mut bytes = 0u64;
            let mut pending = head;
            loop {
                if pending.len() < SINGLE_PUT {
                    Read::take(&mut *data, (SINGLE_PUT - pending.len()) as u64).read_to_end(&mut pending)?;
                }
                if pending.is_empty() {
                    break;
                }
                let rest = if pending.len() > SINGLE_PUT { pending.split_off(SINGLE_PUT) } else { Vec::new() };
                bytes += pending.len() as u64;
                let sent = upload.put_part(PutPayload::from(std::mem::replace(&mut pending, rest)));
                self.storage.run(sent).map_err(storage_error)?;
            }
            ready()?;
            Ok::<u64, io::Error>(bytes)
        })();
        match uploaded {
            Ok(bytes) => {
                let completed = self.storage.run(async move {
                    let done = upload.complete().await;
                    if done.is_err() {
                        let _ = upload.abort().await;
                    }
                    done
                });
                completed.map_err(storage_error)?;
                self.marks.record(user_id, key, bytes);
                Ok(WriteOutcome::Written { bytes })
            }
            Err(error) => {
                self.storage.run(async move { upload.abort().await }).ok();
                Err(error)
            }
        }
    }
}

/// A range of a staged archive that must hold all its bytes: the file ending early is an
/// error, not a shorter stored file.
struct ExactRange(std::io::Take<std::fs::File>);

impl Read for ExactRange {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.0.read(buffer)?;
        if read == 0 && !buffer.is_empty() && self.0.limit() != 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a file"));
        }
        Ok(read)
    }
}

impl ObjectFileStore {
    /// A GET's answer as an opened file (its body read by a task of the storage's
    /// runtime), or `None` if the file is not there.
    fn opened(&self, found: object_store::Result<object_store::GetResult>) -> io::Result<Option<OpenedFile>> {
        let found = match found {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(storage_error(error)),
        };
        let size = found.meta.size;
        let (mut sender, chunks) = futures::channel::mpsc::channel(READ_AHEAD);
        let mut stream = found.into_stream();
        // The task ends when the stream does or the reader is dropped (a send fails).
        drop(self.storage.spawn(async move {
            use futures::SinkExt as _;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(storage_error);
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        }));
        Ok(Some((Box::new(ObjectReader { chunks, current: Bytes::new() }), size)))
    }
}

/// A stored file read through a bounded channel that a task of the storage's runtime
/// fills.
struct ObjectReader {
    chunks: futures::channel::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match futures::executor::block_on(self.chunks.next()) {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let taken = buffer.len().min(self.current.len());
        buffer[..taken].copy_from_slice(&self.current.split_to(taken));
        Ok(taken)
    }
}

impl FileStorage for ObjectFileStore {
    fn accepts(&self, bucket: FileBucket, user_id: &str, name: &str) -> bool {
        bucket.relative_destination(user_id, name).is_ok()
    }

    fn open(&self, bucket: FileBucket, user_id: &str, name: &str) -> io::Result<Option<OpenedFile>> {
        let key = self.key(bucket, user_id, name)?;
        let store = self.storage.store();
        self.opened(self.storage.run(async move { store.get(&key).await }))
    }

    /// Keeps up to [`OPEN_AHEAD`] requests in flight ahead of the file `each` reads.
    fn open_each(
        &self,
        user_id: &str,
        files: &[(FileBucket, String)],
        each: &mut dyn FnMut(usize, Option<OpenedFile>) -> io::Result<()>,
    ) -> io::Result<()> {
        let keys: Vec<ObjectPath> =
            files.iter().map(|(bucket, name)| self.key(*bucket, user_id, name)).collect::<io::Result<_>>()?;
        let mut started = std::collections::VecDeque::new();
        for (index, _) in keys.iter().enumerate() {
            while started.len() < OPEN_AHEAD && index + started.len() < keys.len() {
                let (store, key) = (self.storage.store(), keys[index + started.len()].clone());
                started.push_back(self.storage.spawn(async move { store.get(&key).await }));
            }
            let Some(task) = started.pop_front() else { break };
            each(index, self.opened(ObjectStorage::wait_for(task))?)?;
        }
        Ok(())
    }

    fn size_of(&self, bucket: FileBucket, user_id: &str, name: &str) -> io::Result<Option<u64>> {
        let key = self.key(bucket, user_id, name)?;
        if let Some(size) = self.uploads.pending_size(user_id, &key) {
            return Ok(Some(size));
        }
        if let Some(listed) = self.marks.listed_size(user_id, &key) {
            return Ok(listed);
        }
        self.head_size(&key)
    }

    fn write_new(
        &self,
        bucket: FileBucket,
        user_id: &str,
        name: &str,
        data: &mut dyn Read,
    ) -> io::Result<WriteOutcome> {
        let key = self.key(bucket, user_id, name)?;
        let head = Self::read_head(data)?;
        self.store_new(user_id, &key, head, data, &mut || Ok(()))
    }

    /// Reads the range and uploads it on another thread while `verify` reads it through the
    /// archive's checks; the file is stored (the PUT sent, the multipart upload completed)
    /// only once `verify` succeeded.
    fn write_new_from_range(
        &self,
        bucket: FileBucket,
        user_id: &str,
        name: &str,
        source: &Path,
        (offset, length): (u64, u64),
        verify: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<WriteOutcome> {
        let key = self.key(bucket, user_id, name)?;
        let mut from = std::fs::File::open(source)?;
        std::io::Seek::seek(&mut from, std::io::SeekFrom::Start(offset))?;
        let mut range = ExactRange(from.take(length));
        let (verified_sender, verified) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        std::thread::scope(|scope| {
            let uploader = scope.spawn(move || {
                let head = Self::read_head(&mut range)?;
                let mut ready = || match verified.recv() {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(why)) => Err(io::Error::other(why)),
                    Err(_) => Err(io::Error::other("the file check ended without an answer")),
                };
                self.store_new(user_id, &key, head, &mut range, &mut ready)
            });
            let checked = verify();
            let _ = verified_sender.send(checked.as_ref().map(|_| ()).map_err(|error| error.to_string()));
            let stored = uploader.join().map_err(|_| io::Error::other("the file upload panicked"))?;
            // The check's own error wins: it says what is wrong with the archive.
            checked?;
            stored
        })
    }

    /// Once they settled, the import will not be taken back: its mark is forgotten.
    fn flush_writes(&self, user_id: &str) -> io::Result<()> {
        self.uploads.settle(user_id)?;
        self.marks.forget(user_id);
        Ok(())
    }

    /// The store has what it answered for: once the background PUTs settled, nothing
    /// is left to wait for.
    fn make_durable(&self, written: Option<&[WrittenFile]>) -> io::Result<()> {
        let users: std::collections::BTreeSet<&str> =
            written.into_iter().flatten().map(|(_, user_id, _)| user_id.as_str()).collect();
        users.into_iter().try_for_each(|user_id| self.uploads.settle(user_id))
    }

    /// PUTs under way are waited for; then a marker object is written and its stamp read.
    /// A store that stamps whole seconds may give a file written just before the same
    /// stamp: the mark is then the next second, and what `user_id` writes within the
    /// mark's own second is known by its keys instead (`marks.rs` remembers more of them
    /// than a store takes in a second). The mark also lists the user's objects once, for
    /// `size_of` during the import.
    fn write_mark(&self, user_id: &str) -> io::Result<SystemTime> {
        // Files answered before the mark are stored before it (stamped earlier).
        self.uploads.settle_all();
        let marker = self.storage.path_of(["clock", &hex::encode(random_bytes::<8>())]);
        let (store, key) = (self.storage.store(), marker.clone());
        let stamped = self.storage.run(async move {
            store.put(&key, PutPayload::from_static(b"mark")).await?;
            store.head(&key).await
        });
        let _ = self.storage.delete(marker);
        let stamp: SystemTime = stamped.map_err(storage_error)?.last_modified.into();
        let since_epoch = stamp.duration_since(SystemTime::UNIX_EPOCH).map_err(io::Error::other)?;
        let room = self.marks.listing_room(user_id);
        let listed = if room == 0 { None } else { self.listing_up_to(user_id, room)? };
        self.marks.begin(user_id, listed);
        if since_epoch.subsec_nanos() != 0 {
            return Ok(stamp);
        }
        Ok(stamp + Duration::from_secs(1))
    }

    fn remove_written_since(&self, user_id: &str, since: SystemTime) -> io::Result<u64> {
        let _ = self.uploads.settle(user_id);
        let recorded: std::collections::HashSet<ObjectPath> = self.marks.forget(user_id).into_iter().collect();
        let doomed: Vec<ObjectPath> = self
            .objects_of(user_id)?
            .into_iter()
            .filter(|object| SystemTime::from(object.last_modified) >= since || recorded.contains(&object.location))
            .map(|object| object.location)
            .collect();
        let removed = doomed.len() as u64;
        for key in doomed {
            self.storage.delete(key).map_err(storage_error)?;
        }
        Ok(removed)
    }

    fn usage_of(&self, user_id: &str) -> io::Result<u64> {
        Ok(self.objects_of(user_id)?.iter().map(|object| object.size).sum())
    }

    fn stored_names(&self, user_id: &str) -> io::Result<Vec<(FileBucket, String)>> {
        let mut names = Vec::new();
        for (bucket, folder, objects) in self.objects_by_bucket(user_id)? {
            for object in objects {
                let Some(parts) = object.location.prefix_match(&folder) else { continue };
                let parts: Vec<String> = parts.map(|part| super::percent_decoded(part.as_ref()).to_string()).collect();
                names.push((bucket, parts.join("/")));
            }
        }
        names.sort();
        Ok(names)
    }

    /// The files directly in the folder (not in folders below), as on disk.
    fn list(&self, bucket: FileBucket, user_id: &str) -> io::Result<Vec<String>> {
        let folder = self.folder(bucket, user_id)?;
        let store = self.storage.store();
        let listed = self.storage.run(async move { store.list_with_delimiter(Some(&folder)).await });
        let mut names: Vec<String> = listed
            .map_err(storage_error)?
            .objects
            .into_iter()
            .filter_map(|object| object.location.filename().map(|name| super::percent_decoded(name).to_string()))
            .collect();
        names.sort();
        Ok(names)
    }
}
