//! Restoring into any account of a shared instance: rows whose ids belong to another user
//! are imported as copies under new ids, with every reference — columns, ids inside JSON
//! text, file names, vectors — following; re-imports stay idempotent; nobody can stop a
//! restore by importing its ids first; eight accounts restoring one archive at once all end
//! up whole.

use std::collections::{BTreeMap, BTreeSet};

use lvbak_core::registry::{table_spec, Ownership, OWNER_COLUMNS, TABLES};
use lvbak_server::seed::SeedOptions;
use lvbak_tests::fixtures;
use serde_json::{json, Map, Value};

use crate::export::{entries, ndjson, owned_rows};
use crate::import::import;
use crate::support::{ok_bytes, on_each_backend, small_seed, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    one_archive_restores_fully_into_two_accounts_and_again_adds_nothing,
    importing_your_ids_first_cannot_stop_your_restore,
    eight_accounts_restoring_one_archive_at_once_all_end_whole,
);

/// Rows per table of an archive.
fn archive_counts(bytes: &[u8]) -> BTreeMap<String, usize> {
    entries(bytes)
        .iter()
        .filter_map(|(name, data)| {
            let table = name.strip_prefix("database/")?.strip_suffix(".ndjson")?;
            table_spec(table).map(|_| (table.to_string(), ndjson(data).len()))
        })
        .collect()
}

/// Rows per table an account holds, read from the database by ownership.
fn account_counts(server: &TestServer, account: &Account) -> BTreeMap<String, usize> {
    TABLES.iter().map(|spec| (spec.name.to_string(), owned_rows(server, spec.name, &account.user.id).len())).collect()
}

