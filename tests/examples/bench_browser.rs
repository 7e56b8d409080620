//! Benchmark (prints figures, asserts nothing) in a real headless Chromium against a real
//! server on 127.0.0.1: how long the Wasm Worker takes to inspect a 1 GiB / 100,000-entry
//! archive and to open it in the archive explorer (index, a 2,000-message chat, a search,
//! Wasm memory), and the batch import of a 100,000-character account against the raw upload of
//! the same archive, with the bytes sent on the wire, and what a re-import of it into the
//! same account sends. Needs `trunk build --release` first
//! (scripts/bench does it). `LVBAK_BENCH_ARCHIVE_GB=5` makes the archive 5 GB;
//! `LVBAK_BENCH_BROWSER=batch` runs only the batch import.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;
#[path = "../tests/e2e/webdriver.rs"]
mod webdriver;

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use lvbak_core::{ArchiveWriter, EntrySize, Manifest, ManifestStats};
use lvbak_server::seed::SeedOptions;
use serde_json::{json, Value};
use support::{status_json, Account, ScratchDir, TestServer};
use webdriver::Browser;

/// 1 GiB (or `LVBAK_BENCH_ARCHIVE_GB` gigabytes) in 100,000 entries: 99,996 images (with their
/// `images` rows) and one chat of 2,000 messages, for inspection and the explorer.
fn big_archive(path: &Path) {
    const ENTRIES: usize = 100_000;
    const MESSAGES: usize = 2000;
    let images = ENTRIES - 4;
    let bytes = match std::env::var("LVBAK_BENCH_ARCHIVE_GB").ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(gigabytes) => gigabytes * 1_000_000_000,
        None => 1 << 30,
    };
    let file_bytes = bytes / ENTRIES;
    let file = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut writer = ArchiveWriter::new(file, 1_795_313_867, 4 << 20);
    writer.write_manifest(&Manifest::new("0b7a3c1e-98f2-4d1b-9c55-7e1f2a3b4c5d", 1_795_313_867)).unwrap();
    let image_id = |i: usize| format!("{i:08x}-0000-4000-8000-{i:012x}");
    writer.start_ndjson("database/images.ndjson", EntrySize::Small).unwrap();
    for i in 0..images {
        writer
            .write_row(&json!({"id": image_id(i), "filename": format!("{}.png", image_id(i)), "has_thumbnail": 0}))
            .unwrap();
    }
    writer.start_ndjson("database/chats.ndjson", EntrySize::Small).unwrap();
    writer
        .write_row(&json!({"id": "c0000000-0000-4000-8000-000000000000", "name": "The long watch", "metadata": "{}"}))
        .unwrap();
    writer.start_ndjson("database/messages.ndjson", EntrySize::Small).unwrap();
    for i in 0..MESSAGES {
        let swipes = if i % 10 == 1 { json!(["one", "two", "three"]).to_string() } else { "[]".into() };
        writer
            .write_row(&json!({"id": format!("{i:08x}-0000-4000-8000-000000000000"), "chat_id": "c0000000-0000-4000-8000-000000000000",
                "index_in_chat": i, "is_user": i % 2, "name": "Mira", "swipes": swipes,
                "content": format!("message {i}: the harbour bell rang twice before the fog came in, and nobody on the quay looked up.")}))
            .unwrap();
    }
    let payload: Vec<u8> = (0..file_bytes).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..images {
        writer
            .write_file(&format!("files/images/{}.png", image_id(i)), &mut payload.as_slice(), EntrySize::Small)
            .unwrap();
    }
    let mut stats = ManifestStats::default();
    stats.counts.insert("images".into(), images as u64);
    stats.counts.insert("chats".into(), 1);
    stats.counts.insert("messages".into(), MESSAGES as u64);
    writer.write_stats(&stats).unwrap();
    writer.finish().unwrap();
}

async fn sign_in(browser: &Browser, server: &TestServer, account: &Account) {
    browser.sign_in(&server.url("/"), &account.user.username, &account.password).await;
}

