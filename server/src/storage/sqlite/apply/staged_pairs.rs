//! The form an import's copies take while staged (`lvbak_id_map_staged.pairs`, migration
//! 0010): one batch's (archive id, new id) pairs of one table in one blob, written as one
//! row, not a row of four texts per copy (500,000 copied characters staged 500,000 rows,
//! then deleted them again).
//!
//! Each pair is `0` and both ids' 16 bytes when both are lower-case hyphenated UUIDs (a
//! fresh id always is, an archive's id nearly always), else `1` and each id as its length
//! (4 bytes, little-endian) and bytes.

use lvbak_core::ids::{lower_uuid_bits, lower_uuid_text};

/// Both ids as UUIDs.
const UUIDS: u8 = 0;
/// Both ids as length and bytes.
const TEXTS: u8 = 1;

/// The blob holding `pairs` of (archive id, new id).
pub(super) fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(pairs.len() * 33);
    for (original, new_id) in pairs {
        match (lower_uuid_bits(original), lower_uuid_bits(new_id)) {
            (Some(original), Some(new_id)) => {
                blob.push(UUIDS);
                blob.extend_from_slice(&original.to_be_bytes());
                blob.extend_from_slice(&new_id.to_be_bytes());
            }
            _ => {
                blob.push(TEXTS);
                for id in [original, new_id] {
                    // An id's length is bounded far below 4 GiB by the archive's line cap.
                    blob.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_le_bytes());
                    blob.extend_from_slice(id.as_bytes());
                }
            }
        }
    }
    blob
}

/// A pair as a blob holds it.
#[derive(Debug, PartialEq)]
pub(super) enum Pair<'a> {
    /// Two lower-case UUIDs, as their bits.
    Uuids(u128, u128),
    /// Any other ids.
    Texts(&'a str, &'a str),
}

/// Hands each pair of a blob [`encode`] made to `each`, in order; `None` (after the pairs
/// before the damage) if it is not one.
pub(super) fn each_pair<'a>(mut blob: &'a [u8], mut each: impl FnMut(Pair<'a>)) -> Option<()> {
    fn take<'a>(blob: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = blob.split_at_checked(count)?;
        *blob = rest;
        Some(taken)
    }
    fn text<'a>(blob: &mut &'a [u8]) -> Option<&'a str> {
        let length = u32::from_le_bytes(take(blob, 4)?.try_into().ok()?);
        std::str::from_utf8(take(blob, usize::try_from(length).ok()?)?).ok()
    }
    fn uuid(blob: &mut &[u8]) -> Option<u128> {
        Some(u128::from_be_bytes(take(blob, 16)?.try_into().ok()?))
    }
    while let Some(&kind) = blob.first() {
        blob = &blob[1..];
        each(match kind {
            UUIDS => Pair::Uuids(uuid(&mut blob)?, uuid(&mut blob)?),
            TEXTS => Pair::Texts(text(&mut blob)?, text(&mut blob)?),
            _ => return None,
        });
    }
    Some(())
}

/// The pairs in a blob [`encode`] made, as texts; `None` if it is not one.
pub(super) fn decode(blob: &[u8]) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    each_pair(blob, |pair| {
        pairs.push(match pair {
            Pair::Uuids(original, new_id) => (lower_uuid_text(original), lower_uuid_text(new_id)),
            Pair::Texts(original, new_id) => (original.to_string(), new_id.to_string()),
        })
    })?;
    Some(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// UUIDs take 16 bytes each, any other id (upper case, not a UUID, empty) its bytes,
    /// and every pair reads back as it was given.
    #[test]
    fn pairs_read_back_as_given() {
        let pairs = [
            ("0b7f2c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5b"),
            ("0B7F2C1E-3A4D-4E5F-8A9B-0C1D2E3F4A5B", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5c"),
            ("c042", "01939a3c-7d2e-7f10-8a9b-0c1d2e3f4a5d"),
            ("", "ünïcode\tand\nlines"),
        ];
        let blob = encode(&pairs);
        assert_eq!(blob.len(), 33 + (1 + 8 + 72) + (1 + 8 + 4 + 36) + (1 + 8 + 19));
        let decoded = decode(&blob).unwrap();
        let expected: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(decoded, expected);
        assert_eq!(decode(&[]).unwrap(), Vec::new());
    }

    /// A blob cut short or of an unknown kind is refused, not read past its end.
    #[test]
    fn a_damaged_blob_is_refused() {
        let blob = encode(&[("c042", "c043")]);
        assert!(decode(&blob[..blob.len() - 1]).is_none());
        assert!(decode(&[2]).is_none());
        assert!(decode(&[UUIDS, 1, 2, 3]).is_none());
        assert!(decode(&[TEXTS, 255, 255, 255, 255]).is_none());
    }
}
