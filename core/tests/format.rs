//! The format core against the shared corpus (every attack refused with its exact code),
//! the real Lumiverse 1.1 fixtures (exact counts, ticket, tampering), and archives written
//! by our own writer (read back by us and by the `zip` crate). Runs natively and, built for
//! wasm32, under wasm-bindgen-test in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use lvbak_core::explore::ExploreIndex;
use lvbak_core::secrets::{SecretSkip, SecretsIndex, SECRETS_BLOB_ENTRY, SECRETS_INDEX_ENTRY};
use lvbak_core::{
    check_archive, inspect, Archive, ArchiveWriter, CountSource, EncryptedSecret, EntrySize, FormatError,
    InspectOptions, Limits, Manifest, ManifestStats, Ticket,
};
use lvbak_tests::corpus::{self, CorpusLimits};
use lvbak_tests::fixtures;
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Marks each function as a test on both native and wasm32 targets.
macro_rules! tests {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {$(
        $(#[$meta])*
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        fn $name() $body
    )*};
}

fn limits_of(corpus: CorpusLimits) -> Limits {
    Limits {
        max_archive_bytes: corpus.max_archive_bytes,
        max_decompressed_bytes: corpus.max_decompressed_bytes,
        max_line_bytes: corpus.max_line_bytes,
        max_legacy_line_bytes: corpus.max_legacy_line_bytes,
        max_entries: corpus.max_entries,
        max_metadata_bytes: corpus.max_metadata_bytes,
    }
}

fn open(bytes: &[u8]) -> Archive<Cursor<&[u8]>> {
    Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap()
}

fn expected(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

/// Every entry of an archive, read with our reader: (name, bytes), in central order.
fn entries_of(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let archive = open(bytes);
    let names: Vec<String> = archive.entries().iter().map(|e| e.name.clone()).collect();
    names
        .into_iter()
        .enumerate()
        .map(|(index, name)| {
            let mut data = Vec::new();
            archive.open_entry(index).unwrap().read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// The archive re-packed by the crafter, with `change` applied to (name, bytes) pairs.
fn repack(bytes: &[u8], change: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let entries = entries_of(bytes)
        .into_iter()
        .map(|(name, data)| {
            let data = change(&name, data);
            if name.starts_with("files/") {
                RawEntry::stored(&name, &data)
            } else {
                RawEntry::deflated(&name, &data)
            }
        })
        .collect();
    RawZip::new(entries).build()
}

fn secrets_ticket() -> Ticket {
    Ticket::parse(fixtures::SECRETS_TICKET).unwrap()
}

tests! {
    fn every_corpus_case_gets_its_exact_outcome() {
        let limits = limits_of(corpus::LIMITS);
        let mut failures = Vec::new();
        let cases = corpus::cases();
        assert!(cases.len() >= 40, "the corpus shrank to {}", cases.len());
        for case in &cases {
            let outcome = check_archive(Cursor::new(case.bytes.as_slice()), limits).map(|_| ()).map_err(|e| e.code());
            let wanted = case.expected.map_or(Ok(()), Err);
            if outcome != wanted {
                failures.push(format!("{}: wanted {wanted:?}, got {outcome:?}", case.name));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    fn corpus_errors_carry_their_evidence() {
        let limits = limits_of(corpus::LIMITS);
        let case = |name: &str| corpus::cases().into_iter().find(|c| c.name == name).unwrap();
        let error = check_archive(Cursor::new(case("duplicate_names").bytes), limits).unwrap_err();
        assert!(matches!(&error, FormatError::DuplicateEntry { name } if name == "database/settings.ndjson"), "{error}");
        let error = check_archive(Cursor::new(case("zip_bomb_lying_header").bytes), limits).unwrap_err();
        assert!(
            matches!(&error, FormatError::SizeMismatch { claimed: 1000, actual, .. } if *actual > 1000 && *actual <= 1000 + 256 * 1024),
            "{error}"
        );
        let error = check_archive(Cursor::new(case("ndjson_line_over_cap").bytes), limits).unwrap_err();
        assert!(matches!(&error, FormatError::LineTooLong { line: 1, limit: 4096, .. }), "{error}");
        let error = check_archive(Cursor::new(case("invalid_json_line").bytes), limits).unwrap_err();
        assert!(matches!(&error, FormatError::BadJson { line: 2, .. }), "{error}");
    }

    fn fixtures_inspect_to_their_listed_counts() {
        for (name, bytes, description) in fixtures::ARCHIVES {
            let description = expected(description);
            let mut archive = open(bytes);
            let inspection = inspect(&mut archive, InspectOptions::default()).unwrap();
            assert_eq!(inspection.count_source, CountSource::Stats, "{name}");
            assert_eq!(inspection.archive_id, description["manifest"]["archiveId"].as_str().unwrap(), "{name}");
            let rows: BTreeMap<String, u64> = inspection.counts.iter().cloned().collect();
            let listed: BTreeMap<String, u64> = description["rowCountsInArchive"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(table, count)| (table.clone(), count.as_u64().unwrap()))
                .collect();
            assert_eq!(rows, listed, "{name}");
            let vectors: BTreeMap<String, u64> = inspection.vectors.iter().cloned().collect();
            let listed_vectors: BTreeMap<String, u64> = description["lancedbRowCountsInArchive"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(table, count)| (table.clone(), count.as_u64().unwrap()))
                .collect();
            assert_eq!(vectors, listed_vectors, "{name}");
            assert_eq!(inspection.entries as usize, description["entryOrder"].as_array().unwrap().len(), "{name}");
            assert_eq!(inspection.bytes.archive, description["zip"]["archiveBytes"].as_u64().unwrap(), "{name}");
            assert!(inspection.files.values().all(|totals| totals.count == 0), "{name}");
            assert_eq!(Value::from(inspection.manifest.exported_at), description["manifest"]["exportedAt"], "{name}");

            // Counting lines gives the same numbers as the stats trailer.
            let counted = inspect(&mut archive, InspectOptions { count_rows: true }).unwrap();
            assert_eq!(counted.count_source, CountSource::Lines);
            assert_eq!(counted.counts.iter().cloned().collect::<BTreeMap<_, _>>(), listed, "{name}");
            assert!(counted.warnings.iter().all(|w| !w.contains("says")), "{name}: {:?}", counted.warnings);

            // And the whole archive verifies.
            archive.verify_all(|_| {}).unwrap();
        }
    }

    fn minimal_fixture_rows_read_back_exactly() {
        let description = expected(fixtures::MINIMAL_EXPECTED);
        let archive = open(fixtures::MINIMAL);
        for (entry, sample) in description["firstRowSamples"].as_object().unwrap() {
            let index = archive.index_of(entry).unwrap();
            let mut first = None;
            archive
                .for_each_row(index, |_, row| {
                    first.get_or_insert(row);
                    Ok(())
                })
                .unwrap();
            assert_eq!(Value::Object(first.unwrap()), *sample, "{entry}");
        }
    }

    fn vectors_fixture_decodes_to_its_dimension() {
        let archive = open(fixtures::VECTORS_PATCHED);
        assert_eq!(archive.manifest().embedding_config.dimension, Some(8));
        let index = archive.vector_table_entry("embeddings").unwrap();
        let mut rows = 0;
        archive
            .for_each_row(index, |_, row| {
                let encoded = row["vector_b64"].as_str().unwrap();
                assert_eq!(lvbak_core::decode_vector(encoded, "row").unwrap().len(), 8);
                rows += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(rows, 300);
    }

    fn secrets_fixture_ticket_decrypts_to_listed_plaintexts() {
        let description = expected(fixtures::SECRETS_EXPECTED);
        let mut archive = open(fixtures::SECRETS);
        let inspection = inspect(&mut archive, InspectOptions::default()).unwrap();
        assert_eq!(inspection.secrets.count, 3);
        let listed_keys: Vec<String> = serde_json::from_value(description["secretKeys"].clone()).unwrap();
        assert_eq!(inspection.secrets.keys, listed_keys);
        let outcomes = archive.decrypt_secrets(&secrets_ticket()).unwrap();
        let plaintexts = description["secretPlaintexts"].as_object().unwrap();
        assert_eq!(outcomes.len(), plaintexts.len());
        for outcome in outcomes {
            let value = outcome.result.unwrap();
            assert_eq!(Some(value.as_str()), plaintexts[&outcome.key].as_str(), "{}", outcome.key);
        }
    }

    fn wrong_ticket_is_an_archive_mismatch() {
        let mut archive = open(fixtures::SECRETS);
        let wrong = Ticket::parse(fixtures::SECRETS_WRONG_TICKET).unwrap();
        let error = archive.decrypt_secrets(&wrong).err().unwrap();
        assert_eq!(error.code(), "archive_mismatch");
    }

    fn tampered_index_is_a_binding_mismatch() {
        let tampered = repack(fixtures::SECRETS, |name, data| {
            if name != SECRETS_INDEX_ENTRY {
                return data;
            }
            let mut index = SecretsIndex::parse(&data).unwrap();
            index.keys.pop();
            index.to_line()
        });
        let mut archive = open(&tampered);
        assert_eq!(archive.decrypt_secrets(&secrets_ticket()).err().unwrap().code(), "binding_mismatch");
    }

    fn flipped_ciphertext_bit_skips_only_that_record() {
        let flipped = repack(fixtures::SECRETS, |name, data| {
            if name != SECRETS_BLOB_ENTRY {
                return data;
            }
            let text = String::from_utf8(data).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let mut record: EncryptedSecret = serde_json::from_str(&lines[1]).unwrap();
            use base64::Engine as _;
            let engine = base64::engine::general_purpose::STANDARD;
            let mut ciphertext = engine.decode(&record.ciphertext).unwrap();
            ciphertext[3] ^= 0x10;
            record.ciphertext = engine.encode(ciphertext);
            lines[1] = serde_json::to_string(&record).unwrap();
            (lines.join("\n") + "\n").into_bytes()
        });
        let mut archive = open(&flipped);
        let outcomes = archive.decrypt_secrets(&secrets_ticket()).unwrap();
        let failed: Vec<&str> = outcomes.iter().filter(|o| o.result.is_err()).map(|o| o.key.as_str()).collect();
        assert_eq!(failed, vec!["image_gen_connection_9b0210c1-8394-4b45-a5c1-f1349fbad696_api_key"]);
        assert_eq!(outcomes[1].result.as_ref().err(), Some(&SecretSkip::TagMismatch));
        assert_eq!(outcomes.iter().filter(|o| o.result.is_ok()).count(), 2);
    }

    fn written_archives_read_back_and_satisfy_the_zip_crate() {
        let mut manifest = Manifest::new("0b7a3c1e-98f2-4d1b-9c55-7e1f2a3b4c5d", 1_795_313_867);
        manifest.has_encrypted_secrets = true;
        manifest.secrets_count = 1;
        let key = [5u8; 32];
        let records = vec![EncryptedSecret::seal(&key, [1u8; 12], "web_search_api_key", "tvly-123")];
        let index = SecretsIndex::new(&manifest.archive_id, vec!["web_search_api_key".into()]);
        let mut writer = ArchiveWriter::new(Vec::new(), 1_795_313_867, Limits::STANDARD.max_line_bytes);
        writer.write_manifest(&manifest).unwrap();
        writer.start_ndjson("database/settings.ndjson", EntrySize::Small).unwrap();
        for i in 0..50 {
            writer.write_row(&serde_json::json!({"key": format!("k{i}"), "value": "{}", "user_id": "u"})).unwrap();
        }
        writer.start_ndjson("database/messages.ndjson", EntrySize::Small).unwrap();
        let avatar = vec![42u8; 70_000];
        writer.write_file("files/avatars/a.png", &mut avatar.as_slice(), EntrySize::Small).unwrap();
        writer.write_secrets(&index, &records).unwrap();
        let mut stats = ManifestStats::default();
        stats.counts.insert("settings".into(), 50);
        stats.counts.insert("messages".into(), 0);
        writer.write_stats(&stats).unwrap();
        let bytes = writer.finish().unwrap();
        assert!(writer_refuses("../evil"));

        let inspection = check_archive(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap();
        assert_eq!(inspection.rows_of("settings"), Some(50));
        assert_eq!(inspection.files["avatars"].bytes, 70_000);
        let mut archive = open(&bytes);
        let ticket = Ticket::issue(&manifest.archive_id, &key, &index.keys, 1, None);
        let outcomes = archive.decrypt_secrets(&ticket).unwrap();
        assert_eq!(outcomes[0].result.as_ref().ok().map(|s| s.as_str()), Some("tvly-123"));

        // The zip crate's reader sees the same entries with the same bytes.
        let ours = entries_of(&bytes);
        let mut theirs = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
        assert_eq!(theirs.len(), ours.len());
        for (name, data) in ours {
            let mut file = theirs.by_name(&name).unwrap();
            let mut their_data = Vec::new();
            file.read_to_end(&mut their_data).unwrap();
            assert_eq!(their_data, data, "{name}");
        }
    }

    fn fixtures_read_the_same_through_the_zip_crate() {
        for (name, bytes, _) in fixtures::ARCHIVES {
            let mut theirs = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
            for (entry, data) in entries_of(bytes) {
                let mut their_data = Vec::new();
                theirs.by_name(&entry).unwrap().read_to_end(&mut their_data).unwrap();
                assert_eq!(their_data, data, "{name}: {entry}");
            }
        }
    }

    fn whatever_we_accept_the_zip_crate_accepts() {
        for case in corpus::cases().into_iter().filter(|c| c.expected.is_none()) {
            let theirs = zip::ZipArchive::new(Cursor::new(case.bytes.as_slice()));
            assert!(theirs.is_ok(), "{}: {:?}", case.name, theirs.err());
        }
    }
}

fn writer_refuses(name: &str) -> bool {
    let mut writer = ArchiveWriter::new(Vec::new(), 0, 1024);
    writer.start_ndjson(name, EntrySize::Small).is_err()
}

/// An archive for the explorer: a character with an avatar file, one whose picture is a
/// gallery image with a thumbnail, a chat with a branch, and a world book with entries.
fn explorer_archive() -> Vec<u8> {
    let line = |rows: &[Value]| rows.iter().map(|row| format!("{row}\n")).collect::<String>();
    let (mira, ash, chat, branch, book) = ("c-mira", "c-ash", "chat-1", "chat-2", "wb-1");
    let image = "0a0b0c0d-0000-4000-8000-000000000001";
    let messages: Vec<Value> = (0..6)
        .rev()
        .map(|n| {
            let swipes = if n == 2 { serde_json::json!(["first take", "second take", "third take"]) } else { serde_json::json!([]) };
            serde_json::json!({"id": format!("m{n}"), "chat_id": chat, "index_in_chat": n, "is_user": n % 2, "name": "Mira",
                "content": format!("line {n} of the Harbour watch{}", if n == 4 { ", at the Café Élan" } else { "" }), "swipe_id": if n == 2 { 1 } else { 0 },
                "swipes": swipes.to_string()})
        })
        .chain([serde_json::json!({"id": "b0", "chat_id": branch, "index_in_chat": 0, "is_user": 0, "name": "Mira",
            "content": "the other telling", "swipes": "[]"})])
        .collect();
    let entries = vec![
        RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])),
        RawEntry::deflated(
            "database/characters.ndjson",
            line(&[
                serde_json::json!({"id": mira, "name": "Mira", "avatar_path": "avatars/mira.png", "description": "é".repeat(400)}),
                serde_json::json!({"id": ash, "name": "Ash", "avatar_path": null, "image_id": image, "description": "short"}),
            ])
            .as_bytes(),
        ),
        RawEntry::deflated(
            "database/images.ndjson",
            line(&[serde_json::json!({"id": image, "filename": format!("{image}.png"), "original_filename": "ash.png",
                "width": 4, "height": 3, "has_thumbnail": 1})])
            .as_bytes(),
        ),
        RawEntry::deflated(
            "database/chats.ndjson",
            line(&[
                serde_json::json!({"id": chat, "character_id": mira, "name": "Harbour night", "metadata": "{}"}),
                serde_json::json!({"id": branch, "character_id": mira, "name": "Harbour night — Branch at #2",
                    "metadata": serde_json::json!({"branched_from": chat, "branch_at_message": "m2"}).to_string()}),
                serde_json::json!({"id": "chat-3", "character_id": null, "name": "Another telling",
                    "metadata": serde_json::json!({"branched_from": chat, "branch_at_message": "m2", "group": true,
                        "character_ids": [mira, ash, "c-gone"]}).to_string()}),
            ])
            .as_bytes(),
        ),
        RawEntry::deflated("database/messages.ndjson", line(&messages).as_bytes()),
        RawEntry::deflated(
            "database/world_books.ndjson",
            line(&[serde_json::json!({"id": book, "name": "Harbour lore", "description": "Places"})]).as_bytes(),
        ),
        RawEntry::deflated(
            "database/world_book_entries.ndjson",
            line(&[
                serde_json::json!({"id": "e1", "world_book_id": book, "key": "[\"bell\",\"fog\"]", "content": "The bell rings twice.", "disabled": 0}),
                serde_json::json!({"id": "e2", "world_book_id": "elsewhere", "key": "[]", "content": "not this book"}),
            ])
            .as_bytes(),
        ),
        RawEntry::stored("files/avatars/mira.png", b"\x89PNG mira"),
        RawEntry::stored(&format!("files/images/{image}.png"), b"\x89PNG ash"),
        RawEntry::stored(&format!("files/thumbnails/{image}_thumb_sm_v2.webp"), b"RIFF ash small"),
    ];
    RawZip::new(entries).build()
}

tests! {
    fn the_explorer_indexes_a_fixture_with_its_swipes() {
        let mut archive = open(fixtures::MINIMAL);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let listed = |table: &str| {
            let archive = open(fixtures::MINIMAL);
            archive.table_entry(table).map_or(0, |entry| archive.ndjson_lines(entry).unwrap().count().unwrap())
        };
        assert_eq!(index.characters.len() as u64, listed("characters"));
        assert_eq!(index.personas.len() as u64, listed("personas"));
        assert_eq!(index.world_books.len() as u64, listed("world_books"));
        assert_eq!(index.chats.len(), 1);
        let chat = &index.chats[0];
        assert_eq!(u64::from(chat.messages), listed("messages"));
        assert_eq!(chat.character_name.as_deref(), Some("Elara Voss"));
        let messages = index.chat_messages(&mut archive, &chat.id).unwrap();
        assert_eq!(messages.len(), 20);
        assert_eq!(messages.iter().map(|m| m.index).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
        assert!(messages.iter().any(|m| m.swipes.len() == 3), "the fixture's 3-swipe message");
        assert_eq!(index.world_book_entries(&mut archive, &index.world_books[0].id).unwrap().len() as u32, index.world_books[0].entries);
    }

    fn the_explorer_finds_pictures_branches_and_entries() {
        let bytes = explorer_archive();
        let mut archive = open(&bytes);
        let mut tables = Vec::new();
        let index = ExploreIndex::build(&mut archive, |table| tables.push(table.to_string())).unwrap();
        assert!(tables.contains(&"messages".to_string()), "{tables:?}");
        let mira = &index.characters[0];
        assert_eq!(mira.avatar.as_deref(), Some("files/avatars/mira.png"));
        assert_eq!(mira.description.chars().count(), lvbak_core::explore::CARD_TEXT + 1, "clipped, with an ellipsis");
        assert_eq!(mira.chats, 2);
        let image = "0a0b0c0d-0000-4000-8000-000000000001";
        assert_eq!(index.characters[1].avatar, Some(format!("files/images/{image}.png")));
        assert_eq!(index.images[0].thumbnail, Some(format!("files/thumbnails/{image}_thumb_sm_v2.webp")));
        assert_eq!(index.images[0].name, "ash.png");
        assert_eq!(index.file(&mut archive, "files/avatars/mira.png").unwrap().unwrap(), b"\x89PNG mira");
        assert_eq!(index.file(&mut archive, "database/chats.ndjson").unwrap(), None, "only pictures are handed out");
        assert_eq!(index.file(&mut archive, "files/avatars/none.png").unwrap(), None);

        let branch = index.chats.iter().find(|c| c.id == "chat-2").unwrap();
        assert_eq!(branch.branched_from.as_deref(), Some("chat-1"));
        assert_eq!(branch.branch_at_index, Some(2));
        let second = index.chats.iter().find(|c| c.id == "chat-3").unwrap();
        assert_eq!(second.branch_at_index, Some(2), "two branches at one message");
        assert_eq!(second.members, ["Mira", "Ash", "c-gone"], "a group chat's members, by name where known");
        assert!(branch.members.is_empty());
        let messages = index.chat_messages(&mut archive, "chat-1").unwrap();
        assert_eq!(messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m0", "m1", "m2", "m3", "m4", "m5"]);
        assert_eq!(messages[2].swipes, ["first take", "second take", "third take"]);
        assert_eq!(messages[2].swipe_id, 1);
        assert_eq!(messages[0].swipes, ["line 0 of the Harbour watch"], "no swipes recorded: the content");
        assert!(messages[1].is_user && !messages[0].is_user);
        assert_eq!(index.chat_messages(&mut archive, "chat-2").unwrap().len(), 1);

        let entries = index.world_book_entries(&mut archive, "wb-1").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].keys, ["bell", "fog"]);

        let mut hits = Vec::new();
        index.search(&mut archive, "HARBOUR", 100, |hit| {
            hits.push(hit);
            true
        })
        .unwrap();
        let kinds: Vec<String> = hits.iter().map(|h| serde_json::to_value(h).unwrap()["kind"].as_str().unwrap().to_string()).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "chat").count(), 2, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "message").count(), 6, "{kinds:?}");
        let mut first = 0;
        let handed = index.search(&mut archive, "harbour", 3, |_| {
            first += 1;
            true
        }).unwrap();
        assert_eq!((handed, first), (3, 3), "the limit stops the search");
        assert_eq!(index.search(&mut archive, "\"chat_id\"", 10, |_| true).unwrap(), 0, "keys of the row are not text");
        let mut accented = Vec::new();
        index
            .search(&mut archive, "CAFÉ élan", 10, |hit| {
                accented.push(hit);
                true
            })
            .unwrap();
        let [lvbak_core::explore::SearchHit::Message { snippet, message_id, .. }] = accented.as_slice() else {
            panic!("{accented:?}")
        };
        assert_eq!(message_id, "m4");
        assert!(snippet.ends_with("Café Élan"), "{snippet}");
        assert!(index.stats.index_bytes > 0 && index.stats.rows == 16, "{:?}", index.stats);
    }
}

/// Collects what an upload sends, as the server would receive it.
#[derive(Default)]
struct Captured {
    batches: Vec<Vec<u8>>,
}

impl lvbak_core::upload::BatchSink for Captured {
    fn send(&mut self, number: u64, batch: &[u8]) -> Result<(), FormatError> {
        assert_eq!(number, self.batches.len() as u64, "batches are numbered in order");
        self.batches.push(batch.to_vec());
        Ok(())
    }
    fn progress(&mut self, _: &lvbak_core::upload::UploadProgress) {}
    fn vectors_accepted(&mut self) -> Result<bool, FormatError> {
        Ok(false)
    }
}

tests! {
    fn an_upload_bundles_small_batches_and_ends_each_stream_only_in_its_last_segment() {
        use lvbak_core::batch::{inflate_ndjson, Batch, BUNDLE_BYTES, BUNDLE_FRAME_BYTES};
        use lvbak_core::row_stream::RowStream;
        // A megabyte and a half of lines that deflate to a few kilobytes: the reader has read
        // the whole entry long before its first batch of lines is cut.
        let same: String = (0..1_500).map(|n| format!("{{\"id\":\"m{n}\",\"content\":\"{}\"}}\n", "ha".repeat(500))).collect();
        let books: String = (0..3).map(|n| format!("{{\"id\":\"wb{n}\",\"name\":\"Book {n}\"}}\n")).collect();
        let presets = "{\"id\":\"p1\",\"name\":\"Preset\"}\n";
        // Two and a half megabytes that hardly deflate: several segments of a stream.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: String = (0..2_500)
            .map(|n| {
                let words: String = (0..64)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        format!("{state:016x}")
                    })
                    .collect();
                format!("{{\"id\":\"c{n}\",\"name\":\"{words}\"}}\n")
            })
            .collect();
        let archive = RawZip::new(vec![
            RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])),
            RawEntry::deflated("database/world_books.ndjson", books.as_bytes()),
            RawEntry::deflated("database/presets.ndjson", presets.as_bytes()),
            RawEntry::deflated("database/messages.ndjson", same.as_bytes()),
            RawEntry::deflated("database/characters.ndjson", noise.as_bytes()),
            RawEntry::stored("files/theme-assets/b/a.css", b"body{}"),
            RawEntry::stored("files/theme-assets/b/b.css", b"p{}"),
        ])
        .build();
        let reader = open(&archive);
        let mut sink = Captured::default();
        let report = lvbak_core::upload::upload_batches(&reader, Default::default(), &mut sink).unwrap();
        assert_eq!(report.batches, sink.batches.len() as u64);

        // Read back as the server does: every part of every bundle, streams through a
        // RowStream each, which refuses a stream that ends before its last segment.
        let (mut lines, mut files, mut parts) = (BTreeMap::<String, u64>::new(), Vec::new(), 0);
        let mut segments = BTreeMap::<String, u64>::new();
        let mut streams = BTreeMap::<String, RowStream>::new();
        for body in &sink.batches {
            let batch = Batch::decode(body).unwrap();
            if let Batch::Bundle(inner) = &batch {
                assert!(inner.len() > 1 && body.len() <= BUNDLE_BYTES + BUNDLE_FRAME_BYTES, "{} parts", inner.len());
            }
            for part in batch.parts() {
                parts += 1;
                match part {
                    Batch::RowStream { table, offset, last, deflated } => {
                        *segments.entry(table.clone()).or_default() += 1;
                        let stream = streams.entry(table.clone()).or_insert_with(|| RowStream::new(table));
                        let segment = stream.segment(*offset, deflated, *last, 1 << 20, |_| Ok(())).unwrap();
                        let mut segment_lines = lvbak_core::NdjsonLines::new(
                            std::io::BufReader::new(segment),
                            "database/x.ndjson",
                            1 << 20,
                        );
                        while segment_lines.next_line().unwrap().is_some() {
                            *lines.entry(table.clone()).or_default() += 1;
                        }
                    }
                    Batch::Rows { table, deflated, .. } => {
                        let text = inflate_ndjson(deflated).unwrap();
                        *lines.entry(table.clone()).or_default() += text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
                    }
                    Batch::FileChunk { name, bytes, .. } => files.push((name.clone(), bytes.clone())),
                    other => panic!("nothing else was in the archive: {other:?}"),
                }
            }
        }
        assert!(streams.values().all(RowStream::ended), "every stream ended");
        let expected = [("characters", 2_500), ("messages", 1_500), ("presets", 1), ("world_books", 3)];
        assert_eq!(lines, expected.map(|(table, count)| (table.to_string(), count)).into());
        assert_eq!(segments["characters"], 2, "a megabyte first, then the rest: {segments:?}");
        assert_eq!(segments["messages"], 1, "the read-through stream went whole");
        assert_eq!(files, vec![("b/a.css".to_string(), b"body{}".to_vec()), ("b/b.css".to_string(), b"p{}".to_vec())]);
        // The small tables and files went together: the characters' segments each alone.
        assert_eq!(parts, 5 + segments["characters"] as usize);
        assert_eq!(sink.batches.len(), segments["characters"] as usize + 2, "{parts} parts");
    }
}
