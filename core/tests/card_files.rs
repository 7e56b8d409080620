//! Card files read back (`lvbak_core::card::read_card`) against the shared card corpus:
//! every hostile card refused with its exact code, every valid one (JSON, PNG, CHARX)
//! showing its character, and the cards lvbak builds from an archive read back as the same
//! card. Runs natively and, built for wasm32, under wasm-bindgen-test in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;

use lvbak_core::card::{read_card, CardBundle, CardSource, CharacterRows, ENTRIES_SHOWN, FIELD_TEXT};
use lvbak_core::{Archive, Limits};
use lvbak_tests::card_corpus::{self, CARD_NAME};
use lvbak_tests::fixtures;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Marks each function as a test on both native and wasm32 targets.
macro_rules! tests {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {$(
        $(#[$meta])*
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        fn $name() $body
    )*};
}

tests! {
    fn every_card_corpus_case_gets_its_exact_outcome() {
        let cases = card_corpus::card_cases();
        assert!(cases.len() >= 30, "the card corpus shrank to {}", cases.len());
        let mut failures = Vec::new();
        for case in &cases {
            let outcome = read_card(Cursor::new(case.bytes.as_slice()));
            let got = outcome.as_ref().map(|view| view.name.as_str()).map_err(|e| e.code());
            let wanted = case.expected.map_or(Ok(CARD_NAME), Err);
            if got != wanted {
                failures.push(format!("{}: wanted {wanted:?}, got {got:?} ({:?})", case.name, outcome.as_ref().err()));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    fn a_card_shows_its_fields_tags_and_book() {
        let view = read_card(Cursor::new(card_corpus::card_v3().into_bytes())).unwrap();
        assert_eq!((view.source, view.spec.as_str(), view.spec_version.as_deref()), (CardSource::Json, "chara_card_v3", Some("3.0")));
        let fields: Vec<(&str, &str)> = view.fields.iter().map(|f| (f.field.as_str(), f.text.as_str())).collect();
        assert_eq!(fields, [("description", "Keeps the harbour lights."), ("first_mes", "The lanterns are lit.")]);
        assert_eq!((view.tags, view.alternate_greetings), (vec!["harbour".to_string(), "night".to_string()], 2));
        let book = view.book.unwrap();
        assert_eq!((book.name.as_str(), book.entries_total), ("Harbour lore", 2));
        assert_eq!(book.entries[1].keys, ["tide", "moon"]);
        assert_eq!((book.entries[0].comment.as_str(), book.entries[1].enabled), ("oil", false));
        let case = |name: &str| card_corpus::card_cases().into_iter().find(|c| c.name == name).unwrap().bytes;
        // A PNG with both chunks: the ccv3 one is read.
        let png = read_card(Cursor::new(case("valid_png_ccv3_and_chara"))).unwrap();
        assert_eq!((png.source, png.spec.as_str()), (CardSource::Ccv3Chunk, "chara_card_v3"));
        let charx = read_card(Cursor::new(case("valid_charx_with_folder_entries_and_unicode_names"))).unwrap();
        assert_eq!((charx.source, charx.assets), (CardSource::Charx, Some(1)));
        let v1 = read_card(Cursor::new(case("valid_png_chara_only_v1"))).unwrap();
        assert_eq!((v1.source, v1.spec.as_str(), v1.book), (CardSource::CharaChunk, "v1", None));
    }

    fn what_a_card_shows_is_bounded() {
        let entries: Vec<serde_json::Value> =
            (0..ENTRIES_SHOWN + 50).map(|n| serde_json::json!({"keys": vec!["k"; 100], "content": "c".repeat(10_000), "comment": n.to_string()})).collect();
        let card = serde_json::json!({"spec": "chara_card_v3", "data": {
            "name": "N".repeat(5000), "description": "d".repeat(FIELD_TEXT + 10), "character_book": {"entries": entries}}});
        let view = read_card(Cursor::new(card.to_string().into_bytes())).unwrap();
        assert_eq!(view.name.chars().count(), 101, "100 characters and an ellipsis");
        assert_eq!(view.fields[0].text.chars().count(), FIELD_TEXT + 1);
        let book = view.book.unwrap();
        assert_eq!((book.entries.len(), book.entries_total), (ENTRIES_SHOWN, ENTRIES_SHOWN + 50));
        assert_eq!(book.entries[0].keys.len(), 32);
        assert_eq!(book.entries[0].content.chars().count(), 4001);
    }

    fn cards_built_from_an_archive_read_back_as_their_card() {
        let mut archive = Archive::open(Cursor::new(fixtures::MINIMAL), Limits::STANDARD).unwrap();
        let characters = lvbak_core::card::character_list(&mut archive).unwrap();
        assert_eq!(characters.len(), 2);
        let mut bundle = CardBundle::new(1_795_313_867);
        for (id, name) in &characters {
            let rows = CharacterRows::read(&mut archive, id).unwrap();
            let json = rows.ccv3_json().unwrap();
            let png = rows.png(&mut archive).unwrap();
            let charx = rows.charx(&mut archive, 1_795_313_867).unwrap();
            for (card, source) in [(json.as_bytes().to_vec(), CardSource::Json), (png, CardSource::Ccv3Chunk), (charx, CardSource::Charx)] {
                let view = read_card(Cursor::new(card.as_slice())).unwrap();
                assert_eq!((view.source, view.name.as_str(), view.spec.as_str()), (source, name.as_str(), "chara_card_v3"));
                bundle.add(name, id, "card", &card).unwrap();
            }
        }
        assert!(bundle.finish().unwrap().starts_with(b"PK\x03\x04"));
    }
}
