//! `FileStorage`'s guarantees, held by each backend alike: the data directory's folder
//! tree and object storage (a prefix of the tests' SeaweedFS, `test_support::
//! object_store_server`). Files of one account never answer for another.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{self, Read};
use std::path::PathBuf;

use lvbak_core::FileBucket;

use crate::storage::backend::file_storage::{FileStorage, WriteOutcome};
use crate::storage::object_storage::files::ObjectFileStore;
use crate::storage::object_storage::ObjectStorage;
use crate::storage::FileStore;
use crate::test_support::test_object_store;

/// A file store of each backend, named for failing tests' output, and the scratch folder
/// of the test (its staged archives; the folder tree's files too).
struct Backends {
    stores: Vec<(&'static str, Box<dyn FileStorage>)>,
    scratch: PathBuf,
}

impl Drop for Backends {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

async fn backends(label: &str) -> Backends {
    let scratch = std::env::temp_dir().join(format!("lvbak-files-{label}-{}", crate::util::new_id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let url = test_object_store().await;
    let storage = tokio::task::spawn_blocking(move || ObjectStorage::connect(&url)).await.unwrap().unwrap();
    let stores: Vec<(&'static str, Box<dyn FileStorage>)> = vec![
        ("folders", Box::new(FileStore::new(&scratch.join("data"), &scratch.join("data/staging")))),
        ("object storage", Box::new(ObjectFileStore::new(storage))),
    ];
    Backends { stores, scratch }
}

fn read_all(store: &dyn FileStorage, bucket: FileBucket, user: &str, name: &str) -> Option<Vec<u8>> {
    let (mut file, size) = store.open(bucket, user, name).unwrap()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, size);
    Some(bytes)
}

/// Bytes that differ at every offset a part boundary could fall on.
fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length).map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed).collect()
}

/// A new file is stored whole, never replaces one, and is its account's alone; a big one
/// (several upload parts) as well as a small one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_written_once_and_is_its_accounts_alone() {
    let test = backends("write").await;
    for (backend, store) in &test.stores {
        let store: &dyn FileStorage = &**store;
        let small = pattern(1000, 1);
        let big = pattern((8 << 20) * 2 + 12_345, 2);
        {
            let written = store.write_new(FileBucket::Avatars, "alice", "face.png", &mut small.as_slice()).unwrap();
            assert_eq!(written, WriteOutcome::Written { bytes: 1000 }, "{backend}");
            let again = store.write_new(FileBucket::Avatars, "alice", "face.png", &mut &b"other"[..]).unwrap();
            store.flush_writes("alice").unwrap();
            // Object storage writes small files in the background: a second write of a
            // name may be answered before the store refuses it. The first file stays.
            assert!(again == WriteOutcome::AlreadyThere || *backend == "object storage", "{backend}: {again:?}");
            assert_eq!(read_all(store, FileBucket::Avatars, "alice", "face.png"), Some(small.clone()), "{backend}");
            // Refused at once while the first is still under way, or found, whichever.
            let pending = store.write_new(FileBucket::Avatars, "alice", "quick.png", &mut &b"one"[..]).unwrap();
            let twice = store.write_new(FileBucket::Avatars, "alice", "quick.png", &mut &b"two"[..]).unwrap();
            assert_eq!(pending, WriteOutcome::Written { bytes: 3 }, "{backend}");
            assert!(twice == WriteOutcome::AlreadyThere || *backend == "object storage", "{backend}: {twice:?}");
            assert_eq!(store.size_of(FileBucket::Avatars, "alice", "quick.png").unwrap(), Some(3), "{backend}");
            store.flush_writes("alice").unwrap();
            assert_eq!(read_all(store, FileBucket::Avatars, "alice", "quick.png"), Some(b"one".to_vec()), "{backend}");
            assert_eq!(read_all(store, FileBucket::Avatars, "bob", "face.png"), None, "{backend}");
            assert_eq!(store.size_of(FileBucket::Avatars, "bob", "face.png").unwrap(), None, "{backend}");

            let written = store.write_new(FileBucket::Databank, "alice", "book/long.txt", &mut big.as_slice()).unwrap();
            assert_eq!(written, WriteOutcome::Written { bytes: big.len() as u64 }, "{backend}");
            let again = store.write_new(FileBucket::Databank, "alice", "book/long.txt", &mut small.as_slice()).unwrap();
            store.flush_writes("alice").unwrap();
            assert!(again == WriteOutcome::AlreadyThere || *backend == "object storage", "{backend}: {again:?}");
            assert_eq!(read_all(store, FileBucket::Databank, "alice", "book/long.txt"), Some(big.clone()), "{backend}");
            assert_eq!(store.size_of(FileBucket::Databank, "alice", "book/long.txt").unwrap(), Some(big.len() as u64));

            store.write_new(FileBucket::NotificationSounds, "alice", "ding.mp3", &mut &b"ding"[..]).unwrap();
            store.write_new(FileBucket::NotificationSounds, "alice", "deeper/not-listed.mp3", &mut &b"x"[..]).unwrap();
            store.write_new(FileBucket::NotificationSounds, "bob", "bobs.mp3", &mut &b"bob"[..]).unwrap();
            store.flush_writes("alice").unwrap();
            store.flush_writes("bob").unwrap();
            assert_eq!(store.list(FileBucket::NotificationSounds, "alice").unwrap(), vec!["ding.mp3"], "{backend}");
            assert_eq!(store.usage_of("alice").unwrap(), 1000 + 3 + big.len() as u64 + 4 + 1, "{backend}");
            assert_eq!(store.usage_of("bob").unwrap(), 3, "{backend}");
            let expected = vec![
                (FileBucket::Avatars, "face.png".to_string()),
                (FileBucket::Avatars, "quick.png".to_string()),
                (FileBucket::Databank, "book/long.txt".to_string()),
                (FileBucket::NotificationSounds, "deeper/not-listed.mp3".to_string()),
                (FileBucket::NotificationSounds, "ding.mp3".to_string()),
            ];
            assert_eq!(store.stored_names("alice").unwrap(), expected, "{backend}");
            assert!(store.make_durable(None).is_ok(), "{backend}");
        }
    }
}

