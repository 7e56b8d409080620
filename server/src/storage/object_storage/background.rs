//! Small files' PUTs in the background: an import goes on to its next file while the PUT
//! completes, up to [`PUTS_IN_FLIGHT`] at once for the instance (so at most that many of
//! these files' bytes are held), and waits for them before its rows are committed
//! (`FileStorage::flush_writes`). A PUT that fails is the user's next write's or wait's
//! error.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::PutPayload;
use parking_lot::{Condvar, Mutex};

use super::marks::Marks;
use super::{put_new, ObjectStorage, Unavailable};
use crate::storage::backend::file_storage::WriteOutcome;

/// Files up to this size are written in the background.
pub(super) const BACKGROUND_PUT: usize = 1 << 20;
const PUTS_IN_FLIGHT: usize = 8;

/// The PUTs under way: per user, their keys and sizes and the first that failed; slots
/// for the instance.
pub(super) struct Uploads {
    state: Arc<State>,
    slots: Arc<tokio::sync::Semaphore>,
}

struct State {
    pending: Mutex<HashMap<String, UserUploads>>,
    settled: Condvar,
}

#[derive(Default)]
struct UserUploads {
    keys: HashMap<ObjectPath, u64>,
    failure: Option<String>,
}

impl Uploads {
    pub(super) fn new() -> Self {
        let state = State { pending: Mutex::new(HashMap::new()), settled: Condvar::new() };
        Self { state: Arc::new(state), slots: Arc::new(tokio::sync::Semaphore::new(PUTS_IN_FLIGHT)) }
    }

    /// The size of a file of `user_id` whose PUT is under way, if `key` is one.
    pub(super) fn pending_size(&self, user_id: &str, key: &ObjectPath) -> Option<u64> {
        self.state.pending.lock().get(user_id).and_then(|user| user.keys.get(key).copied())
    }

    /// Starts the create-only PUT of a small file and returns once it is under way
    /// (waiting for a slot when [`PUTS_IN_FLIGHT`] are); recorded as written since the
    /// user's mark. An earlier PUT of the user's that failed is this write's error.
    pub(super) fn put(
        &self,
        storage: &ObjectStorage,
        marks: &Arc<Marks>,
        user_id: &str,
        key: &ObjectPath,
        bytes: Vec<u8>,
    ) -> io::Result<WriteOutcome> {
        let permit = futures::executor::block_on(self.slots.clone().acquire_owned())
            .map_err(|_| io::Error::other("the object store's upload slots are closed"))?;
        let size = bytes.len() as u64;
        {
            let mut pending = self.state.pending.lock();
            let user = pending.entry(user_id.to_string()).or_default();
            if let Some(failure) = &user.failure {
                return Err(io::Error::other(Unavailable(failure.clone())));
            }
            if user.keys.contains_key(key) {
                return Ok(WriteOutcome::AlreadyThere);
            }
            user.keys.insert(key.clone(), size);
        }
        marks.record(user_id, key, size);
        let (store, state, marks) = (storage.store(), self.state.clone(), marks.clone());
        let (user_id, key) = (user_id.to_string(), key.clone());
        drop(storage.spawn(async move {
            let put = put_new(&*store, &key, PutPayload::from(bytes)).await;
            drop(permit);
            let mut pending = state.pending.lock();
            if let Some(user) = pending.get_mut(&user_id) {
                user.keys.remove(&key);
                match put {
                    Ok(true) => {}
                    // A name taken meanwhile (the import looked before writing, and one
                    // import per user runs at a time): the file there is kept, and is not
                    // this write's to take back.
                    Ok(false) => marks.unrecord(&user_id, &key),
                    Err(error) => {
                        user.failure.get_or_insert(error.to_string());
                    }
                }
            }
            state.settled.notify_all();
        }));
        Ok(WriteOutcome::Written { bytes: size })
    }

    /// Waits until no PUT is under way, any user's (failures stay for their users).
    pub(super) fn settle_all(&self) {
        let mut pending = self.state.pending.lock();
        while pending.values().any(|user| !user.keys.is_empty()) {
            self.state.settled.wait(&mut pending);
        }
    }

    /// Waits until none of `user_id`'s PUTs is under way; the first that failed, if one did
    /// (then forgotten).
    pub(super) fn settle(&self, user_id: &str) -> io::Result<()> {
        let mut pending = self.state.pending.lock();
        loop {
            match pending.get(user_id) {
                None => return Ok(()),
                Some(user) if user.keys.is_empty() => {
                    let failure = pending.remove(user_id).and_then(|user| user.failure);
                    return failure.map_or(Ok(()), |why| Err(io::Error::other(Unavailable(why))));
                }
                Some(_) => self.state.settled.wait(&mut pending),
            }
        }
    }
}
