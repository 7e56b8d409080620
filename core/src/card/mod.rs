//! Character cards out of an archive, equal to what Lumiverse 1.1's own character export
//! gives after the archive is imported: the CCSv3 JSON (`spec` `chara_card_v3`), the PNG
//! card (the avatar with the card in a `ccv3` text chunk, plus a CCSv2 `chara` chunk) and
//! the CHARX (a ZIP of the card, its pictures and Lumiverse's modules).
//!
//! [`CharacterRows::read`] reads what one character's card needs (its row, its attached
//! world books and their entries), streaming each table once; [`CharacterRows::ccv3_json`],
//! [`CharacterRows::png`] and [`CharacterRows::charx`] build the cards from them (the last
//! two read the pictures, gallery and scripts they need). [`card_json`], [`card_png`] and
//! [`card_charx`] do both.
//!
//! Rows are read as an import keeps them (`stored`): values under their columns' SQLite
//! affinity, a missing column at its default (as lvbak's import leaves it), a row no import
//! would store left out, the first row of an id winning. Where Lumiverse 1.1's importer
//! rewrites a value the card does not follow it: a world-book entry's `vectorized` stays
//! as the archive has it (Lumiverse clears it when it re-vectorizes; lvbak keeps it).
//!
//! [`read_card`] reads a card file back (JSON, PNG or CHARX) into a bounded [`CardView`];
//! [`CardBundle`] puts several cards in one ZIP; [`character_list`] lists the characters
//! an archive has cards for.
//!
//! Nothing here does I/O of its own, keeps a clock or draws random numbers, so the Worker
//! (wasm32) and the server build the same bytes.

mod book;
mod bundle;
mod ccv3;
mod charx;
mod js;
mod modules;
mod picture;
mod png;
mod read;
mod source;
mod stored;
mod view;

use std::io::{Read, Seek};

pub use bundle::{bundle_name, CardBundle, MAX_BUNDLE_BYTES};
pub use picture::MAX_PICTURE_BYTES;
pub use read::{read_card, MAX_CARD_BYTES};
pub use source::{character_list, CharacterRows};
pub use view::{BookView, CardField, CardSource, CardView, EntryView, ENTRIES_SHOWN, ENTRY_TEXT, FIELD_TEXT};

use crate::archive::Archive;
use crate::error::Result;
use js::JsValue;

impl CharacterRows {
    pub(crate) fn ccv3_value(&self) -> Result<JsValue> {
        ccv3::ccv3(&self.character, |id| self.book(id))
    }

    /// The CCSv3 card as Lumiverse's JSON export sends it (`JSON.stringify`, compact).
    pub fn ccv3_json(&self) -> Result<String> {
        Ok(self.ccv3_value()?.to_json())
    }

    /// The images Lumiverse's exporter tries for the avatar, in its order: the extensions'
    /// `original_image_id` (when it is text), then the row's `image_id`; empty ones and
    /// repeats left out.
    pub(crate) fn avatar_ids(&self) -> Result<Vec<String>> {
        let extensions = ccv3::character_extensions(&self.character)?;
        let original = extensions.as_object().and_then(|e| e.get("original_image_id")).and_then(JsValue::as_str);
        let mut ids: Vec<String> = Vec::new();
        for id in [original, self.character.text("image_id")].into_iter().flatten() {
            if !id.is_empty() && !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// The bytes of the avatar: the first of [`Self::avatar_ids`] whose `images` row and
    /// file the archive both hold.
    fn avatar<R: Read + Seek>(&self, archive: &mut Archive<R>) -> Result<Option<Vec<u8>>> {
        let ids = self.avatar_ids()?;
        let rows = picture::read_image_rows(archive, &ids.iter().map(String::as_str).collect::<Vec<_>>())?;
        for id in &ids {
            if let Some(row) = rows.get(id) {
                if let Some(bytes) = picture::read_picture(archive, row)? {
                    return Ok(Some(bytes));
                }
            }
        }
        Ok(None)
    }

    /// The PNG card: the avatar (a 1 × 1 transparent pixel without one) as a PNG, stale card
    /// chunks removed, the card in a `ccv3` chunk as Lumiverse writes it and as CCSv2 in a
    /// `chara` chunk. An avatar that is not a PNG, JPEG, WebP or GIF is
    /// `unsupported_image`.
    pub fn png<R: Read + Seek>(&self, archive: &mut Archive<R>) -> Result<Vec<u8>> {
        let avatar = self.avatar(archive)?.map(picture::as_png).transpose()?;
        png::png_card(avatar, &self.ccv3_value()?)
    }
}

/// The CCSv3 JSON card of the character `character_id` (see [`CharacterRows::read`]).
pub fn card_json<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str) -> Result<String> {
    CharacterRows::read(archive, character_id)?.ccv3_json()
}

/// The PNG card of the character `character_id` (see [`CharacterRows::png`]).
pub fn card_png<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str) -> Result<Vec<u8>> {
    CharacterRows::read(archive, character_id)?.png(archive)
}

