//! The one entry-name sanitizer (FORMAT §2): every name in an archive goes through
//! [`classify_entry_name`], which either rejects it with a typed error or says what it is.
//! Destinations on disk are joined by [`FileBucket::relative_destination`], which re-checks
//! containment after the join.

use crate::error::{FormatError, Result};

/// Longest entry name accepted, in bytes.
pub const MAX_ENTRY_NAME_BYTES: usize = 4096;

/// The folders under `files/` and where their contents go on an importing server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileBucket {
    Images,
    Thumbnails,
    Avatars,
    Databank,
    ThemeAssets,
    NotificationSounds,
}

impl FileBucket {
    pub const ALL: [FileBucket; 6] = [
        FileBucket::Images,
        FileBucket::Thumbnails,
        FileBucket::Avatars,
        FileBucket::Databank,
        FileBucket::ThemeAssets,
        FileBucket::NotificationSounds,
    ];

    /// The folder name under `files/` in an archive.
    pub fn archive_folder(self) -> &'static str {
        match self {
            Self::Images => "images",
            Self::Thumbnails => "thumbnails",
            Self::Avatars => "avatars",
            Self::Databank => "databank",
            Self::ThemeAssets => "theme-assets",
            Self::NotificationSounds => "notification-sounds",
        }
    }

    /// The bucket of a folder name under `files/`.
    pub fn from_archive_folder(folder: &str) -> Option<FileBucket> {
        Self::ALL.into_iter().find(|bucket| bucket.archive_folder() == folder)
    }

    /// The archive entry name of a file of this bucket.
    pub fn entry_name(self, inner: &str) -> String {
        format!("files/{}/{inner}", self.archive_folder())
    }

    /// Where a file goes under the server's data directory, as relative path segments:
    /// `images/<user>/`, `avatars/<user>/`, `databank/<user>/`, `theme-assets/<user>/`,
    /// `notification-sounds/<user>/`, followed by `inner`. Thumbnails sit beside the images.
    /// Every bucket is per user (where Lumiverse shares `images/` and `avatars/`), so a row
    /// can only ever name its own user's files, whatever name it gives.
    ///
    /// `inner` must be a name this module accepted; it is re-checked here (belt and braces)
    /// so that the joined path can never leave its folder.
    pub fn relative_destination(self, user_id: &str, inner: &str) -> Result<Vec<String>> {
        let folder = match self {
            Self::Images | Self::Thumbnails => "images",
            Self::Avatars => "avatars",
            Self::Databank => "databank",
            Self::ThemeAssets => "theme-assets",
            Self::NotificationSounds => "notification-sounds",
        };
        check_plain_segment(user_id, "user id")?;
        let mut segments = vec![folder.to_string(), user_id.to_string()];
        if inner.is_empty() {
            return Err(bad_name(inner, "empty file name"));
        }
        for segment in inner.split('/') {
            check_plain_segment(segment, inner)?;
            segments.push(segment.to_string());
        }
        Ok(segments)
    }
}

/// The archive entry of a database table's rows: `database/<table>.ndjson` (FORMAT §4).
pub fn table_entry_name(table: &str) -> String {
    format!("database/{table}.ndjson")
}

/// The archive entry of a LanceDB table's vectors: `lancedb/<table>.ndjson` (FORMAT §5).
pub fn vector_entry_name(table: &str) -> String {
    format!("lancedb/{table}.ndjson")
}

/// One path segment must be a plain name: not empty, not `.`/`..`, no separators or
/// control bytes.
fn check_plain_segment(segment: &str, whole: &str) -> Result<()> {
    if segment == ".." {
        return Err(FormatError::PathTraversal { name: whole.to_string() });
    }
    if segment.is_empty() || segment == "." || segment.bytes().any(|b| b == b'/' || b == b'\\' || b < 0x20 || b == b':')
    {
        return Err(bad_name(whole, "not a plain path segment"));
    }
    Ok(())
}

