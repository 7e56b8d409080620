//! Character cards against Lumiverse 1.1's own exporter: for every character of the real
//! fixtures and of `data/cards/cards.lvbak` (made by `examples/card_archive.rs`), the card
//! lvbak builds from the archive equals the one Lumiverse 1.1.0 exported after importing
//! that archive (`data/cards/<archive>/<character id>.json`, written by the peer,
//! `../shared/peer-lumiverse`, with `peer-import ARCHIVE --cards DIR`); the PNG card holds
//! the same `ccv3` chunk and the same pixels as Lumiverse's; the CHARX holds the same entry
//! names, the same card and pictures, and the same modules.
// Reads the expected cards from disk: native only.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine;
use lvbak_core::card::{card_charx, card_json, card_png};
use lvbak_core::explore::ExploreIndex;
use lvbak_core::{Archive, Limits};
use lvbak_tests::fixtures;
use serde_json::Value;

const CARDS: &[u8] = include_bytes!("data/cards/cards.lvbak");

/// Each archive, with the folder of the cards the peer exported from it.
fn archives() -> [(&'static str, &'static [u8]); 4] {
    [
        ("minimal", fixtures::MINIMAL),
        ("secrets", fixtures::SECRETS),
        ("vectors-patched", fixtures::VECTORS_PATCHED),
        ("cards", CARDS),
    ]
}

fn expected_dir(archive: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cards").join(archive)
}

/// The distinct character ids of an archive, as the explorer lists them.
fn character_ids(bytes: &[u8]) -> BTreeSet<String> {
    let mut archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
    let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
    index.characters.iter().map(|c| c.id.clone()).collect()
}

/// The files of one folder with this extension, by character id.
fn expected_files(dir: &Path, extension: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_json_card_equals_the_one_lumiverse_exports() {
    let mut compared = 0;
    for (name, bytes) in archives() {
        let dir = expected_dir(name);
        let ids = character_ids(bytes);
        // The peer exported a card for exactly these characters.
        assert_eq!(expected_files(&dir, "json"), ids, "{name}");
        let mut archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
        for id in &ids {
            let theirs = std::fs::read_to_string(dir.join(format!("{id}.json"))).unwrap();
            let ours = card_json(&mut archive, id).unwrap_or_else(|e| panic!("{name} {id}: {e}"));
            let (ours_value, theirs_value): (Value, Value) =
                (serde_json::from_str(&ours).unwrap(), serde_json::from_str(&theirs).unwrap());
            assert_eq!(ours_value, theirs_value, "{name} {id}:\nours   {ours}\ntheirs {theirs}");
            // Beyond equal values: the same text, key order included.
            assert_eq!(ours, theirs, "{name} {id}");
            compared += 1;
        }
    }
    assert_eq!(compared, 2 + 2 + 2 + 9);
}

/// The chunks of a PNG: (type, data), in order.
fn chunks(png: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let mut out = Vec::new();
    let mut at = 8;
    while at + 12 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned();
        out.push((kind, png[at + 8..at + 8 + length].to_vec()));
        at += 12 + length;
    }
    assert_eq!(at, png.len(), "the PNG ends with its last chunk");
    out
}

/// The text chunks of a PNG: (keyword, text).
fn text_chunks(png: &[u8]) -> Vec<(String, String)> {
    chunks(png)
        .into_iter()
        .filter(|(kind, _)| ["tEXt", "zTXt", "iTXt"].contains(&kind.as_str()))
        .map(|(_, data)| {
            let nul = data.iter().position(|&b| b == 0).unwrap();
            (String::from_utf8_lossy(&data[..nul]).into_owned(), String::from_utf8_lossy(&data[nul + 1..]).into_owned())
        })
        .collect()
}

fn decoded(base64: &str) -> Value {
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(base64).unwrap()).unwrap()
}

