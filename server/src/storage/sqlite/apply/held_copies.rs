//! What an import keeps in memory about the account's copies (see `id_map`): the staged
//! copies, earlier imports' and its own ([`Copies`]), and a filter of the archive ids it
//! added to `lvbak_id_map` ([`Merged`]). Ids are held as their 128 bits when they are
//! lower-case UUIDs (an archive's nearly always, a copy's new id always), as text
//! otherwise: a copy then costs no allocation, and its key hashes as one number rather than
//! 36 bytes (a second account's 100,000 copies spent 9% of the import in allocating,
//! hashing and freeing their texts). What they take is counted from the maps' slots.

use foldhash::{HashMap, HashMapExt as _};
use lvbak_core::ids::{lower_uuid_bits, lower_uuid_text};

use super::staged_pairs::Pair;

/// What the copies held in memory may take (the maps' slots and the texts' bytes) before
/// they are added to the id map: a second account's 500,000 copied characters take
/// 34.6 MB (2^20 slots of two UUIDs), 900,000 copies would take twice that.
pub(super) const COPIES_BYTES: u64 = 40 << 20;
/// A map's slot: two UUIDs (or two boxed texts, whose bytes are counted apart) and the
/// slot's control byte.
const SLOT_BYTES: u64 = 33;
/// Bits of [`Merged`]'s filter (1 MiB).
pub(super) const MERGED_BITS: usize = 1 << 23;

/// What a map that can hold `capacity` entries takes: `hashbrown` keeps at most 7/8 of a
/// power of two of slots full.
fn slots_bytes(capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    (capacity as u64 * 8).div_ceil(7).next_power_of_two() * SLOT_BYTES
}

/// One table's copies: archive id → new id.
#[derive(Debug, Default)]
struct TableCopies {
    /// Both ids UUIDs.
    uuids: HashMap<u128, u128>,
    /// Any other pair.
    texts: HashMap<Box<str>, Box<str>>,
}

impl TableCopies {
    fn get(&self, original: &str) -> Option<String> {
        match lower_uuid_bits(original) {
            Some(bits) => self.uuids.get(&bits).map(|new_id| lower_uuid_text(*new_id)),
            None => self.texts.get(original).map(|new_id| new_id.to_string()),
        }
    }

    fn len(&self) -> usize {
        self.uuids.len() + self.texts.len()
    }

    /// What the maps' slots take, with room for `more` UUID pairs.
    fn slots_bytes(&self, more: usize) -> u64 {
        slots_bytes(self.uuids.capacity().max(self.uuids.len() + more)) + slots_bytes(self.texts.capacity())
    }
}

/// The copies of the account that are staged (see `id_map`): table → archive id → new id,
/// bounded in bytes and counted in the instance's memory budget.
#[derive(Debug, Default)]
pub(super) struct Copies {
    map: HashMap<&'static str, TableCopies>,
    /// The bytes of the texts held.
    text_bytes: u64,
    /// Past [`COPIES_BYTES`], or the budget refused more: to be merged after the batch.
    pub full: bool,
    memory: Option<crate::memory::Held>,
}

impl Copies {
    /// The copy of `original` of `table` (of any table: `None`).
    pub fn get(&self, table: Option<&str>, original: &str) -> Option<String> {
        match table {
            Some(table) => self.map.get(table)?.get(original),
            None => self.map.values().find_map(|copies| copies.get(original)),
        }
    }

    /// What the copies take, with room for `more` UUID pairs of `table`.
    fn bytes_with(&self, table: &str, more: usize) -> u64 {
        let slots: u64 =
            self.map.iter().map(|(name, copies)| copies.slots_bytes(if *name == table { more } else { 0 })).sum();
        let new_table = if self.map.contains_key(table) { 0 } else { slots_bytes(more) };
        slots + new_table + self.text_bytes
    }

    /// Whether `more` copies of `table` can be held as well (within [`COPIES_BYTES`] and
    /// the budget, counting the filter of merged ids): if not, the copies held are merged
    /// before they come.
    pub fn has_room_for(&mut self, table: &str, more: usize) -> bool {
        let bytes = self.bytes_with(table, more);
        !self.full
            && bytes <= COPIES_BYTES
            && self.memory.as_mut().is_none_or(|held| held.try_cover(bytes + MERGED_BITS as u64 / 8))
    }

    pub fn insert(&mut self, table: &'static str, original: &str, new_id: &str) {
        match (lower_uuid_bits(original), lower_uuid_bits(new_id)) {
            (Some(original), Some(new_id)) => self.insert_pair(table, Pair::Uuids(original, new_id)),
            _ => self.insert_pair(table, Pair::Texts(original, new_id)),
        }
    }

    /// Holds a pair as staged (see `staged_pairs`).
    pub fn insert_pair(&mut self, table: &'static str, pair: Pair<'_>) {
        let copies = self.map.entry(table).or_default();
        let grows = match pair {
            Pair::Uuids(original, new_id) => {
                let grows = copies.uuids.len() == copies.uuids.capacity();
                copies.uuids.insert(original, new_id);
                grows
            }
            Pair::Texts(original, new_id) => {
                self.text_bytes += (original.len() + new_id.len()) as u64;
                copies.texts.insert(original.into(), new_id.into());
                true
            }
        };
        if grows {
            let bytes = self.bytes_with(table, 0);
            // The filter of merged ids is counted with them.
            let covered = self.memory.as_mut().is_none_or(|held| held.try_cover(bytes + MERGED_BITS as u64 / 8));
            if bytes > COPIES_BYTES || !covered {
                self.full = true;
            }
        }
    }

