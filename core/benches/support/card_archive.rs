//! The archive the card benchmarks read (`core/benches/card.rs` natively, and
//! `tests/examples/bench_cards.rs` in the Worker): ~1 GiB with 100,000 characters, each with
//! some 5 KB of prose and an avatar PNG, one in ten with a world book of 20 entries.

use std::fs::File;
use std::io::{BufWriter, Cursor};

use lvbak_core::{ArchiveWriter, EntrySize, Manifest, ManifestStats};
use serde_json::json;

const WORDS: [&str; 24] = [
    "lantern", "harbour", "tide", "fog", "quay", "bell", "rope", "salt", "gull", "keeper", "night", "oil", "shore",
    "wave", "map", "route", "smuggler", "cove", "watch", "storm", "sail", "anchor", "light", "stone",
];

/// `words` words of prose, different for every `seed`.
fn prose(seed: u64, words: usize) -> String {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = String::with_capacity(words * 7);
    for _ in 0..words {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.push_str(WORDS[(state >> 33) as usize % WORDS.len()]);
        out.push(' ');
    }
    out
}

/// The id of the `i`th character.
pub fn character_id(i: usize) -> String {
    row_id(1, i)
}

/// The id of the `i`th row of a kind (1 characters, 2 images, 3 books, 4 entries).
fn row_id(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// A 48 × 48 picture of noise as a PNG (about 9 KB, which does not compress).
fn avatar() -> Vec<u8> {
    let mut state = 7u32;
    let picture = image::RgbaImage::from_fn(48, 48, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Rgba((state >> 8).to_le_bytes())
    });
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Writes the archive: `characters` characters with their rows, books and avatars.
pub fn write_archive(path: &std::path::Path, characters: usize) {
    let avatar = avatar();
    let books = characters / 10;
    let file = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut writer = ArchiveWriter::new(file, 1_795_313_867, 4 << 20);
    writer.write_manifest(&Manifest::new("0b7a3c1e-98f2-4d1b-9c55-7e1f2a3b4c5d", 1_795_313_867)).unwrap();
    writer.start_ndjson("database/characters.ndjson", EntrySize::Small).unwrap();
    for i in 0..characters {
        let book = if i % 10 == 0 { json!({"world_book_ids": [row_id(3, i / 10)]}) } else { json!({}) };
        writer
            .write_row(&json!({"id": row_id(1, i), "name": format!("Character {i}"), "description": prose(i as u64, 400),
                "personality": prose(i as u64 + 1, 40), "scenario": prose(i as u64 + 2, 60),
                "first_mes": prose(i as u64 + 3, 120), "mes_example": prose(i as u64 + 4, 120), "creator": "bench",
                "tags": "[\"bench\"]", "alternate_greetings": "[]", "extensions": book.to_string(),
                "image_id": row_id(2, i), "avatar_path": null, "created_at": 1_795_313_867, "updated_at": 1_795_313_867}))
            .unwrap();
    }
    writer.start_ndjson("database/images.ndjson", EntrySize::Small).unwrap();
    for i in 0..characters {
        writer
            .write_row(&json!({"id": row_id(2, i), "filename": format!("{}.png", row_id(2, i)), "has_thumbnail": 0}))
            .unwrap();
    }
    writer.start_ndjson("database/world_books.ndjson", EntrySize::Small).unwrap();
    for b in 0..books {
        writer
            .write_row(&json!({"id": row_id(3, b), "name": format!("Book {b}"), "description": prose(b as u64, 20)}))
            .unwrap();
    }
    writer.start_ndjson("database/world_book_entries.ndjson", EntrySize::Small).unwrap();
    for b in 0..books {
        for e in 0..20 {
            writer
                .write_row(&json!({"id": row_id(4, b * 20 + e), "world_book_id": row_id(3, b), "uid": format!("{e}"),
                    "key": "[\"lantern\"]", "content": prose((b * 20 + e) as u64, 80), "comment": format!("entry {e}")}))
                .unwrap();
        }
    }
    for i in 0..characters {
        writer
            .write_file(&format!("files/images/{}.png", row_id(2, i)), &mut avatar.as_slice(), EntrySize::Small)
            .unwrap();
    }
    let mut stats = ManifestStats::default();
    for (table, rows) in
        [("characters", characters), ("images", characters), ("world_books", books), ("world_book_entries", books * 20)]
    {
        stats.counts.insert(table.into(), rows as u64);
    }
    writer.write_stats(&stats).unwrap();
    writer.finish().unwrap();
}
