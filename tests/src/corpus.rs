//! The hostile-archive corpus: one named case per attack, each with the exact error code a
//! full check (open, inspect, read every entry) must give. Core, wasm and server tests all
//! run this one table.

use crate::zipcraft::{EndRecords, RawEntry, RawZip};

/// The caps every corpus case is checked under, as plain numbers (the corpus does not
/// depend on lvbak-core). Small, so bombs stay small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorpusLimits {
    pub max_archive_bytes: u64,
    pub max_decompressed_bytes: u64,
    pub max_line_bytes: u64,
    pub max_legacy_line_bytes: u64,
    pub max_entries: u64,
    pub max_metadata_bytes: u64,
}

pub const LIMITS: CorpusLimits = CorpusLimits {
    max_archive_bytes: 8 * 1024 * 1024,
    max_decompressed_bytes: 1024 * 1024,
    max_line_bytes: 4096,
    max_legacy_line_bytes: 16 * 1024,
    max_entries: 64,
    max_metadata_bytes: 8 * 1024,
};

/// One archive and what must become of it.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    /// `None`: the archive is valid. `Some(code)`: it must be refused with exactly `code`.
    pub expected: Option<&'static str>,
    pub bytes: Vec<u8>,
}

pub const ARCHIVE_ID: &str = "6b0f8a52-3f1e-4c55-9a3e-2d7c9b8e1f00";
pub const UUID: &str = "0f9f6c1a-33e8-4cdd-8dce-460cf7252d66";

/// A manifest as Lumiverse writes it, with `extra` fields replaced or added.
pub fn manifest_json(replace: &[(&str, &str)]) -> Vec<u8> {
    let mut fields: Vec<(String, String)> = vec![
        ("schemaVersion".into(), "1".into()),
        ("producer".into(), "\"lumiverse\"".into()),
        ("exportedAt".into(), "1795313867".into()),
        ("archiveId".into(), format!("\"{ARCHIVE_ID}\"")),
        ("producerVersion".into(), "null".into()),
        ("ndjsonFormatVersion".into(), "1".into()),
        ("includeVectors".into(), "false".into()),
        (
            "embeddingConfig".into(),
            "{\"provider\": \"openai\", \"model\": \"text-embedding-3-small\", \"dimension\": 8}".into(),
        ),
        ("counts".into(), "{}".into()),
        ("missingFiles".into(), "[]".into()),
        ("hasEncryptedSecrets".into(), "false".into()),
        ("secretsCount".into(), "0".into()),
    ];
    for (key, value) in replace {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value.to_string(),
            None => fields.push((key.to_string(), value.to_string())),
        }
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("  \"{k}\": {v}")).collect();
    format!("{{\n{}\n}}", body.join(",\n")).into_bytes()
}

/// Three settings rows, as NDJSON.
pub fn settings_rows() -> Vec<u8> {
    let mut rows = Vec::new();
    for (key, value) in [("theme", "{\"mode\":\"dark\"}"), ("language", "\"en\""), ("fontSize", "14")] {
        rows.extend_from_slice(
            format!(
                "{{\"key\":\"{key}\",\"value\":{},\"updated_at\":1795313867,\"user_id\":\"src-user\"}}\n",
                serde_string(value)
            )
            .as_bytes(),
        );
    }
    rows
}

fn serde_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The entries of a small valid archive: manifest, two tables, a file, the stats trailer.
pub fn valid_entries() -> Vec<RawEntry> {
    vec![
        RawEntry::deflated("manifest.json", &manifest_json(&[])),
        RawEntry::deflated("database/settings.ndjson", &settings_rows()),
        RawEntry::deflated("database/messages.ndjson", b""),
        RawEntry::stored(&format!("files/images/{UUID}.png"), b"\x89PNG\r\n\x1a\nnot-really"),
        RawEntry::deflated("manifest-stats.json", b"{\"counts\":{\"settings\":3,\"messages\":0},\"missingFiles\":[]}"),
    ]
}

/// A valid archive with `changed` applied to its entries.
fn archive_with(changed: impl FnOnce(&mut Vec<RawEntry>)) -> Vec<u8> {
    let mut entries = valid_entries();
    changed(&mut entries);
    RawZip::new(entries).build()
}

/// An entry of the valid archive renamed to `name`.
fn with_name(name: &[u8]) -> Vec<u8> {
    archive_with(|entries| entries.push(RawEntry::stored("files/avatars/x.png", b"x").named(name)))
}