fn ids(server: &TestServer, account: &Account, table: &str) -> BTreeSet<String> {
    owned_rows(server, table, &account.user.id)
        .iter()
        .filter_map(|row| row.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Every string that looks like an id (a UUID anywhere in it) replaced by `<id>`, owner
/// columns dropped: a row's values apart from ids.
fn without_ids(row: &Map<String, Value>) -> String {
    fn scrub(text: &str) -> String {
        let mut out = String::new();
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let window = bytes.get(at..at + 36);
            let is_uuid = window.is_some_and(|w| {
                w.iter()
                    .enumerate()
                    .all(|(i, b)| if [8, 13, 18, 23].contains(&i) { *b == b'-' } else { b.is_ascii_hexdigit() })
            });
            if is_uuid {
                out.push_str("<id>");
                at += 36;
            } else {
                let next = text[at..].chars().next().unwrap();
                out.push(next);
                at += next.len_utf8();
            }
        }
        out
    }
    let kept: Map<String, Value> = row
        .iter()
        .filter(|(column, _)| !OWNER_COLUMNS.contains(&column.as_str()))
        .map(|(column, value)| (column.clone(), value.as_str().map_or(value.clone(), |text| json!(scrub(text)))))
        .collect();
    Value::Object(kept).to_string()
}

/// Per table, the rows of an archive apart from ids, as a sorted list.
fn values_apart_from_ids(bytes: &[u8]) -> BTreeMap<String, Vec<String>> {
    entries(bytes)
        .iter()
        .filter_map(|(name, data)| {
            let table = name.strip_prefix("database/")?.strip_suffix(".ndjson")?;
            table_spec(table)?;
            let mut rows: Vec<String> = ndjson(data).iter().map(|row| without_ids(row.as_object().unwrap())).collect();
            rows.sort();
            Some((table.to_string(), rows))
        })
        .collect()
}

async fn export_of(server: &TestServer, account: &Account) -> Vec<u8> {
    ok_bytes(server.get(account, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await
}

fn sum(status: &Value, field: &str) -> u64 {
    status["summary"].as_object().unwrap().values().map(|counts| counts[field].as_u64().unwrap_or(0)).sum()
}

/// `account`'s rows point at `account`'s rows only: each reference and parent column,
/// the active chat setting, chat metadata's persona, greetings' characters.
fn assert_references_are_own(server: &TestServer, account: &Account) {
    for spec in TABLES {
        let rows = owned_rows(server, spec.name, &account.user.id);
        let mut columns: Vec<(&str, &str)> = spec.references.iter().map(|r| (r.column, r.table)).collect();
        if let Ownership::Parent { parent_table, column } = spec.ownership {
            columns.push((column, parent_table));
        }
        for (column, target) in columns {
            let own = ids(server, account, target);
            for row in &rows {
                if let Some(id) = row.get(column).and_then(Value::as_str) {
                    assert!(
                        own.contains(id),
                        "{}.{column} = {id} is not {}'s {target}",
                        spec.name,
                        account.user.username
                    );
                }
            }
        }
    }
    let settings = owned_rows(server, "settings", &account.user.id);
    let active = settings.iter().find(|row| row["key"] == "activeChatId").unwrap();
    let active: String = serde_json::from_str(active["value"].as_str().unwrap()).unwrap();
    assert!(ids(server, account, "chats").contains(&active), "activeChatId {active}");
    for chat in owned_rows(server, "chats", &account.user.id) {
        let metadata: Value = serde_json::from_str(chat["metadata"].as_str().unwrap()).unwrap();
        if let Some(persona) = metadata["persona_id"].as_str() {
            assert!(ids(server, account, "personas").contains(persona), "chat metadata persona {persona}");
        }
    }
    let greetings = owned_rows(server, "messages", &account.user.id)
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m["extra"].as_str().unwrap_or("{}")).ok())
        .filter_map(|extra| extra["greeting_character_id"].as_str().map(str::to_string))
        .collect::<Vec<_>>();
    assert!(!greetings.is_empty());
    for character in greetings {
        assert!(ids(server, account, "characters").contains(&character), "greeting character {character}");
    }
}

async fn one_archive_restores_fully_into_two_accounts_and_again_adds_nothing(backend: Backend) {
    let server = TestServer::start_on(backend, "tenancy-two").await;
    let alice = server.account("alice", None).await;
    let bob = server.account("bob", None).await;
    let archive = fixtures::VECTORS_PATCHED;
    let expected = archive_counts(archive);

    let first = import(&server, &alice, archive, None).await;
    assert_eq!(first["status"], "complete", "{first}");
    assert_eq!(sum(&first, "remapped"), 0, "{first}");
    let second = import(&server, &bob, archive, None).await;
    assert_eq!(second["status"], "complete", "{second}");
    assert_eq!((sum(&second, "skipped"), sum(&second, "rejected")), (0, 0), "{second}");
    assert_eq!(second["summary"]["characters"]["remapped"], expected["characters"] as u64, "{second}");
    assert_eq!(second["summary"]["messages"]["remapped"], expected["messages"] as u64, "{second}");
    let notice = second["notices"][0].as_str().unwrap_or_default().to_string();
    assert!(notice.contains("already existed in another account on this server"), "{second}");

    for account in [&alice, &bob] {
        let held = account_counts(&server, account);
        for (table, rows) in &expected {
            assert_eq!(held[table], *rows, "{}: {table}", account.user.username);
        }
        assert_references_are_own(&server, account);
    }
    // Nothing of alice's is bob's.
    for table in ["characters", "chats", "messages", "world_book_entries"] {
        assert!(ids(&server, &alice, table).is_disjoint(&ids(&server, &bob, table)), "{table}");
    }

    // Vectors came with them, attached to each account's own chunks and entries.
    for account in [&alice, &bob] {
        let exported = entries(&export_of(&server, account).await);
        let original = entries(archive);
        for (table, source_table, owner_table) in [
            ("embeddings", "databank_chunks", "databanks"),
            ("embeddings_world_books", "world_book_entries", "world_books"),
        ] {
            let entry = format!("lancedb/{table}.ndjson");
            let rows = ndjson(&exported[&entry]);
            assert_eq!(rows.len(), ndjson(&original[&entry]).len(), "{table}");
            let sources = ids(&server, account, source_table);
            let owners = ids(&server, account, owner_table);
            let chats = ids(&server, account, "chats");
            for row in rows {
                let source = row["source_id"].as_str().unwrap();
                let owner = row["owner_id"].as_str().unwrap();
                assert!(row["id"].as_str().unwrap().starts_with(&format!("{}:", account.user.id)));
                // The fixture's ids that are not UUIDs (its driver's `chunk-0`…) are nobody's.
                if source.len() == 36 {
                    assert!(sources.contains(source), "{table} source {source}");
                }
                assert!(owners.contains(owner) || chats.contains(owner), "{table} owner {owner}");
            }
        }
    }

    // Bob's account, exported, holds the archive's values apart from ids, and a fresh
    // instance takes it whole.
    let bobs = export_of(&server, &bob).await;
    assert_eq!(values_apart_from_ids(&bobs), values_apart_from_ids(archive));
    let elsewhere = TestServer::start_on(backend, "tenancy-elsewhere").await;
    let carol = elsewhere.account("carol", None).await;
    let moved = import(&elsewhere, &carol, &bobs, None).await;
    assert_eq!((sum(&moved, "skipped"), sum(&moved, "rejected"), sum(&moved, "remapped")), (0, 0, 0), "{moved}");
    assert_eq!(account_counts(&elsewhere, &carol), account_counts(&server, &bob));

    // The same archive again, into either account: nothing new.
    for account in [&alice, &bob] {
        let again = import(&server, account, archive, None).await;
        assert_eq!(again["status"], "complete", "{again}");
        assert_eq!((sum(&again, "imported"), sum(&again, "remapped"), sum(&again, "rejected")), (0, 0, 0), "{again}");
        for (table, rows) in &expected {
            assert_eq!(account_counts(&server, account)[table], *rows, "{table} after a re-import");
        }
    }
}

async fn importing_your_ids_first_cannot_stop_your_restore(backend: Backend) {
    // The victim's backup, made on another instance (with files: avatars and images).
    let source = TestServer::start_on(backend, "tenancy-source").await;
    let victim_then = source.account("victim", Some(small_seed())).await;
    let backup = export_of(&source, &victim_then).await;
    let expected = archive_counts(&backup);
    let files_in_backup: BTreeSet<Vec<u8>> =
        entries(&backup).into_iter().filter(|(name, _)| name.starts_with("files/")).map(|(_, bytes)| bytes).collect();
    assert!(files_in_backup.len() >= 3);

    let server = TestServer::start_on(backend, "tenancy-squat").await;
    let attacker = server.account("attacker", None).await;
    let victim = server.account("victim", None).await;
    let squatted = import(&server, &attacker, &backup, None).await;
    assert_eq!(squatted["status"], "complete", "{squatted}");
    let restored = import(&server, &victim, &backup, None).await;
    assert_eq!(restored["status"], "complete", "{restored}");
    assert_eq!((sum(&restored, "skipped"), sum(&restored, "rejected")), (0, 0), "{restored}");
    assert!(sum(&restored, "remapped") > 0);
    assert_eq!(restored["fileSummary"]["rejected"], 0, "{restored}");
    let held = account_counts(&server, &victim);
    for (table, rows) in &expected {
        assert_eq!(held[table], *rows, "{table}");
    }
    // Every file came back, under the names the victim's rows give them.
    let exported = entries(&export_of(&server, &victim).await);
    let files_now: BTreeSet<Vec<u8>> =
        exported.iter().filter(|(name, _)| name.starts_with("files/")).map(|(_, bytes)| bytes.clone()).collect();
    assert_eq!(files_now, files_in_backup);
    for image in owned_rows(&server, "images", &victim.user.id) {
        let (id, file) = (image["id"].as_str().unwrap(), image["filename"].as_str().unwrap());
        assert!(file.starts_with(id), "image {id} names {file}");
        assert!(exported.contains_key(&format!("files/images/{file}")), "{file}");
    }
    for character in owned_rows(&server, "characters", &victim.user.id) {
        let (id, avatar) = (character["id"].as_str().unwrap(), character["avatar_path"].as_str().unwrap());
        assert_eq!(avatar, format!("{id}.png"));
        let path = server.store.data_dir.join("avatars").join(&victim.user.id).join(avatar);
        assert!(path.exists(), "{path:?}");
    }
    // The attacker's copy is the attacker's; the victim's is the victim's.
    assert!(ids(&server, &attacker, "characters").is_disjoint(&ids(&server, &victim, "characters")));
}

async fn eight_accounts_restoring_one_archive_at_once_all_end_whole(backend: Backend) {
    let source = TestServer::start_on(backend, "tenancy-eight-source").await;
    let owner = source
        .account("owner", Some(SeedOptions { characters: 2000, chats: 4, messages_per_chat: 250, ..small_seed() }))
        .await;
    let archive = export_of(&source, &owner).await;
    let expected = archive_counts(&archive);
    let server = TestServer::start_on(backend, "tenancy-eight").await;
    let mut accounts = Vec::new();
    for n in 0..8 {
        accounts.push(server.account(&format!("restorer-{n}"), None).await);
    }
    let imports = accounts.iter().map(|account| import(&server, account, &archive, None));
    let statuses = futures::future::join_all(imports).await;
    let mut remapped = 0;
    for (account, status) in accounts.iter().zip(&statuses) {
        assert_eq!(status["status"], "complete", "{status}");
        assert_eq!((sum(status, "skipped"), sum(status, "rejected")), (0, 0), "{status}");
        remapped += status["summary"]["characters"]["remapped"].as_u64().unwrap();
        let held = account_counts(&server, account);
        for (table, rows) in &expected {
            assert_eq!(held[table], *rows, "{}: {table}", account.user.username);
        }
    }
    // One of the eight got the archive's own ids; the seven others, copies.
    assert_eq!(remapped, 7 * expected["characters"] as u64);
}
