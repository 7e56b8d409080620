//! Export over HTTP against a real server: exact rows, files and vectors; the ticket flow;
//! tenant isolation; refusals; disconnects; an independent ZIP reader.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::time::Duration;

use lvbak_core::registry::{table_spec, Ownership, TABLES};
use lvbak_core::{check_archive, decode_vector, Archive, FileBucket, Limits, Ticket};
use lvbak_server::seed::SeedOptions;
use serde_json::{json, Map, Value};

use crate::support::{ok_bytes, on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    a_seeded_account_exports_exactly_what_is_stored,
    the_ticket_flow_round_trips_secrets_and_reports_unreachable_ones,
    strangers_and_cross_site_requests_are_refused,
    a_client_that_leaves_stops_the_export_and_others_are_served_meanwhile,
    python_zipfile_reads_the_export,
);

/// Every entry of an archive, inflated, by name.
pub fn entries(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
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

pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Numbers compared by value (SQLite REAL 1.0 travels as JavaScript's `1`).
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64().unwrap_or(0.0)),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// The rows of `table` a user owns, read straight from the server's database (SQLite or
/// PostgreSQL) by ownership rules written out here (not through the exporter's query).
pub fn owned_rows(server: &TestServer, table: &str, user_id: &str) -> Vec<Map<String, Value>> {
    let spec = table_spec(table).unwrap();
    let mut rows = match spec.ownership {
        Ownership::Direct { column } => server.rows_where(table, column, user_id),
        Ownership::Parent { parent_table, column } => server
            .rows_where(parent_table, "user_id", user_id)
            .iter()
            .flat_map(|parent| server.rows_where(table, column, parent["id"].as_str().unwrap()))
            .collect(),
    };
    if let Some((column, value)) = spec.row_filter {
        rows.retain(|row| row[column] == json!(value));
    }
    rows
}

pub(crate) async fn export(server: &TestServer, account: &Account, vectors: bool) -> Vec<u8> {
    let path = format!("/api/v1/user-data/export?includeVectors={}", u8::from(vectors));
    ok_bytes(server.get(account, &path).send().await.unwrap()).await
}

async fn a_seeded_account_exports_exactly_what_is_stored(backend: Backend) {
    let server = TestServer::start_on(backend, "export-exact").await;
    let alice = server.account("alice", Some(small_seed())).await;
    let bob = server.account("bob", Some(small_seed())).await;
    let bytes = export(&server, &alice, true).await;

    let inspection = check_archive(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap();
    assert_eq!(inspection.manifest.producer, "lumiverse");
    assert!(inspection.manifest.include_vectors);
    assert_eq!(inspection.manifest.embedding_config.dimension, Some(64));
    assert_eq!(inspection.manifest.embedding_config.provider.as_deref(), Some("openai"));
    assert!(inspection.warnings.is_empty(), "{:?}", inspection.warnings);
    let all = entries(&bytes);
    let names: Vec<&String> = all.keys().collect();
    assert_eq!(
        Archive::open(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap().entries()[0].name,
        "manifest.json"
    );

    // Every registry table has an entry, and its rows are exactly alice's rows, scrubbed.
    for spec in TABLES {
        let entry = lvbak_core::table_entry_name(spec.name);
        let archived: BTreeSet<String> =
            ndjson(all.get(&entry).unwrap_or_else(|| panic!("{entry} missing from {names:?}")))
                .iter()
                .map(|r| normalized(r).to_string())
                .collect();
        let mut stored = owned_rows(&server, spec.name, &alice.user.id);
        stored.retain(|row| !(spec.name == "settings" && row["key"].as_str().unwrap_or("").ends_with("_api_key")));
        for row in &mut stored {
            for column in spec.forced_zero {
                row.insert(column.to_string(), json!(0));
            }
        }
        let stored: BTreeSet<String> =
            stored.iter().map(|r| normalized(&Value::Object(r.clone())).to_string()).collect();
        assert_eq!(archived, stored, "{}", spec.name);
        assert_eq!(inspection.rows_of(spec.name), Some(archived.len() as u64), "{}", spec.name);
    }
    assert!(inspection.rows_of("messages").unwrap() > 20);

    // Every file alice has is in the archive with the same bytes, and nothing else is.
    let data = server.store.data_dir.clone();
    let mut expected_files = BTreeMap::new();
    for image in owned_rows(&server, "images", &alice.user.id) {
        let name = image["filename"].as_str().unwrap().to_string();
        let stem = name.trim_end_matches(".png").to_string();
        let folder = data.join("images").join(&alice.user.id);
        expected_files.insert(format!("files/images/{name}"), folder.join(&name));
        for size in ["sm", "lg"] {
            let thumb = format!("{stem}_thumb_{size}_v2.webp");
            expected_files.insert(format!("files/thumbnails/{thumb}"), folder.join(&thumb));
        }
    }
    for table in ["characters", "personas"] {
        for row in owned_rows(&server, table, &alice.user.id) {
            let avatar = row["avatar_path"].as_str().unwrap().to_string();
            expected_files
                .insert(format!("files/avatars/{avatar}"), data.join("avatars").join(&alice.user.id).join(&avatar));
        }
    }
    let document = &owned_rows(&server, "databank_documents", &alice.user.id)[0];
    expected_files.insert(
        format!("files/databank/{}__notes_harbour.md", document["id"].as_str().unwrap()),
        data.join("databank").join(&alice.user.id).join("notes/harbour.md"),
    );
    expected_files.insert(
        "files/theme-assets/midnight/theme.css".into(),
        data.join("theme-assets").join(&alice.user.id).join("midnight/theme.css"),
    );
    expected_files.insert(
        "files/notification-sounds/completion.wav".into(),
        data.join("notification-sounds").join(&alice.user.id).join("completion.wav"),
    );
    let archived_files: BTreeSet<&String> = all.keys().filter(|name| name.starts_with("files/")).collect();
    assert_eq!(archived_files, expected_files.keys().collect::<BTreeSet<_>>());
    for (entry, path) in &expected_files {
        assert_eq!(&all[entry], &std::fs::read(path).unwrap(), "{entry}");
    }
    assert_eq!(inspection.files[FileBucket::Thumbnails.archive_folder()].count, 4);

    // Vectors decode to the stored floats.
    for table in ["embeddings", "embeddings_world_books"] {
        let mut stored = BTreeMap::new();
        let mut rows = server.store.vectors.rows_of(table, &alice.user.id).await.unwrap();
        while let Some(batch) = rows.next_batch().await.unwrap() {
            for row in batch {
                stored.insert(row.id.clone(), row.vector.clone());
            }
        }
        let archived = ndjson(&all[&format!("lancedb/{table}.ndjson")]);
        assert_eq!(archived.len(), stored.len(), "{table}");
        assert!(!stored.is_empty());
        for row in archived {
            assert!(row.get("user_id").is_none(), "user_id travels in {table}");
            let vector = decode_vector(row["vector_b64"].as_str().unwrap(), "row").unwrap();
            assert_eq!(Some(&vector), stored.get(row["id"].as_str().unwrap()), "{table}");
        }
    }

    // Nothing of bob's, and no secret, is anywhere in the archive.
    let everything: Vec<u8> = all.values().flatten().copied().collect();
    let text = String::from_utf8_lossy(&everything);
    assert!(!text.contains(&bob.user.id), "bob's user id leaked");
    for spec in TABLES {
        for row in owned_rows(&server, spec.name, &bob.user.id) {
            if let Some(id) = row.get("id").and_then(Value::as_str) {
                assert!(!text.contains(id), "bob's {} row {id} leaked", spec.name);
            }
        }
    }
    assert!(!text.contains("sk-legacy-plaintext-must-not-travel"));
    for (_, value) in &alice.seeded.as_ref().unwrap().secrets {
        assert!(!text.contains(value.as_str()), "a secret travelled without the ticket flow");
    }
    assert!(all.keys().all(|name| !name.starts_with("secrets/")));
}

async fn the_ticket_flow_round_trips_secrets_and_reports_unreachable_ones(backend: Backend) {
    let server = TestServer::start_on(backend, "export-ticket").await;
    let options = SeedOptions { unreadable_secrets: 1, ..small_seed() };
    let alice = server.account("alice", Some(options)).await;
    let bob = server.account("bob", None).await;
    let response = server
        .post(&alice, "/api/v1/user-data/export/prepare")
        .json(&json!({"includeVectors": false, "includeSecrets": true}))
        .send()
        .await
        .unwrap();
    let (status, prepared) = status_json(response).await;
    assert_eq!(status, 200, "{prepared}");
    assert_eq!(prepared["secretsCount"], 2);
    assert_eq!(prepared["unreachableSecrets"], json!(["legacy_api_key_0"]));
    let archive_name = prepared["archiveFilename"].as_str().unwrap();
    let ticket_name = prepared["ticketFilename"].as_str().unwrap();
    assert!(archive_name.starts_with("lumiverse-alice-") && archive_name.ends_with(".lvbak"), "{archive_name}");
    assert_eq!(archive_name.trim_end_matches(".lvbak"), ticket_name.trim_end_matches(".ticket.json"));
    let url = prepared["archiveUrl"].as_str().unwrap();
    assert_eq!(url, format!("/api/v1/user-data/export/archive/{}", prepared["archiveId"].as_str().unwrap()));

    // Another user cannot fetch it; its owner can, once.
    assert_eq!(server.get(&bob, url).send().await.unwrap().status(), 404);
    let response = server.get(&alice, url).send().await.unwrap();
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_string();
    assert_eq!(disposition, format!("attachment; filename=\"{archive_name}\""));
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let bytes = ok_bytes(response).await;
    assert_eq!(server.get(&alice, url).send().await.unwrap().status(), 404);

    let ticket = Ticket::parse(&serde_json::to_vec(&prepared["ticket"]).unwrap()).unwrap();
    let mut archive = Archive::open(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap();
    assert!(archive.manifest().has_encrypted_secrets);
    assert!(!archive.manifest().include_vectors);
    assert_eq!(archive.manifest().secrets_count, 2);
    let outcomes = archive.decrypt_secrets(&ticket).unwrap();
    let decrypted: BTreeMap<String, String> =
        outcomes.into_iter().map(|o| (o.key, o.result.unwrap().to_string())).collect();
    let seeded: BTreeMap<String, String> = alice.seeded.as_ref().unwrap().secrets.iter().cloned().collect();
    assert_eq!(decrypted, seeded);
    assert!(archive.entries().iter().all(|e| !e.name.starts_with("lancedb/")));
}

async fn strangers_and_cross_site_requests_are_refused(backend: Backend) {
    let server = TestServer::start_on(backend, "export-refusals").await;
    let alice = server.account("alice", Some(small_seed())).await;
    let client = &server.client;

    let anonymous = client.get(server.url("/api/v1/user-data/export")).send().await.unwrap();
    assert_eq!(status_json(anonymous).await, (401, json!({"code": "unauthorized", "error": "sign in first"})));
    let forged = client.get(server.url("/api/v1/user-data/export")).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(forged.status(), 401);

    // Wrong password and unknown user get the same answer.
    let wrong = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice", "password": "nope"}))
        .send()
        .await
        .unwrap();
    let unknown = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "mallory", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(wrong).await, status_json(unknown).await);

    // The cookie works, but a state change needs a same-site marker.
    let login = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice", "password": alice.password}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let me = client.get(server.url("/api/v1/auth/me")).header("cookie", &session).send().await.unwrap();
    assert_eq!(status_json(me).await.1["username"], "alice");
    let prepare = |headers: &[(&str, &str)]| {
        let mut request = client
            .post(server.url("/api/v1/user-data/export/prepare"))
            .header("cookie", &session)
            .json(&json!({"includeVectors": false}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    assert_eq!(prepare(&[]).await.unwrap().status(), 403);
    assert_eq!(prepare(&[("origin", "http://evil.example")]).await.unwrap().status(), 403);
    assert_eq!(prepare(&[("x-requested-with", "lvbak")]).await.unwrap().status(), 200);

    // Signing out ends the session.
    let logout = server.post(&alice, "/api/v1/auth/logout").send().await.unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(server.get(&alice, "/api/v1/auth/me").send().await.unwrap().status(), 401);
}

async fn a_client_that_leaves_stops_the_export_and_others_are_served_meanwhile(backend: Backend) {
    let server = TestServer::start_on(backend, "export-disconnect").await;
    let big = SeedOptions { chats: 4, messages_per_chat: 6000, vectors: 0, ..small_seed() };
    let carol = server.account("carol", Some(big)).await;
    let response = server.get(&carol, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let archive_id = response.headers()["x-lvbak-archive-id"].to_str().unwrap().to_string();

    // The export is held back by a reader that does not read; the server still answers.
    let health = server.client.get(server.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let mut stream = response.bytes_stream();
    let first = futures::StreamExt::next(&mut stream).await.unwrap().unwrap();
    assert!(first.starts_with(b"PK\x03\x04"));
    drop(stream);

    // The work notices: its progress ends in `cancelled` (bounded wait).
    let events = format!("/api/v1/user-data/export/{archive_id}/events");
    let mut last = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = server.get(&carol, &events).send().await.unwrap();
        let mut stream = response.bytes_stream();
        if let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(500), futures::StreamExt::next(&mut stream)).await
        {
            last = String::from_utf8_lossy(&chunk).to_string();
            if last.contains("event: cancelled") {
                break;
            }
        }
    }
    assert!(last.contains("event: cancelled"), "last event: {last}");
}

async fn python_zipfile_reads_the_export(backend: Backend) {
    let server = TestServer::start_on(backend, "export-python").await;
    let alice = server.account("alice", Some(small_seed())).await;
    let bytes = export(&server, &alice, true).await;
    let path = server.data.path.join("export.lvbak");
    std::fs::write(&path, &bytes).unwrap();
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nbad = z.testzip()\nassert bad is None, bad\nprint(len(z.namelist()))";
    let output = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: usize = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert_eq!(listed, entries(&bytes).len());
}