async fn wait_report(browser: &Browser) -> Value {
    for _ in 0..1200 {
        let report = browser.script("const r = document.querySelector('[data-testid=\"inspect-report\"]').dataset.report; return r ? JSON.parse(r) : null").await;
        if !report.is_null() {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no inspection report");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scratch = ScratchDir::new("bench-browser");
    let downloads = ScratchDir::new("bench-downloads");

    // LVBAK_BENCH_BROWSER=batch: only the batch import.
    let only_batch = std::env::var("LVBAK_BENCH_BROWSER").is_ok_and(|v| v == "batch");
    let server = TestServer::start("bench-browser").await;
    if !only_batch {
        inspect_and_explore(&server, &scratch, &downloads).await;
    }
    batch_against_raw(&server, &scratch, &downloads).await;
}

/// The Worker's inspection of a 1 GiB archive, and the explorer on it.
async fn inspect_and_explore(server: &TestServer, scratch: &ScratchDir, downloads: &ScratchDir) {
    let big = scratch.path.join("big.lvbak");
    big_archive(&big);
    let size = std::fs::metadata(&big).unwrap().len();
    let account = server.account("bench-inspect", None).await;
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, server, &account).await;
    for run in 0..3 {
        browser
            .script("delete document.querySelector('[data-testid=\"inspect-report\"]').dataset.report; document.querySelector('[data-testid=\"import-file\"]').value = ''")
            .await;
        let started = Instant::now();
        browser.pick("import-file", &big).await;
        let report = wait_report(&browser).await;
        println!(
            "inspect {:.2} GiB / {} entries in the Worker (run {run}): {:.0} ms in Wasm, {:.0} ms from pick to report, Wasm memory {:.1} MiB",
            size as f64 / f64::from(1u32 << 30),
            report["entries"],
            report["openMs"].as_f64().unwrap_or(0.0),
            started.elapsed().as_secs_f64() * 1000.0,
            report["wasmMemoryBytes"].as_f64().unwrap_or(0.0) / f64::from(1u32 << 20)
        );
    }
    // The explorer on the same archive: index, the 2,000-message chat, a search.
    browser.click("explore-open").await;
    let built = browser
        .wait_script(
            "const d = document.getElementById('explorer').dataset; return d.buildMs ? Object.assign({}, d) : null",
        )
        .await;
    println!(
        "explorer index of the archive: {} rows in {:.0} ms, index {:.1} KiB, Wasm memory {:.1} MiB",
        built["rows"].as_str().unwrap_or_default(),
        built["buildMs"].as_str().unwrap_or_default().parse::<f64>().unwrap_or(0.0),
        built["indexBytes"].as_str().unwrap_or_default().parse::<f64>().unwrap_or(0.0) / 1024.0,
        built["wasmMemoryBytes"].as_str().unwrap_or_default().parse::<f64>().unwrap_or(0.0) / f64::from(1u32 << 20),
    );
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click(); document.querySelector('[data-testid=\"explore-chats\"] li button').click()").await;
    let chat = browser
        .wait_script("const t = document.getElementById('explore-transcript'); return t.dataset.totalMs && t.dataset.total === '2000' && t.children.length === 200 ? Object.assign({}, t.dataset) : null")
        .await;
    println!(
        "explorer: the first page (200) of a 2,000-message chat shown in {} ms from click (read {} ms in Wasm, DOM {} ms), Wasm memory {:.1} MiB",
        chat["totalMs"].as_str().unwrap_or_default(),
        chat["readMs"].as_str().unwrap_or_default(),
        chat["renderMs"].as_str().unwrap_or_default(),
        chat["wasmMemoryBytes"].as_str().unwrap_or_default().parse::<f64>().unwrap_or(0.0) / f64::from(1u32 << 20),
    );
    let started = Instant::now();
    browser.fill("explore-search", "message 1999:").await;
    browser
        .wait_script("return document.getElementById('explore-search-state').textContent.includes('result') || null")
        .await;
    println!(
        "explorer: search over 2,000 messages answered in {:.0} ms from typing (200 ms of it the typing pause)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    drop(browser);
    let _ = std::fs::remove_file(&big);
}

/// Rounds of raw upload and batch import (the raw path alone varies by half between runs).
const ROUNDS: usize = 5;

/// The batch import of a 100,000-character account against the raw upload of it.
async fn batch_against_raw(server: &TestServer, scratch: &ScratchDir, downloads: &ScratchDir) {
    let source = server
        .account(
            "bench-source",
            Some(SeedOptions {
                characters: 0,
                chats: 0,
                images: 0,
                vectors: 0,
                secrets: 0,
                bulk_characters: 100_000,
                ..SeedOptions::default()
            }),
        )
        .await;
    let archive = server.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let archive = archive.bytes().await.unwrap().to_vec();
    let archive_path = scratch.path.join("characters.lvbak");
    std::fs::write(&archive_path, &archive).unwrap();
    println!("100,000-character archive: {:.1} MB", archive.len() as f64 / 1e6);

    // Five rounds, each a raw upload and a batch import into fresh servers (row ids are
    // global); the medians, beside each round's figures (runs here vary by a quarter).
    let browser = Browser::start(&downloads.path).await;
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        let (rows, raw_seconds) = raw_upload(&archive, round).await;
        let (seconds, wall, outcome) = batch_import(&browser, &archive_path, round).await;
        let wait = outcome["waitMs"].as_f64().unwrap_or(0.0) / 1000.0;
        println!(
            "round {round}: raw upload {rows} rows in {raw_seconds:.2} s; batch import {seconds:.2} s (worker) / {wall:.2} s \
             (click to summary), the Worker waiting {wait:.2} s for answers: {:.0}% of the raw path; {} batches, wire {:.1} MB = {:.3}x the archive",
            100.0 * raw_seconds / seconds,
            outcome["report"]["batches"],
            outcome["wireBytes"].as_f64().unwrap_or(0.0) / 1e6,
            outcome["wireBytes"].as_f64().unwrap_or(0.0) / archive.len() as f64
        );
        rounds.push((rows, raw_seconds, seconds, wait));
    }
    let median = |pick: fn(&(u64, f64, f64, f64)) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    re_import(&browser, &archive_path, archive.len()).await;
    let rows = rounds[0].0 as f64;
    let (raw, batch, wait) = (median(|r| r.1), median(|r| r.2), median(|r| r.3));
    println!("raw upload (median of {ROUNDS}): {rows} rows in {raw:.2} s = {:.0} rows/s", rows / raw);
    println!(
        "batch import in Chromium (median of {ROUNDS}): {batch:.2} s = {:.0} rows/s, {:.0}% of the raw path \
         (the rounds' own ratios above); the Worker waited {wait:.2} s for the server's answers",
        rows / batch,
        100.0 * raw / batch
    );
}

/// A raw upload of `archive` into a fresh server: rows imported and seconds to a complete job.
async fn raw_upload(archive: &[u8], round: usize) -> (u64, f64) {
    let raw_server = TestServer::start(&format!("bench-raw-{round}")).await;
    let raw_account = raw_server.account("bench-raw", None).await;
    let started = Instant::now();
    let (code, accepted) = status_json(
        raw_server.post(&raw_account, "/api/v1/user-data/import").body(archive.to_vec()).send().await.unwrap(),
    )
    .await;
    assert_eq!(code, 202, "{accepted}");
    let job = accepted["jobId"].as_str().unwrap();
    let mut raw_status = Value::Null;
    for _ in 0..6000 {
        let (_, status) = status_json(
            raw_server.get(&raw_account, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap(),
        )
        .await;
        if ["complete", "failed", "cancelled"].contains(&status["status"].as_str().unwrap_or_default()) {
            raw_status = status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let raw_seconds = started.elapsed().as_secs_f64();
    assert_eq!(raw_status["status"], "complete", "{raw_status}");
    let rows: u64 = raw_status["summary"]
        .as_object()
        .map(|tables| tables.values().map(|c| c["imported"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    (rows, raw_seconds)
}

/// The page's batch import of the archive at `path` into a fresh server: the Worker's
/// seconds, the seconds from click to summary, and the page's outcome.
async fn batch_import(browser: &Browser, path: &Path, round: usize) -> (f64, f64, Value) {
    let batch_server = TestServer::start(&format!("bench-batch-{round}")).await;
    let batch_account = batch_server.account("bench-batch", None).await;
    sign_in(browser, &batch_server, &batch_account).await;
    page_import(browser, path).await
}

/// Imports the archive at `path` through the signed-in page: the Worker's seconds, the
/// seconds from click to summary, and the page's outcome.
async fn page_import(browser: &Browser, path: &Path) -> (f64, f64, Value) {
    browser.pick("import-file", path).await;
    wait_report(browser).await;
    let started = Instant::now();
    browser.click("import-start").await;
    // One WebDriver call that resolves in the page once the import ends (polling from
    // here, three WebDriver calls every 10 ms, took a fifth of the machine's CPU).
    let ended = browser
        .wait_in_page(
            "const status = document.querySelector('[data-testid=\"import-status\"]'); \
             const o = status.dataset.outcome; \
             if (o) return JSON.parse(o); \
             const s = status.textContent; \
             return s === 'failed' || s === 'cancelled' ? {ended: s} : null;",
            Duration::from_secs(120),
        )
        .await;
    if let Some(status) = ended.get("ended") {
        panic!("batch import {status}: {}", browser.text("import-progress").await);
    }
    let wall = started.elapsed().as_secs_f64();
    (ended["seconds"].as_f64().unwrap_or(wall), wall, ended)
}

/// The same archive imported twice into one account through the page: what the second
/// time sends (every row is held by then).
async fn re_import(browser: &Browser, path: &Path, archive_bytes: usize) {
    let server = TestServer::start("bench-reimport").await;
    let account = server.account("bench-reimport", None).await;
    sign_in(browser, &server, &account).await;
    let (first, _, outcome) = page_import(browser, path).await;
    let first_wire = outcome["wireBytes"].as_f64().unwrap_or(0.0);
    let (again, _, outcome) = page_import(browser, path).await;
    let wire = outcome["wireBytes"].as_f64().unwrap_or(0.0);
    println!(
        "re-import in Chromium: {:.1} KB on the wire = {:.2}% of the archive (first import {:.1} MB), {again:.2} s (first {first:.2} s); \
         {} rows left out as held",
        wire / 1e3,
        100.0 * wire / archive_bytes as f64,
        first_wire / 1e6,
        outcome["report"]["rowsHeld"],
    );
}
