//! Character cards against Lumiverse 1.1's own exporter: for every character of the real
//! fixtures and of `data/cards/cards.lvbak` (made by `examples/card_archive.rs`), the card
//! lvbak builds from the archive equals the one Lumiverse 1.1.0 exported after importing
//! that archive (`data/cards/<archive>/<character id>.json`, written by the peer,
//! `../shared/peer-lumiverse`, with `peer-import ARCHIVE --cards DIR`).
// Reads the expected cards from disk: native only.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use lvbak_core::card::card_json;
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
