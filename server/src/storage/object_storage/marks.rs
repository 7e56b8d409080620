//! An import's write mark in object storage, per user: the keys the import wrote (what a
//! rollback takes back besides what the store stamped after the mark's second, for stores
//! that stamp whole seconds), and what the user's folders held at the mark with what was
//! written since (so `size_of` asks no request during the import: one import per user runs
//! at a time, and only it writes the user's keys). Bounded per import and per instance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use parking_lot::Mutex;

/// Keys remembered per user after a mark: more than a store takes in the mark's second.
const RECORDED_AFTER_MARK: usize = 8_192;
/// Objects listed at a mark (about 130 bytes each held), per import and for the instance;
/// past either, `size_of` asks the store.
const LISTED_PER_MARK: usize = 20_000;
const LISTED_IN_ALL: usize = 100_000;
/// How long a mark whose import never settled is remembered (an import's longest life).
const FORGET_MARK_AFTER: Duration = Duration::from_secs(6 * 3600);

/// One user's mark.
struct Mark {
    at: Instant,
    /// The first [`RECORDED_AFTER_MARK`] keys this store wrote since.
    written: Vec<ObjectPath>,
    /// The user's objects at the mark and what was written since, if few enough.
    listed: Option<HashMap<ObjectPath, u64>>,
}

/// Every user's mark.
#[derive(Default)]
pub(super) struct Marks {
    by_user: Mutex<HashMap<String, Mark>>,
}

impl Marks {
    /// How many objects `user_id`'s new mark may list (0: none), within the instance's
    /// bound; forgets marks too old to matter, and the user's own earlier one.
    pub(super) fn listing_room(&self, user_id: &str) -> usize {
        let mut marks = self.by_user.lock();
        marks.retain(|user, mark| mark.at.elapsed() < FORGET_MARK_AFTER && user != user_id);
        let listed: usize = marks.values().filter_map(|mark| mark.listed.as_ref().map(HashMap::len)).sum();
        LISTED_PER_MARK.min(LISTED_IN_ALL.saturating_sub(listed))
    }

    /// Takes `user_id`'s mark now, with its listing if there is one.
    pub(super) fn begin(&self, user_id: &str, listed: Option<HashMap<ObjectPath, u64>>) {
        let mark = Mark { at: Instant::now(), written: Vec::new(), listed };
        self.by_user.lock().insert(user_id.to_string(), mark);
    }

    /// Remembers `key` (of `size` bytes) as written since `user_id`'s mark: a file this
    /// store wrote, never one that was there.
    pub(super) fn record(&self, user_id: &str, key: &ObjectPath, size: u64) {
        if let Some(mark) = self.by_user.lock().get_mut(user_id) {
            if mark.written.len() < RECORDED_AFTER_MARK {
                mark.written.push(key.clone());
            }
            if let Some(listed) = &mut mark.listed {
                listed.insert(key.clone(), size);
            }
        }
    }

    /// Forgets `key` as written: the store refused it (the name was taken).
    pub(super) fn unrecord(&self, user_id: &str, key: &ObjectPath) {
        if let Some(mark) = self.by_user.lock().get_mut(user_id) {
            mark.written.retain(|recorded| recorded != key);
            if let Some(listed) = &mut mark.listed {
                listed.remove(key);
            }
        }
    }

    /// The size of `key` by `user_id`'s mark's listing: `Some(None)` for a file not there,
    /// `None` when no listing is kept.
    pub(super) fn listed_size(&self, user_id: &str, key: &ObjectPath) -> Option<Option<u64>> {
        let marks = self.by_user.lock();
        marks.get(user_id)?.listed.as_ref().map(|listed| listed.get(key).copied())
    }

    /// Ends `user_id`'s mark; the keys it recorded.
    pub(super) fn forget(&self, user_id: &str) -> Vec<ObjectPath> {
        self.by_user.lock().remove(user_id).map(|mark| mark.written).unwrap_or_default()
    }
}
