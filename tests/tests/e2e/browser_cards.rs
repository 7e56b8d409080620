//! Character cards in the page, in headless Chromium: "Download card" (JSON, PNG, CHARX) on
//! the explorer's characters and several characters as one ZIP, built by the Worker from
//! the local file (not one request reaches the server), each downloaded file compared with
//! the bytes lvbak-core builds natively (the JSON also with Lumiverse 1.1's own export);
//! initials for characters without a picture; an avatar no PNG card can carry; and card
//! files read back from the picker and from a drop.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvbak_core::card::{bundle_name, card_charx, card_png, CharacterRows};
use lvbak_core::explore::ExploreIndex;
use lvbak_core::{Archive, Limits};
use lvbak_tests::card_corpus;
use lvbak_tests::corpus;
use lvbak_tests::zipcraft::{RawEntry, RawZip};

use crate::browser::{explorer_session, open_explorer, pick_archive, write};
use crate::webdriver::Browser;

const CARDS: &[u8] = include_bytes!("../../../core/tests/data/cards/cards.lvbak");

/// What Lumiverse 1.1 exported for a character of `cards.lvbak`.
fn lumiverse_card(id: &str, extension: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../core/tests/data/cards/cards/{id}.{extension}"));
    std::fs::read(path).unwrap()
}

fn open(bytes: &[u8]) -> Archive<Cursor<&[u8]>> {
    Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap()
}

/// Waits for a finished download of this name (Chromium writes `.crdownload` first) and
/// answers its bytes, removing it so the next one of that name is new.
async fn downloaded(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    for _ in 0..300 {
        if let Ok(bytes) = std::fs::read(&path) {
            let partial = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "crdownload"));
            if !partial {
                std::fs::remove_file(&path).unwrap();
                return bytes;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} was not downloaded: {:?}",
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>()
    );
}

/// The initials the page draws for a plain (ASCII) name: the first letters of its first
/// and last words, in capitals.
fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let picked = if words.len() > 1 { vec![words[0], words[words.len() - 1]] } else { words };
    picked.iter().map(|w| w[..1].to_ascii_uppercase()).collect()
}

/// Clicks an element by test id through the page (it may be below the fold).
async fn press(browser: &Browser, testid: &str) {
    let clicked = browser
        .script(&format!(
            "const e = document.querySelector('[data-testid=\"{testid}\"]'); if (e) e.click(); return !!e"
        ))
        .await;
    assert_eq!(clicked, true, "no {testid}");
}

/// Asks for a card and waits until the page says it downloaded `file` (or refused it).
async fn card_state(browser: &Browser, testid: &str) -> serde_json::Value {
    browser.script("const s = document.getElementById('cards-state'); s.textContent = ''; delete s.dataset.file; delete s.dataset.code").await;
    press(browser, testid).await;
    browser
        .wait_script("const s = document.getElementById('cards-state'); return s.dataset.file || s.dataset.code ? Object.assign({text: s.textContent}, s.dataset) : null")
        .await
}

