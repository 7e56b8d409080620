//! Writes `cards.lvbak`, the archive the card tests compare with Lumiverse 1.1's own
//! exporter (`core/tests/data/cards/`): characters that exercise every rule of the card
//! export — attached, merged, legacy, missing and kept world books, internal extension
//! keys, odd values, repeated rows, avatars in PNG (with stale card chunks), JPEG, WebP and
//! GIF, and a character with gallery, expressions, expression groups, alternate avatars,
//! landing layers, alternate fields and regex scripts for CHARX.
//!
//! `cargo run -p lvbak-core --example card_archive -- OUT.lvbak`. The output depends on
//! nothing but this file (fixed ids and times), so it can be made again byte for byte.
// A tool run by hand: a failure is a panic with its reason.
#![allow(clippy::expect_used)]

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, Frame, ImageEncoder, Rgba, RgbaImage};
use lvbak_core::registry::TABLES;
use lvbak_core::{ArchiveWriter, EntrySize, Limits, Manifest, ManifestStats};
use serde_json::{json, Value};

const USER: &str = "src-cards-0000-4000-8000-000000000000";
const TIME: i64 = 1_795_400_000;

const IMG_PNG_STALE: &str = "00000000-0000-4000-8000-00000000000a";
const IMG_JPEG: &str = "00000000-0000-4000-8000-00000000000b";
const IMG_WEBP: &str = "00000000-0000-4000-8000-00000000000c";
const IMG_GIF: &str = "00000000-0000-4000-8000-00000000000d";
const IMG_PNG: &str = "00000000-0000-4000-8000-00000000000e";
const IMG_NO_FILE: &str = "00000000-0000-4000-8000-00000000000f";
const IMG_NO_EXTENSION: &str = "00000000-0000-4000-8000-000000000010";
const IMG_GALLERY: &str = "00000000-0000-4000-8000-000000000011";

/// A picture with a little pattern, so that pixels are worth comparing.
fn pattern(width: u32, height: u32, seed: u8, alpha: bool) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, y| {
        let v = (x * 40 + y * 70) as u8 ^ seed;
        let a = if alpha && (x + y) % 3 == 0 {
            0
        } else if alpha {
            128
        } else {
            255
        };
        Rgba([v, v.wrapping_mul(3), 255 - v, a])
    })
}

fn png(image: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(image, image.width(), image.height(), image::ExtendedColorType::Rgba8)
        .expect("png");
    out
}

/// A PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind);
    hasher.update(data);
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
    out
}

/// A PNG that still carries the card chunks of an earlier upload (and one that is not a
/// card's), before its first IDAT.
fn png_with_stale_cards(image: &RgbaImage) -> Vec<u8> {
    let plain = png(image);
    let idat = plain.windows(4).position(|w| w == b"IDAT").expect("IDAT") - 4;
    let mut out = plain[..idat].to_vec();
    out.extend(chunk(b"tEXt", b"chara\0eyJzdGFsZSI6dHJ1ZX0="));
    out.extend(chunk(b"tEXt", b"Comment\0kept"));
    out.extend(chunk(b"zTXt", b"ccv3\0\0x\x9c\x03\0\0\0\0\x01"));
    out.extend(chunk(b"iTXt", b"chara\0\0\0\0\0stale"));
    out.extend_from_slice(&plain[idat..]);
    out
}

fn jpeg(image: &RgbaImage) -> Vec<u8> {
    let rgb = image::DynamicImage::ImageRgba8(image.clone()).to_rgb8();
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90).encode_image(&rgb).expect("jpeg");
    out
}

fn webp(image: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(image, image.width(), image.height(), image::ExtendedColorType::Rgba8)
        .expect("webp");
    out
}

/// An animated GIF: a card shows its first frame.
fn gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        for seed in [0x11, 0x77] {
            let mut frame = pattern(5, 4, seed, false);
            frame.put_pixel(0, 0, Rgba([0, 0, 0, 0]));
            encoder.encode_frame(Frame::from_parts(frame, 0, 0, Delay::from_numer_denom_ms(100, 1))).expect("gif");
        }
    }
    out
}

fn image_row(id: &str, filename: &str, mime: &str, bytes: usize) -> Value {
    json!({"id": id, "filename": filename, "original_filename": format!("upload-{filename}"), "mime_type": mime,
        "byte_size": bytes, "width": null, "height": null, "has_thumbnail": 0, "created_at": TIME, "user_id": USER,
        "owner_extension_identifier": null, "owner_character_id": null, "owner_chat_id": null})
}

