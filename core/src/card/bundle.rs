//! Several cards in one ZIP (the page's "download the chosen characters"): each named
//! `<name>-<first 8 characters of its id>.<ext>`, the name and id written as CHARX names
//! are (every character outside `[A-Za-z0-9_\-. ]` an `_`), the name cut to 64 characters,
//! and a name already taken given `-2`, `-3`, … so none collides. The ZIP is held to
//! [`MAX_BUNDLE_BYTES`]: past it, `too_large`.

use std::collections::HashSet;
use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::modules::archive_name;
use crate::error::{FormatError, Result};
use crate::writer::zip_datetime;

/// The largest ZIP of cards built in memory.
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;

/// Characters of a name kept in a card's file name.
const NAME_CHARACTERS: usize = 64;

/// A card's name in a ZIP of cards, before any `-2` that keeps it distinct.
pub fn bundle_name(name: &str, id: &str, extension: &str) -> String {
    let name: String = archive_name(name).chars().take(NAME_CHARACTERS).collect();
    let id: String = archive_name(id).chars().take(8).collect();
    format!("{}-{id}.{extension}", name.trim_end())
}

/// A ZIP of cards being written.
pub struct CardBundle {
    zip: ZipWriter<Cursor<Vec<u8>>>,
    names: HashSet<String>,
    bytes: u64,
    exported_at: i64,
}

fn zip_error(error: impl std::fmt::Display) -> FormatError {
    FormatError::Io(std::io::Error::other(format!("writing the ZIP of cards: {error}")))
}

impl CardBundle {
    /// An empty ZIP whose entries carry `exported_at` (unix seconds) as their time.
    pub fn new(exported_at: i64) -> Self {
        Self { zip: ZipWriter::new(Cursor::new(Vec::new())), names: HashSet::new(), bytes: 0, exported_at }
    }

    /// Adds the card of the character `name` (`id`) as `<name>-<id>.<extension>`; answers
    /// the name it was given. JSON is deflated, PNG and CHARX (compressed already) stored.
    pub fn add(&mut self, name: &str, id: &str, extension: &str, card: &[u8]) -> Result<String> {
        self.bytes += card.len() as u64 + 128;
        if self.bytes > MAX_BUNDLE_BYTES {
            return Err(FormatError::TooLarge {
                what: "the ZIP of cards".into(),
                limit: MAX_BUNDLE_BYTES,
                actual: self.bytes,
            });
        }
        let base = bundle_name(name, id, extension);
        let mut entry = base.clone();
        // Each try takes a new number; there are fewer taken names than cards added.
        for n in 2..=self.names.len() + 2 {
            if !self.names.contains(&entry) {
                break;
            }
            let stem = base.strip_suffix(&format!(".{extension}")).unwrap_or(&base);
            entry = format!("{stem}-{n}.{extension}");
        }
        let method = if extension == "json" { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        let options =
            SimpleFileOptions::default().compression_method(method).last_modified_time(zip_datetime(self.exported_at));
        self.zip.start_file(entry.as_str(), options).map_err(zip_error)?;
        self.zip.write_all(card).map_err(zip_error)?;
        self.names.insert(entry.clone());
        Ok(entry)
    }

    /// The ZIP's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.zip.finish().map_err(zip_error)?.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn names_are_sanitised_cut_and_kept_apart() {
        assert_eq!(bundle_name("Aria", "589cfdd2-3a30-4773", "png"), "Aria-589cfdd2.png");
        assert_eq!(bundle_name("../../etc/passwd", "a/b\\c", "json"), ".._.._etc_passwd-a_b_c.json");
        assert_eq!(bundle_name("", "x", "charx"), "unnamed-x.charx");
        assert_eq!(bundle_name("Ünï 😀", "id", "png"), "_n_ __-id.png");
        assert_eq!(bundle_name(&"n".repeat(500), "id", "png"), format!("{}-id.png", "n".repeat(64)));

        let mut bundle = CardBundle::new(1_795_313_867);
        let names: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|card| bundle.add("Twin", "sameidprefix", "json", card.as_bytes()).unwrap())
            .collect();
        assert_eq!(names, ["Twin-sameidpr.json", "Twin-sameidpr-2.json", "Twin-sameidpr-3.json"]);
        let bytes = bundle.finish().unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        zip.by_name("Twin-sameidpr-2.json").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "b");
    }
}