/// What an accepted entry name is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// `manifest.json`
    Manifest,
    /// `manifest-stats.json`
    ManifestStats,
    /// `database/<table>.ndjson`
    Table { table: String },
    /// `lancedb/<table>.ndjson`
    VectorTable { table: String },
    /// `secrets/index.json`
    SecretsIndex,
    /// `secrets/encrypted.ndjson`
    SecretsBlob,
    /// `files/<bucket>/<name>`
    File { bucket: FileBucket, name: String },
    /// An entry of a CHARX card file (`card.json`, `assets/…`), named by
    /// [`classify_card_entry_name`]; a `.lvbak` never has one.
    CardFile { name: String },
}

impl EntryKind {
    /// Whether this entry is one of the small metadata entries held to the metadata cap.
    pub fn is_metadata(&self) -> bool {
        matches!(self, Self::Manifest | Self::ManifestStats | Self::SecretsIndex)
    }
}

fn bad_name(name: &str, reason: &str) -> FormatError {
    FormatError::BadEntryName { name: name.to_string(), reason: reason.to_string() }
}

/// Decides what an entry name is, or why it must be refused (FORMAT §2).
///
/// The raw bytes are taken as they are in the central directory; names must be ASCII, since
/// every allowed form is.
pub fn classify_entry_name(raw: &[u8]) -> Result<EntryKind> {
    let name = safe_name(raw)?;
    if !name.is_ascii() {
        return Err(bad_name(name, "not ASCII"));
    }
    if name.ends_with('/') {
        return Err(FormatError::DirectoryEntry { name: name.to_string() });
    }
    classify_ascii(name)
}

/// Names an entry of a CHARX card file: any UTF-8 name that stays inside the file's own
/// folder (the checks every archive name gets first), a folder's name included. Card files
/// come from many tools; only `card.json` is ever read of them.
pub fn classify_card_entry_name(raw: &[u8]) -> Result<EntryKind> {
    Ok(EntryKind::CardFile { name: safe_name(raw)?.to_string() })
}

/// The checks every entry name gets, whatever file it is in: not empty nor too long, no
/// control bytes, not absolute, no `..` or `.` segments (backslashes taken as slashes),
/// UTF-8.
fn safe_name(raw: &[u8]) -> Result<&str> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    if raw.is_empty() {
        return Err(bad_name(&shown, "empty name"));
    }
    if raw.len() > MAX_ENTRY_NAME_BYTES {
        return Err(bad_name(&shown, "longer than 4096 bytes"));
    }
    if let Some(byte) = raw.iter().find(|&&b| b < 0x20 || b == 0x7f) {
        return Err(bad_name(&shown, &format!("contains control byte 0x{byte:02x}")));
    }
    if raw[0] == b'/' || raw[0] == b'\\' {
        return Err(FormatError::AbsolutePath { name: shown });
    }
    if raw.len() >= 2 && raw[0].is_ascii_alphabetic() && raw[1] == b':' {
        return Err(FormatError::AbsolutePath { name: shown });
    }
    // Segments are judged after turning backslashes into slashes, so `a\..\b` is caught.
    let mut has_dot_segment = false;
    for segment in raw.split(|&b| b == b'/' || b == b'\\') {
        if segment == b".." {
            return Err(FormatError::PathTraversal { name: shown });
        }
        has_dot_segment |= segment == b".";
    }
    if has_dot_segment {
        return Err(bad_name(&shown, "has a '.' segment"));
    }
    std::str::from_utf8(raw).map_err(|_| bad_name(&shown, "not ASCII"))
}

