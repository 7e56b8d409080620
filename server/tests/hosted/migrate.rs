//! `lvbak migrate --database-url … --object-store …`: a single-node instance (SQLite and its
//! data directory) moved into PostgreSQL and object storage (`lvbak_tests::postgres_server`,
//! `lvbak_tests::s3_server`) with its server stopped, a first run killed half-way through an
//! account; a node started on the database and the object store over a fresh data
//! directory then signs both accounts in with their old passwords, exports them as before,
//! keeps the quota and opens the stored API keys. A run after a complete one copies
//! nothing new.

use std::collections::BTreeMap;
use std::io::{Cursor, Read as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lvbak_core::{Archive, Limits, Ticket};
use lvbak_tests::fixtures;
use lvbak_tests::postgres_server::{test_database, TestDatabase};
use lvbak_tests::s3_server::test_prefix;
use serde_json::{json, Value};

use crate::common::{lvbak_binary, Server};
use crate::support::{archive, table, uuid, Instance};

/// Every entry of an export by name, as two exports of one account must agree on it: the
/// manifest without its archive id and time, a table's lines sorted (each database reads
/// rows in its own order), the stats' missing files sorted, the rest byte for byte.
fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let opened = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let mut entries = BTreeMap::new();
    for (index, entry) in opened.entries().iter().enumerate() {
        let mut bytes = Vec::new();
        opened.open_entry(index).unwrap().read_to_end(&mut bytes).unwrap();
        if entry.name == "manifest.json" || entry.name == "manifest-stats.json" {
            let mut value: Value = serde_json::from_slice(&bytes).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("archiveId");
            object.remove("exportedAt");
            if let Some(Value::Array(missing)) = object.get_mut("missingFiles") {
                missing.sort_by_key(|file| file.to_string());
            }
            bytes = value.to_string().into_bytes();
        } else if entry.name.ends_with(".ndjson") {
            let text = String::from_utf8(bytes).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            bytes = lines.join("\n").into_bytes();
        }
        entries.insert(entry.name.clone(), bytes);
    }
    entries
}

/// The account's export (with vectors), by [`entries`].
fn export(address: &str, token: &str) -> BTreeMap<String, Vec<u8>> {
    let reply = call(address, "GET", "/api/v1/user-data/export?includeVectors=1", token, b"");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    entries(&reply.body)
}

fn call(address: &str, method: &str, path: &str, token: &str, body: &[u8]) -> crate::common::Reply {
    let bearer = format!("Bearer {token}");
    crate::common::request(
        address,
        method,
        path,
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        body,
    )
}

/// The account's stored API keys, as an export with secrets carries them and its ticket
/// opens them: key → value.
fn exported_secrets(address: &str, token: &str) -> BTreeMap<String, String> {
    let body = json!({"includeVectors": false, "includeSecrets": true}).to_string();
    let prepared = call(address, "POST", "/api/v1/user-data/export/prepare", token, body.as_bytes());
    assert_eq!(prepared.status, 200, "{}", String::from_utf8_lossy(&prepared.body));
    let prepared = prepared.json();
    let archive = call(address, "GET", prepared["archiveUrl"].as_str().unwrap(), token, b"");
    assert_eq!(archive.status, 200);
    let ticket = Ticket::parse(&serde_json::to_vec(&prepared["ticket"]).unwrap()).unwrap();
    let mut archive = Archive::open(Cursor::new(archive.body), Limits::STANDARD).unwrap();
    assert_eq!(prepared["unreachableSecrets"], json!([]), "{prepared}");
    archive.decrypt_secrets(&ticket).unwrap().into_iter().map(|o| (o.key, o.result.unwrap().to_string())).collect()
}

/// Imports the secrets fixture into the account with its ticket: stored API keys.
fn import_with_ticket(instance: &Instance, token: &str) {
    let reply = instance.call("POST", "/api/v1/user-data/import", token, fixtures::SECRETS);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let job = reply.json()["jobId"].as_str().unwrap().to_string();
    let path = format!("/api/v1/user-data/import/{job}/status");
    let waiting = || instance.call("GET", &path, token, b"").json()["status"] == "awaiting_ticket";
    assert!(instance.eventually(60, waiting), "the import did not ask for its ticket");
    let answer =
        instance.call("POST", &format!("/api/v1/user-data/import/{job}/ticket"), token, fixtures::SECRETS_TICKET);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(instance.wait_job(token, &job)["status"], "complete");
}

