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
