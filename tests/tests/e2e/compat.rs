//! Compatibility with Lumiverse 1.1, value for value: every fixture imported and exported
//! again gives back every row (column by column, and byte for byte where nothing was
//! rewritten), every file and every vector; columns an archive has and this schema lacks
//! are reported, never dropped silently; numbered sessions stay unique per user.

use std::collections::{BTreeMap, BTreeSet};

use lvbak_core::registry::{TableSpec, OWNER_COLUMNS, TABLES};
use lvbak_tests::fixtures;
use serde_json::{json, Map, Value};

use crate::export::entries;
use crate::import::{archive_with_tables, import};
use crate::support::{ok_bytes, on_each_backend, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    every_lumiverse_fixture_comes_back_value_for_value,
    columns_this_schema_lacks_are_reported_not_dropped_silently,
    dream_weaver_sessions_keep_their_numbers_and_taken_ones_get_the_next,
);

/// The columns an import may rewrite, for a fresh account: the registry's own list
/// (`TableSpec::rewritten_columns`), less the re-vectorization resets when vectors were
/// restored and less the numbered column (nothing is taken in a fresh account).
fn rewritten(spec: &TableSpec, vectors_restored: bool) -> BTreeSet<&'static str> {
    let mut columns: BTreeSet<&str> = spec.rewritten_columns().into_iter().collect();
    if vectors_restored {
        for (column, _) in spec.revectorize {
            columns.remove(column);
        }
    }
    if let Some(column) = spec.numbered {
        columns.remove(column);
    }
    columns
}

/// Rows of one NDJSON entry by primary key (owner columns left out of the key, as they
/// are rewritten): the parsed row and its line as written.
fn rows_by_key(spec: &TableSpec, bytes: &[u8]) -> BTreeMap<String, (Map<String, Value>, String)> {
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(bytes.to_vec()).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let row: Map<String, Value> = serde_json::from_str(line).unwrap();
        let key: Vec<String> = spec
            .primary_key
            .iter()
            .filter(|column| !OWNER_COLUMNS.contains(column))
            .map(|column| row.get(*column).map(Value::to_string).unwrap_or_default())
            .collect();
        let previous = rows.insert(key.join("|"), (row, line.to_string()));
        assert!(previous.is_none(), "{}: two rows with one key", spec.name);
    }
    rows
}

/// The user id an archive's rows name (the exporting account).
fn archive_user(all: &BTreeMap<String, Vec<u8>>) -> String {
    let settings = String::from_utf8_lossy(&all["database/settings.ndjson"]).lines().next().unwrap().to_string();
    serde_json::from_str::<Value>(&settings).unwrap()["user_id"].as_str().unwrap().to_string()
}

async fn export_of(server: &TestServer, account: &Account) -> Vec<u8> {
    ok_bytes(server.get(account, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await
}

async fn every_lumiverse_fixture_comes_back_value_for_value(backend: Backend) {
    let server = TestServer::start_on(backend, "compat-fixtures").await;
    for (name, bytes, _) in fixtures::ARCHIVES {
        let account = server.account(&format!("owner-{name}"), None).await;
        let ticket = (name == "secrets").then_some(fixtures::SECRETS_TICKET);
        let status = import(&server, &account, bytes, ticket).await;
        assert_eq!(status["status"], "complete", "{name}: {status}");
        assert_eq!(status["droppedColumns"], json!({}), "{name}: {status}");
        let restored = status["vectorSummary"]["restored"] == true;
        assert_eq!(restored, name == "vectors-patched", "{name}: {status}");
        let (before, after) = (entries(bytes), entries(&export_of(&server, &account).await));
        let (source_user, importer) = (archive_user(&before), account.user.id.clone());

        let mut rows_compared = 0;
        let mut lines_identical = 0;
        for spec in TABLES {
            let entry = lvbak_core::table_entry_name(spec.name);
            let (old, new) = (rows_by_key(spec, &before[&entry]), rows_by_key(spec, &after[&entry]));
            assert_eq!(old.keys().collect::<Vec<_>>(), new.keys().collect::<Vec<_>>(), "{name}: keys of {}", spec.name);
            let rewritten = rewritten(spec, restored);
            for (key, (old_row, old_line)) in &old {
                let (new_row, new_line) = &new[key];
                let columns = |row: &Map<String, Value>| row.keys().cloned().collect::<Vec<_>>();
                assert_eq!(columns(old_row), columns(new_row), "{name}: columns of {} {key}", spec.name);
                let mut untouched = true;
                for (column, value) in old_row {
                    if OWNER_COLUMNS.contains(&column.as_str()) {
                        assert_eq!(new_row[column], json!(importer), "{name}: {}.{column} of {key}", spec.name);
                    } else if rewritten.contains(column.as_str()) {
                        untouched &= new_row[column] == *value;
                    } else {
                        assert_eq!(new_row[column], *value, "{name}: {}.{column} of {key}", spec.name);
                    }
                }
                // Nothing but the owner rewritten: the line is Lumiverse's, byte for byte
                // (key order, number text, string escapes).
                if untouched {
                    let owner = |id: &str| format!("\"{id}\"");
                    assert_eq!(
                        new_line.replace(&owner(&importer), &owner(&source_user)),
                        *old_line,
                        "{name}: line of {} {key}",
                        spec.name
                    );
                    lines_identical += 1;
                }
                rows_compared += 1;
            }
        }
        eprintln!("{name}: {rows_compared} rows compared, {lines_identical} lines byte-identical");
        assert!(rows_compared >= 30, "{name}: {rows_compared} rows");
        assert!(lines_identical * 10 >= rows_compared * 9, "{name}: {lines_identical} of {rows_compared}");

        let files = |all: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
            all.iter().filter(|(n, _)| n.starts_with("files/")).map(|(n, b)| (n.clone(), b.clone())).collect()
        };
        // (Lumiverse 1.1's fixtures carry no files; the lvbak → lvbak round trip in
        // `import.rs` proves files byte for byte.)
        assert_eq!(files(&before), files(&after), "{name}: files");

        for table in ["embeddings", "embeddings_world_books"] {
            let entry = format!("lancedb/{table}.ndjson");
            let vectors = |bytes: &[u8], user: &str| -> BTreeMap<String, Map<String, Value>> {
                String::from_utf8_lossy(bytes)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|line| {
                        let mut row: Map<String, Value> = serde_json::from_str(line).unwrap();
                        let id = row.remove("id").unwrap();
                        let rest = id.as_str().unwrap().strip_prefix(&format!("{user}:")).unwrap().to_string();
                        (rest, row)
                    })
                    .collect()
            };
            let old = vectors(before.get(&entry).map_or(&[][..], Vec::as_slice), &source_user);
            let new = vectors(after.get(&entry).map_or(&[][..], Vec::as_slice), &importer);
            if restored {
                assert_eq!(old, new, "{name}: {table}");
                assert!(!old.is_empty(), "{name}: {table}");
            } else {
                assert!(new.is_empty(), "{name}: {table} restored from an archive without vectors");
            }
        }
    }
}

