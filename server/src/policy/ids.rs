//! Ids for copies and ids inside text. A row whose id is another account's is imported as
//! a copy under a fresh id of the importer's own (`fresh_ids`); ids kept in JSON text and
//! file names are found by their shape (`next_uuid`) and rewritten textually
//! (`rewrite_uuids`), so Lumiverse's bytes — key order, number text — stay as they were.

/// The most a copy's new id adds to what its row counts for (the original id may be empty).
pub(crate) const NEW_ID_BYTES: u64 = 36;

/// `count` fresh row ids, lowercase hyphenated UUIDs, in the order they are made: version 7
/// (time-ordered, RFC 9562; ordered within the process) rather than Lumiverse's random v4, so
/// that a second account's copies of 500,000 rows go into the table's id index at its end
/// instead of all over it: with v4 ids, that restore took 14.5 s, with these 12.4 s (the
/// same build otherwise, one run each; `bench_import remap`).
///
/// Laid out as RFC 9562's "fixed bit-length dedicated counter" (method 1): the millisecond,
/// a 42-bit counter that starts at a random place each millisecond and counts up within it,
/// then 32 random bits — all of them from one request to the system's generator, not a
/// system call per id as `Uuid::now_v7` makes (3% of a 500,000-row copy's time), nor the
/// thread's generator (ChaCha, which the dev profile that runs the server's tests and
/// benchmarks builds unoptimised: 80 ms of 500,000 ids' 114 ms).
pub(crate) fn fresh_ids(count: usize) -> Vec<String> {
    use rand::{Rng as _, TryRngCore as _};
    let mut random = rand::rng();
    let mut tails = vec![0u8; count * 4];
    if rand::rngs::OsRng.try_fill_bytes(&mut tails).is_err() {
        random.fill(&mut tails[..]);
    }
    let mut tails = tails.chunks_exact(4).map(|tail| u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    let mut last = LAST_V7.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    (0..count)
        .map(|_| {
            let (millisecond, counter) = &mut *last;
            if now > *millisecond {
                // A fresh start in the lower half leaves room to count up.
                (*millisecond, *counter) = (now, random.random::<u64>() >> (64 - COUNTER_BITS + 1));
            } else if *counter + 1 >= 1 << COUNTER_BITS {
                (*millisecond, *counter) = (*millisecond + 1, random.random::<u64>() >> (64 - COUNTER_BITS + 1));
            } else {
                *counter += 1;
            }
            let bits = u128::from(*millisecond & ((1 << 48) - 1)) << 80
                | 0x7 << 76
                | u128::from(*counter >> 30) << 64
                | 0b10 << 62
                | u128::from(*counter & ((1 << 30) - 1)) << 32
                | u128::from(tails.next().unwrap_or_default());
            lvbak_core::ids::lower_uuid_text(bits)
        })
        .collect()
}

/// The ids rows whose archive ids are `originals` (sorted: an id's repeats are
/// neighbours) get as copies, in their order: `known`'s answer (asked once per id) for an
/// id an earlier import copied, else a fresh id, the same for every repeat of the id. With
/// them, the positions given fresh ids (each id's first): the copies to record. Both
/// backends' remaps give ids by this.
pub(crate) fn copy_ids(originals: &[&str], mut known: impl FnMut(&str) -> Option<String>) -> (Vec<String>, Vec<usize>) {
    let first_of_its_id = |position: usize| position == 0 || originals[position - 1] != originals[position];
    let mut answers: Vec<Option<String>> = (0..originals.len())
        .map(|position| if first_of_its_id(position) { known(originals[position]) } else { None })
        .collect();
    let wanted =
        (0..originals.len()).filter(|&position| first_of_its_id(position) && answers[position].is_none()).count();
    let mut ids = fresh_ids(wanted).into_iter();
    let mut new_ids: Vec<String> = Vec::with_capacity(originals.len());
    let mut fresh: Vec<usize> = Vec::with_capacity(wanted);
    for position in 0..originals.len() {
        let new_id = match answers[position].take() {
            Some(known) => known,
            None if !first_of_its_id(position) => new_ids[position - 1].clone(),
            None => {
                fresh.push(position);
                ids.next().unwrap_or_else(crate::util::new_id)
            }
        };
        new_ids.push(new_id);
    }
    (new_ids, fresh)
}

/// The bits of a fresh id's counter (`fresh_ids`).
const COUNTER_BITS: u32 = 42;

/// The millisecond and counter of the last fresh id the process made.
static LAST_V7: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));

pub(crate) use lvbak_core::ids::{next_uuid, rewrite_uuids};