/// The CHARX card of the character `character_id` (see [`CharacterRows::charx`]);
/// `exported_at` (unix seconds, the caller's clock) stamps its entries and world books.
pub fn card_charx<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str, exported_at: i64) -> Result<Vec<u8>> {
    CharacterRows::read(archive, character_id)?.charx(archive, exported_at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Cursor;

    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};

    use super::*;
    use crate::Limits;

    /// A PNG `width` pixels wide: the width tells which picture a card took.
    fn picture(width: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::RgbaImage::new(width, 1).write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn uuid(n: u8) -> String {
        format!("00000000-0000-4000-8000-0000000000{n:02x}")
    }

    /// An archive with these characters, images rows and picture files (`uuid.png`).
    fn archive(characters: &[String], images: &[String], files: &[(u8, Vec<u8>)]) -> Archive<Cursor<Vec<u8>>> {
        let ndjson = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let mut entries = vec![
            RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])),
            RawEntry::deflated("database/characters.ndjson", ndjson(characters).as_bytes()),
            RawEntry::deflated("database/images.ndjson", ndjson(images).as_bytes()),
        ];
        for (n, bytes) in files {
            entries.push(RawEntry::stored(&format!("files/images/{}.png", uuid(*n)), bytes));
        }
        Archive::open(Cursor::new(RawZip::new(entries).build()), Limits::STANDARD).unwrap()
    }

    fn character(extensions: &str, image_id: Option<u8>) -> String {
        let image = image_id.map_or("null".to_string(), |n| format!("\"{}\"", uuid(n)));
        format!(
            r#"{{"id":"c","name":"C","extensions":{},"image_id":{image}}}"#,
            serde_json::to_string(extensions).unwrap()
        )
    }

    fn image(n: u8) -> String {
        format!(r#"{{"id":"{}","filename":"{}.png"}}"#, uuid(n), uuid(n))
    }

    /// The width of the avatar a PNG card carries.
    fn avatar_width(archive: &mut Archive<Cursor<Vec<u8>>>) -> u32 {
        let png = card_png(archive, "c").unwrap();
        image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap().width()
    }

    #[test]
    fn the_avatar_is_the_original_image_else_the_image() {
        let original = format!(r#"{{"original_image_id":"{}"}}"#, uuid(1));
        let files = [(1, picture(2)), (2, picture(3))];
        let mut both = archive(&[character(&original, Some(2))], &[image(1), image(2)], &files);
        assert_eq!(avatar_width(&mut both), 2);
        // The original's file is missing, or its row: the image is taken.
        let mut no_file = archive(&[character(&original, Some(2))], &[image(1), image(2)], &files[1..]);
        assert_eq!(avatar_width(&mut no_file), 3);
        let mut no_row = archive(&[character(&original, Some(2))], &[image(2)], &files);
        assert_eq!(avatar_width(&mut no_row), 3);
        // An original_image_id that is not text is not one.
        let mut not_text = archive(&[character(r#"{"original_image_id":1}"#, Some(2))], &[image(1), image(2)], &files);
        assert_eq!(avatar_width(&mut not_text), 3);
        // Neither: a 1 × 1 transparent pixel.
        let mut neither = archive(&[character(&original, None)], &[], &files);
        assert_eq!(avatar_width(&mut neither), 1);
    }

    #[test]
    fn the_first_images_row_an_import_keeps_names_the_file() {
        let refused = format!(r#"{{"id":"{}","filename":null}}"#, uuid(1));
        let other = format!(r#"{{"id":"{}","filename":"{}.png"}}"#, uuid(1), uuid(2));
        let mut archive =
            archive(&[character("{}", Some(1))], &[refused, other, image(1)], &[(1, picture(2)), (2, picture(5))]);
        assert_eq!(avatar_width(&mut archive), 5);
    }

    #[test]
    fn an_avatar_no_card_can_carry_is_unsupported_image() {
        let mut archive = archive(&[character("{}", Some(1))], &[image(1)], &[(1, b"BM\0\0\0\0".to_vec())]);
        assert_eq!(card_png(&mut archive, "c").unwrap_err().code(), "unsupported_image");
        // The JSON card does not need the avatar.
        assert!(card_json(&mut archive, "c").is_ok());
    }
}
