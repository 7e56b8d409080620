//! Import over HTTP against a real server: the Lumiverse fixtures, a second import that
//! changes nothing, export → import → export, the hostile corpus as uploads, cross-tenant
//! attacks, cancellation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lvbak_core::registry::TABLES;
use lvbak_core::Limits;
use lvbak_server::seed::SeedOptions;
use lvbak_tests::corpus;
use lvbak_tests::fixtures;
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use serde_json::{json, Value};

use crate::export::{entries, ndjson, owned_rows};
use crate::support::{ok_bytes, on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    lumiverse_fixtures_import_with_their_listed_counts_and_a_second_import_changes_nothing,
    export_import_export_keeps_rows_and_files,
    an_archive_without_vectors_marks_imported_chunks_for_revectorization,
    every_corpus_case_uploaded_gets_its_status_and_code_and_leaves_nothing_behind,
    uploads_that_are_not_archives_are_refused_before_staging,
    cancelling_a_large_import_stops_it_and_keeps_what_was_applied,
    cross_tenant_attacks_change_nothing_of_anyone_else,
    an_archive_cannot_plant_files_in_shared_folders,
    references_to_missing_or_foreign_rows_are_cleared_and_the_rest_kept,
);

/// Uploads an archive; returns the status and the answer.
pub async fn upload(server: &TestServer, account: &Account, bytes: &[u8]) -> (u16, Value) {
    let response = server
        .post(account, "/api/v1/user-data/import")
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    status_json(response).await
}

