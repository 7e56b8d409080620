//! `lvbak card` from the outside: the cards it writes for `core/tests/data/cards/cards.lvbak`
//! against the ones Lumiverse 1.1 exported (JSON byte for byte, the PNG's `ccv3` chunk, the
//! CHARX's `card.json`) and against lvbak-core's own bytes; `unsupported_image`; ids that
//! would leave the output folder; and `--inspect` on every case of the card corpus.

use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use lvbak_core::card::{card_charx, card_png};
use lvbak_core::{Archive, Limits};
use lvbak_tests::card_corpus::{self, CARD_NAME};
use lvbak_tests::corpus;
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use serde_json::Value;

use super::{assert_json_terminal_safe, assert_terminal_safe, json_of, lvbak, lvbak_binary, scratch_dir, HOSTILE};

fn cards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/cards")
}

fn cards_archive() -> PathBuf {
    cards_dir().join("cards.lvbak")
}

/// What Lumiverse 1.1 exported for a character of `cards.lvbak`.
fn expected(id: &str, extension: &str) -> Vec<u8> {
    std::fs::read(cards_dir().join(format!("cards/{id}.{extension}"))).unwrap()
}

/// The ids Lumiverse exported cards for: the characters of `cards.lvbak`.
fn expected_ids() -> BTreeSet<String> {
    std::fs::read_dir(cards_dir().join("cards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The names in a folder.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The files of a folder: name → bytes.
fn files_in(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect()
}

/// The text of a PNG's first `tEXt` chunk with this keyword.
fn text_chunk(png: &[u8], keyword: &str) -> Option<String> {
    let mut at = 8;
    while at + 12 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let data = &png[at + 8..at + 8 + length];
        if &png[at + 4..at + 8] == b"tEXt" && data.starts_with(format!("{keyword}\0").as_bytes()) {
            return Some(String::from_utf8(data[keyword.len() + 1..].to_vec()).unwrap());
        }
        at += 12 + length;
    }
    None
}

/// One entry of a ZIP.
fn zip_entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut bytes = Vec::new();
    zip.by_name(name).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

fn lvbak_with_epoch(args: &[&str], epoch: &str) -> std::process::Output {
    std::process::Command::new(lvbak_binary())
        .args(args)
        .env_remove("LVBAK_LIMITS")
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap()
}

#[test]
fn card_all_writes_every_card_as_lumiverse_exports_it() {
    let dir = scratch_dir("card-all");
    let archive = cards_archive();
    let archive = archive.to_str().unwrap();
    let ids = expected_ids();
    assert_eq!(ids.len(), 9);
    let mut opened = Archive::open(Cursor::new(std::fs::read(archive).unwrap()), Limits::STANDARD).unwrap();
    for format in ["json", "png", "charx"] {
        let out = dir.join(format);
        let output = lvbak_with_epoch(
            &["card", archive, "--all", "--format", format, "-o", out.to_str().unwrap()],
            "1795313867",
        );
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.ends_with(&format!("9 of 9 cards written to {}\n", out.display())), "{stdout}");
        let files = files_in(&out);
        let names: BTreeSet<String> = files.keys().cloned().collect();
        assert_eq!(names, ids.iter().map(|id| format!("{id}.{format}")).collect(), "one file per character, by id");
        for id in &ids {
            let ours = &files[&format!("{id}.{format}")];
            match format {
                // Byte for byte what Lumiverse's JSON export sends.
                "json" => assert!(ours == &expected(id, "json"), "{id}: {}", String::from_utf8_lossy(ours)),
                "png" => {
                    assert_eq!(ours, &card_png(&mut opened, id).unwrap(), "{id}: the bytes core builds");
                    assert_eq!(
                        text_chunk(ours, "ccv3"),
                        text_chunk(&expected(id, "png"), "ccv3"),
                        "{id}: Lumiverse's ccv3"
                    );
                    assert!(text_chunk(ours, "chara").is_some(), "{id}: and a CCSv2 chunk");
                }
                _ => {
                    assert_eq!(
                        ours,
                        &card_charx(&mut opened, id, 1_795_313_867).unwrap(),
                        "{id}: the bytes core builds"
                    );
                    assert_eq!(zip_entry(ours, "card.json"), zip_entry(&expected(id, "charx"), "card.json"), "{id}");
                }
            }
        }
    }
    // One character, to a file of its own.
    let one = dir.join("one.json");
    let output = lvbak(
        &["card", archive, "--character", "c02-merged-books", "--format", "json", "-o", one.to_str().unwrap()],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(std::fs::read(&one).unwrap(), expected("c02-merged-books", "json"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("wrote {} (", one.display())
            + &format!("{} bytes): Merged Books\n", expected("c02-merged-books", "json").len())
    );
    let missing = lvbak(
        &["card", archive, "--character", "c99", "--format", "png", "-o", dir.join("x.png").to_str().unwrap()],
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("character_not_found: "));
    assert!(!dir.join("x.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A character of a made-up archive: id, name, and its avatar (image number, file bytes).
type Character<'a> = (&'a str, &'a str, Option<(u8, &'a [u8])>);

/// An archive of these characters rows and picture files (`files/images/<uuid>.<ext>`),
/// each character's avatar the image of the same number.
fn archive_of(characters: &[Character<'_>]) -> Vec<u8> {
    let uuid = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02x}");
    let (mut rows, mut images) = (String::new(), String::new());
    let mut entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[]))];
    for (id, name, picture) in characters {
        let image = picture.map(|(n, _)| uuid(n));
        rows += &format!("{}\n", serde_json::json!({"id": id, "name": name, "image_id": image}));
        if let Some((n, bytes)) = picture {
            images += &format!("{}\n", serde_json::json!({"id": uuid(*n), "filename": format!("{}.png", uuid(*n))}));
            entries.push(RawEntry::stored(&format!("files/images/{}.png", uuid(*n)), bytes));
        }
    }
    entries.push(RawEntry::deflated("database/characters.ndjson", rows.as_bytes()));
    entries.push(RawEntry::deflated("database/images.ndjson", images.as_bytes()));
    RawZip::new(entries).build()
}

#[test]
fn card_says_which_avatar_no_png_card_can_carry_and_still_makes_the_others() {
    let dir = scratch_dir("card-unsupported");
    let bmp = [b"BM".as_slice(), &[0u8; 60]].concat();
    let png = card_corpus::png_with(&[]);
    let archive = dir.join("bmp.lvbak");
    std::fs::write(&archive, archive_of(&[("c1", "Bitmap", Some((1, &bmp))), ("c2", "Plain", Some((2, &png)))]))
        .unwrap();
    let archive = archive.to_str().unwrap();
    let out = dir.join("c1.png");
    let output = lvbak(&["card", archive, "--character", "c1", "--format", "png", "-o", out.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("unsupported_image: ") && stderr.contains("--format json"), "{stderr}");
    assert!(!out.exists());
    // The JSON card needs no picture.
    let json = dir.join("c1.json");
    let output = lvbak(&["card", archive, "--character", "c1", "--format", "json", "-o", json.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0));
    let card: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!((card["spec"].as_str(), card["data"]["name"].as_str()), (Some("chara_card_v3"), Some("Bitmap")));
    // --all: the others are written, the refused one named, and the exit status says so.
    let all = dir.join("all");
    let output = lvbak(&["card", archive, "--all", "--format", "png", "-o", all.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("c1: unsupported_image: "));
    assert_eq!(names_in(&all), ["c2.png"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn card_all_keeps_ids_an_archive_chose_inside_the_folder() {
    let dir = scratch_dir("card-ids");
    let archive = dir.join("ids.lvbak");
    let ids = ["../../escaped", "a/b", ".hidden", "plain-id", HOSTILE];
    let characters: Vec<Character<'_>> = ids.iter().map(|id| (*id, HOSTILE, None)).collect();
    std::fs::write(&archive, archive_of(&characters)).unwrap();
    let out = dir.join("out");
    let output =
        lvbak(&["card", archive.to_str().unwrap(), "--all", "--format", "json", "-o", out.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_terminal_safe("card --all", &output.stdout);
    let names = names_in(&out);
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.contains(&"plain-id.json".to_string()), "a plain id is the name: {names:?}");
    for name in &names {
        assert!(!name.starts_with('.') && !name.contains('/') && name.is_ascii(), "{name:?}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
    }
    // Nothing was written beside the folder or above it.
    assert_eq!(names_in(&dir), ["ids.lvbak", "out"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn card_inspect_reads_every_card_of_the_corpus_or_names_its_fault() {
    let dir = scratch_dir("card-inspect");
    let mut failures = Vec::new();
    for case in card_corpus::card_cases() {
        let path = dir.join(case.name);
        std::fs::write(&path, &case.bytes).unwrap();
        let output = lvbak(&["card", "--inspect", path.to_str().unwrap(), "--json"], None);
        let report = json_of(&output);
        let code = report["code"].as_str().map(str::to_string);
        let wanted_status = if case.expected.is_some() { 2 } else { 0 };
        let name = report["card"]["name"].as_str().map(str::to_string);
        let wanted_name = case.expected.is_none().then(|| CARD_NAME.to_string());
        if code.as_deref() != case.expected || output.status.code() != Some(wanted_status) || name != wanted_name {
            failures.push(format!(
                "{}: wanted {:?}, got {code:?} {name:?} ({:?})",
                case.name, case.expected, output.status
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // As text: the name, the fields, the book's entries, in words.
    let png = dir.join("valid_png_ccv3_and_chara");
    let output = lvbak(&["card", "--inspect", png.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    for line in [
        &format!("Card      {CARD_NAME}"),
        "Spec      chara_card_v3 3.0 (from the PNG's ccv3 chunk)",
        "Tags      harbour, night",
        "description\n    Keeps the harbour lights.",
        "Book      Harbour lore (2 entries)",
        "  1. lantern · oil\n    Lanterns burn whale oil.",
        "  2. tide, moon · disabled\n    The tide turns at midnight.",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let refused = lvbak(&["card", "--inspect", dir.join("png_card_chunk_crc_mismatch").to_str().unwrap()], None);
    assert_eq!(refused.status.code(), Some(2));
    let words = String::from_utf8(refused.stdout).unwrap();
    assert_eq!(words, "bad_png_chunk: PNG chunk 1 (at byte 33) is malformed: the ccv3 chunk fails its CRC-32 check\n");

    // A card whose every text is hostile is shown with its controls escaped.
    let hostile = serde_json::json!({"spec": "chara_card_v3", "data": {"name": HOSTILE, "description": HOSTILE,
        "tags": [HOSTILE], "character_book": {"name": HOSTILE, "entries": [{"keys": [HOSTILE], "comment": HOSTILE, "content": HOSTILE}]}}});
    let path = dir.join("hostile.json");
    std::fs::write(&path, hostile.to_string()).unwrap();
    let text = lvbak(&["card", "--inspect", path.to_str().unwrap()], None);
    assert_eq!(text.status.code(), Some(0));
    assert_terminal_safe("card --inspect", &text.stdout);
    let json = lvbak(&["card", "--inspect", path.to_str().unwrap(), "--json"], None);
    assert_json_terminal_safe("card --inspect --json", &json.stdout);
    assert_eq!(json_of(&json)["card"]["book"]["entries"][0]["content"], HOSTILE);
    std::fs::remove_dir_all(&dir).unwrap();
}
