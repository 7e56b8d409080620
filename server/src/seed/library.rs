//! The demo account's world book with its entries, its images (with both thumbnails), its
//! persona and its characters (with avatar files and gallery portraits), and the bulk
//! characters of a benchmark account.

use lvbak_core::FileBucket;

use super::row::SeedRow;
use super::text::{prose, NAMES};
use super::{media, Demo, SeedOptions};
use crate::util::new_id;

/// The world book: its id, and each entry's id and content (for their vectors).
pub(super) struct WorldBook {
    pub(super) id: String,
    pub(super) entries: Vec<(String, String)>,
}

/// The persona and the characters.
pub(super) struct Cast {
    pub(super) persona_id: String,
    pub(super) character_ids: Vec<String>,
}

pub(super) fn world_book(demo: &mut Demo<'_>) -> WorldBook {
    let (uid, now) = (demo.uid, demo.now);
    let book_id = new_id();
    let book = SeedRow::new()
        .text("id", &book_id)
        .text("name", "The Salt Coast")
        .text("description", "Harbour towns and their secrets.")
        .text("metadata", "{}")
        .int("created_at", now)
        .int("updated_at", now)
        .text("user_id", uid)
        .text("folder", "Lore");
    demo.add("world_books", book);
    let mut entries = Vec::new();
    for (index, key) in ["lighthouse", "smugglers", "harbour bells", "brass key", "fog"].iter().enumerate() {
        let id = new_id();
        let entry = SeedRow::new()
            .text("id", &id)
            .text("world_book_id", &book_id)
            .int("uid", index as i64)
            .json_text("key", &[key])
            .text("keysecondary", "[]")
            .text("content", prose(index, 2))
            .text("comment", format!("{key} lore"))
            .int("created_at", now)
            .int("updated_at", now)
            .int("vectorized", 1)
            .text("vector_index_status", "indexed")
            .int("vector_indexed_at", now);
        demo.add("world_book_entries", entry);
        entries.push((id, prose(index, 2)));
    }
    WorldBook { id: book_id, entries }
}

/// Adds the images, then the persona and the characters; the first images are the
/// persona's and the characters' portraits.
pub(super) fn cast(demo: &mut Demo<'_>, options: &SeedOptions, book_id: &str) -> anyhow::Result<Cast> {
    let (uid, now) = (demo.uid, demo.now);
    let mut image_ids = Vec::new();
    for index in 0..options.images {
        let id = new_id();
        let bytes = media::png(48 + 8 * index as u32, 48, index as u32);
        demo.write_file(FileBucket::Images, &format!("{id}.png"), &bytes)?;
        demo.write_file(
            FileBucket::Images,
            &format!("{id}_thumb_sm_v2.webp"),
            &media::webp_1x1(120, 90, (index as u8).wrapping_mul(40)),
        )?;
        demo.write_file(
            FileBucket::Images,
            &format!("{id}_thumb_lg_v2.webp"),
            &media::webp_1x1(160, 120, (index as u8).wrapping_mul(40)),
        )?;
        let image = SeedRow::new()
            .text("id", &id)
            .text("filename", format!("{id}.png"))
            .text("original_filename", format!("portrait-{index}.png"))
            .text("mime_type", "image/png")
            .int("byte_size", bytes.len() as i64)
            .int("width", 48 + 8 * index as i64)
            .int("height", 48)
            .int("has_thumbnail", 1)
            .int("created_at", now)
            .text("user_id", uid);
        demo.add("images", image);
        image_ids.push(id);
    }

    let persona_id = new_id();
    let persona_avatar = format!("{persona_id}.png");
    demo.write_file(FileBucket::Avatars, &persona_avatar, &media::png(32, 32, 99))?;
    let persona = SeedRow::new()
        .text("id", &persona_id)
        .text("name", "Rowan")
        .text("description", "A cartographer with debts.")
        .text("avatar_path", persona_avatar)
        .int("is_default", 1)
        .text("metadata", "{}")
        .int("created_at", now)
        .int("updated_at", now)
        .text("attached_world_book_id", book_id)
        .text_or_null("image_id", image_ids.first())
        .text("user_id", uid)
        .text("title", "Cartographer")
        .text("subjective_pronoun", "they")
        .text("objective_pronoun", "them")
        .text("possessive_pronoun", "their");
    demo.add("personas", persona);

    let mut character_ids = Vec::new();
    // Every chat needs a character.
    let characters = if options.chats > 0 { options.characters.max(1) } else { options.characters };
    for index in 0..characters {
        let id = new_id();
        let avatar = format!("{id}.png");
        demo.write_file(FileBucket::Avatars, &avatar, &media::png(32, 32, index as u32 + 10))?;
        let character = SeedRow::new()
            .text("id", &id)
            .text("name", NAMES[index % NAMES.len()])
            .text("avatar_path", avatar)
            .text("description", prose(index, 4))
            .text("personality", "Wry, loyal, allergic to authority.")
            .text("scenario", prose(index + 1, 2))
            .text("first_mes", prose(index + 2, 1))
            .text("mes_example", "")
            .text("creator", "demo")
            .text("creator_notes", "")
            .text("system_prompt", "")
            .text("post_history_instructions", "")
            .json_text("tags", &["harbour", "mystery"])
            .json_text("alternate_greetings", &[prose(index + 3, 1)])
            .text("extensions", "{}")
            .int("created_at", now)
            .int("updated_at", now)
            .text_or_null("image_id", image_ids.get(index))
            .text("user_id", uid);
        demo.add("characters", character);
        if let Some(image_id) = image_ids.get(index) {
            let portrait = SeedRow::new()
                .text("id", new_id())
                .text("user_id", uid)
                .text("character_id", &id)
                .text("image_id", image_id)
                .text("caption", "Portrait")
                .int("sort_order", 0)
                .int("created_at", now);
            demo.add("character_gallery", portrait);
        }
        character_ids.push(id);
    }
    Ok(Cast { persona_id, character_ids })
}

/// One of the extra characters shaped like Lumiverse's export benchmark: `description` is
/// `filler` and " #index", every other text column empty.
pub(super) fn bulk_character(index: usize, filler: &str, uid: &str, now: i64) -> SeedRow {
    SeedRow::new()
        .text("id", new_id())
        .text("name", format!("Character {index}"))
        .text("description", format!("{filler} #{index}"))
        .text("personality", "")
        .text("scenario", "")
        .text("first_mes", "")
        .text("mes_example", "")
        .text("creator", "")
        .text("creator_notes", "")
        .text("system_prompt", "")
        .text("post_history_instructions", "")
        .text("tags", "")
        .text("alternate_greetings", "")
        .text("extensions", "")
        .int("created_at", now)
        .int("updated_at", now)
        .text("user_id", uid)
}