/// Polls a job until it reaches one of `statuses` (bounded: a hang fails the test). The
/// bound is loose because a job may queue behind the instance's import workers (one per
/// core): eight imports at once on two cores, beside another suite's, waited over 30 s.
pub async fn wait_for(server: &TestServer, account: &Account, job: &str, statuses: &[&str]) -> Value {
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while std::time::Instant::now() < deadline {
        let (code, status) =
            status_json(server.get(account, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap())
                .await;
        assert_eq!(code, 200, "{status}");
        if statuses.contains(&status["status"].as_str().unwrap_or_default()) {
            return status;
        }
        last = status;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} never reached {statuses:?}; last status {last}");
}

/// Uploads, answers the ticket question (with `ticket`, or by skipping), waits for the end.
pub async fn import(server: &TestServer, account: &Account, bytes: &[u8], ticket: Option<&[u8]>) -> Value {
    let (code, accepted) = upload(server, account, bytes).await;
    assert_eq!(code, 202, "{accepted}");
    let job = accepted["jobId"].as_str().unwrap().to_string();
    let status = wait_for(server, account, &job, &["awaiting_ticket", "complete", "failed", "cancelled"]).await;
    if status["status"] == "awaiting_ticket" {
        let response = match ticket {
            Some(ticket) => server
                .post(account, &format!("/api/v1/user-data/import/{job}/ticket"))
                .body(ticket.to_vec())
                .send()
                .await
                .unwrap(),
            None => server.post(account, &format!("/api/v1/user-data/import/{job}/skip-ticket")).send().await.unwrap(),
        };
        let (code, answer) = status_json(response).await;
        assert_eq!(code, 200, "{answer}");
    }
    wait_for(server, account, &job, &["complete", "failed", "cancelled"]).await
}

/// The secrets fixture's three API keys are stored for `account`, sealed under this
/// instance's identity key, and open to the fixture's plaintexts.
pub fn assert_fixture_secrets_stored(server: &TestServer, account: &Account) {
    let plaintexts: Value =
        serde_json::from_str::<Value>(fixtures::SECRETS_EXPECTED).unwrap()["secretPlaintexts"].clone();
    let stored = server.secrets_of(&account.user.id);
    assert_eq!(stored.len(), 3);
    for secret in stored {
        let plaintext = server.store.identity.open(&account.user.id, &secret).unwrap();
        assert_eq!(Some(plaintext.as_str()), plaintexts[&secret.key].as_str(), "{}", secret.key);
    }
}

fn counts(status: &Value, field: &str) -> BTreeMap<String, u64> {
    status["summary"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(table, c)| (table.clone(), c[field].as_u64().unwrap()))
        .collect()
}

async fn lumiverse_fixtures_import_with_their_listed_counts_and_a_second_import_changes_nothing(backend: Backend) {
    let server = TestServer::start_on(backend, "import-fixtures").await;
    for (name, bytes, _) in fixtures::ARCHIVES {
        let expected: Value = serde_json::from_str(match name {
            "minimal" => include_str!("../../data/fixtures/expected/minimal.import-summary.json"),
            "secrets" => include_str!("../../data/fixtures/expected/secrets.import-summary.json"),
            _ => include_str!("../../data/fixtures/expected/vectors-patched.import-summary.json"),
        })
        .unwrap();
        let account = server.account(&format!("fresh-{name}"), None).await;
        let ticket = (name == "secrets").then_some(fixtures::SECRETS_TICKET);
        let first = import(&server, &account, bytes, ticket).await;
        assert_eq!(first["status"], "complete", "{name}: {first}");
        let listed: BTreeMap<String, u64> = expected["first"]["summary"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(table, c)| (table.clone(), c["imported"].as_u64().unwrap()))
            .collect();
        let mut imported = counts(&first, "imported");
        imported.retain(|_, n| *n > 0);
        let mut listed_nonzero = listed.clone();
        listed_nonzero.retain(|_, n| *n > 0);
        assert_eq!(imported, listed_nonzero, "{name}");
        assert_eq!(counts(&first, "rejected").values().sum::<u64>(), 0, "{name}");
        for (table, rows) in expected["probesAfterFirst"]["targetRowCountsForImporter"].as_object().unwrap() {
            let found = match table.as_str() {
                "secrets" => server.secrets_of(&account.user.id).len(),
                // Lumiverse's table of ticket uses; lvbak keeps them per user in its own.
                "import_consumed_tickets" => server.rows_where("lvbak_ticket_uses", "user_id", &account.user.id).len(),
                _ => owned_rows(&server, table, &account.user.id).len(),
            };
            assert_eq!(found as u64, rows.as_u64().unwrap(), "{name}: {table}");
        }

        // Secrets: restored and readable through this instance's own sealing.
        if name == "secrets" {
            assert_eq!(first["secretSummary"]["imported"], 3);
            assert_eq!(first["ticket"]["wasReused"], false);
            assert_fixture_secrets_stored(&server, &account);
            // Restored connection keys turn the connection's flag on (Lumiverse leaves it 0).
            let profiles = owned_rows(&server, "connection_profiles", &account.user.id);
            let keyed = profiles.iter().find(|p| p["id"] == "7987e7a5-a873-4fe0-8cbd-2ce739bb217a").unwrap();
            assert_eq!(keyed["has_api_key"], 1);
        }

        // Vectors: restored when the configs match (vectors-patched), under the importer's ids.
        let stored_vectors = server.store.vectors.count_of("embeddings", &account.user.id).await.unwrap()
            + server.store.vectors.count_of("embeddings_world_books", &account.user.id).await.unwrap();
        if name == "vectors-patched" {
            assert_eq!(first["vectorSummary"]["restored"], true, "{first}");
            assert_eq!(stored_vectors, 303);
            let mut rows = server.store.vectors.rows_of("embeddings_world_books", &account.user.id).await.unwrap();
            let batch = rows.next_batch().await.unwrap().unwrap();
            assert!(batch.iter().all(|row| row.id.starts_with(&format!("{}:world_book_entry:", account.user.id))));
            assert!(batch.iter().all(|row| row.vector.len() == 8 && !row.content.is_empty()));
        } else {
            assert_eq!(first["vectorSummary"]["restored"], false);
            assert_eq!(stored_vectors, 0);
        }

        // The same archive again: nothing imported, everything skipped.
        let second = import(&server, &account, bytes, ticket).await;
        assert_eq!(second["status"], "complete", "{name}: {second}");
        assert_eq!(counts(&second, "imported").values().sum::<u64>(), 0, "{name}: {second}");
        assert_eq!(counts(&second, "merged").values().sum::<u64>(), 0, "{name}");
        // (Lumiverse's listing counts the restored secrets as a table, and so does ours.)
        let total: u64 = listed.values().sum();
        assert_eq!(counts(&second, "skipped").values().sum::<u64>(), total, "{name}");
        if name == "secrets" {
            assert_eq!(second["ticket"]["wasReused"], true);
            assert_eq!(second["ticket"]["uses"], 2);
        }
        if name == "vectors-patched" {
            assert_eq!(second["vectorSummary"]["tables"]["embeddings"]["skipped"], 300);
        }
    }
}

async fn export_import_export_keeps_rows_and_files(backend: Backend) {
    let source = TestServer::start_on(backend, "import-roundtrip-source").await;
    let alice = source.account("alice", Some(SeedOptions { secrets: 2, ..small_seed() })).await;
    let exported =
        ok_bytes(source.get(&alice, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    // Ids are global: the archive moves to another instance, as users move accounts.
    let server = TestServer::start_on(backend, "import-roundtrip-target").await;
    let bob = server.account("bob", None).await;
    let status = import(&server, &bob, &exported, None).await;
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(counts(&status, "rejected").values().sum::<u64>(), 0, "{status}");
    assert_eq!(counts(&status, "skipped").values().sum::<u64>(), 0, "{status}");
    assert_eq!(status["fileSummary"]["rejected"], 0);
    assert_eq!(status["vectorSummary"]["restored"], true);
    let again = ok_bytes(server.get(&bob, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    let (before, after) = (entries(&exported), entries(&again));

    let key_of = |row: &Value| {
        let mut row = row.clone();
        if let Some(object) = row.as_object_mut() {
            object.remove("user_id");
            object.remove("installed_by_user_id");
        }
        row.to_string()
    };
    for spec in TABLES {
        let entry = lvbak_core::table_entry_name(spec.name);
        let rows_before: BTreeSet<String> = ndjson(&before[&entry]).iter().map(key_of).collect();
        let rows_after: BTreeSet<String> = ndjson(&after[&entry]).iter().map(key_of).collect();
        assert_eq!(rows_before, rows_after, "{}", spec.name);
    }
    let files = |all: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        all.iter().filter(|(name, _)| name.starts_with("files/")).map(|(n, b)| (n.clone(), b.clone())).collect()
    };
    assert_eq!(files(&before), files(&after));
    assert!(!files(&before).is_empty());
    // Vectors came back under bob's ids with the same floats.
    for table in ["embeddings", "embeddings_world_books"] {
        // Every field of every row, the id's owner prefix aside.
        let strip = |row: &Value| {
            let mut row = row.clone();
            let id = row["id"].as_str().unwrap().split_once(':').unwrap().1.to_string();
            row["id"] = json!(id);
            row.to_string()
        };
        let vectors_before: BTreeSet<_> =
            ndjson(&before[&format!("lancedb/{table}.ndjson")]).iter().map(strip).collect();
        let vectors_after: BTreeSet<_> = ndjson(&after[&format!("lancedb/{table}.ndjson")]).iter().map(strip).collect();
        assert_eq!(vectors_before, vectors_after, "{table}");
        assert!(!vectors_before.is_empty());
    }
}

async fn an_archive_without_vectors_marks_imported_chunks_for_revectorization(backend: Backend) {
    let source = TestServer::start_on(backend, "import-revectorize-source").await;
    let alice = source.account("alice", Some(small_seed())).await;
    let exported =
        ok_bytes(source.get(&alice, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap()).await;
    let server = TestServer::start_on(backend, "import-revectorize").await;
    let bob = server.account("bob", None).await;
    let status = import(&server, &bob, &exported, None).await;
    assert_eq!(status["vectorSummary"]["restored"], false);
    let chunks = owned_rows(&server, "chat_chunks", &bob.user.id);
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c["vectorized_at"].is_null() && c["vector_model"].is_null()), "{chunks:?}");
    let entries = owned_rows(&server, "world_book_entries", &bob.user.id);
    // The user's opt-in (`vectorized`) is kept and the entries wait for new vectors, as
    // Lumiverse's own state says for eligible entries (its importer loses the opt-in).
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| e["vectorized"] == 1 && e["vector_index_status"] == "pending" && e["vector_indexed_at"].is_null()),
        "{entries:?}"
    );
    let resettable: usize = ["chat_chunks", "world_book_entries", "databank_chunks", "memory_consolidations"]
        .iter()
        .map(|table| owned_rows(&server, table, &bob.user.id).len())
        .sum();
    assert_eq!(status["revectorized"].as_u64().unwrap(), resettable as u64);
    // Chunks that were there before the import keep their state; the archive's chunks,
    // copies here (bob holds their ids), are marked.
    let carol = server.account("carol", Some(small_seed())).await;
    let own: BTreeSet<String> = owned_rows(&server, "chat_chunks", &carol.user.id)
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!own.is_empty());
    let again = import(&server, &carol, &exported, None).await;
    assert_eq!(again["status"], "complete");
    assert_eq!(again["summary"]["chat_chunks"]["remapped"], chunks.len() as u64, "{again}");
    for chunk in owned_rows(&server, "chat_chunks", &carol.user.id) {
        let kept = own.contains(chunk["id"].as_str().unwrap());
        assert_eq!(!chunk["vectorized_at"].is_null(), kept, "{chunk:?}");
    }
}