/// An archive row with a column this schema lacks, as a newer Lumiverse would write.
pub fn character_with_extra_columns(id: &str, owner: &str) -> String {
    json!({"id": id, "name": "Wren", "description": "a cartographer", "personality": "", "scenario": "",
        "first_mes": "", "mes_example": "", "creator": "", "creator_notes": "", "system_prompt": "",
        "post_history_instructions": "", "tags": "[]", "alternate_greetings": "[]", "extensions": "{}",
        "created_at": 1_700_000_000, "updated_at": 1_700_000_000, "user_id": owner,
        "voice_profile": "alto", "mood_json": {"calm": 0.5}})
    .to_string()
}

async fn columns_this_schema_lacks_are_reported_not_dropped_silently(backend: Backend) {
    let server = TestServer::start_on(backend, "compat-unknown-columns").await;
    let alice = server.account("alice", None).await;
    let id = "5a0c3b1e-8d2f-4e6a-9b7c-0d1e2f3a4b5c";
    let archive = archive_with_tables(&[("characters", character_with_extra_columns(id, "someone"))]);
    let status = import(&server, &alice, &archive, None).await;
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["summary"]["characters"]["imported"], 1, "{status}");
    assert_eq!(status["droppedColumns"], json!({"characters": ["mood_json", "voice_profile"]}), "{status}");
    // The known columns were kept.
    let rows = server.rows_where("characters", "id", id);
    assert_eq!(rows[0]["description"], "a cartographer");
    assert_eq!(rows[0]["user_id"], json!(alice.user.id));
}

async fn dream_weaver_sessions_keep_their_numbers_and_taken_ones_get_the_next(backend: Backend) {
    let server = TestServer::start_on(backend, "compat-sessions").await;
    let alice = server.account("alice", None).await;
    let bob = server.account("bob", None).await;
    let session = |id: &str, number: Option<i64>| {
        let mut row = json!({"id": id, "user_id": "x", "created_at": 1_700_000_000, "updated_at": 1_700_000_000,
            "dream_text": "a lighthouse", "status": "draft", "workspace_kind": "scenario"});
        if let Some(number) = number {
            row["session_number"] = json!(number);
        }
        row.to_string()
    };
    let uuid = |n: u32| format!("00000000-0000-4000-8000-{n:012x}");
    let first = [session(&uuid(1), Some(7)), session(&uuid(2), Some(7)), session(&uuid(3), None)].join("\n");
    let status = import(&server, &alice, &archive_with_tables(&[("dream_weaver_sessions", first)]), None).await;
    assert_eq!(status["summary"]["dream_weaver_sessions"]["imported"], 3, "{status}");
    let numbers = |account: &Account| -> BTreeMap<String, i64> {
        server
            .rows_where("dream_weaver_sessions", "user_id", &account.user.id)
            .iter()
            .map(|row| (row["id"].as_str().unwrap().to_string(), row["session_number"].as_i64().unwrap()))
            .collect()
    };
    // The first 7 keeps its number; the second 7 and the missing one get 8 and 9.
    let mut got: Vec<i64> = numbers(&alice).values().copied().collect();
    got.sort_unstable();
    assert_eq!(got, [7, 8, 9]);
    assert_eq!(numbers(&alice)[&uuid(1)], 7);
    // Another user's numbers are their own: bob's session 7 keeps 7.
    let status =
        import(&server, &bob, &archive_with_tables(&[("dream_weaver_sessions", session(&uuid(4), Some(7)))]), None)
            .await;
    assert_eq!(status["summary"]["dream_weaver_sessions"]["imported"], 1, "{status}");
    assert_eq!(numbers(&bob), BTreeMap::from([(uuid(4), 7)]));
    // A re-import into alice's account skips all three and keeps their numbers.
    let again = [session(&uuid(1), Some(7)), session(&uuid(2), Some(7)), session(&uuid(3), None)].join("\n");
    let status = import(&server, &alice, &archive_with_tables(&[("dream_weaver_sessions", again)]), None).await;
    assert_eq!(status["summary"]["dream_weaver_sessions"]["skipped"], 3, "{status}");
    let mut got: Vec<i64> = numbers(&alice).values().copied().collect();
    got.sort_unstable();
    assert_eq!(got, [7, 8, 9]);
}