/// The entries of a ZIP: name → bytes.
fn zip_entries(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|at| {
            let mut file = zip.by_index(at).unwrap();
            let mut data = Vec::new();
            file.read_to_end(&mut data).unwrap();
            (file.name().unwrap().to_string(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_downloads_cards_built_in_the_worker() {
    let (server, browser, files, downloads) = explorer_session("browser-cards").await;
    let archive = write(&files.path, "cards.lvbak", CARDS);
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let before = server.state.requests();
    open_explorer(&browser).await;

    // Characters without a picture are drawn with their initials, never as a broken image.
    let index = ExploreIndex::build(&mut open(CARDS), |_| {}).unwrap();
    let without: Vec<&str> = index.characters.iter().filter(|c| c.avatar.is_none()).map(|c| c.name.as_str()).collect();
    assert!(!without.is_empty() && without.len() < index.characters.len(), "{without:?}");
    let shown = browser
        .wait_script(
            "const panel = document.getElementById('explore-characters'); \
             const imgs = [...panel.querySelectorAll('img')]; \
             if (imgs.some(i => !i.complete || !i.naturalWidth)) return null; \
             return [...panel.querySelectorAll('[data-testid=\"avatar-initials\"]')].map(e => e.textContent)",
        )
        .await;
    let mut shown: Vec<String> = serde_json::from_value(shown).unwrap();
    let mut expected: Vec<String> = without.iter().map(|name| initials(name)).collect();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected, "{without:?}");
    browser.script("document.getElementById('explorer').scrollIntoView()").await;
    browser.screenshot("cards-explorer.png").await;

    // One card of each format, each the bytes core builds from the same archive.
    let mut archive = open(CARDS);
    let id = "c01-single-book";
    let state = card_state(&browser, &format!("card-png-{id}")).await;
    let name = bundle_name("Single Book", id, "png");
    assert_eq!(state["file"], name.as_str(), "{state}");
    let png = downloaded(&downloads.path, &name).await;
    assert!(png == card_png(&mut archive, id).unwrap(), "the PNG card core builds");
    assert_eq!(state["bytes"], png.len().to_string());

    let id = "c02-merged-books";
    card_state(&browser, &format!("card-json-{id}")).await;
    let json = downloaded(&downloads.path, &bundle_name("Merged Books", id, "json")).await;
    assert_eq!(
        String::from_utf8(json).unwrap(),
        String::from_utf8(lumiverse_card(id, "json")).unwrap(),
        "Lumiverse's own JSON export, byte for byte"
    );

    let id = "c08-charx";
    let rows = CharacterRows::read(&mut archive, id).unwrap();
    let state = card_state(&browser, &format!("card-charx-{id}")).await;
    let charx = downloaded(&downloads.path, state["file"].as_str().unwrap()).await;
    assert_eq!(state["file"], bundle_name(rows.name(), id, "charx").as_str());
    let ours = zip_entries(&charx);
    // The entries' times (and the world books' exported_at) are the Worker's clock.
    let core = zip_entries(&card_charx(&mut archive, id, 0).unwrap());
    assert_eq!(ours.keys().collect::<Vec<_>>(), core.keys().collect::<Vec<_>>());
    for (entry, bytes) in &core {
        if entry != "lumiverse_modules.json" {
            assert!(&ours[entry] == bytes, "{entry} differs");
        }
    }
    assert_eq!(ours["card.json"], zip_entries(&lumiverse_card(id, "charx"))["card.json"]);

    // Three characters as one ZIP of PNG cards.
    let chosen = ["c01-single-book", "c03-legacy-book", "c08-charx"];
    for id in chosen {
        press(&browser, &format!("card-choose-{id}")).await;
    }
    assert_eq!(browser.text("cards-chosen").await, "3 characters chosen");
    browser.script("document.getElementById('cards-zip-format').value = 'png'").await;
    let state = card_state(&browser, "cards-zip-download").await;
    assert_eq!(state["file"], "lvbak-cards-png.zip", "{state}");
    let zip = zip_entries(&downloaded(&downloads.path, "lvbak-cards-png.zip").await);
    let mut expected = BTreeMap::new();
    for id in chosen {
        let rows = CharacterRows::read(&mut archive, id).unwrap();
        expected.insert(bundle_name(rows.name(), id, "png"), rows.png(&mut archive).unwrap());
    }
    assert_eq!(zip.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    assert!(zip == expected, "every card in the ZIP is core's");
    assert!(state["text"].as_str().unwrap().contains("3 cards"), "{state}");

    // A downloaded card read back on the page.
    let saved = write(&files.path, "single.png", &card_png(&mut archive, "c01-single-book").unwrap());
    browser.pick("card-file", &saved).await;
    let view = browser
        .wait_script(
            "const v = document.getElementById('card-view'); return v.hidden ? null : Object.assign({}, v.dataset)",
        )
        .await;
    assert_eq!(
        (view["name"].as_str(), view["source"].as_str(), view["entries"].as_str()),
        (Some("Single Book"), Some("png-ccv3"), Some("3"))
    );
    let entries = browser.script("return document.querySelectorAll('[data-testid=\"card-view-entry\"]').length").await;
    assert_eq!(entries, 3);
    browser.script("document.getElementById('card-check').scrollIntoView()").await;
    browser.screenshot("cards-read-back.png").await;
    assert_eq!(server.state.requests(), before, "cards are built and read without a single request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_the_page_cannot_make_or_read_is_named_and_the_rest_still_works() {
    let (server, browser, files, downloads) = explorer_session("browser-cards-refused").await;
    // A character whose avatar is a BMP: no PNG card, the JSON card still; its picture in the
    // explorer cannot be shown either, so its initials stand in.
    let image = "00000000-0000-4000-8000-000000000001";
    let bmp = [b"BM".as_slice(), &[0u8; 60]].concat();
    let character = serde_json::json!({"id": "bmp-character", "name": "Bitmap Bearer", "image_id": image});
    let images = serde_json::json!({"id": image, "filename": format!("{image}.png")});
    let bytes = RawZip::new(vec![
        RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])),
        RawEntry::deflated("database/characters.ndjson", format!("{character}\n").as_bytes()),
        RawEntry::deflated("database/images.ndjson", format!("{images}\n").as_bytes()),
        RawEntry::stored(&format!("files/images/{image}.png"), &bmp),
    ])
    .build();
    let archive = write(&files.path, "bmp.lvbak", &bytes);
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let before = server.state.requests();
    open_explorer(&browser).await;
    let initials = browser
        .wait_script("const e = document.querySelector('#explore-characters [data-testid=\"avatar-initials\"]'); return e ? e.textContent : null")
        .await;
    assert_eq!(initials, "BB");
    let state = card_state(&browser, "card-png-bmp-character").await;
    assert_eq!(state["code"], "unsupported_image", "{state}");
    assert!(state["text"].as_str().unwrap().contains("JSON card can still be downloaded"), "{state}");
    card_state(&browser, "card-json-bmp-character").await;
    let json = downloaded(&downloads.path, &bundle_name("Bitmap Bearer", "bmp-character", "json")).await;
    assert_eq!(json, lvbak_core::card::card_json(&mut open(&bytes), "bmp-character").unwrap().into_bytes());

    // A damaged PNG card is refused with its code; a card dropped on the page is read.
    let case = card_corpus::card_cases().into_iter().find(|c| c.name == "png_card_chunk_crc_mismatch").unwrap();
    let broken: PathBuf = write(&files.path, "broken.png", &case.bytes);
    browser.pick("card-file", &broken).await;
    let error = browser.wait_text("card-error", |t| !t.is_empty()).await;
    assert!(error.starts_with("bad_png_chunk: PNG chunk 1 (at byte 33)"), "{error}");
    let card = serde_json::to_string(&card_corpus::card_v3()).unwrap();
    browser
        .script(&format!(
            "const data = new DataTransfer(); data.items.add(new File([{card}], 'aria.json', {{type: 'application/json'}})); \
             document.getElementById('explorer').dispatchEvent(new DragEvent('drop', {{dataTransfer: data, bubbles: true, cancelable: true}}))"
        ))
        .await;
    let name = browser
        .wait_script("const v = document.getElementById('card-view'); return v.hidden ? null : v.dataset.name")
        .await;
    assert_eq!(name, card_corpus::CARD_NAME);
    assert_eq!(browser.script("return document.getElementById('card-error').hidden").await, true);
    assert_eq!(server.state.requests(), before, "nothing was sent");
}