fn limits_of(l: corpus::CorpusLimits) -> Limits {
    Limits {
        max_archive_bytes: l.max_archive_bytes,
        max_decompressed_bytes: l.max_decompressed_bytes,
        max_line_bytes: l.max_line_bytes,
        max_legacy_line_bytes: l.max_legacy_line_bytes,
        max_entries: l.max_entries,
        max_metadata_bytes: l.max_metadata_bytes,
    }
}

async fn every_corpus_case_uploaded_gets_its_status_and_code_and_leaves_nothing_behind(backend: Backend) {
    let server = TestServer::start_on_with_limits(backend, "import-corpus", limits_of(corpus::LIMITS)).await;
    let mallory = server.account("mallory", None).await;
    let mut failures = Vec::new();
    for case in corpus::cases() {
        let (code, answer) = if case.bytes.len() as u64 > corpus::LIMITS.max_archive_bytes {
            declare_only(&server, &mallory, case.bytes.len()).await
        } else {
            upload(&server, &mallory, &case.bytes).await
        };
        let outcome = if code == 202 {
            let job = answer["jobId"].as_str().unwrap().to_string();
            let status =
                wait_for(&server, &mallory, &job, &["complete", "failed", "cancelled", "awaiting_ticket"]).await;
            match status["status"].as_str() {
                Some("complete") => None,
                _ => status["error"]["code"].as_str().map(str::to_string),
            }
        } else {
            let expected_status = match case.expected {
                Some("not_zip") => 415,
                Some("too_large" | "too_many_entries" | "decompressed_cap") => 413,
                _ => 422,
            };
            if code != expected_status {
                failures.push(format!("{}: HTTP {code}, wanted {expected_status}", case.name));
            }
            answer["code"].as_str().map(str::to_string)
        };
        if outcome.as_deref() != case.expected {
            failures.push(format!("{}: wanted {:?}, got {outcome:?} ({answer})", case.name, case.expected));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let staging = server.store.staging_dir();
    let left: Vec<_> =
        std::fs::read_dir(&staging).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "staging files left behind: {left:?}");
    // Nothing was written beside the data directory, and only the valid cases' rows landed.
    let beside: Vec<_> = std::fs::read_dir(&server.data.path).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("data")]);
    assert!(!std::path::Path::new("/etc/cron.d/evil").exists());
}