    /// Counts what the copies hold in `budget`.
    pub fn count_in(&mut self, budget: &crate::memory::MemoryBudget) {
        let mut held = budget.hold();
        if !held.try_cover(self.bytes_with("", 0) + MERGED_BITS as u64 / 8) {
            self.full = true;
        }
        self.memory = Some(held);
    }

    /// How many copies are held.
    pub fn len(&self) -> usize {
        self.map.values().map(TableCopies::len).sum()
    }

    /// The copies in the id map's key order: (original, table, new id). (A UUID's bits
    /// sort as its lower-case text does.)
    pub fn sorted(&self) -> Vec<(String, &'static str, String)> {
        let mut all = Vec::with_capacity(self.len());
        for (table, copies) in &self.map {
            all.extend(copies.uuids.iter().map(|(o, n)| (lower_uuid_text(*o), *table, lower_uuid_text(*n))));
            all.extend(copies.texts.iter().map(|(o, n)| (o.to_string(), *table, n.to_string())));
        }
        all.sort_unstable();
        all
    }

    /// Adds every archive id held to `merged`.
    pub fn add_originals_to(&self, merged: &mut Merged) {
        for copies in self.map.values() {
            copies.uuids.keys().for_each(|bits| merged.insert_bits(*bits));
            copies.texts.keys().for_each(|original| merged.insert_text(original));
        }
    }

    pub fn clear(&mut self) {
        self.map = HashMap::new();
        (self.text_bytes, self.full) = (0, false);
        if let Some(held) = &mut self.memory {
            held.shrink_to(MERGED_BITS as u64 / 8);
        }
    }
}

/// The archive ids whose copies this import added to the map, as a Bloom filter of a fixed
/// size: an id it may hold is looked up in the map, one it cannot hold is not (a second
/// account restoring 500,000 rows looked each up). Past a few million ids it holds most
/// ids, which costs lookups, never a wrong answer. Made at the first id (`fastbloom`'s
/// filter, hashed with a random seed: an archive cannot choose ids that all collide).
#[derive(Debug, Default)]
pub(super) struct Merged {
    filter: Option<fastbloom::BloomFilter<foldhash::quality::RandomState>>,
}

impl Merged {
    fn filter(&mut self) -> &mut fastbloom::BloomFilter<foldhash::quality::RandomState> {
        self.filter.get_or_insert_with(|| {
            fastbloom::BloomFilter::with_num_bits(MERGED_BITS)
                .hasher(foldhash::quality::RandomState::default())
                .hashes(4)
        })
    }

    fn insert_bits(&mut self, bits: u128) {
        self.filter().insert(&bits);
    }

    fn insert_text(&mut self, original: &str) {
        self.filter().insert(original);
    }

    /// Whether `original` may have been added.
    pub fn may_hold(&self, original: &str) -> bool {
        let Some(filter) = &self.filter else { return false };
        match lower_uuid_bits(original) {
            Some(bits) => filter.contains(&bits),
            None => filter.contains(original),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_of_merged_ids_holds_what_it_was_given() {
        let mut copies = Copies::default();
        let uuid = |n: u128| lower_uuid_text(n << 64 | 0x4000_8000_0000_0000 | n);
        for n in 0..10_000 {
            copies.insert("characters", &format!("id-{n}"), &uuid(n));
            copies.insert("chats", &uuid(n), &uuid(n + 1_000_000));
        }
        let mut merged = Merged::default();
        assert!(!merged.may_hold("id-1"));
        copies.add_originals_to(&mut merged);
        assert!((0..10_000).all(|n| merged.may_hold(&format!("id-{n}")) && merged.may_hold(&uuid(n))));
        let wrong =
            (10_000..20_000).filter(|&n| merged.may_hold(&format!("id-{n}")) || merged.may_hold(&uuid(n))).count();
        assert!(wrong < 20, "{wrong} false answers");
    }

    /// Copies read back as they were given, whatever form their ids have, and sort in the
    /// id map's key order (text order, UUIDs and other ids mixed).
    #[test]
    fn copies_of_either_form_read_back_and_sort_as_text() {
        let mut copies = Copies::default();
        let pairs = [
            ("characters", "ffffffff-0000-4000-8000-000000000000", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5b"),
            ("characters", "00000000-0000-4000-8000-000000000001", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5c"),
            ("characters", "c042", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5d"),
            ("chats", "00000000-0000-4000-8000-000000000001", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5e"),
            ("chats", "ABCDEF00-0000-4000-8000-000000000000", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5f"),
        ];
        for (table, original, new_id) in pairs {
            copies.insert(table, original, new_id);
        }
        for (table, original, new_id) in pairs {
            assert_eq!(copies.get(Some(table), original).as_deref(), Some(new_id));
        }
        assert_eq!(copies.get(None, "c042").as_deref(), Some(pairs[2].2));
        assert_eq!(copies.get(Some("chats"), "c042"), None);
        let sorted: Vec<(String, &str, String)> = copies.sorted();
        let mut expected: Vec<(String, &str, String)> =
            pairs.iter().map(|(t, o, n)| (o.to_string(), *t, n.to_string())).collect();
        expected.sort();
        assert_eq!(sorted, expected);
    }
}
