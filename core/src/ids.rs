//! Ids inside text: Lumiverse's ids are hyphenated UUIDs, and JSON text and file names hold
//! them as they are. [`next_uuid`] finds them by their shape — the server rewrites them
//! for copies, a selection finds the files its rows name.

/// Whether `bytes` is a hyphenated UUID (either case), the shape of Lumiverse's ids.
pub fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

/// The 128 bits of `text` when it is a hyphenated lower-case UUID, the form Lumiverse's
/// and lvbak's new ids are written in (so [`lower_uuid_text`] gives `text` back); `None`
/// for any other text. Hot: the server keys a copied row's ids by it.
pub fn lower_uuid_bits(text: &str) -> Option<u128> {
    /// Each byte's value as a lower-case hex digit; 0x80 for any other byte.
    const DIGITS: [u8; 256] = {
        let mut digits = [0x80u8; 256];
        let mut digit = 0;
        while digit < 16 {
            digits[b"0123456789abcdef"[digit] as usize] = digit as u8;
            digit += 1;
        }
        digits
    };
    let bytes = text.as_bytes();
    if bytes.len() != 36 || bytes[8] != b'-' || bytes[13] != b'-' || bytes[18] != b'-' || bytes[23] != b'-' {
        return None;
    }
    let (mut bits, mut other) = (0u128, 0u8);
    for group in [&bytes[0..8], &bytes[9..13], &bytes[14..18], &bytes[19..23], &bytes[24..36]] {
        for &byte in group {
            let digit = DIGITS[usize::from(byte)];
            other |= digit;
            bits = bits << 4 | u128::from(digit & 0x0f);
        }
    }
    (other & 0x80 == 0).then_some(bits)
}

/// `bits` as a hyphenated lower-case UUID (the inverse of [`lower_uuid_bits`]).
pub fn lower_uuid_text(bits: u128) -> String {
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Uuid::from_u128(bits).hyphenated().encode_lower(&mut text).to_owned()
}

/// Where the first UUID of `bytes` at or after `from` starts: standing alone (no hex digit
/// either side), or with `quoted_only` a whole JSON string. Found from its first hyphen
/// (`memchr`), so text without one is passed over at memory speed.
pub fn next_uuid(bytes: &[u8], from: usize, quoted_only: bool) -> Option<usize> {
    let mut search = from + 8;
    while search < bytes.len() {
        let hyphen = search + memchr::memchr(b'-', &bytes[search..])?;
        let start = hyphen - 8;
        let bounded = if quoted_only {
            start > 0 && bytes[start - 1] == b'"' && bytes.get(start + 36) == Some(&b'"')
        } else {
            (start == 0 || !bytes[start - 1].is_ascii_hexdigit())
                && bytes.get(start + 36).is_none_or(|byte| !byte.is_ascii_hexdigit())
        };
        if bounded && bytes.len() >= start + 36 && is_uuid(&bytes[start..start + 36]) {
            return Some(start);
        }
        search = hyphen + 1;
    }
    None
}

/// `text` with every UUID in it (`quoted_only`: every JSON string that is a UUID) that
/// `new_id_of` answers for replaced by that answer; `None` when nothing changed.
pub fn rewrite_uuids<E>(
    text: &str,
    quoted_only: bool,
    mut new_id_of: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    let mut out = String::new();
    let mut copied = 0;
    let mut at = 0;
    while let Some(start) = next_uuid(text.as_bytes(), at, quoted_only) {
        let original = &text[start..start + 36];
        if let Some(new_id) = new_id_of(original)? {
            out.push_str(&text[copied..start]);
            out.push_str(&new_id);
            copied = start + 36;
        }
        at = start + 36;
    }
    if copied == 0 {
        return Ok(None);
    }
    out.push_str(&text[copied..]);
    Ok(Some(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A lower-case hyphenated UUID has bits that write it back as it was; any other text
    /// (upper case, braces, no hyphens, a hyphen moved, one digit short) has none.
    #[test]
    fn lower_uuids_and_their_bits_go_both_ways() {
        let text = "0b7f2c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b";
        let bits = lower_uuid_bits(text).unwrap();
        assert_eq!(bits, 0x0b7f2c1e_3a4d_4e5f_8a9b_0c1d2e3f4a5b);
        assert_eq!(lower_uuid_text(bits), text);
        for other in [
            "0B7F2C1E-3A4D-4E5F-8A9B-0C1D2E3F4A5B",
            "{0b7f2c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b}",
            "0b7f2c1e3a4d4e5f8a9b0c1d2e3f4a5b",
            "0b7f2c1e3-a4d-4e5f-8a9b-0c1d2e3f4a5b",
            "0b7f2c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5",
            "0b7f2c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5g",
            "c042",
        ] {
            assert_eq!(lower_uuid_bits(other), None, "{other}");
        }
    }
}