fn classify_ascii(name: &str) -> Result<EntryKind> {
    match name {
        "manifest.json" => return Ok(EntryKind::Manifest),
        "manifest-stats.json" => return Ok(EntryKind::ManifestStats),
        "secrets/index.json" => return Ok(EntryKind::SecretsIndex),
        "secrets/encrypted.ndjson" => return Ok(EntryKind::SecretsBlob),
        _ => {}
    }
    if let Some(inner) = name.strip_prefix("database/") {
        let table = ndjson_table_name(inner).ok_or_else(|| bad_name(name, "not <table>.ndjson"))?;
        return Ok(EntryKind::Table { table: table.to_string() });
    }
    if let Some(inner) = name.strip_prefix("lancedb/") {
        let table = ndjson_table_name(inner).ok_or_else(|| bad_name(name, "not <table>.ndjson"))?;
        return Ok(EntryKind::VectorTable { table: table.to_string() });
    }
    if name.starts_with("secrets/") {
        return Err(bad_name(name, "secrets/ holds only index.json and encrypted.ndjson"));
    }
    if let Some(rest) = name.strip_prefix("files/") {
        for bucket in FileBucket::ALL {
            if let Some(inner) = rest.strip_prefix(bucket.archive_folder()).and_then(|r| r.strip_prefix('/')) {
                if !file_name_fits(bucket, inner) {
                    return Err(bad_name(name, file_name_rule(bucket)));
                }
                return Ok(EntryKind::File { bucket, name: inner.to_string() });
            }
        }
    }
    Err(FormatError::UnknownPrefix { name: name.to_string() })
}

/// `^[a-z_]+\.ndjson$`, giving the table name.
fn ndjson_table_name(inner: &str) -> Option<&str> {
    let table = inner.strip_suffix(".ndjson")?;
    (!table.is_empty() && table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(table)
}

fn file_name_rule(bucket: FileBucket) -> &'static str {
    match bucket {
        FileBucket::Images => "images must be <uuid> with an optional extension",
        FileBucket::Thumbnails => "thumbnails must be <uuid>_thumb_(sm|lg)_v2.webp",
        FileBucket::Avatars | FileBucket::Databank => "only letters, digits, '.', '_' and '-' are allowed",
        FileBucket::ThemeAssets => "theme assets must be <bundle id>/<file name>",
        FileBucket::NotificationSounds => "the sound must be completion.(mp3|wav|ogg|aac|m4a)",
    }
}

