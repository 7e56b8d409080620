//! Where a file of an archive may be restored: only where one of the importer's rows names
//! it, by the registry's file columns (`TableSpec::files`) — images and thumbnails by an
//! image row's file name, avatars by the last segment of a character's or persona's path,
//! theme assets by a theme-asset row, databank documents under their row's path. A
//! completion sound has no row (it is held to its five names and must sniff as audio).
//! The rule says which questions to ask; the backend answers them for the importer.

use lvbak_core::registry::TABLES;
use lvbak_core::FileBucket;

/// A question about the importer's rows that decides whether a file may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileQuestion<'a> {
    /// Does one of the importer's rows of `table` have `name` in `column`?
    Equals { table: &'static str, column: &'static str, name: &'a str },
    /// Does one of them have a path in `column` whose last segment ('\\' taken as '/') is
    /// `name`?
    LastSegment { table: &'static str, column: &'static str, name: &'a str },
    /// Does one of them have `stem` or `stem.<extension>` in `column` (a thumbnail is named
    /// after its original)?
    Stem { table: &'static str, column: &'static str, stem: &'a str },
    /// Does one of them (of a theme-asset table) have `file` in `column` within `bundle`?
    InBundle { table: &'static str, column: &'static str, bundle: &'a str, file: &'a str },
}

/// Where a file goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileRule<'a> {
    /// Under its own name, if the answer to any of these is yes.
    NamedByAny(Vec<FileQuestion<'a>>),
    /// Where the importer's row `id` of `table` says in `column` (if it has that row).
    PathOf { table: &'static str, column: &'static str, id: &'a str },
    /// Under its own name: no row names it.
    Always,
    /// Nowhere.
    Nowhere,
}

/// The registry's file columns of `bucket`: (table, column).
fn columns_of(bucket: FileBucket) -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLES.iter().flat_map(move |spec| {
        spec.files.iter().filter(move |file| file.bucket == bucket).map(move |file| (spec.name, file.column))
    })
}

/// The rule for a file `name` (as the archive names it, after remapping) of `bucket`.
pub(crate) fn file_rule(bucket: FileBucket, name: &str) -> FileRule<'_> {
    match bucket {
        FileBucket::Images => FileRule::NamedByAny(
            columns_of(FileBucket::Images)
                .map(|(table, column)| FileQuestion::Equals { table, column, name })
                .collect(),
        ),
        FileBucket::Thumbnails => {
            let stem = name.split('_').next().unwrap_or_default();
            FileRule::NamedByAny(
                columns_of(FileBucket::Images)
                    .map(|(table, column)| FileQuestion::Stem { table, column, stem })
                    .collect(),
            )
        }
        FileBucket::Avatars if name.is_empty() => FileRule::Nowhere,
        FileBucket::Avatars => FileRule::NamedByAny(
            columns_of(FileBucket::Avatars)
                .map(|(table, column)| FileQuestion::LastSegment { table, column, name })
                .collect(),
        ),
        FileBucket::Databank => match (name.split_once("__"), columns_of(FileBucket::Databank).next()) {
            (Some((id, _)), Some((table, column))) => FileRule::PathOf { table, column, id },
            _ => FileRule::Nowhere,
        },
        FileBucket::ThemeAssets => match name.split_once('/') {
            Some((bundle, file)) => FileRule::NamedByAny(
                columns_of(FileBucket::ThemeAssets)
                    .map(|(table, column)| FileQuestion::InBundle { table, column, bundle, file })
                    .collect(),
            ),
            None => FileRule::Nowhere,
        },
        FileBucket::NotificationSounds => FileRule::Always,
    }
}

/// The file formats a completion sound may be, by its first bytes.
pub fn sniffs_as_audio(head: &[u8]) -> bool {
    let starts = |magic: &[u8]| head.starts_with(magic);
    starts(b"ID3")
        || starts(b"OggS")
        || (head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE")
        || (head.len() >= 8 && &head[4..8] == b"ftyp")
        || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FileQuestion::*;

    #[test]
    fn every_bucket_asks_about_the_registrys_file_columns() {
        assert_eq!(
            file_rule(FileBucket::Images, "a.png"),
            FileRule::NamedByAny(vec![Equals { table: "images", column: "filename", name: "a.png" }])
        );
        assert_eq!(
            file_rule(FileBucket::Thumbnails, "a_small.webp"),
            FileRule::NamedByAny(vec![Stem { table: "images", column: "filename", stem: "a" }])
        );
        assert_eq!(
            file_rule(FileBucket::Avatars, "p.png"),
            FileRule::NamedByAny(vec![
                LastSegment { table: "personas", column: "avatar_path", name: "p.png" },
                LastSegment { table: "characters", column: "avatar_path", name: "p.png" },
            ])
        );
        assert_eq!(file_rule(FileBucket::Avatars, ""), FileRule::Nowhere);
        assert_eq!(
            file_rule(FileBucket::Databank, "d1__notes.txt"),
            FileRule::PathOf { table: "databank_documents", column: "file_path", id: "d1" }
        );
        assert_eq!(file_rule(FileBucket::Databank, "notes.txt"), FileRule::Nowhere);
        assert_eq!(
            file_rule(FileBucket::ThemeAssets, "b/x.css"),
            FileRule::NamedByAny(vec![InBundle {
                table: "theme_assets",
                column: "file_name",
                bundle: "b",
                file: "x.css"
            }])
        );
        assert_eq!(file_rule(FileBucket::ThemeAssets, "x.css"), FileRule::Nowhere);
        assert_eq!(file_rule(FileBucket::NotificationSounds, "done.mp3"), FileRule::Always);
    }

    #[test]
    fn sounds_are_known_by_their_first_bytes() {
        assert!(sniffs_as_audio(b"ID3\x04"));
        assert!(sniffs_as_audio(b"RIFF\0\0\0\0WAVEfmt "));
        assert!(!sniffs_as_audio(b"<svg"));
    }
}