fn character(id: &str, name: &str, extensions: &str, image_id: Option<&str>) -> Value {
    json!({"id": id, "name": name, "avatar_path": null, "description": format!("{name}, described."),
        "personality": "Calm.", "scenario": "", "first_mes": format!("Hello from {name}."), "mes_example": "",
        "creator": "cards", "creator_notes": "", "system_prompt": "", "post_history_instructions": "",
        "tags": "[\"card\"]", "alternate_greetings": "[\"Hi again.\"]", "extensions": extensions,
        "created_at": TIME, "updated_at": TIME, "image_id": image_id, "user_id": USER, "deleting": 0})
}

fn book(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "description": format!("About {name}"), "metadata": "{\"source\":\"cards\"}",
        "created_at": TIME, "updated_at": TIME, "user_id": USER, "folder": ""})
}

fn entry(id: &str, book: &str, comment: &str, order: Value, extra: Value) -> Value {
    let mut row = json!({"id": id, "world_book_id": book, "uid": format!("uid-{id}"), "key": "[\"k\"]",
        "keysecondary": "[]", "content": format!("Content of {id}."), "comment": comment, "position": 0, "depth": 4,
        "role": null, "order_value": order, "selective": 0, "constant": 0, "disabled": 0, "group_name": "",
        "group_override": 0, "group_weight": 100, "probability": 100, "scan_depth": null, "case_sensitive": 0,
        "match_whole_words": 0, "automation_id": null, "extensions": "{}", "created_at": TIME, "updated_at": TIME,
        "use_regex": 0, "prevent_recursion": 0, "exclude_recursion": 0, "delay_until_recursion": 0, "priority": 10,
        "sticky": 0, "cooldown": 0, "delay": 0, "selective_logic": 0, "use_probability": 1, "vectorized": 0,
        "vector_index_status": "not_enabled", "vector_indexed_at": null, "vector_index_error": null});
    if let (Some(row), Some(extra)) = (row.as_object_mut(), extra.as_object()) {
        row.extend(extra.clone());
    }
    row
}

fn script(id: &str, name: &str, scope: &str, scope_id: Option<&str>, sort_order: i64) -> Value {
    json!({"id": id, "user_id": USER, "name": name, "find_regex": "/foo/g", "replace_string": "bar", "actions": "[]",
        "flags": "gi", "placement": "[\"ai_output\"]", "scope": scope, "scope_id": scope_id, "target": "[\"response\"]",
        "min_depth": null, "max_depth": 3, "trim_strings": "[\"x\"]", "run_on_edit": 1, "substitute_macros": "none",
        "disabled": 0, "sort_order": sort_order, "description": format!("{name} script"),
        "metadata": "{\"origin\":\"test\"}", "created_at": TIME + sort_order, "updated_at": TIME, "folder": "",
        "script_id": "", "pack_id": null, "preset_id": null, "character_id": null})
}