/// Sends only the headers of an upload declaring `length` bytes and reads the answer: an
/// archive over the cap is refused before its body is read.
async fn declare_only(server: &TestServer, account: &Account, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /api/v1/user-data/import HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n",
        account.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn uploads_that_are_not_archives_are_refused_before_staging(backend: Backend) {
    let server = TestServer::start_on(backend, "import-refusals").await;
    let alice = server.account("alice", None).await;
    let (code, answer) = upload(&server, &alice, b"hello, not a zip").await;
    assert_eq!((code, answer["code"].as_str()), (415, Some("not_zip")));
    let multipart = server
        .post(&alice, "/api/v1/user-data/import")
        .header("content-type", "multipart/form-data; boundary=x")
        .body(fixtures::MINIMAL.to_vec())
        .send()
        .await
        .unwrap();
    let (code, answer) = status_json(multipart).await;
    assert_eq!((code, answer["code"].as_str()), (415, Some("multipart_not_supported")));
    let anonymous = server
        .client
        .post(server.url("/api/v1/user-data/import"))
        .body(fixtures::MINIMAL.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let staging = server.store.staging_dir();
    assert!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) == 0);

    // Another user's job is not found; a second concurrent import of one user is refused.
    let bob = server.account("bob", None).await;
    let (code, accepted) = upload(&server, &alice, fixtures::SECRETS).await;
    assert_eq!(code, 202);
    let job = accepted["jobId"].as_str().unwrap();
    wait_for(&server, &alice, job, &["awaiting_ticket"]).await;
    let (code, answer) = upload(&server, &alice, fixtures::MINIMAL).await;
    assert_eq!((code, answer["code"].as_str()), (409, Some("import_running")));
    assert_eq!(server.get(&bob, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap().status(), 404);
    assert_eq!(
        server.post(&bob, &format!("/api/v1/user-data/import/{job}/cancel")).send().await.unwrap().status(),
        404
    );

    // Wrong tickets: the job keeps waiting.
    let ticket_path = format!("/api/v1/user-data/import/{job}/ticket");
    let wrong = status_json(
        server.post(&alice, &ticket_path).body(fixtures::SECRETS_WRONG_TICKET.to_vec()).send().await.unwrap(),
    )
    .await;
    assert_eq!((wrong.0, wrong.1["code"].as_str()), (409, Some("archive_mismatch")));
    let garbage = status_json(server.post(&alice, &ticket_path).body(b"[]".to_vec()).send().await.unwrap()).await;
    assert_eq!((garbage.0, garbage.1["code"].as_str()), (400, Some("malformed")));
    let newer = String::from_utf8_lossy(fixtures::SECRETS_TICKET).replace("\"version\": 1", "\"version\": 2");
    let newer = status_json(server.post(&alice, &ticket_path).body(newer).send().await.unwrap()).await;
    assert_eq!((newer.0, newer.1["code"].as_str()), (422, Some("unsupported_version")));
    assert_eq!(wait_for(&server, &alice, job, &["awaiting_ticket"]).await["status"], "awaiting_ticket");
    let skipped =
        status_json(server.post(&alice, &format!("/api/v1/user-data/import/{job}/skip-ticket")).send().await.unwrap())
            .await;
    assert_eq!(skipped, (200, json!({"skipped": true})));
    let done = wait_for(&server, &alice, job, &["complete"]).await;
    assert_eq!(done["secretSummary"]["imported"], 0);
    assert!(server.secrets_of(&alice.user.id).is_empty());
}

async fn cancelling_a_large_import_stops_it_and_keeps_what_was_applied(backend: Backend) {
    let origin = TestServer::start_on(backend, "import-cancel-source").await;
    let big = SeedOptions { chats: 2, messages_per_chat: 30_000, vectors: 0, ..small_seed() };
    let source = origin.account("source", Some(big)).await;
    let exported =
        ok_bytes(origin.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap()).await;
    let server = TestServer::start_on(backend, "import-cancel").await;
    let target = server.account("target", None).await;
    let (code, accepted) = upload(&server, &target, &exported).await;
    assert_eq!(code, 202);
    let job = accepted["jobId"].as_str().unwrap().to_string();
    wait_for(&server, &target, &job, &["running"]).await;
    let (code, cancelled) =
        status_json(server.post(&target, &format!("/api/v1/user-data/import/{job}/cancel")).send().await.unwrap())
            .await;
    assert_eq!(code, 200);
    assert_eq!(cancelled, json!({"cancelled": true, "status": "cancelled"}));
    let messages = owned_rows(&server, "messages", &target.user.id).len();
    assert!(messages < 60_000, "the whole import ran: {messages} messages");
    assert!(std::fs::read_dir(server.store.staging_dir()).map(|d| d.count()).unwrap_or(0) == 0);
    // Re-importing finishes the work.
    let finished = import(&server, &target, &exported, None).await;
    assert_eq!(finished["status"], "complete", "{finished}");
    // Two chats of 30,000, a message off each chat's third, and the first chat's branch (4).
    assert_eq!(owned_rows(&server, "messages", &target.user.id).len(), 60_000 + 2 + 4);
}

/// Builds an archive from the valid corpus entries plus `extra` table entries.
pub fn archive_with_tables(extra: &[(&str, String)]) -> Vec<u8> {
    let mut entries: Vec<RawEntry> = corpus::valid_entries();
    entries
        .retain(|entry| !extra.iter().any(|(name, _)| entry.name == lvbak_core::table_entry_name(name).into_bytes()));
    for (name, ndjson) in extra {
        entries.push(RawEntry::deflated(&lvbak_core::table_entry_name(name), ndjson.as_bytes()));
    }
    RawZip::new(entries).build()
}

async fn cross_tenant_attacks_change_nothing_of_anyone_else(backend: Backend) {
    let server = TestServer::start_on(backend, "import-attacks").await;
    let victim = server.account("victim", Some(small_seed())).await;
    let attacker = server.account("attacker", None).await;
    let victim_id = victim.user.id.clone();
    let first = |table: &str| owned_rows(&server, table, &victim_id)[0].clone();
    let (chat, book, pack, vault) = (first("chats"), first("world_books"), first("packs"), first("cortex_vaults"));
    let image = first("images");
    let chunk = first("chat_chunks");
    let snapshot = |server: &TestServer| -> BTreeMap<String, Vec<String>> {
        TABLES
            .iter()
            .map(|spec| {
                let mut rows: Vec<String> =
                    owned_rows(server, spec.name, &victim_id).iter().map(|r| json!(r).to_string()).collect();
                rows.sort();
                (spec.name.to_string(), rows)
            })
            .collect()
    };
    let before = snapshot(&server);
    let image_path = server.store.data_dir.join("images").join(&victim_id).join(image["filename"].as_str().unwrap());
    let image_bytes = std::fs::read(&image_path).unwrap();
    let instance_tables = ["sso_providers", "multiplayer_rooms", "user", "session"];
    let instance_before: Vec<u64> = instance_tables.iter().map(|t| server.count_rows(t)).collect();

    let now = 1_795_313_867;
    let stolen_image_id = "7d1c1d5e-0000-4000-8000-000000000001";
    let archive = archive_with_tables(&[
        (
            "messages",
            format!(
                "{}\n",
                json!({"id": "evil-message", "chat_id": chat["id"], "index_in_chat": 0, "content": "injected"})
            ),
        ),
        (
            "world_book_entries",
            format!("{}\n", json!({"id": "evil-entry", "world_book_id": book["id"], "uid": 1, "content": "injected"})),
        ),
        ("lumia_items", format!("{}\n", json!({"id": "evil-item", "pack_id": pack["id"], "name": "injected"}))),
        ("loom_items", format!("{}\n", json!({"id": "evil-loom", "pack_id": pack["id"], "name": "injected"}))),
        (
            "cortex_vault_entities",
            format!("{}\n", json!({"id": "evil-entity", "vault_id": vault["id"], "name": "x", "entity_type": "x"})),
        ),
        (
            "memory_salience",
            format!(
                "{}\n",
                json!({"id": "evil-salience", "chunk_id": chunk["id"], "chat_id": chat["id"], "scored_at": now, "created_at": now})
            ),
        ),
        (
            "images",
            format!("{}\n", json!({"id": stolen_image_id, "filename": image["filename"], "user_id": "whoever"})),
        ),
        (
            "characters",
            format!("{}\n", json!({"id": first("characters")["id"], "name": "overwritten?", "user_id": victim_id})),
        ),
        (
            "sso_providers",
            format!("{}\n", json!({"id": "evil-sso", "provider_kind": "oidc", "name": "evil", "slug": "evil"})),
        ),
        (
            "multiplayer_rooms",
            format!("{}\n", json!({"id": "evil-room", "chat_id": chat["id"], "host_user_id": victim_id})),
        ),
        ("user", format!("{}\n", json!({"id": "evil-user", "name": "evil", "email": "e@x"}))),
        (
            "session",
            format!("{}\n", json!({"id": "evil-session", "expiresAt": now, "token": "t", "userId": victim_id})),
        ),
    ]);
    let status = import(&server, &attacker, &archive, None).await;
    assert_eq!(status["status"], "complete", "{status}");
    for table in
        ["messages", "world_book_entries", "lumia_items", "loom_items", "cortex_vault_entities", "memory_salience"]
    {
        assert_eq!(status["summary"][table]["rejected"], 1, "{table}: {status}");
        assert_eq!(status["summary"][table]["imported"], 0, "{table}");
    }
    // An image row naming the victim's file name is the attacker's own row: it names a file
    // in the attacker's own folder, which does not exist.
    assert_eq!(status["summary"]["images"]["imported"], 1, "{status}");
    let attacker_copy =
        server.store.data_dir.join("images").join(&attacker.user.id).join(image["filename"].as_str().unwrap());
    assert!(!attacker_copy.exists());
    // A row with the victim's character id becomes the attacker's own copy, under a new
    // id; the victim's character is untouched (the snapshot below).
    assert_eq!(status["summary"]["characters"]["skipped"], 0, "{status}");
    assert_eq!(status["summary"]["characters"]["remapped"], 1, "{status}");
    let copies = owned_rows(&server, "characters", &attacker.user.id);
    assert_eq!(copies.len(), 1);
    assert_ne!(copies[0]["id"], first("characters")["id"]);
    assert_eq!(copies[0]["name"], "overwritten?");
    let skipped: BTreeSet<&str> =
        status["skippedTables"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(skipped, instance_tables.iter().copied().collect());

    assert_eq!(snapshot(&server), before, "the victim's rows changed");
    assert_eq!(std::fs::read(&image_path).unwrap(), image_bytes);
    let instance_after: Vec<u64> = instance_tables.iter().map(|t| server.count_rows(t)).collect();
    assert_eq!(instance_after, instance_before);
    assert_eq!(owned_rows(&server, "images", &attacker.user.id).len(), 1);
    let export = server.get(&attacker, "/api/v1/user-data/export").send().await.unwrap().bytes().await.unwrap();
    assert!(
        !export.windows(image_bytes.len()).any(|window| window == image_bytes.as_slice()),
        "the victim's image left"
    );
}

async fn an_archive_cannot_plant_files_in_shared_folders(backend: Backend) {
    let server = TestServer::start_on(backend, "import-files").await;
    let victim = server.account("victim", Some(small_seed())).await;
    let attacker = server.account("attacker", None).await;
    let image = owned_rows(&server, "images", &victim.user.id)[0].clone();
    let stem = image["filename"].as_str().unwrap().trim_end_matches(".png").to_string();
    let thumbnail = server.store.data_dir.join("images").join(&victim.user.id).join(format!("{stem}_thumb_sm_v2.webp"));
    std::fs::remove_file(&thumbnail).unwrap();
    let orphan = "00000000-0000-4000-8000-00000000dead";
    let mut entries = corpus::valid_entries();
    entries.retain(|e| !e.name.starts_with(b"files/"));
    entries.push(RawEntry::stored(&format!("files/thumbnails/{stem}_thumb_sm_v2.webp"), b"planted thumbnail"));
    entries.push(RawEntry::stored(&format!("files/images/{orphan}.png"), b"unreferenced image"));
    entries.push(RawEntry::stored("files/avatars/planted.png", b"unreferenced avatar"));
    entries.push(RawEntry::stored("files/notification-sounds/completion.mp3", b"MZ not audio at all"));
    entries.push(RawEntry::stored("files/theme-assets/bundle/own.css", b"body{}"));
    // A theme asset is restored only when a row names it.
    entries.push(RawEntry::stored("files/theme-assets/bundle/unnamed.css", b"body{color:red}"));
    let asset = json!({"id": "asset-1", "user_id": "x", "bundle_id": "bundle", "slug": "own", "storage_type": "file",
        "file_name": "own.css"});
    entries.push(RawEntry::deflated("database/theme_assets.ndjson", format!("{asset}\n").as_bytes()));
    let status = import(&server, &attacker, &RawZip::new(entries).build(), None).await;
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["fileSummary"], json!({"imported": 1, "skipped": 0, "rejected": 5, "bytes": 6}));
    assert!(!thumbnail.exists(), "a thumbnail was planted beside another user's image");
    for folder in ["images", "avatars"] {
        for owner in [&victim.user.id, &attacker.user.id] {
            let names: Vec<String> = std::fs::read_dir(server.store.data_dir.join(folder).join(owner))
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
                .unwrap_or_default();
            assert!(!names.iter().any(|n| n.contains(orphan) || n == "planted.png"), "{folder}/{owner}: {names:?}");
        }
    }
    assert!(!server.store.data_dir.join("theme-assets").join(&attacker.user.id).join("bundle/unnamed.css").exists());
    let own = server.store.data_dir.join("theme-assets").join(&attacker.user.id).join("bundle/own.css");
    assert_eq!(std::fs::read(own).unwrap(), b"body{}");
}

/// Nullable references (FORMAT §4's scrub list) of imported rows end pointing at the
/// importer's own rows or at nothing: a reference to a row the archive brings is kept
/// whether that row comes before or after, one to a row nobody has or to another user's
/// row is cleared; the other user's rows are untouched.
async fn references_to_missing_or_foreign_rows_are_cleared_and_the_rest_kept(backend: Backend) {
    let server = TestServer::start_on(backend, "import-scrub").await;
    let other = server.account("other", Some(small_seed())).await;
    let importer = server.account("importer", None).await;
    let first = |table: &str| owned_rows(&server, table, &other.user.id)[0].clone();
    let (foreign_image, foreign_book) = (first("images"), first("world_books"));
    let other_before = owned_rows(&server, "characters", &other.user.id);
    let id = |n: u32| format!("5c0b0000-0000-4000-8000-{n:012}");
    let line = |value: Value| format!("{value}\n");
    let archive = archive_with_tables(&[
        ("images", line(json!({"id": id(1), "filename": "own.png"}))),
        ("world_books", line(json!({"id": id(2), "name": "Own book"}))),
        (
            "characters",
            [
                json!({"id": id(10), "name": "Own image", "image_id": id(1)}),
                json!({"id": id(11), "name": "Missing image", "image_id": id(999)}),
                json!({"id": id(12), "name": "Foreign image", "image_id": foreign_image["id"]}),
                json!({"id": id(13), "name": "No image"}),
            ]
            .map(line)
            .concat(),
        ),
        (
            "personas",
            [
                json!({"id": id(20), "name": "Own book", "attached_world_book_id": id(2)}),
                json!({"id": id(21), "name": "Foreign book", "attached_world_book_id": foreign_book["id"]}),
            ]
            .map(line)
            .concat(),
        ),
        ("chats", line(json!({"id": id(30), "character_id": id(10), "name": "Chat"}))),
        (
            "messages",
            [
                json!({"id": id(40), "chat_id": id(30), "index_in_chat": 0, "content": "a"}),
                json!({"id": id(41), "chat_id": id(30), "index_in_chat": 1, "content": "b", "parent_message_id": id(40)}),
                json!({"id": id(42), "chat_id": id(30), "index_in_chat": 2, "content": "c", "parent_message_id": id(998)}),
            ]
            .map(line)
            .concat(),
        ),
    ]);
    let status = import(&server, &importer, &archive, None).await;
    assert_eq!(status["status"], "complete", "{status}");
    let column = |table: &str, row: u32, name: &str| -> Value {
        owned_rows(&server, table, &importer.user.id)
            .into_iter()
            .find(|r| r["id"] == json!(id(row)))
            .unwrap_or_else(|| panic!("{table} {row} missing: {status}"))[name]
            .clone()
    };
    assert_eq!(column("characters", 10, "image_id"), json!(id(1)));
    assert_eq!(column("characters", 11, "image_id"), Value::Null);
    assert_eq!(column("characters", 12, "image_id"), Value::Null);
    assert_eq!(column("characters", 13, "image_id"), Value::Null);
    assert_eq!(column("personas", 20, "attached_world_book_id"), json!(id(2)));
    assert_eq!(column("personas", 21, "attached_world_book_id"), Value::Null);
    assert_eq!(column("messages", 41, "parent_message_id"), json!(id(40)));
    assert_eq!(column("messages", 42, "parent_message_id"), Value::Null);
    // Foreign targets of tables applied earlier are cleared as rows arrive; the two
    // missing targets at the end.
    assert_eq!(status["scrubbedReferences"], 2, "{status}");
    assert_eq!(owned_rows(&server, "characters", &other.user.id), other_before);
}
