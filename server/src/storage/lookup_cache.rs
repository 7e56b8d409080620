//! The import's lookup caches (owners of rows, remapped ids), bounded in bytes: the keys
//! are values of rows an archive chose, so a count of entries bounds nothing (100,000 keys
//! of 4 MiB each are 400 GB). A key longer than any id is looked up every time and never
//! kept; past [`CACHE_BYTES`], or when the instance's memory budget has no room for more, a
//! cache starts over.

use std::hash::Hash;

// Foldhash, randomly seeded per map: the keys are hashed once per row, where SipHash took
// a tenth of a remapped import's CPU.
use foldhash::{HashMap, HashMapExt as _};

use crate::memory::{Held, MemoryBudget};

/// Bytes a cache holds at most (keys and their bookkeeping).
pub(crate) const CACHE_BYTES: u64 = 8 << 20;
/// The longest key kept (Lumiverse's ids are 36-byte UUIDs).
pub(crate) const MAX_KEY_BYTES: usize = 256;
/// What an entry costs besides its key's bytes (the map's slot, the string's header).
const ENTRY_BYTES: u64 = 96;

/// Answers remembered by `(tag, key)`.
#[derive(Debug)]
pub(crate) struct LookupCache<T, V> {
    /// Per tag, so that a lookup by `&str` copies nothing.
    map: HashMap<T, HashMap<Box<str>, V>>,
    bytes: u64,
    /// This cache's share of the instance's memory budget, when it has one.
    memory: Option<Held>,
}

impl<T, V> Default for LookupCache<T, V> {
    fn default() -> Self {
        Self { map: HashMap::new(), bytes: 0, memory: None }
    }
}

impl<T: Copy + Hash + Eq, V> LookupCache<T, V> {
    /// Counts what the cache holds in `budget`.
    pub fn count_in(&mut self, budget: &MemoryBudget) {
        let mut held = budget.hold();
        if !held.try_cover(self.bytes) {
            self.clear();
        }
        self.memory = Some(held);
    }

    /// The remembered answer for `key`, if any.
    pub fn get(&self, tag: T, key: &str) -> Option<&V> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        self.map.get(&tag)?.get(key)
    }

    /// The first remembered answer for `key` under any tag that `wanted` accepts.
    pub fn find(&self, key: &str, wanted: impl Fn(&V) -> bool) -> Option<&V> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        self.map.values().filter_map(|answers| answers.get(key)).find(|answer| wanted(answer))
    }

    /// Remembers an answer; `false` when it was not kept (a key too long, or the cache
    /// started over to stay within its bounds), so a caller that relies on holding every
    /// answer knows it no longer does.
    pub fn insert(&mut self, tag: T, key: &str, value: V) -> bool {
        if key.len() > MAX_KEY_BYTES {
            return false;
        }
        let cost = key.len() as u64 + ENTRY_BYTES;
        let mut kept = true;
        let fits = |bytes: u64, memory: &mut Option<Held>| {
            bytes <= CACHE_BYTES && memory.as_mut().is_none_or(|held| held.try_cover(bytes))
        };
        if !fits(self.bytes + cost, &mut self.memory) {
            self.clear();
            kept = false;
            if !fits(cost, &mut self.memory) {
                return false;
            }
        }
        if self.map.entry(tag).or_default().insert(key.into(), value).is_none() {
            self.bytes += cost;
        }
        kept
    }

    /// Forgets everything and gives its memory back.
    pub fn clear(&mut self) {
        self.map = HashMap::new();
        self.bytes = 0;
        if let Some(held) = &mut self.memory {
            held.shrink_to(0);
        }
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_never_kept_and_the_bytes_stay_bounded() {
        let mut cache: LookupCache<u8, u32> = LookupCache::default();
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert!(!cache.insert(0, &long, 1));
        assert_eq!((cache.get(0, &long), cache.bytes()), (None, 0));
        let mut started_over = 0;
        for n in 0..200_000u32 {
            if !cache.insert(0, &format!("{n:0>200}"), n) {
                started_over += 1;
            }
            assert!(cache.bytes() <= CACHE_BYTES);
        }
        assert!(started_over >= 1);
        assert_eq!(cache.get(0, &format!("{:0>200}", 199_999)), Some(&199_999));
    }

    #[test]
    fn a_cache_counted_in_a_full_budget_keeps_nothing() {
        let budget = MemoryBudget::new(16 << 20);
        let mut hog = budget.hold();
        assert!(hog.try_cover(16 << 20));
        let mut cache: LookupCache<u8, u32> = LookupCache::default();
        cache.count_in(&budget);
        assert!(!cache.insert(0, "a", 1));
        drop(hog);
        assert!(cache.insert(0, "b", 2));
        assert_eq!(budget.available_mib(), 15);
    }
}