/// How two PNGs of one size differ: the largest difference of one channel of one pixel,
/// how many channels differ at all, and how many there are.
fn pixel_difference(ours: &[u8], theirs: &[u8]) -> (u8, usize, usize) {
    let ours = image::load_from_memory_with_format(ours, image::ImageFormat::Png).unwrap().to_rgba8();
    let theirs = image::load_from_memory_with_format(theirs, image::ImageFormat::Png).unwrap().to_rgba8();
    assert_eq!(ours.dimensions(), theirs.dimensions());
    let differences: Vec<u8> = ours.as_raw().iter().zip(theirs.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
    (differences.iter().copied().max().unwrap_or(0), differences.iter().filter(|&&d| d > 0).count(), differences.len())
}

/// Characters of `cards.lvbak` whose avatar is a JPEG: JPEG decoders may round a channel
/// differently (zune-jpeg and Lumiverse's libjpeg-turbo differ by 2 in one channel of the
/// 8 × 6 test picture).
const JPEG_AVATARS: [&str; 2] = ["c02-merged-books", "c08-charx"];

#[test]
fn every_png_card_holds_the_card_and_the_pixels_lumiverse_writes() {
    let mut compared = 0;
    for (name, bytes) in archives() {
        let dir = expected_dir(name);
        let ids = character_ids(bytes);
        assert_eq!(expected_files(&dir, "png"), ids, "{name}");
        let mut archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
        for id in &ids {
            let theirs = std::fs::read(dir.join(format!("{id}.png"))).unwrap();
            let ours = card_png(&mut archive, id).unwrap_or_else(|e| panic!("{name} {id}: {e}"));
            // One ccv3 chunk with Lumiverse's very text, and one chara chunk after it, the
            // same card as CCSv2.
            let (our_texts, their_texts) = (text_chunks(&ours), text_chunks(&theirs));
            let card = |texts: &[(String, String)], keyword: &str| -> Vec<String> {
                texts.iter().filter(|(k, _)| k == keyword).map(|(_, t)| t.clone()).collect()
            };
            assert_eq!(card(&our_texts, "ccv3"), card(&their_texts, "ccv3"), "{name} {id}");
            assert_eq!(card(&their_texts, "ccv3").len(), 1, "{name} {id}");
            let v2 = card(&our_texts, "chara");
            assert_eq!(v2.len(), 1, "{name} {id}");
            let (v2, v3) = (decoded(&v2[0]), decoded(&card(&our_texts, "ccv3")[0]));
            assert_eq!((&v2["spec"], &v2["spec_version"]), (&Value::from("chara_card_v2"), &Value::from("2.0")));
            for (field, value) in v3["data"].as_object().unwrap() {
                assert_eq!(&v2["data"][field], value, "{name} {id} {field}");
            }
            assert!(v2["data"]["character_version"].is_string() && v2["data"]["extensions"].is_object());
            // Every other chunk of a PNG avatar is kept as it was.
            let without_chara: Vec<_> = chunks(&ours)
                .into_iter()
                .filter(|(kind, data)| !(kind == "tEXt" && data.starts_with(b"chara\0")))
                .collect();
            if chunks(&theirs).iter().any(|(kind, data)| kind == "tEXt" && data.starts_with(b"Comment\0")) {
                assert_eq!(without_chara, chunks(&theirs), "{name} {id}");
            }
            // The same pixels; a JPEG's within a rounding step or two, in a few channels.
            let (largest, channels, total) = pixel_difference(&ours, &theirs);
            if JPEG_AVATARS.contains(&id.as_str()) {
                assert!(
                    largest <= 2 && channels * 50 <= total,
                    "{name} {id}: {channels} of {total} channels, up to {largest}"
                );
            } else {
                assert_eq!((largest, channels), (0, 0), "{name} {id}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 15);
}

/// The entries of a ZIP: name → bytes (read with the `zip` crate).
fn zip_entries(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|at| {
            let mut file = zip.by_index(at).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut data).unwrap();
            (file.name().unwrap().to_string(), data)
        })
        .collect()
}

/// Lumiverse's modules with the lists whose order depends on which of its reads finished
/// first (alternate avatars, landing layers) sorted by path.
fn modules_in_stored_order(bytes: &[u8]) -> Value {
    let mut modules: Value = serde_json::from_slice(bytes).unwrap();
    for list in ["alternate_avatars", "landing_perspective_layers"] {
        if let Some(items) = modules.get_mut(list).and_then(Value::as_array_mut) {
            items.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        }
    }
    modules
}

#[test]
fn every_charx_card_holds_the_entries_lumiverse_writes() {
    let (mut compared, mut pictures) = (0, 0);
    for (name, bytes) in archives() {
        let dir = expected_dir(name);
        let ids = character_ids(bytes);
        assert_eq!(expected_files(&dir, "charx"), ids, "{name}");
        let mut archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
        for id in &ids {
            let theirs = zip_entries(&std::fs::read(dir.join(format!("{id}.charx"))).unwrap());
            // The world books carry the time of the export: the peer's.
            let exported_at = theirs
                .get("lumiverse_modules.json")
                .and_then(|m| serde_json::from_slice::<Value>(m).unwrap()["world_books"][0]["exported_at"].as_i64())
                .unwrap_or(0);
            let ours =
                zip_entries(&card_charx(&mut archive, id, exported_at).unwrap_or_else(|e| panic!("{name} {id}: {e}")));
            assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{name} {id}");
            for (entry, their_bytes) in &theirs {
                let our_bytes = &ours[entry];
                if entry == "lumiverse_modules.json" {
                    assert_eq!(modules_in_stored_order(our_bytes), modules_in_stored_order(their_bytes), "{name} {id}");
                } else {
                    // card.json as Lumiverse indents it; pictures byte for byte.
                    assert!(our_bytes == their_bytes, "{name} {id}: {entry} differs");
                    pictures += usize::from(entry.starts_with("assets/"));
                }
            }
            compared += 1;
        }
    }
    assert_eq!((compared, pictures), (15, 17));
}

/// An archive of `count` characters (some 3 KB each, so the characters table spans several
/// of the explorer's line-index points), one in five attached to a book whose entries are
/// spread over a large entries table, with the rows a lookup by line must not get wrong:
/// an id written with escapes, a long id the explorer clips, an id whose first row no
/// import keeps, blank lines, and numeric ids (which the explorer cannot list).
fn large_archive(count: usize, numeric_ids: bool) -> Vec<u8> {
    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    use serde_json::json;
    let prose = |n: usize| format!("{n} ").repeat(800);
    let mut characters = String::new();
    let mut entries = String::new();
    let mut books = String::new();
    for n in 0..count {
        let id = match n {
            7 => "l".repeat(90),
            _ => format!("char-{n:05}"),
        };
        let extensions = if n % 5 == 0 { json!({"world_book_ids": [format!("book-{n}")]}) } else { json!({}) };
        if n == 11 {
            characters += &format!("{}\n", json!({"id": id, "name": null}));
        }
        let row = json!({"id": id, "name": format!("Character {n}"), "description": prose(n), "extensions": extensions.to_string()});
        if n == 13 {
            characters += "{\"id\":\"\\u0063har-00013\",\"name\":\"Escaped\"}\n\n";
        } else {
            characters += &format!("{row}\n");
        }
        if n % 5 == 0 {
            books += &format!("{}\n", json!({"id": format!("book-{n}"), "name": format!("Book {n}")}));
        }
    }
    if numeric_ids {
        characters += "{\"id\":12345,\"name\":\"Numeric\"}\n";
    }
    // Entries: for each book, three spread far apart.
    for round in 0..3 {
        for n in (0..count).step_by(5) {
            let entry = json!({"id": format!("e-{n}-{round}"), "world_book_id": format!("book-{n}"), "uid": format!("{round}"),
                "content": prose(n + round)});
            entries += &format!("{entry}\n");
        }
    }
    RawZip::new(vec![
        RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])),
        RawEntry::deflated("database/characters.ndjson", characters.as_bytes()),
        RawEntry::deflated("database/world_books.ndjson", books.as_bytes()),
        RawEntry::deflated("database/world_book_entries.ndjson", entries.as_bytes()),
    ])
    .build()
}