/// Names that would leave the account's place are refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_outside_the_accounts_place_is_refused() {
    let test = backends("names").await;
    for (backend, store) in &test.stores {
        for (user, name) in
            [("alice", "../bob/face.png"), ("alice", "a/../../x"), ("../bob", "face.png"), ("alice", "")]
        {
            assert!(!store.accepts(FileBucket::Images, user, name), "{backend}: {user} {name}");
            assert!(store.write_new(FileBucket::Images, user, name, &mut &b"x"[..]).is_err(), "{backend}: {name}");
        }
        assert_eq!(store.usage_of("bob").unwrap(), 0, "{backend}");
    }
}

/// A file from a staged archive's range appears only when the range is whole and its check
/// passed; the check's error is the one returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_an_archive_appears_only_if_its_check_passes() {
    let test = backends("range").await;
    let staged = test.scratch.join("staged.bin");
    let body = pattern((8 << 20) + 4_321, 3);
    let mut archive = b"header".to_vec();
    archive.extend_from_slice(&body);
    std::fs::write(&staged, &archive).unwrap();
    for (backend, store) in &test.stores {
        let store: &dyn FileStorage = &**store;
        let staged = staged.clone();
        let range = (6, body.len() as u64);
        for (name, length) in [("big.bin", body.len() as u64), ("small.bin", 100)] {
            let refused =
                store.write_new_from_range(FileBucket::Images, "alice", name, &staged, (6, length), &mut || {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "crc mismatch"))
                });
            assert_eq!(refused.unwrap_err().to_string(), "crc mismatch", "{backend}");
            assert_eq!(store.size_of(FileBucket::Images, "alice", name).unwrap(), None, "{backend}: {name}");
        }
        let beyond =
            store.write_new_from_range(FileBucket::Images, "alice", "cut.bin", &staged, (6, range.1 + 10), &mut || {
                Ok(())
            });
        assert!(beyond.is_err(), "{backend}: a range past the archive's end");
        assert_eq!(store.size_of(FileBucket::Images, "alice", "cut.bin").unwrap(), None, "{backend}");

        let mut checked = 0;
        let written = store
            .write_new_from_range(FileBucket::Images, "alice", "big.bin", &staged, range, &mut || {
                checked += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!((written, checked), (WriteOutcome::Written { bytes: body.len() as u64 }, 1), "{backend}");
        assert_eq!(read_all(store, FileBucket::Images, "alice", "big.bin"), Some(body.clone()), "{backend}");
        let small =
            store.write_new_from_range(FileBucket::Images, "alice", "small.bin", &staged, (6, 100), &mut || Ok(()));
        assert_eq!(small.unwrap(), WriteOutcome::Written { bytes: 100 }, "{backend}");
        store.flush_writes("alice").unwrap();
        assert_eq!(read_all(store, FileBucket::Images, "alice", "small.bin"), Some(body[..100].to_vec()), "{backend}");
    }
}

/// What an import wrote since its mark is taken back, and nothing else: not the account's
/// older files, not another account's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_since_a_mark_are_taken_back_alone() {
    let test = backends("mark").await;
    for (backend, store) in &test.stores {
        store.write_new(FileBucket::Images, "alice", "before.png", &mut &b"kept"[..]).unwrap();
        let mark = store.write_mark("alice").unwrap();
        store.write_new(FileBucket::Images, "alice", "during.png", &mut &b"taken back"[..]).unwrap();
        store.write_new(FileBucket::Databank, "alice", "doc/during.txt", &mut &b"taken back"[..]).unwrap();
        store.write_new(FileBucket::Images, "bob", "during.png", &mut &b"bob's"[..]).unwrap();
        assert_eq!(store.remove_written_since("alice", mark).unwrap(), 2, "{backend}");
        assert_eq!(read_all(&**store, FileBucket::Images, "alice", "before.png"), Some(b"kept".to_vec()), "{backend}");
        assert_eq!(store.size_of(FileBucket::Images, "alice", "during.png").unwrap(), None, "{backend}");
        assert_eq!(read_all(&**store, FileBucket::Images, "bob", "during.png"), Some(b"bob's".to_vec()), "{backend}");
    }
}