/// The `lvbak` binary with `args` and `env`, to its end.
fn lvbak(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(lvbak_binary()).args(args).envs(env.iter().map(|(k, v)| (k, v))).output().unwrap()
}

/// `lvbak migrate`, which must succeed; what it printed on stdout.
fn migrate(data: &Path, env: &[(String, String)]) -> String {
    let started = Instant::now();
    let output = lvbak(&["migrate", "--data-dir", data.to_str().unwrap()], env);
    let (said, progress) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{said}{progress}");
    eprintln!("lvbak migrate ({:.1} s):\n{progress}{said}", started.elapsed().as_secs_f64());
    said.into_owned()
}

/// The number `sql` answers first in `database`.
fn count(database: &TestDatabase, sql: &str) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = database.config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.query_one(sql, &[]).await.map(|row| row.get(0)).unwrap_or(0)
    })
}

/// A process killed (SIGKILL) and waited for when dropped, however the test ends.
struct Held(std::process::Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn m01_an_instance_moves_into_postgres_and_object_storage() {
    let (place, database) = (test_prefix(), test_database());
    let mut instance = Instance::start("migrate-01", &[]);
    let data = instance.data.clone();
    let data_arg = data.to_str().unwrap().to_string();
    for name in ["alice", "bob"] {
        instance.add_user(name);
        instance.run_lvbak(&["seed", "--user", name, "--characters", "3", "--data-dir", &data_arg]);
    }
    instance.run_lvbak(&["user", "quota", "alice", "7G", "--data-dir", &data_arg]);
    let tokens: Vec<String> = ["alice", "bob"].iter().map(|name| instance.login(name)).collect();
    // Values SQLite keeps in a column of another type, and text with a NUL character.
    let odd = json!({"id": uuid(0x9001), "name": "odd\u{0}one", "created_at": "soon", "updated_at": 1.5});
    let status =
        instance.import_raw(&tokens[0], &archive(json!({"archiveId": uuid(0x9a)}), vec![table("characters", &[odd])]));
    assert_eq!(status["status"], "complete", "{status}");
    import_with_ticket(&instance, &tokens[1]);
    let quota = |env: &[(String, String)], data: &str| {
        let output = lvbak(&["user", "quota", "alice", "--data-dir", data], env);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let quota_before = quota(&[], &data_arg);
    assert!(quota_before.contains("7516192768"), "{quota_before}");
    let before: Vec<_> = tokens.iter().map(|token| export(instance.address(), token)).collect();
    let secrets_before = exported_secrets(instance.address(), &tokens[1]);
    assert!(secrets_before.len() >= 2, "{secrets_before:?}");
    instance.server.kill();

    let mut env = place.env();
    env.push(("LVBAK_DATABASE_URL".into(), database.url.clone()));
    // Cut short: held after its first chunk of characters (the first account's), killed.
    let mut held = Held(
        Command::new(lvbak_binary())
            .args(["migrate", "--data-dir", &data_arg])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(lvbak_server::faults::HOLD_AFTER_VAR, "characters")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&database, "SELECT count(*) FROM characters") == 0 {
        assert!(Instant::now() < deadline, "no character was copied");
        assert!(held.0.try_wait().unwrap().is_none(), "the held run ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
    assert_eq!(count(&database, "SELECT count(*) FROM \"user\""), 1, "the second account was copied already");
    assert_eq!(count(&database, "SELECT count(*) FROM messages"), 0, "the messages were copied already");

    let completed = migrate(&data, &env);
    assert!(completed.starts_with("moved "), "{completed}");
    assert!(completed.contains("every account exports the same from PostgreSQL and the object store"), "{completed}");
    assert!(!completed.contains(" rows (0 already there)"), "the cut run's rows were written again: {completed}");
    let again = migrate(&data, &env);
    assert!(again.starts_with("moved 0 rows ("), "{again}");
    assert!(again.contains(", 0 files (0 bytes; ") && again.contains(" and 0 vectors ("), "{again}");

    // A node on PostgreSQL and the object store, over a data directory of its own, with
    // the instance's identity key.
    let fresh = instance.dir.join("node");
    std::fs::create_dir_all(&fresh).unwrap();
    env.push(("LVBAK_IDENTITY_KEY_FILE".into(), data.join("identity.key").to_str().unwrap().to_string()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let node = Server::start_with(&fresh, &pairs);
    for (name, before) in ["alice", "bob"].iter().zip(&before) {
        let token = crate::common::login(&node.address, name, &format!("pw-{name}"));
        let after = export(&node.address, &token);
        assert!(after.keys().any(|entry| entry.starts_with("files/")), "{name}: no file after the move");
        assert!(after.keys().any(|entry| entry.starts_with("lancedb/")), "{name}: no vector after the move");
        assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "{name}: the entries");
        for (entry, bytes) in before {
            assert!(&after[entry] == bytes, "{name}: {entry} differs after the move");
        }
        if *name == "bob" {
            assert_eq!(exported_secrets(&node.address, &token), secrets_before, "bob's API keys");
        }
    }
    assert_eq!(quota(&env, fresh.to_str().unwrap()), quota_before);
    let odd = format!("SELECT count(*) FROM characters WHERE id = '{}' AND lvbak_odd IS NOT NULL", uuid(0x9001));
    assert_eq!(count(&database, &odd), 1, "the odd values are not kept beside the row");
    assert!(crate::support::files_under(&fresh.join("lancedb")).is_empty(), "vectors on the node's disk");
    drop(node);
}

/// Files first (`--object-store`), rows in a later run (`--database-url` alone): the
/// database takes the instance id the object store was claimed with, so a node on both
/// starts; a node on the database alone over the old data directory serves its files from
/// there. Neither option: one line saying what to give.
#[test]
fn m02_files_then_rows_in_two_runs_and_a_run_without_a_destination_is_refused() {
    let (place, database) = (test_prefix(), test_database());
    let mut instance = Instance::start("migrate-02", &[]);
    let data_arg = instance.data.to_str().unwrap().to_string();
    instance.add_user("carol");
    instance.run_lvbak(&["seed", "--user", "carol", "--characters", "2", "--data-dir", &data_arg]);
    let token = instance.login("carol");
    let before = export(instance.address(), &token);
    instance.server.kill();

    let refused = lvbak(&["migrate", "--data-dir", &data_arg], &[]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("--database-url") && said.contains("--object-store"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");

    let files = migrate(&instance.data, &place.env());
    assert!(files.starts_with("moved ") && files.contains("every account exports the same from the object store"));
    let rows_only = vec![("LVBAK_DATABASE_URL".to_string(), database.url.clone())];
    let rows = migrate(&instance.data, &rows_only);
    assert!(rows.starts_with("moved ") && rows.contains(" rows (0 already there) of 1 accounts"), "{rows}");
    assert!(rows.contains("every account exports the same from PostgreSQL"), "{rows}");
    assert!(count(&database, "SELECT count(*) FROM characters") > 0);

    let pairs: Vec<(&str, &str)> = rows_only.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    instance.server = Server::start_with(&instance.data, &pairs);
    let token = instance.login("carol");
    let after = export(instance.address(), &token);
    assert!(after.keys().any(|entry| entry.starts_with("files/")), "no file on the database alone");
    assert!(after == before, "the export differs on the database alone");
    instance.server.kill();

    let mut both = place.env();
    both.extend(rows_only);
    both.push(("LVBAK_IDENTITY_KEY_FILE".into(), instance.data.join("identity.key").to_str().unwrap().to_string()));
    let fresh = instance.dir.join("node");
    std::fs::create_dir_all(&fresh).unwrap();
    let pairs: Vec<(&str, &str)> = both.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    instance.server = Server::start_with(&fresh, &pairs);
    let token = instance.login("carol");
    let after = export(instance.address(), &token);
    assert!(after.keys().any(|entry| entry.starts_with("lancedb/")), "no vector on the object store");
    assert!(after == before, "the export differs on the database and the object store");
}
