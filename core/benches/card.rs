//! Benchmark (prints numbers, asserts nothing): one character's cards (JSON, PNG, CHARX)
//! out of a generated ~1 GiB archive of 100,000 characters — each with some 5 KB of prose,
//! an avatar PNG and, one in ten, a world book of 20 entries — for the first, a middle and
//! the last character, reading a card back, and the last character's closure (a selective
//! restore's pick, [`lvbak_core::closure`] over the archive as `ArchiveRows`, alone and
//! with the explorer's index). Run with
//! `cargo bench -p lvbak-core --bench card` (scripts/bench does); `LVBAK_BENCH_CHARACTERS`
//! changes the count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufReader, Cursor};
use std::time::{Duration, Instant};

use lvbak_core::card::{read_card, CharacterRows};
use lvbak_core::closure::{closure, ArchiveRows, Selection};
use lvbak_core::explore::ExploreIndex;
use lvbak_core::{Archive, Limits};

#[path = "support/card_archive.rs"]
mod card_archive;
use card_archive::{character_id, write_archive};

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

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    let characters: usize =
        std::env::var("LVBAK_BENCH_CHARACTERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let path = std::env::temp_dir().join(format!("lvbak-bench-cards-{}.lvbak", std::process::id()));
    let started = Instant::now();
    write_archive(&path, characters);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "archive: {characters} characters, {:.2} GiB, written in {:.1} s",
        size as f64 / f64::from(1u32 << 30),
        started.elapsed().as_secs_f64()
    );
    let open =
        || Archive::open(BufReader::with_capacity(1 << 20, File::open(&path).unwrap()), Limits::STANDARD).unwrap();
    let (opened, _) = best_of(3, open);
    println!("open: {:.1} ms", ms(opened));
    let mut archive = open();
    let started = Instant::now();
    let explorer = ExploreIndex::build(&mut archive, |_| {}).unwrap();
    println!(
        "explorer index (with the characters' and entries' line indexes): {:.0} ms, {:.1} MiB held",
        ms(started.elapsed()),
        explorer.stats.index_bytes as f64 / f64::from(1u32 << 20)
    );
    // 0, 50,000 and 99,990 have a book (one in ten does).
    for (label, i) in [("first", 0), ("middle", characters / 2), ("last", characters - 10)] {
        let wanted = character_id(i);
        let (read, rows) = best_of(3, || CharacterRows::read(&mut archive, &wanted).unwrap());
        let (indexed, _) = best_of(3, || CharacterRows::read_indexed(&mut archive, &wanted, &explorer).unwrap());
        let (json, card) = best_of(3, || rows.ccv3_json().unwrap());
        let (png, png_card) = best_of(3, || rows.png(&mut archive).unwrap());
        let (charx, charx_card) = best_of(3, || rows.charx(&mut archive, 1_795_313_867).unwrap());
        println!(
            "{label} character ({i}, with a book of {} entries): rows read in {:.0} ms from the start, {:.1} ms \
             through the explorer's line indexes; then JSON {:.2} ms ({} B), PNG {:.0} ms ({} B), CHARX {:.0} ms ({} B)",
            rows.ccv3_json().map(|j| j.matches("\"keys\"").count()).unwrap_or(0),
            ms(read),
            ms(indexed),
            ms(json),
            card.len(),
            ms(png),
            png_card.len(),
            ms(charx),
            charx_card.len()
        );
        let (back, view) = best_of(3, || read_card(Cursor::new(png_card.as_slice())).unwrap());
        println!("  the PNG card read back in {:.2} ms ({})", ms(back), view.name);
    }
    let pick = format!("character:{}", character_id(characters - 10));
    let selection = Selection::from_words(&[pick], false).unwrap();
    let (closed, rows) = best_of(3, || closure(&mut ArchiveRows::new(&archive), &selection).unwrap());
    let counts: Vec<String> = rows.tables().map(|(table, count)| format!("{table} {count}")).collect();
    let (indexed, _) = best_of(3, || closure(&mut ArchiveRows::indexed(&mut archive, &explorer), &selection).unwrap());
    println!(
        "the last character's closure: {:.0} ms reading the tables, {:.1} ms through the explorer's line indexes ({})",
        ms(closed),
        ms(indexed),
        counts.join(", ")
    );
    let _ = std::fs::remove_file(&path);
}
