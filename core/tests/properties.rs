//! Property tests: NDJSON, ticket, secret and vector round-trips, and the sanitizer on
//! arbitrary names. Native only (proptest does not target wasm32).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use lvbak_core::entry_name::FileBucket;
use lvbak_core::secrets::{secrets_hash, SecretsIndex};
use lvbak_core::{
    classify_entry_name, decode_vector, encode_vector, parse_row, EncryptedSecret, EntryKind,
    NdjsonLines, NdjsonWriter, Ticket,
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
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn row() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,16}", json_value(), 0..10)
        .prop_map(|m| m.into_iter().collect())
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