/// Every case, valid ones included (so the corpus also proves what must pass).
pub fn cases() -> Vec<Case> {
    let case = |name, expected, bytes| Case { name, expected, bytes };
    let valid = RawZip::new(valid_entries()).build();
    vec![
        case("valid_zip64_with_data_descriptors", None, valid.clone()),
        case(
            "valid_classic_without_data_descriptors",
            None,
            RawZip {
                entries: valid_entries()
                    .into_iter()
                    .map(|e| RawEntry { data_descriptor: false, flags: 0, ..e })
                    .collect(),
                end: EndRecords::Classic,
                claimed_count: None,
            }
            .build(),
        ),
        case(
            "valid_legacy_manifest_long_line",
            None,
            archive_with(|entries| {
                entries[0] = RawEntry::deflated("manifest.json", &manifest_json(&[("ndjsonFormatVersion", "null")]));
                let long = format!("{{\"key\":\"k\",\"value\":\"{}\"}}\n", "v".repeat(8000));
                entries[2] = RawEntry::deflated("database/messages.ndjson", long.as_bytes());
            }),
        ),
        case("not_a_zip", Some("not_zip"), b"this is a text file, not an archive\n".to_vec()),
        case("empty_file", Some("not_zip"), Vec::new()),
        case("truncated", Some("truncated"), valid[..valid.len() / 2].to_vec()),
        case("trailing_garbage", Some("truncated"), [valid.as_slice(), b"garbage after the end"].concat()),
        case("dot_dot_segment", Some("path_traversal"), with_name(b"database/../../etc/passwd.ndjson")),
        case("absolute_path", Some("absolute_path"), with_name(b"/etc/cron.d/evil")),
        case("backslash_traversal", Some("path_traversal"), with_name(b"files\\avatars\\..\\..\\evil.png")),
        case("backslash_absolute", Some("absolute_path"), with_name(b"\\windows\\evil.png")),
        case("drive_letter", Some("absolute_path"), with_name(b"C:/evil.png")),
        case("nul_byte", Some("bad_entry_name"), with_name(b"files/avatars/a.png\0.exe")),
        case("control_byte", Some("bad_entry_name"), with_name(b"files/avatars/a\x1b[2J.png")),
        case("dot_segment", Some("bad_entry_name"), with_name(b"./files/avatars/a.png")),
        case("unknown_prefix", Some("unknown_prefix"), with_name(b"payload/run.sh")),
        case("bad_table_name", Some("bad_entry_name"), with_name(b"database/Users.ndjson")),
        case("bad_image_name", Some("bad_entry_name"), with_name(b"files/images/not-a-uuid.png")),
        case(
            "bad_thumbnail_name",
            Some("bad_entry_name"),
            with_name(format!("files/thumbnails/{UUID}_thumb_xl_v2.webp").as_bytes()),
        ),
        case("bad_avatar_name", Some("bad_entry_name"), with_name(b"files/avatars/a b.png")),
        case("bad_databank_name", Some("bad_entry_name"), with_name(b"files/databank/doc/nested.pdf")),
        case("bad_theme_asset_name", Some("bad_entry_name"), with_name(b"files/theme-assets/no-bundle-folder")),
        case("bad_sound_name", Some("bad_entry_name"), with_name(b"files/notification-sounds/completion.exe")),
        case("bad_secrets_name", Some("bad_entry_name"), with_name(b"secrets/keys.txt")),
        case(
            "duplicate_names",
            Some("duplicate_entry"),
            archive_with(|entries| {
                entries.insert(2, RawEntry::deflated("database/settings.ndjson", b"{\"key\":\"evil\"}\n"));
            }),
        ),
        case(
            "overlapping_entries",
            Some("overlapping_entries"),
            archive_with(|entries| {
                let mut alias = RawEntry::deflated("database/characters.ndjson", &settings_rows());
                alias.alias_of = Some(1);
                entries.push(alias);
            }),
        ),
        case(
            "local_central_name_mismatch",
            Some("header_mismatch"),
            archive_with(|entries| entries[1].local_name = Some(b"database/personas.ndjson".to_vec())),
        ),
        case("local_central_crc_mismatch", Some("header_mismatch"), local_crc_mismatch()),
        case("unsupported_method", Some("unsupported_compression"), archive_with(|entries| entries[1].method = 12)),
        case("encrypted_flag", Some("encrypted_entry"), archive_with(|entries| entries[1].flags |= 0x0001)),
        case(
            "symlink_entry",
            Some("symlink_entry"),
            archive_with(|entries| {
                let mut link = RawEntry::stored("files/avatars/link.png", b"/etc/passwd");
                link.external_attributes = 0o120_777 << 16;
                entries.push(link);
            }),
        ),
        case(
            "directory_entry",
            Some("directory_entry"),
            archive_with(|entries| entries.push(RawEntry::stored("files/avatars/", b""))),
        ),
        case(
            "zip_bomb_past_the_cap",
            Some("decompressed_cap"),
            archive_with(|entries| {
                let rows = "{\"id\":\"x\"}\n".repeat(200_000);
                entries[2] = RawEntry::deflated("database/messages.ndjson", rows.as_bytes());
            }),
        ),
        case(
            "zip_bomb_lying_header",
            Some("size_mismatch"),
            archive_with(|entries| {
                let rows = "{\"id\":\"x\"}\n".repeat(200_000);
                entries[2] = RawEntry::deflated("database/messages.ndjson", rows.as_bytes());
                entries[2].claimed_size = Some(1000);
            }),
        ),
        case("crc_mismatch", Some("crc_mismatch"), archive_with(|entries| entries[3].claimed_crc = Some(0xdead_beef))),
        case(
            "too_many_entries",
            Some("too_many_entries"),
            archive_with(|entries| {
                for i in 0..LIMITS.max_entries {
                    entries.push(RawEntry::stored(&format!("files/avatars/{i}.png"), b"x"));
                }
            }),
        ),
        case(
            "entry_count_wrapped",
            Some("too_many_entries"),
            RawZip {
                entries: {
                    let mut entries = valid_entries();
                    for i in 0..LIMITS.max_entries {
                        entries.push(RawEntry::stored(&format!("files/avatars/{i}.png"), b"x"));
                    }
                    entries
                },
                end: EndRecords::Classic,
                // The real count modulo a small power of two, as a 16-bit count wraps.
                claimed_count: Some((valid_entries().len() as u64 + LIMITS.max_entries) % 16),
            }
            .build(),
        ),
        case(
            "entry_count_understated",
            Some("corrupt_archive"),
            RawZip { claimed_count: Some(3), ..RawZip::new(valid_entries()) }.build(),
        ),
        case(
            "oversized_manifest",
            Some("too_large"),
            archive_with(|entries| {
                let padded = [manifest_json(&[]), vec![b' '; LIMITS.max_metadata_bytes as usize]].concat();
                entries[0] = RawEntry::deflated("manifest.json", &padded);
            }),
        ),
        case(
            "no_manifest",
            Some("no_manifest"),
            archive_with(|entries| {
                entries.remove(0);
            }),
        ),
        case(
            "manifest_not_json",
            Some("bad_manifest"),
            archive_with(|entries| entries[0] = RawEntry::deflated("manifest.json", b"{\"producer\": \"lumiverse\",")),
        ),
        case(
            "foreign_producer",
            Some("wrong_producer"),
            archive_with(|entries| {
                entries[0] = RawEntry::deflated("manifest.json", &manifest_json(&[("producer", "\"sillytavern\"")]));
            }),
        ),
        case(
            "newer_schema",
            Some("unsupported_version"),
            archive_with(|entries| {
                entries[0] = RawEntry::deflated("manifest.json", &manifest_json(&[("schemaVersion", "2")]));
            }),
        ),
        case(
            "ndjson_line_over_cap",
            Some("line_too_long"),
            archive_with(|entries| {
                let long = format!("{{\"key\":\"k\",\"value\":\"{}\"}}\n", "v".repeat(LIMITS.max_line_bytes as usize));
                entries[2] = RawEntry::deflated("database/messages.ndjson", long.as_bytes());
            }),
        ),
        case(
            "legacy_line_over_legacy_cap",
            Some("line_too_long"),
            archive_with(|entries| {
                entries[0] = RawEntry::deflated("manifest.json", &manifest_json(&[("ndjsonFormatVersion", "null")]));
                let long =
                    format!("{{\"key\":\"k\",\"value\":\"{}\"}}\n", "v".repeat(LIMITS.max_legacy_line_bytes as usize));
                entries[2] = RawEntry::deflated("database/messages.ndjson", long.as_bytes());
            }),
        ),
        case(
            "invalid_json_line",
            Some("bad_json"),
            archive_with(|entries| {
                entries[2] = RawEntry::deflated("database/messages.ndjson", b"{\"id\":\"m1\"}\n{\"id\": oops}\n");
            }),
        ),
        case(
            "json_line_not_object",
            Some("bad_json"),
            archive_with(|entries| entries[2] = RawEntry::deflated("database/messages.ndjson", b"[\"m1\"]\n")),
        ),
        case(
            "archive_over_compressed_cap",
            Some("too_large"),
            archive_with(|entries| {
                // Stored noise-free bytes: over the archive cap, under the decompressed cap
                // per entry only when measured compressed, so the archive cap fires first.
                entries.push(RawEntry::stored("files/avatars/big.bin", &vec![7u8; LIMITS.max_archive_bytes as usize]));
            }),
        ),
    ]
}

/// An archive whose settings entry has one CRC in its local header and another in the
/// central directory.
fn local_crc_mismatch() -> Vec<u8> {
    let mut entries = valid_entries();
    entries[1].data_descriptor = false;
    entries[1].flags = 0;
    let mut bytes = RawZip::new(entries).build();
    // The settings entry's local header is the second one; its CRC is at +14.
    if let Some(at) = find_local_header(&bytes, 1) {
        bytes[at + 14] ^= 0xff;
    }
    bytes
}

/// Offset of the `n`th local header signature (0-based) in `bytes`.
fn find_local_header(bytes: &[u8], n: usize) -> Option<usize> {
    bytes.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x03\x04").map(|(at, _)| at).nth(n)
}
