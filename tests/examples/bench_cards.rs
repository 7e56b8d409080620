//! Benchmark (prints figures, asserts nothing) in a real headless Chromium against a real
//! server on 127.0.0.1: one character's cards (JSON, PNG, CHARX) built by the Worker's Wasm
//! from a ~1 GiB archive of 100,000 characters (`core/benches/support/card_archive.rs`),
//! for the first character of the explorer's list and for one on its last page (its row
//! near the end of the characters table, read through the explorer's line index), with the
//! Wasm memory after each; and that last character ticked for a selective restore (its
//! closure over the archive, worked out in the Worker).
//! Needs `trunk build --release` first (scripts/bench does it). `LVBAK_BENCH_CHARACTERS`
//! changes the count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../core/benches/support/card_archive.rs"]
mod card_archive;
#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;
#[path = "../tests/e2e/webdriver.rs"]
mod webdriver;

use std::time::Instant;

use support::{ScratchDir, TestServer};
use webdriver::Browser;

/// Rounds per card.
const ROUNDS: usize = 3;

/// Asks for a card by its button and answers the Worker's figures.
async fn card(browser: &Browser, testid: &str) -> (f64, f64, f64) {
    browser
        .script("const s = document.getElementById('cards-state'); delete s.dataset.file; delete s.dataset.code")
        .await;
    let started = Instant::now();
    let clicked = browser
        .script(&format!(
            "const b = document.querySelector('[data-testid=\"{testid}\"]'); if (b) b.click(); return !!b"
        ))
        .await;
    assert_eq!(clicked, true, "no {testid}");
    let state = browser
        .wait_script("const s = document.getElementById('cards-state'); return s.dataset.file || s.dataset.code ? Object.assign({}, s.dataset) : null")
        .await;
    assert!(state["code"].is_null(), "{state}");
    let number = |key: &str| state[key].as_str().unwrap_or_default().parse::<f64>().unwrap_or(0.0);
    (number("buildMs"), started.elapsed().as_secs_f64() * 1000.0, number("wasmMemoryBytes") / f64::from(1u32 << 20))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let characters: usize =
        std::env::var("LVBAK_BENCH_CHARACTERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let scratch = ScratchDir::new("bench-cards");
    let downloads = ScratchDir::new("bench-cards-downloads");
    let path = scratch.path.join("characters.lvbak");
    card_archive::write_archive(&path, characters);
    let size = std::fs::metadata(&path).unwrap().len();
    println!("archive: {characters} characters, {:.2} GiB", size as f64 / f64::from(1u32 << 30));

    let server = TestServer::start("bench-cards").await;
    let account = server.account("bench-cards", None).await;
    let browser = Browser::start(&downloads.path).await;
    browser.sign_in(&server.url("/"), &account.user.username, &account.password).await;
    browser.pick("import-file", &path).await;
    browser
        .wait_script("return document.querySelector('[data-testid=\"inspect-report\"]').dataset.report || null")
        .await;
    browser.click("explore-open").await;
    let built = browser
        .wait_script(
            "const d = document.getElementById('explorer').dataset; return d.buildMs ? Object.assign({}, d) : null",
        )
        .await;
    println!("explorer index: {} ms (once, before any card)", built["buildMs"].as_str().unwrap_or_default());

    // Both have a world book of 20 entries (one character in ten does); the second is on
    // the list's last page, its row near the end of the table.
    for (label, index) in [("first", 0), ("last", characters - 10)] {
        if label == "last" {
            let paged = browser
                .script("const b = document.querySelector('[data-testid=\"explore-characters-last\"]'); if (b) b.click(); return !!b")
                .await;
            if paged != true {
                break;
            }
            browser
                .wait_script(
                    "const p = document.getElementById('explore-characters'); return p.dataset.start !== '0' || null",
                )
                .await;
        }
        let id = card_archive::character_id(index);
        for format in ["json", "png", "charx"] {
            let mut runs = Vec::new();
            for _ in 0..ROUNDS {
                runs.push(card(&browser, &format!("card-{format}-{id}")).await);
            }
            let best = runs.iter().map(|r| r.0).fold(f64::MAX, f64::min);
            let wall = runs.iter().map(|r| r.1).fold(f64::MAX, f64::min);
            let memory = runs.last().map_or(0.0, |r| r.2);
            println!(
                "{label} character ({index}): {format} card in the Worker {best:.0} ms (best of {ROUNDS}; {wall:.0} ms from click to saved), Wasm memory {memory:.1} MiB"
            );
        }
    }
    // A selective restore's pick: the character on the last page ticked in the explorer,
    // its closure over the archive worked out by the Worker (issue 23: under 2 s).
    let id = card_archive::character_id(characters - 10);
    let started = Instant::now();
    let ticked = browser
        .script(&format!(
            "const b = document.querySelector('[data-testid=\"pick-character-{id}\"]'); if (b) b.click(); return !!b"
        ))
        .await;
    if ticked == true {
        let tables = browser
            .wait_script("const s = document.getElementById('import-selection'); return s.dataset.tables || null")
            .await;
        println!(
            "one character picked in the explorer: its closure over the archive in the Worker, {:.0} ms from the tick to \
             the counts ({tables})",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    drop(browser);
    let _ = std::fs::remove_file(&path);
}