fn file_name_fits(bucket: FileBucket, inner: &str) -> bool {
    match bucket {
        FileBucket::Images => {
            let (stem, extension) = match inner.split_once('.') {
                Some((stem, extension)) => (stem, Some(extension)),
                None => (inner, None),
            };
            is_lower_uuid(stem)
                && extension.is_none_or(|e| (1..=8).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        }
        FileBucket::Thumbnails => inner
            .strip_suffix("_v2.webp")
            .and_then(|rest| rest.strip_suffix("_thumb_sm").or_else(|| rest.strip_suffix("_thumb_lg")))
            .is_some_and(is_lower_uuid),
        FileBucket::Avatars | FileBucket::Databank => is_plain_file_name(inner),
        FileBucket::ThemeAssets => match inner.split_once('/') {
            // `<bundle>/<file>`: the file part may hold further folders, but no empty ones.
            Some((bundle, file)) => {
                is_plain_file_name(bundle) && !file.is_empty() && file.split('/').all(is_plain_file_name)
            }
            None => false,
        },
        FileBucket::NotificationSounds => {
            inner.strip_prefix("completion.").is_some_and(|e| matches!(e, "mp3" | "wav" | "ogg" | "aac" | "m4a"))
        }
    }
}

/// `^[A-Za-z0-9._-]+$`
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A lower-case hex UUID in its 8-4-4-4-12 form.
pub fn is_lower_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entry_names_are_what_the_sanitizer_accepts() {
        assert_eq!(table_entry_name("chats"), "database/chats.ndjson");
        assert_eq!(vector_entry_name("embeddings"), "lancedb/embeddings.ndjson");
        assert_eq!(
            classify_entry_name(table_entry_name("chats").as_bytes()).ok(),
            Some(EntryKind::Table { table: "chats".into() })
        );
        assert_eq!(
            classify_entry_name(vector_entry_name("embeddings").as_bytes()).ok(),
            Some(EntryKind::VectorTable { table: "embeddings".into() })
        );
    }

    fn code(name: &str) -> &'static str {
        match classify_entry_name(name.as_bytes()) {
            Ok(_) => "ok",
            Err(error) => error.code(),
        }
    }

    #[test]
    fn accepted_names_get_their_kind() {
        let uuid = "0f9f6c1a-33e8-4cdd-8dce-460cf7252d66";
        assert_eq!(classify_entry_name(b"manifest.json").ok(), Some(EntryKind::Manifest));
        assert_eq!(
            classify_entry_name(b"database/world_book_entries.ndjson").ok(),
            Some(EntryKind::Table { table: "world_book_entries".into() })
        );
        assert_eq!(
            classify_entry_name(format!("files/thumbnails/{uuid}_thumb_lg_v2.webp").as_bytes()).ok(),
            Some(EntryKind::File { bucket: FileBucket::Thumbnails, name: format!("{uuid}_thumb_lg_v2.webp") })
        );
        assert_eq!(code(&format!("files/images/{uuid}")), "ok");
        assert_eq!(code(&format!("files/images/{uuid}.jpeg")), "ok");
        assert_eq!(code("files/theme-assets/bundle-1/fonts/a.woff2"), "ok");
        assert_eq!(code("files/notification-sounds/completion.ogg"), "ok");
        assert_eq!(code("files/databank/doc-1__notes_a.md"), "ok");
    }

    #[test]
    fn refused_names_get_their_code() {
        let uuid = "0f9f6c1a-33e8-4cdd-8dce-460cf7252d66";
        for (name, expected) in [
            ("", "bad_entry_name"),
            ("/etc/passwd", "absolute_path"),
            ("\\windows\\x", "absolute_path"),
            ("C:/x", "absolute_path"),
            ("database/../../x.ndjson", "path_traversal"),
            ("files\\avatars\\..\\..\\x", "path_traversal"),
            ("./manifest.json", "bad_entry_name"),
            ("database/a\0.ndjson", "bad_entry_name"),
            ("database/Users.ndjson", "bad_entry_name"),
            ("database/", "directory_entry"),
            ("other/x", "unknown_prefix"),
            ("files/other/x", "unknown_prefix"),
            ("secrets/other.json", "bad_entry_name"),
            (&format!("files/images/{}", uuid.to_uppercase()), "bad_entry_name"),
            (&format!("files/images/{uuid}.toolongext"), "bad_entry_name"),
            (&format!("files/thumbnails/{uuid}_thumb_xl_v2.webp"), "bad_entry_name"),
            ("files/avatars/a b.png", "bad_entry_name"),
            ("files/databank/a/b", "bad_entry_name"),
            ("files/theme-assets/only-bundle", "bad_entry_name"),
            ("files/theme-assets/b//x", "bad_entry_name"),
            ("files/notification-sounds/completion.exe", "bad_entry_name"),
        ] {
            assert_eq!(code(name), expected, "{name:?}");
        }
        assert_eq!(code(&"a".repeat(4097)), "bad_entry_name");
    }

    #[test]
    fn destinations_stay_inside_their_folder() {
        let dest = FileBucket::ThemeAssets.relative_destination("u1", "b/fonts/a.woff2").ok();
        assert_eq!(dest, Some(vec!["theme-assets".into(), "u1".into(), "b".into(), "fonts".into(), "a.woff2".into()]));
        assert_eq!(
            FileBucket::Images.relative_destination("u1", "x.png").ok(),
            Some(vec!["images".into(), "u1".into(), "x.png".into()])
        );
        assert_eq!(
            FileBucket::Thumbnails.relative_destination("u1", "x_thumb_sm_v2.webp").ok(),
            Some(vec!["images".into(), "u1".into(), "x_thumb_sm_v2.webp".into()])
        );
        let avatar_of_nobody = FileBucket::Avatars.relative_destination("", "a.png");
        assert_eq!(avatar_of_nobody.err().map(|e| e.code()), Some("bad_entry_name"));
        let traversal = FileBucket::Databank.relative_destination("u1", "../x");
        assert_eq!(traversal.err().map(|e| e.code()), Some("path_traversal"));
        let parent_user = FileBucket::Databank.relative_destination("..", "x");
        assert_eq!(parent_user.err().map(|e| e.code()), Some("path_traversal"));
        let nested_user = FileBucket::Databank.relative_destination("a/b", "x");
        assert_eq!(nested_user.err().map(|e| e.code()), Some("bad_entry_name"));
    }
}