fn main() {
    let out = std::env::args().nth(1).expect("usage: card_archive OUT.lvbak");
    let stale = png_with_stale_cards(&pattern(6, 4, 0x21, true));
    let files: Vec<(String, Vec<u8>, &str, &str)> = vec![
        (format!("{IMG_PNG_STALE}.png"), stale, "image/png", IMG_PNG_STALE),
        (format!("{IMG_JPEG}.jpg"), jpeg(&pattern(8, 6, 0x42, false)), "image/jpeg", IMG_JPEG),
        (format!("{IMG_WEBP}.webp"), webp(&pattern(5, 5, 0x63, true)), "image/webp", IMG_WEBP),
        (format!("{IMG_GIF}.gif"), gif(), "image/gif", IMG_GIF),
        (format!("{IMG_PNG}.png"), png(&pattern(3, 3, 0x84, false)), "image/png", IMG_PNG),
        // No extension (CHARX names it `.png`), and a JPEG: formats are read from the bytes.
        (IMG_NO_EXTENSION.to_string(), jpeg(&pattern(4, 4, 0x95, false)), "image/jpeg", IMG_NO_EXTENSION),
        (format!("{IMG_GALLERY}.png"), png(&pattern(2, 5, 0xa6, true)), "image/png", IMG_GALLERY),
    ];
    let mut images: Vec<Value> =
        files.iter().map(|(name, bytes, mime, id)| image_row(id, name, mime, bytes.len())).collect();
    images.push(image_row(IMG_NO_FILE, &format!("{IMG_NO_FILE}.png"), "image/png", 10));

    let charx_extensions = json!({
        "expressions": {"enabled": true, "defaultExpression": "joy", "mappings": {
            "joy": IMG_PNG, "nude sad": IMG_WEBP, "rain 🌧/x": IMG_JPEG, "missing": IMG_NO_FILE}},
        "expression_groups": {"Group A": {"smile": IMG_PNG, "lewd look": IMG_GIF}, "Empty": {}},
        "alternate_fields": {"description": [{"id": "af1", "label": "Alt", "content": "Another description."}], "personality": []},
        "alternate_avatars": [
            {"id": "alt1", "label": "Alt One", "image_id": IMG_PNG_STALE},
            {"id": "alt2", "label": "", "image_id": IMG_PNG},
            {"id": "alt3", "label": "Three", "image_id": IMG_JPEG},
            {"id": "alt4", "label": "Gone", "image_id": IMG_NO_FILE}],
        "landing_perspective_layers": [
            {"id": "back", "image_id": IMG_PNG, "label": " Back wall ", "intensity": 0.333},
            {"id": "front", "image_id": IMG_WEBP, "intensity": 5},
            {"id": "dupe", "image_id": IMG_PNG, "label": "Again"}],
        "world_book_ids": ["wb-lore"],
        "talkativeness": 0.5
    })
    .to_string();
    let characters = vec![
        character(
            "c01-single-book",
            "Single Book",
            r#"{"world_book_ids":["wb-lore"],"world":"North"}"#,
            Some(IMG_PNG_STALE),
        ),
        character(
            "c02-merged-books",
            "Merged Books",
            r#"{"world_book_ids":["wb-lore","wb-missing","wb-nameless","wb-empty"]}"#,
            Some(IMG_JPEG),
        ),
        {
            let extensions = format!(r#"{{"world_book_id":"wb-nameless","original_image_id":"{IMG_WEBP}"}}"#);
            let mut row = character("c03-legacy-book", "Legacy Book", &extensions, Some(IMG_PNG));
            row["deleting"] = json!(1);
            row
        },
        character(
            "c04-kept-book",
            "Kept Book",
            r#"{"world_book_ids":["wb-missing"],"character_book":{"name":"Kept","entries":[{"keys":["k"],"content":"kept"}]}}"#,
            Some(IMG_GIF),
        ),
        {
            let extensions = format!(
                concat!(
                    r#"{{"talkativeness":0.5,"expressions":{{"enabled":false}},"alternate_fields":{{}},"world_book_ids":[],"#,
                    r#""avatar_crop_image_id":"x","original_image_id":"{}","_lumiverse_source_filename":"a.png","#,
                    r#""risu_asset_map":{{}},"10":"ten","2":"two","__proto__":{{"x":1}},"character_version":"2.1","#,
                    r#""landing_perspective_layers":[],"nested":{{"b":1,"a":[1.5,null,"é"]}}}}"#
                ),
                IMG_NO_FILE
            );
            let mut row = character("c05-extensions", "Extensions", &extensions, None);
            row["tags"] = json!("null");
            row["alternate_greetings"] = json!("0");
            row["personality"] = json!("");
            row
        },
        {
            let mut row = character("c06-odd-values", "Odd Values", "[\"a\",\"b\"]", None);
            row["description"] = json!(5);
            row["creator_notes"] = json!(2.5);
            row["creator"] = json!(true);
            row
        },
        {
            let mut row = character("c07-repeated", "Refused", "{}", None);
            row["description"] = Value::Null;
            row
        },
        character("c07-repeated", "Second", "{}", None),
        character("c07-repeated", "Third", "{}", None),
        character("c08-charx", "Charx 🌧 Everything", &charx_extensions, Some(IMG_NO_EXTENSION)),
        character("c09-entry-details", "Entry Details", r#"{"world_book_ids":["wb-details"]}"#, None),
    ];

    let world_books = vec![
        book("wb-lore", "Northern Lore"),
        book("wb-nameless", ""),
        book("wb-empty", "Empty Book"),
        book("wb-details", "Details"),
    ];
    let mut entries = vec![
        entry("e-lore-1", "wb-lore", "tower", json!(100), json!({})),
        entry("e-lore-2", "wb-lore", "dragon", json!(50), json!({"key": "[\"dragon\",\"cave\"]"})),
        entry("e-lore-3", "wb-lore", "ship", json!(100), json!({})),
        entry("e-nameless-1", "wb-nameless", "", json!(1), json!({})),
        entry("e-nameless-2", "wb-nameless", "trailing\u{a0} \u{feff}", json!(2), json!({})),
    ];
    let details = [
        ("e-d1", json!(10), json!({"vectorized": 1})),
        ("e-d2", json!(10), json!({})),
        ("e-d3", json!("5"), json!({})),
        ("e-d4", json!(10), json!({"vector_index_status": "indexed"})),
        (
            "e-d5",
            json!(20),
            json!({"role": "assistant", "group_name": "grp", "automation_id": "", "scan_depth": 3,
                "extensions": r#"{"priority":99,"0":"zero","outletName":"  Lore Outlet ","wi_marker":" World_Info_Before ","wiMarkerSide":"Before","custom":{"deep":[1,2]}}"#}),
        ),
        (
            "e-d6",
            json!(30),
            json!({"extensions": "[1,2]", "key": "\"solo\"", "keysecondary": "null", "automation_id": "auto-1"}),
        ),
        (
            "e-d7",
            json!(40),
            json!({"disabled": true, "selective": true, "constant": 1, "case_sensitive": 1, "match_whole_words": 1,
                "use_regex": 1, "prevent_recursion": 1, "exclude_recursion": 1, "delay_until_recursion": 1,
                "group_override": 1, "use_probability": 0, "sticky": 2, "cooldown": 3, "delay": 4, "selective_logic": 1,
                "group_weight": 50, "probability": 75, "priority": 7, "depth": 2, "position": 1,
                "extensions": r#"{"outlet_name":"x","wi_marker":"nope","wi_marker_side":"middle"}"#}),
        ),
        ("e-d1", json!(1), json!({"comment": "repeated id"})),
        ("e-d9", json!(1), json!({"uid": null})),
    ];
    for (id, order, extra) in details {
        entries.push(entry(id, "wb-details", &format!("detail {id}"), order, extra));
    }

    let gallery = vec![
        json!({"id": "g-2", "user_id": USER, "character_id": "c08-charx", "image_id": IMG_GALLERY, "caption": "second", "sort_order": 2, "created_at": TIME}),
        json!({"id": "g-1", "user_id": USER, "character_id": "c08-charx", "image_id": IMG_JPEG, "caption": "first", "sort_order": 1, "created_at": TIME}),
        json!({"id": "g-3", "user_id": USER, "character_id": "c08-charx", "image_id": IMG_NO_FILE, "caption": "gone", "sort_order": 3, "created_at": TIME}),
        json!({"id": "g-other", "user_id": USER, "character_id": "c01-single-book", "image_id": IMG_PNG, "caption": "", "sort_order": 0, "created_at": TIME}),
    ];
    let scripts = vec![
        script("rx-2", "Second", "character", Some("c08-charx"), 2),
        script("rx-1", "First", "character", Some("c08-charx"), 1),
        script("rx-global", "Global", "global", None, 0),
        script("rx-other", "Other", "character", Some("c01-single-book"), 0),
    ];

    let tables: Vec<(&str, Vec<Value>)> = vec![
        ("images", images),
        ("world_books", world_books),
        ("world_book_entries", entries),
        ("characters", characters),
        ("character_gallery", gallery),
        ("regex_scripts", scripts),
    ];
    let manifest = Manifest {
        schema_version: 1,
        producer: "lumiverse".into(),
        exported_at: Some(TIME),
        archive_id: "c4a0d5e1-0000-4000-8000-00000000ca4d".into(),
        producer_version: None,
        ndjson_format_version: Some(1),
        include_vectors: false,
        embedding_config: Default::default(),
        counts: Default::default(),
        missing_files: Vec::new(),
        has_encrypted_secrets: false,
        secrets_count: 0,
    };
    let mut writer = ArchiveWriter::new(Vec::new(), TIME, Limits::STANDARD.max_line_bytes);
    writer.write_manifest(&manifest).expect("manifest");
    let mut stats = ManifestStats::default();
    for spec in TABLES {
        writer.start_ndjson(&format!("database/{}.ndjson", spec.name), EntrySize::Small).expect("table");
        let rows = tables.iter().find(|(name, _)| *name == spec.name).map(|(_, rows)| rows.as_slice()).unwrap_or(&[]);
        for row in rows {
            writer.write_row(row).expect("row");
        }
        stats.counts.insert(spec.name.to_string(), rows.len() as u64);
    }
    writer.write_stats(&stats).expect("stats");
    for (name, bytes, _, _) in &files {
        writer.write_file(&format!("files/images/{name}"), &mut Cursor::new(bytes), EntrySize::Small).expect("file");
    }
    let bytes = writer.finish().expect("finish");
    std::fs::write(&out, bytes).expect("write");
}
