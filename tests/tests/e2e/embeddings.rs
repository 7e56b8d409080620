//! Re-vectorization against a real OpenAI-compatible server on 127.0.0.1 (the stub):
//! a Lumiverse archive without vectors gets exactly one vector per row, equal to the
//! provider's answer for its text; an export carries them and a matching account restores
//! them without asking the provider; 429s are retried; a refused key stops the run with
//! `unauthorized`; cancel stops it; another user's rows and vectors are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lvbak_core::decode_vector;
use lvbak_server::storage::VectorRow;
use lvbak_tests::embedding_stub::{vector_for, EmbeddingStub};
use lvbak_tests::fixtures;
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use serde_json::{json, Value};

use crate::export::{entries, ndjson, owned_rows};
use crate::import::import;
use crate::support::{ok_bytes, on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`)...
on_each_backend!(
    a_lumiverse_archive_without_vectors_is_embedded_once_and_travels_with_its_vectors,
    every_kind_of_row_is_re_embedded_through_rate_limits_and_other_users_are_untouched,
    settings_refuse_what_cannot_work_and_keep_what_they_do_not_know,
    a_refused_key_stops_the_run_and_cancel_stops_it_between_requests,
);

pub(crate) const DIMENSIONS: usize = 8;

/// Lumiverse's vectors-patched fixture as unmodified Lumiverse 1.1 writes it (no vectors,
/// no dimension), from a user who had turned vector search on for their world-book entries.
fn lumiverse_archive_without_vectors() -> Vec<u8> {
    let mut all = entries(fixtures::VECTORS_PATCHED);
    let mut manifest: Value = serde_json::from_slice(&all["manifest.json"]).unwrap();
    manifest["embeddingConfig"]["dimension"] = Value::Null;
    all.insert("manifest.json".into(), serde_json::to_vec_pretty(&manifest).unwrap());
    for name in ["lancedb/embeddings.ndjson", "lancedb/embeddings_world_books.ndjson"] {
        let rows: Vec<String> = ndjson(&all[name])
            .into_iter()
            .map(|mut row| {
                row["vector_b64"] = Value::Null;
                row.to_string()
            })
            .collect();
        all.insert(name.into(), format!("{}\n", rows.join("\n")).into_bytes());
    }
    let entries_name = "database/world_book_entries.ndjson";
    let opted_in: Vec<String> = ndjson(&all[entries_name])
        .into_iter()
        .map(|mut row| {
            row["vectorized"] = json!(1);
            row["vector_index_status"] = json!("indexed");
            row.to_string()
        })
        .collect();
    all.insert(entries_name.into(), format!("{}\n", opted_in.join("\n")).into_bytes());
    let manifest = all.remove("manifest.json").unwrap();
    let mut raw = vec![RawEntry::deflated("manifest.json", &manifest)];
    raw.extend(all.iter().map(|(name, data)| RawEntry::deflated(name, data)));
    RawZip::new(raw).build()
}

/// Points `account` at the stub (and whatever else `extra` sets); the answer.
pub(crate) async fn configure(server: &TestServer, account: &Account, stub: &EmbeddingStub, extra: Value) -> Value {
    let mut body = json!({
        "enabled": true, "provider": "openai-compatible", "api_url": stub.url, "model": "stub-embed",
        "dimensions": DIMENSIONS, "send_dimensions": true, "api_key": "good-key",
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let response = server.client.put(server.url("/api/v1/embeddings/config")).bearer_auth(&account.token).json(&body);
    let (code, answer) = status_json(response.send().await.unwrap()).await;
    assert_eq!(code, 200, "{answer}");
    answer
}

async fn status(server: &TestServer, account: &Account) -> Value {
    let (code, status) = status_json(server.get(account, "/api/v1/embeddings/status").send().await.unwrap()).await;
    assert_eq!(code, 200, "{status}");
    status
}

/// Polls the run's status until it is not running (at most 60 s).
pub(crate) async fn until_stopped(server: &TestServer, account: &Account) -> Value {
    until_stopped_within(server, account, 60).await
}

async fn until_stopped_within(server: &TestServer, account: &Account, seconds: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = status(server, account).await;
        if now["status"] != "running" || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every vector row of a user in one LanceDB table.
async fn vectors_of(server: &TestServer, table: &str, user_id: &str) -> Vec<VectorRow> {
    let mut rows = server.store.vectors.rows_of(table, user_id).await.unwrap();
    let mut all = Vec::new();
    while let Some(batch) = rows.next_batch().await.unwrap() {
        all.extend(batch);
    }
    all
}

/// The text the provider must have been asked for a vector row (world-book entries are
/// embedded with their title and keys: the row's metadata keeps that search text).
fn embedded_text(row: &VectorRow) -> String {
    match row.source_type.as_str() {
        "world_book_entry" => {
            let metadata: Value = serde_json::from_str(&row.metadata_json).unwrap();
            let search = metadata["search_text"].as_str().unwrap().to_string();
            assert!(search.ends_with(&format!("Content:\n{}", row.content)), "{search}");
            search
        }
        _ => row.content.clone(),
    }
}

/// One vector per source row, each the stub's answer for its text, and no other.
fn assert_one_exact_vector_each(rows: &[VectorRow], sources: &BTreeMap<String, String>) {
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "duplicate vector ids");
    let by_source: BTreeMap<&str, &VectorRow> = rows.iter().map(|r| (r.source_id.as_str(), r)).collect();
    assert_eq!(by_source.len(), rows.len(), "two vectors for one source row");
    assert_eq!(by_source.keys().copied().collect::<BTreeSet<_>>(), sources.keys().map(String::as_str).collect());
    for row in rows {
        assert_eq!(row.content, sources[&row.source_id].trim(), "{}", row.id);
        assert_eq!(row.vector, vector_for(&embedded_text(row), DIMENSIONS), "{}", row.id);
    }
}

/// The account's embedding settings as stored (its `embeddingConfig` setting).
fn embedding_config(server: &TestServer, account: &Account) -> Value {
    let settings = server.rows_where("settings", "user_id", &account.user.id);
    let stored = settings.iter().find(|row| row["key"] == "embeddingConfig").expect("no embeddingConfig setting");
    serde_json::from_str(stored["value"].as_str().unwrap()).unwrap()
}

fn texts(server: &TestServer, table: &str, user_id: &str, column: &str) -> BTreeMap<String, String> {
    owned_rows(server, table, user_id)
        .iter()
        .map(|row| (row["id"].as_str().unwrap().to_string(), row[column].as_str().unwrap_or_default().to_string()))
        .collect()
}

async fn a_lumiverse_archive_without_vectors_is_embedded_once_and_travels_with_its_vectors(backend: Backend) {
    let stub = EmbeddingStub::start(DIMENSIONS);
    stub.set(|s| s.key = Some("good-key".into()));
    let server = TestServer::start_on(backend, "embed-lumiverse").await;
    let alice = server.account("alice", None).await;
    let imported = import(&server, &alice, &lumiverse_archive_without_vectors(), None).await;
    assert_eq!(imported["status"], "complete", "{imported}");
    assert_eq!(imported["vectorSummary"]["restored"], false, "{imported}");
    assert!(imported["revectorized"].as_u64().unwrap() >= 3, "{imported}");
    let book_entries = owned_rows(&server, "world_book_entries", &alice.user.id);
    assert_eq!(book_entries.len(), 3);
    assert!(
        book_entries.iter().all(|e| e["vectorized"] == 1 && e["vector_index_status"] == "pending"),
        "{book_entries:?}"
    );
    // The archive's own setting names OpenAI without a key: the rows wait, nothing is sent.
    let waiting = status(&server, &alice).await;
    assert_eq!((waiting["status"].as_str(), waiting["pending"].as_u64()), (Some("idle"), Some(3)), "{waiting}");
    assert_eq!(stub.seen(|s| s.embedded_requests + s.refused), 0);

    // Pointing the account at a provider starts the run by itself.
    let config = configure(&server, &alice, &stub, json!({})).await;
    assert_eq!(config["has_api_key"], true);
    assert!(config.get("api_key").is_none(), "the key is never answered back: {config}");
    let done = until_stopped(&server, &alice).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!((done["done"].as_u64(), done["pending"].as_u64()), (Some(3), Some(0)), "{done}");
    let rows = vectors_of(&server, "embeddings_world_books", &alice.user.id).await;
    assert_one_exact_vector_each(&rows, &texts(&server, "world_book_entries", &alice.user.id, "content"));
    assert!(vectors_of(&server, "embeddings", &alice.user.id).await.is_empty());
    for entry in owned_rows(&server, "world_book_entries", &alice.user.id) {
        assert_eq!(entry["vector_index_status"], "indexed");
        assert!(entry["vector_indexed_at"].is_i64());
    }
    let asked = stub.seen(|s| s.embedded_texts);
    assert_eq!(asked, 3);

    // The export carries them, under the account's model; a matching account restores them
    // without asking the provider again.
    let exported =
        ok_bytes(server.get(&alice, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    let archive = entries(&exported);
    let manifest: Value = serde_json::from_slice(&archive["manifest.json"]).unwrap();
    assert_eq!(
        manifest["embeddingConfig"],
        json!({"provider": "openai-compatible", "model": "stub-embed", "dimension": 8})
    );
    let carried = ndjson(&archive["lancedb/embeddings_world_books.ndjson"]);
    assert_eq!(carried.len(), 3);
    for row in &carried {
        let original = rows.iter().find(|r| r.source_id == row["source_id"]).unwrap();
        assert_eq!(decode_vector(row["vector_b64"].as_str().unwrap(), "v").unwrap(), original.vector);
    }
    let bob = server.account("bob", None).await;
    configure(&server, &bob, &stub, json!({})).await;
    let restored = import(&server, &bob, &exported, None).await;
    assert_eq!(restored["vectorSummary"]["restored"], true, "{restored}");
    let bobs = vectors_of(&server, "embeddings_world_books", &bob.user.id).await;
    assert_eq!(bobs.len(), 3);
    assert_eq!(until_stopped(&server, &bob).await["pending"], 0);
    assert_eq!(stub.seen(|s| s.embedded_texts), asked, "the restore asked the provider");
    // Alice's vectors are hers still.
    assert_eq!(vectors_of(&server, "embeddings_world_books", &alice.user.id).await.len(), 3);
}

async fn every_kind_of_row_is_re_embedded_through_rate_limits_and_other_users_are_untouched(backend: Backend) {
    let stub = EmbeddingStub::start(DIMENSIONS);
    let source = TestServer::start_on(backend, "embed-source").await;
    let carol = source.account("carol", Some(small_seed())).await;
    let archive = ok_bytes(source.get(&carol, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap()).await;

    let server = TestServer::start_on(backend, "embed-kinds").await;
    let eve = server.account("eve", Some(small_seed())).await;
    let eve_vectors = vectors_of(&server, "embeddings", &eve.user.id).await.len();
    let eve_chunks = owned_rows(&server, "chat_chunks", &eve.user.id);
    let dave = server.account("dave", None).await;
    configure(&server, &dave, &stub, json!({"vectorize_chat_messages": true, "batch_size": 4})).await;
    // Two rate limits (one with Retry-After, one without) before the first success.
    stub.set(|s| s.failures.extend([(429, Some(1)), (503, None)]));
    let imported = import(&server, &dave, &archive, None).await;
    assert_eq!(imported["vectorSummary"]["restored"], false, "{imported}");
    let done = until_stopped(&server, &dave).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(stub.seen(|s| s.refused), 2);
    assert_eq!(stub.seen(|s| s.largest_batch), 4);

    let chunks = texts(&server, "chat_chunks", &dave.user.id, "content");
    let consolidations = texts(&server, "memory_consolidations", &dave.user.id, "summary");
    let documents = texts(&server, "databank_chunks", &dave.user.id, "content");
    let books = texts(&server, "world_book_entries", &dave.user.id, "content");
    assert!(!chunks.is_empty() && !consolidations.is_empty() && !documents.is_empty() && !books.is_empty());
    let rows = vectors_of(&server, "embeddings", &dave.user.id).await;
    let mut sources = chunks.clone();
    sources.extend(consolidations.clone());
    sources.extend(documents.clone());
    assert_one_exact_vector_each(&rows, &sources);
    let kinds: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut counts, row| {
        *counts.entry(row.source_type.as_str()).or_default() += 1;
        counts
    });
    assert_eq!(kinds["chat_chunk"], chunks.len());
    assert_eq!(kinds["memory_consolidation"], consolidations.len());
    assert_eq!(kinds["databank"], documents.len());
    assert_one_exact_vector_each(&vectors_of(&server, "embeddings_world_books", &dave.user.id).await, &books);
    assert_eq!(done["done"].as_u64().unwrap() as usize, sources.len() + books.len());
    for chunk in owned_rows(&server, "chat_chunks", &dave.user.id) {
        assert_eq!(chunk["vector_model"], "stub-embed");
        assert!(chunk["vectorized_at"].is_i64());
    }
    // Eve's rows and vectors are as they were.
    assert_eq!(owned_rows(&server, "chat_chunks", &eve.user.id), eve_chunks);
    assert_eq!(vectors_of(&server, "embeddings", &eve.user.id).await.len(), eve_vectors);
    assert_eq!(status(&server, &eve).await["pending"], 0);

    // A new model drops every vector of the account and embeds everything again.
    stub.set(|s| s.embedded_texts = 0);
    configure(&server, &dave, &stub, json!({"model": "stub-embed-2"})).await;
    let again = until_stopped(&server, &dave).await;
    assert_eq!(again["status"], "complete", "{again}");
    assert_eq!(stub.seen(|s| s.embedded_texts) as usize, sources.len() + books.len());
    assert_eq!(vectors_of(&server, "embeddings", &dave.user.id).await.len(), sources.len());
    let chunk = &owned_rows(&server, "chat_chunks", &dave.user.id)[0];
    assert_eq!(chunk["vector_model"], "stub-embed-2");
}

async fn a_refused_key_stops_the_run_and_cancel_stops_it_between_requests(backend: Backend) {
    let stub = EmbeddingStub::start(DIMENSIONS);
    stub.set(|s| s.key = Some("good-key".into()));
    let server = TestServer::start_on(backend, "embed-refusals").await;
    let frank = server.account("frank", Some(small_seed())).await;
    // The seeded rows are vectorized under another model: the new one makes them wait.
    configure(
        &server,
        &frank,
        &stub,
        json!({"api_key": "wrong-key", "vectorize_chat_messages": true, "batch_size": 2}),
    )
    .await;
    let refused = until_stopped(&server, &frank).await;
    assert_eq!(refused["status"], "unauthorized", "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("Incorrect API key provided"), "{refused}");
    let pending = refused["pending"].as_u64().unwrap();
    assert!(pending > 4, "{refused}");
    assert_eq!(stub.seen(|s| s.embedded_requests), 0);

    // The connection test says the same in words.
    let (code, test) = status_json(server.post(&frank, "/api/v1/embeddings/test").send().await.unwrap()).await;
    assert_eq!((code, test["code"].as_str()), (502, Some("unauthorized")), "{test}");

    // With the right key and a slow provider, cancel stops the run mid-request.
    stub.set(|s| s.delay = Duration::from_secs(30));
    configure(&server, &frank, &stub, json!({"api_key": "good-key"})).await;
    let (code, test) = status_json(server.post(&frank, "/api/v1/embeddings/start").send().await.unwrap()).await;
    assert_eq!((code, test["status"].as_str()), (200, Some("running")), "{test}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, cancelled) = status_json(server.post(&frank, "/api/v1/embeddings/cancel").send().await.unwrap()).await;
    assert_eq!((code, cancelled["cancelled"].as_bool()), (200, Some(true)), "{cancelled}");
    // The request in flight is abandoned: the run ends long before the provider's 30 s answer.
    let stopped = until_stopped_within(&server, &frank, 10).await;
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    assert_eq!(stopped["pending"].as_u64(), Some(pending), "a cancelled request marks nothing: {stopped}");

    // Resumed, it finishes.
    stub.set(|s| s.delay = Duration::ZERO);
    let (code, _) = status_json(server.post(&frank, "/api/v1/embeddings/start").send().await.unwrap()).await;
    assert_eq!(code, 200);
    let finished = until_stopped(&server, &frank).await;
    assert_eq!((finished["status"].as_str(), finished["pending"].as_u64()), (Some("complete"), Some(0)), "{finished}");
    assert_eq!(finished["done"].as_u64(), Some(pending));
}

async fn settings_refuse_what_cannot_work_and_keep_what_they_do_not_know(backend: Backend) {
    let server = TestServer::start_on(backend, "embed-settings").await;
    let gina = server.account("gina", Some(small_seed())).await;
    for bad in [json!({"api_url": "file:///etc/passwd"}), json!({"dimensions": 0}), json!({"batch_size": 1000})] {
        let response = server.client.put(server.url("/api/v1/embeddings/config")).bearer_auth(&gina.token).json(&bad);
        let (code, answer) = status_json(response.send().await.unwrap()).await;
        assert_eq!((code, answer["code"].as_str()), (400, Some("invalid_setting")), "{bad}: {answer}");
    }
    let before = embedding_config(&server, &gina);
    let stub = EmbeddingStub::start(DIMENSIONS);
    configure(&server, &gina, &stub, json!({"enabled": false})).await;
    let after = embedding_config(&server, &gina);
    for (key, value) in before.as_object().unwrap() {
        if !["provider", "api_url", "model", "dimensions", "send_dimensions", "enabled"].contains(&key.as_str()) {
            assert_eq!(&after[key], value, "{key} was changed");
        }
    }
    // Disabled: the rows wait, nothing is sent until the user starts the run.
    let waiting = status(&server, &gina).await;
    assert_eq!(waiting["status"], "idle", "{waiting}");
    assert_eq!(stub.seen(|s| s.embedded_requests), 0);
    let secrets = server.secrets_of(&gina.user.id);
    let key = secrets.iter().find(|s| s.key == "embedding_api_key_openai-compatible").unwrap();
    assert_eq!(server.store.identity.open(&gina.user.id, key).unwrap().as_str(), "good-key");
}
