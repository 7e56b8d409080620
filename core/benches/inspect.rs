//! Benchmark (prints numbers, asserts nothing): inspection of a generated archive with
//! 100,000 entries totalling ~1 GiB, and NDJSON validation throughput on realistic rows.
//! Run with `cargo bench -p lvbak-core --bench inspect`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor};
use std::time::{Duration, Instant};

use lvbak_core::{
    check_row, inspect, parse_row, Archive, ArchiveWriter, EntrySize, InspectOptions, Limits, Manifest, ManifestStats,
    NdjsonLines,
};
use serde_json::json;

const ENTRIES: usize = 100_000;
const TOTAL_BYTES: usize = 1 << 30;

fn best_of<T>(runs: usize, mut work: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let value = work();
        best = best.min(started.elapsed());
        last = Some(value);
    }
    (best, last.unwrap())
}

/// One realistic `messages` row: ids, flags, a paragraph or two of varied prose, swipes
/// and extras as JSON text, as Lumiverse stores them.
fn message_row(i: usize) -> serde_json::Value {
    const WORDS: [&str; 48] = [
        "the",
        "lantern",
        "light",
        "trembled",
        "across",
        "map",
        "as",
        "Mira",
        "traced",
        "old",
        "smugglers'",
        "route",
        "with",
        "one",
        "gloved",
        "finger",
        "if",
        "tide",
        "holds",
        "she",
        "murmured",
        "we",
        "reach",
        "cove",
        "before",
        "watch",
        "changes",
        "Rowan",
        "laughed",
        "quietly",
        "and",
        "the",
        "rain",
        "kept",
        "drumming",
        "on",
        "canvas",
        "while",
        "gulls",
        "circled",
        "harbour",
        "bells",
        "rang",
        "twice",
        "somewhere",
        "below",
        "them,",
        "\"really?\"",
    ];
    // A small linear congruential generator: varied but repeatable prose.
    let mut state = (i as u64).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let length = 40 + (i * 37) % 260;
    let mut words = Vec::with_capacity(length);
    for _ in 0..length {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        words.push(WORDS[(state >> 33) as usize % WORDS.len()]);
    }
    let content = words.join(" ");
    json!({
        "id": format!("{:08x}-5d1c-4f3e-9a77-{:012x}", i, i * 7919),
        "chat_id": "f667ef8a-572f-411f-8761-da3989606e9b",
        "index_in_chat": i,
        "is_user": i % 2,
        "name": if i.is_multiple_of(2) { "Rowan" } else { "Mira" },
        "content": content,
        "send_date": 1_795_313_867 + i as i64,
        "swipe_id": 0,
        "swipes": serde_json::to_string(&[&content, "An alternative reply."]).unwrap(),
        "extra": "{\"model\":\"gpt-4o-mini\",\"tokens\":{\"prompt\":1834,\"completion\":212},\"reasoning\":null}",
        "parent_message_id": null,
        "branch_id": null,
        "created_at": 1_795_313_867 + i as i64,
        "swipe_dates": "[1795313867,1795313901]"
    })
}