/// Whether text may hold an id: an id's length or more, with a hyphen.
pub(crate) fn may_hold_id(bytes: &[u8]) -> bool {
    bytes.len() >= 36 && memchr::memchr(b'-', bytes).is_some()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lvbak_core::ids::is_uuid;

    #[test]
    fn uuids_are_recognised_by_shape() {
        assert!(is_uuid(b"45912865-abcc-4ceb-a966-207567b02a16"));
        assert!(is_uuid(b"45912865-ABCC-4CEB-A966-207567B02A16"));
        assert!(!is_uuid(b"45912865-abcc-4ceb-a966-207567b02a1"));
        assert!(!is_uuid(b"45912865_abcc-4ceb-a966-207567b02a16"));
        assert!(!is_uuid(b"g5912865-abcc-4ceb-a966-207567b02a16"));
        let id = crate::util::new_id();
        assert!(is_uuid(id.as_bytes()) && id == id.to_lowercase());
        let ids: Vec<String> = (0..3).flat_map(|_| fresh_ids(2000)).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version(), Some(uuid::Version::SortRand), "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert!(is_uuid(id.as_bytes()) && *id == id.to_lowercase());
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids made in order sort in order");
        let made = uuid::Uuid::parse_str(&ids[0]).unwrap().get_timestamp().unwrap().to_unix().0;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(now.abs_diff(made) < 5, "the id's time is now");
    }

    #[test]
    fn uuids_are_found_where_they_stand_alone_or_quoted() {
        let id = "45912865-abcc-4ceb-a966-207567b02a16";
        let text = format!("a-b {id} /api/v1/images/{id}.png x{id} \"{id}\" {id}");
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(start) = next_uuid(text.as_bytes(), at, false) {
            found.push(start);
            at = start + 36;
        }
        // Not the one glued to a hex digit ("x" is not one, so that one counts too).
        let expected: Vec<usize> = text.match_indices(id).map(|(i, _)| i).collect();
        assert_eq!(found, expected);
        let glued = format!("a{id}");
        assert_eq!(next_uuid(glued.as_bytes(), 0, false), None);
        let quoted = format!("{{\"k\":\"{id}\",\"l\":\"{id}x\"}}");
        assert_eq!(next_uuid(quoted.as_bytes(), 0, true), Some(6));
        assert_eq!(next_uuid(quoted.as_bytes(), 7, true), None);
        assert_eq!(next_uuid(b"no ids - here", 0, false), None);
        assert_eq!(next_uuid(&id.as_bytes()[..35], 0, false), None);
    }

    /// An id's repeats share one id; an id `known` answers for keeps that answer (asked
    /// once); every other id gets a fresh one of its own, and its first position is listed.
    #[test]
    fn copies_get_known_or_fresh_ids_shared_by_repeats() {
        let originals = ["a", "a", "b", "c", "c", "c", "d"];
        let mut asked = Vec::new();
        let (ids, fresh) = copy_ids(&originals, |original| {
            asked.push(original.to_string());
            (original == "c").then(|| "earlier-c".to_string())
        });
        assert_eq!(asked, ["a", "b", "c", "d"]);
        assert_eq!(fresh, [0, 2, 6]);
        assert_eq!(&ids[3..6], ["earlier-c", "earlier-c", "earlier-c"]);
        assert_eq!(ids[0], ids[1]);
        let distinct: std::collections::BTreeSet<&String> = [&ids[0], &ids[2], &ids[6], &ids[3]].into_iter().collect();
        assert_eq!(distinct.len(), 4);
        assert!(fresh.iter().all(|&position| lvbak_core::ids::lower_uuid_bits(&ids[position]).is_some()));
    }

    #[test]
    fn only_the_ids_answered_for_are_rewritten() {
        let (a, b) = ("45912865-abcc-4ceb-a966-207567b02a16", "55912865-abcc-4ceb-a966-207567b02a16");
        let text = format!("{{\"x\":\"{a}\",\"y\":\"{b}\",\"n\":1.50}}");
        let new_id = |id: &str| Ok::<_, ()>((id == a).then(|| "new".to_string()));
        assert_eq!(
            rewrite_uuids(&text, true, new_id).unwrap(),
            Some(format!("{{\"x\":\"new\",\"y\":\"{b}\",\"n\":1.50}}"))
        );
        assert_eq!(rewrite_uuids(b, false, new_id).unwrap(), None);
        assert_eq!(rewrite_uuids(&format!("{a}.png"), false, new_id).unwrap(), Some("new.png".to_string()));
    }
}
