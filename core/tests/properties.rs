//! Property tests: NDJSON, ticket, secret and vector round-trips, and the sanitizer on
//! arbitrary names. Native only (proptest does not target wasm32).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use lvbak_core::entry_name::FileBucket;
use lvbak_core::secrets::{secrets_hash, SecretsIndex};
use lvbak_core::{
    classify_entry_name, decode_vector, encode_vector, parse_row, EncryptedSecret, EntryKind, NdjsonLines,
    NdjsonWriter, Ticket,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn row() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,16}", json_value(), 0..10).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ndjson_rows_round_trip(rows in prop::collection::vec(row(), 0..20)) {
        let mut writer = NdjsonWriter::new(Vec::new(), "t", 1 << 20);
        for row in &rows {
            writer.write_row(row).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let mut lines = NdjsonLines::new(Cursor::new(bytes), "t", 1 << 20);
        let mut read = Vec::new();
        while let Some((number, line)) = lines.next_line().unwrap() {
            read.push(parse_row("t", number, line).unwrap());
        }
        prop_assert_eq!(read, rows);
    }

    #[test]
    fn line_cap_is_exact(length in 1usize..300, cap in 1u64..300) {
        let line = vec![b'x'; length];
        let mut lines = NdjsonLines::new(Cursor::new([line.as_slice(), b"\n"].concat()), "t", cap);
        let outcome = lines.next_line().map(|l| l.map(|(_, bytes)| bytes.len()));
        if length as u64 <= cap {
            prop_assert_eq!(outcome.unwrap(), Some(length));
        } else {
            prop_assert_eq!(outcome.unwrap_err().code(), "line_too_long");
        }
    }

    #[test]
    fn tickets_round_trip_and_bind(
        archive_id in "[a-f0-9-]{1,40}",
        key in prop::array::uniform32(any::<u8>()),
        mut names in prop::collection::vec("[a-z_0-9-]{1,30}", 0..6),
        issued_at in 0i64..4_000_000_000,
    ) {
        names.sort();
        names.dedup();
        let ticket = Ticket::issue(&archive_id, &key, &names, issued_at, Some("instance".into()));
        let parsed = Ticket::parse(&ticket.to_json()).unwrap();
        prop_assert_eq!(&parsed, &ticket);
        prop_assert_eq!(*parsed.key().unwrap(), key);
        let index = SecretsIndex::new(&archive_id, names.iter().rev().cloned().collect());
        prop_assert!(parsed.verify(&archive_id, &index).is_ok());
        prop_assert_eq!(&secrets_hash(&archive_id, &index.keys), &ticket.secrets_hash);
        if let Some((_, rest)) = names.split_first() {
            let fewer = SecretsIndex::new(&archive_id, rest.to_vec());
            prop_assert_eq!(parsed.verify(&archive_id, &fewer).unwrap_err().code(), "binding_mismatch");
        }
    }

    #[test]
    fn secrets_seal_and_open(key in prop::array::uniform32(any::<u8>()), iv in prop::array::uniform12(any::<u8>()), plaintext in ".{0,200}", bit in 0usize..64) {
        let record = EncryptedSecret::seal(&key, iv, "k", &plaintext);
        let opened = record.open(&key).unwrap();
        prop_assert_eq!(opened.as_str(), plaintext.as_str());
        let mut other = key;
        other[bit % 32] ^= 1 << (bit % 8);
        prop_assert!(record.open(&other).is_err());
    }

    #[test]
    fn vectors_round_trip(vector in prop::collection::vec(any::<f32>().prop_filter("not NaN", |v| !v.is_nan()), 0..64)) {
        prop_assert_eq!(decode_vector(&encode_vector(&vector), "v").unwrap(), vector);
    }

    #[test]
    fn accepted_file_names_always_land_inside_their_folder(raw in prop::collection::vec(any::<u8>(), 0..80), prefix in 0usize..7) {
        let prefixes = ["files/avatars/", "files/theme-assets/", "files/databank/", "files/images/", "database/", "", "files/"];
        let name = [prefixes[prefix].as_bytes(), &raw].concat();
        if let Ok(EntryKind::File { bucket, name }) = classify_entry_name(&name) {
            let segments = bucket.relative_destination("user-1", &name).unwrap();
            prop_assert!(segments.iter().all(|s| !s.is_empty() && s != ".." && s != "." && !s.contains('/') && !s.contains('\\')));
            let expected_root = match bucket {
                FileBucket::Images | FileBucket::Thumbnails => "images",
                FileBucket::Avatars => "avatars",
                FileBucket::Databank => "databank",
                FileBucket::ThemeAssets => "theme-assets",
                FileBucket::NotificationSounds => "notification-sounds",
            };
            prop_assert_eq!(segments[0].as_str(), expected_root);
        }
    }
}

/// Every code a refusal may carry; anything else (or a panic) fails the mutation test.
const KNOWN_CODES: &[&str] = &[
    "not_zip",
    "truncated",
    "corrupt_archive",
    "too_large",
    "too_many_entries",
    "decompressed_cap",
    "path_traversal",
    "absolute_path",
    "bad_entry_name",
    "unknown_prefix",
    "duplicate_entry",
    "symlink_entry",
    "directory_entry",
    "overlapping_entries",
    "header_mismatch",
    "unsupported_compression",
    "encrypted_entry",
    "size_mismatch",
    "crc_mismatch",
    "corrupt_entry",
    "line_too_long",
    "bad_json",
    "no_manifest",
    "bad_manifest",
    "wrong_producer",
    "unsupported_version",
    "bad_secrets",
];

fn check_mutant(bytes: &[u8]) -> Result<(), String> {
    let limits = lvbak_core::Limits {
        max_archive_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 20,
        max_line_bytes: 4096,
        max_legacy_line_bytes: 16384,
        max_entries: 64,
        max_metadata_bytes: 8192,
    };
    let outcome = lvbak_core::Archive::open(Cursor::new(bytes), limits).and_then(|mut archive| {
        lvbak_core::inspect(&mut archive, lvbak_core::InspectOptions { count_rows: true })?;
        archive.verify_all(|_| {})
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(error) if KNOWN_CODES.contains(&error.code()) => Ok(()),
        Err(error) => Err(format!("{}: {error}", error.code())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    /// What the fuzz target checks, in CI: mangled archives end in Ok or a known code.
    #[test]
    fn mutated_archives_end_in_a_known_outcome(
        which in 0usize..4,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        mode in 0u8..3,
    ) {
        let sources: [&[u8]; 4] = [
            lvbak_tests::fixtures::MINIMAL,
            lvbak_tests::fixtures::SECRETS,
            lvbak_tests::fixtures::VECTORS_PATCHED,
            &lvbak_tests::zipcraft::RawZip::new(lvbak_tests::corpus::valid_entries()).build(),
        ];
        let mut bytes = sources[which].to_vec();
        for (at, value) in &flips {
            let index = at.index(bytes.len());
            bytes[index] ^= value | 1;
        }
        match mode {
            0 => {}
            1 => bytes.truncate(cut.index(bytes.len())),
            _ => {
                let at = cut.index(bytes.len());
                let tail = bytes[at..].to_vec();
                bytes.extend_from_slice(&tail);
            }
        }
        prop_assert_eq!(check_mutant(&bytes), Ok(()));
    }
}