#[test]
fn cards_read_through_the_explorers_line_index_equal_cards_read_from_the_start() {
    use lvbak_core::card::{character_list, CharacterRows};
    for numeric_ids in [false, true] {
        let bytes = large_archive(3000, numeric_ids);
        let mut archive = Archive::open(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap();
        let explorer = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let ids: Vec<String> = character_list(&mut archive).unwrap().into_iter().map(|(id, _)| id).collect();
        let mut sample: Vec<&str> = ids.iter().step_by(97).map(String::as_str).collect();
        sample.extend(["char-00011", "char-00013", "char-02995", "char-02999", "missing", "12345"]);
        sample.push(&ids[7]);
        for id in sample {
            let plain = CharacterRows::read(&mut archive, id).and_then(|rows| rows.ccv3_json());
            let indexed = CharacterRows::read_indexed(&mut archive, id, &explorer).and_then(|rows| rows.ccv3_json());
            match (plain, indexed) {
                (Ok(plain), Ok(indexed)) => assert!(plain == indexed, "{id}"),
                (Err(plain), Err(indexed)) => assert_eq!(plain.code(), indexed.code(), "{id}"),
                (plain, indexed) => panic!("{id}: {:?} / {:?}", plain.map(|_| ()), indexed.map(|_| ())),
            }
        }
        // A book's three entries, from far apart in the entries table, in its card.
        let card = CharacterRows::read_indexed(&mut archive, "char-02995", &explorer).unwrap().ccv3_json().unwrap();
        let card: Value = serde_json::from_str(&card).unwrap();
        assert_eq!(
            card["data"]["character_book"]["entries"].as_array().unwrap().len(),
            3,
            "numeric ids: {numeric_ids}"
        );
    }
}