fn main() {
    let dir = std::env::temp_dir().join(format!("lvbak-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.lvbak");

    // --- a 100,000-entry, ~1 GiB archive ----------------------------------------------
    let started = Instant::now();
    let file_count = ENTRIES - 3;
    let file_bytes = TOTAL_BYTES / file_count;
    let mut writer =
        ArchiveWriter::new(BufWriter::with_capacity(1 << 20, File::create(&path).unwrap()), 1_795_313_867, 4 << 20);
    writer.write_manifest(&Manifest::new("0b7a3c1e-98f2-4d1b-9c55-7e1f2a3b4c5d", 1_795_313_867)).unwrap();
    writer.start_ndjson("database/messages.ndjson", EntrySize::Small).unwrap();
    for i in 0..1000 {
        writer.write_row(&message_row(i)).unwrap();
    }
    let payload: Vec<u8> = (0..file_bytes).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..file_count {
        let name = format!("files/images/{:08x}-0000-4000-8000-{:012x}.png", i, i);
        writer.write_file(&name, &mut payload.as_slice(), EntrySize::Small).unwrap();
    }
    let mut stats = ManifestStats::default();
    stats.counts.insert("messages".into(), 1000);
    writer.write_stats(&stats).unwrap();
    writer.finish().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "generated {ENTRIES} entries, {:.2} GiB in {:.1} s",
        size as f64 / f64::from(1u32 << 30),
        started.elapsed().as_secs_f64()
    );

    let (elapsed, inspection) = best_of(5, || {
        let file = BufReader::with_capacity(64 * 1024, File::open(&path).unwrap());
        let mut archive = Archive::open(file, Limits::STANDARD).unwrap();
        inspect(&mut archive, InspectOptions::default()).unwrap()
    });
    assert_eq!(inspection.entries as usize, ENTRIES);
    println!(
        "inspect (open + central directory + metadata entries), best of 5: {:.1} ms for {} entries, {} files",
        elapsed.as_secs_f64() * 1000.0,
        inspection.entries,
        inspection.files["images"].count
    );
    let (elapsed, ()) = best_of(1, || {
        let file = BufReader::with_capacity(1 << 20, File::open(&path).unwrap());
        let mut archive = Archive::open(file, Limits::STANDARD).unwrap();
        archive.verify_all(|_| {}).unwrap();
    });
    println!(
        "verify_all (every byte, CRC-32, every line): {:.2} s, {:.0} MB/s",
        elapsed.as_secs_f64(),
        size as f64 / 1e6 / elapsed.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // --- NDJSON validation on realistic rows ------------------------------------------
    let mut ndjson = Vec::new();
    let mut rows = 0;
    while ndjson.len() < 256 << 20 {
        serde_json::to_writer(&mut ndjson, &message_row(rows)).unwrap();
        ndjson.push(b'\n');
        rows += 1;
    }
    let megabytes = ndjson.len() as f64 / 1e6;
    let (elapsed, checked) = best_of(3, || {
        let mut lines = NdjsonLines::new(Cursor::new(ndjson.as_slice()), "database/messages.ndjson", 4 << 20);
        let mut count = 0;
        while let Some((number, line)) = lines.next_line().unwrap() {
            check_row("database/messages.ndjson", number, line).unwrap();
            count += 1;
        }
        count
    });
    assert_eq!(checked, rows);
    println!(
        "NDJSON validation (line cap + UTF-8 + JSON object), one core: {:.0} MB/s ({} rows, {:.0} MB, avg {} B/row)",
        megabytes / elapsed.as_secs_f64(),
        rows,
        megabytes,
        ndjson.len() / rows
    );
    let (elapsed, parsed) = best_of(3, || {
        let mut lines = NdjsonLines::new(Cursor::new(ndjson.as_slice()), "database/messages.ndjson", 4 << 20);
        let mut count = 0;
        while let Some((number, line)) = lines.next_line().unwrap() {
            count += parse_row("database/messages.ndjson", number, line).unwrap().len();
        }
        count
    });
    assert!(parsed > 0);
    println!("NDJSON parse into rows (serde_json::Value), one core: {:.0} MB/s", megabytes / elapsed.as_secs_f64());

    // Deflated in an archive, as the browser and the importer read it.
    let mut writer = ArchiveWriter::new(Vec::new(), 1_795_313_867, 4 << 20);
    writer.write_manifest(&Manifest::new("0b7a3c1e-98f2-4d1b-9c55-7e1f2a3b4c5d", 1_795_313_867)).unwrap();
    writer.start_ndjson("database/messages.ndjson", EntrySize::Small).unwrap();
    writer.write_bytes(&ndjson).unwrap();
    let archive_bytes = writer.finish().unwrap();
    let (elapsed, ()) = best_of(3, || {
        let archive = Archive::open(Cursor::new(archive_bytes.as_slice()), Limits::STANDARD).unwrap();
        let index = archive.table_entry("messages").unwrap();
        let mut lines = archive.ndjson_lines(index).unwrap();
        while let Some((number, line)) = lines.next_line().unwrap() {
            check_row("database/messages.ndjson", number, line).unwrap();
        }
    });
    println!(
        "inflate + NDJSON validation, one core: {:.0} MB/s of NDJSON ({:.1}x compression)",
        megabytes / elapsed.as_secs_f64(),
        ndjson.len() as f64 / archive_bytes.len() as f64
    );
}
