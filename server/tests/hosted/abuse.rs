//! One test per attack of issue 8, each against a real `lvbak serve` on 127.0.0.1 and each
//! asserting the bound the server must hold: peak memory rise, threads back to their
//! baseline, no foreign bytes in an export, 429s where limits apply, another user's
//! sign-in answered during a flood, quota refusals with nothing left, staging empty.
//! The tests about accounts' rows, jobs, ticket uses and exports run on SQLite and on
//! PostgreSQL (`on_each_backend!`, at the end).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use lvbak_core::{Archive, Limits};
use lvbak_tests::fixtures;
use lvbak_tests::zipcraft::RawEntry;
use serde_json::{json, Value};

use crate::common::{request, run_lvbak};
use crate::support::{archive, files_under, manifest, on_each_backend, rows_batch, table, uuid, Instance, Start};

/// The most a single attack may raise the server's resident memory, in MiB.
const MEMORY_BOUND_MIB: f64 = 256.0;

fn assert_memory(rise: f64, what: &str) {
    assert!(rise < MEMORY_BOUND_MIB, "{what}: peak RSS rose {rise:.0} MiB (bound {MEMORY_BOUND_MIB} MiB)");
    eprintln!("{what}: peak RSS rose {rise:.1} MiB");
}

/// Pseudo-random bytes that do not compress.
fn noise(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn f01_a_tiny_batch_of_millions_of_empty_rows_stays_within_memory() {
    let instance = Instance::start("abuse-01", &[]);
    let token = instance.account("mallory");
    let job = instance.open_batches(&token, manifest(json!({})));
    let rows = 3_000_000u64;
    let batch = rows_batch("characters", 1, &b"{}\n".repeat(rows as usize));
    assert!(batch.len() < 64 * 1024, "the attack is a small request: {} bytes", batch.len());
    let rise = instance.memory_rise(|| {
        assert_eq!(instance.put_batch(&token, &job, 0, &batch).status, 200);
        let done = instance.commit(&token, &job, 1);
        assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
        assert_eq!(done.json()["summary"]["characters"]["rejected"], rows, "{}", done.json());
    });
    assert_memory(rise, "3,000,000 empty rows in one batch");
}

#[test]
fn f02_secret_records_are_streamed_and_held_to_the_index() {
    let instance = Instance::start("abuse-02", &[]);
    let token = instance.account("mallory");
    let archive_id = uuid(0x201);
    let index = json!({"version": 1, "archiveId": archive_id, "keys": ["k0"]});
    let record = json!({"key": "k0", "iv": "AAAAAAAAAAAAAAAA", "tag": "AAAAAAAAAAAAAAAAAAAAAA==", "ciphertext": "x".repeat(2000)});
    let records = format!("{record}\n").repeat(100_000);
    let bytes = archive(
        json!({"archiveId": archive_id, "hasEncryptedSecrets": true, "secretsCount": 1}),
        vec![
            RawEntry::deflated("secrets/index.json", format!("{index}\n").as_bytes()),
            RawEntry::deflated("secrets/encrypted.ndjson", records.as_bytes()),
        ],
    );
    assert!(bytes.len() < 2 << 20, "{}", bytes.len());
    let mut status = Value::Null;
    let rise = instance.memory_rise(|| status = instance.import_raw(&token, &bytes));
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error"]["code"], "bad_secrets", "{status}");
    assert_memory(rise, "200 MB of secret records in a small upload");
}

fn f03_finished_jobs_are_forgotten_and_their_reports_stay_small(start: Start) {
    let instance = start("abuse-03", &[]);
    let token = instance.account("mallory");
    let huge_manifest = |n: u64| {
        let mut counts = serde_json::Map::new();
        for i in 0..20_000 {
            counts.insert(format!("junk_{i}"), json!(i));
        }
        json!({"archiveId": uuid(0x300 + n), "producerVersion": "v".repeat(14 << 20), "counts": counts})
    };
    let rise = instance.memory_rise(|| {
        for n in 0..4 {
            let bytes = archive(
                huge_manifest(n),
                vec![table("world_books", &[json!({"id": uuid(0x310 + n), "name": "lore"})])],
            );
            assert!(bytes.len() < 256 * 1024, "{}", bytes.len());
            let status = instance.import_raw(&token, &bytes);
            assert_eq!(status["status"], "complete", "{}", status["error"]);
            let answered = status.to_string().len();
            assert!(answered < 64 * 1024, "a status answer of {answered} bytes");
        }
    });
    assert_memory(rise, "four imports of 14 MiB manifests");
    let stored = instance.count_rows("SELECT coalesce(max(length(summary)), 0) FROM lvbak_import_jobs");
    assert!(stored < 64 * 1024, "a recorded report of {stored} bytes");
}

#[test]
fn f04_batch_imports_leave_no_threads_behind() {
    let instance = Instance::start("abuse-04", &[]);
    let token = instance.account("mallory");
    let import_once = |n: u64| {
        let job = instance.open_batches(&token, manifest(json!({})));
        let row = format!("{}\n", json!({"id": uuid(0x400 + n), "name": "lore"}));
        assert_eq!(instance.put_batch(&token, &job, 0, &rows_batch("world_books", 1, row.as_bytes())).status, 200);
        assert_eq!(instance.commit(&token, &job, 1).status, 200);
    };
    import_once(0);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = instance.server.threads();
    for n in 1..=50 {
        import_once(n);
    }
    let settled = instance.eventually(20, || instance.server.threads() <= baseline + 2);
    assert!(settled, "{} threads after 50 batch imports, {baseline} before", instance.server.threads());
}

fn f05_an_export_holds_only_its_owners_files_and_nobody_plants_files_for_another(start: Start) {
    let instance = start("abuse-05", &[]);
    instance.add_user("bob");
    instance.run_lvbak(&["seed", "--user", "bob", "--vectors", "0", "--data-dir", instance.data.to_str().unwrap()]);
    let bob = instance.login("bob");
    let bob_id = instance.user_id(&bob);
    let file_name = |path: &std::path::PathBuf| path.file_name().unwrap().to_string_lossy().to_string();
    let bob_images = files_under(&instance.data.join("images").join(&bob_id));
    let bob_avatars = files_under(&instance.data.join("avatars").join(&bob_id));
    let image = bob_images.iter().map(file_name).find(|name| name.ends_with(".png")).unwrap();
    let avatar = file_name(&bob_avatars[0]);

    // Alice's rows name Bob's files by every spelling an export would follow.
    let alice = instance.account("alice");
    let stolen = archive(
        json!({}),
        vec![
            table("characters", &[json!({"id": uuid(0x501), "name": "thief", "avatar_path": format!("x/{avatar}")})]),
            table("images", &[json!({"id": uuid(0x502), "filename": image})]),
        ],
    );
    assert_eq!(instance.import_raw(&alice, &stolen)["status"], "complete");
    let export = instance.export(&alice);
    for path in bob_images.iter().chain(&bob_avatars) {
        let bytes = std::fs::read(path).unwrap();
        assert!(!export.windows(bytes.len()).any(|w| w == bytes.as_slice()), "bob's {path:?} is in alice's export");
    }

    // Alice writes a file under a name Bob's own archive uses; Bob's import keeps his.
    crate::support::plant_then_restore(&instance, &alice, &bob);
}

#[test]
fn f06_stalled_exports_do_not_block_sign_in_and_are_cut_off() {
    let instance = Instance::start("abuse-06", &[("LVBAK_HOSTING", "export_stall=3")]);
    let mallory = instance.account("mallory");
    // A 24 MB file makes each export larger than the socket buffers, so an unread one stalls.
    let big = noise(24 << 20, 6);
    let asset = json!({"id": uuid(0x601), "user_id": "x", "bundle_id": "b", "slug": "s", "storage_type": "file", "file_name": "big.bin"});
    let bytes = archive(
        json!({}),
        vec![table("theme_assets", &[asset]), RawEntry::stored("files/theme-assets/b/big.bin", &big)],
    );
    assert_eq!(instance.import_raw(&mallory, &bytes)["status"], "complete");
    let victim = instance.account("victim");
    std::thread::sleep(Duration::from_millis(300));
    let baseline = instance.server.threads();

    let bearer = format!("Bearer {mallory}");
    let mut stalled = Vec::new();
    let (mut accepted, mut limited) = (0, 0);
    for _ in 0..40 {
        let mut stream = TcpStream::connect(instance.address()).unwrap();
        let head = format!(
            "GET /api/v1/user-data/export HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).unwrap();
        match &first[9..12] {
            b"200" => accepted += 1,
            b"429" => limited += 1,
            other => panic!("unexpected status {}", String::from_utf8_lossy(other)),
        }
        stalled.push(stream);
    }
    assert_eq!((accepted, limited), (2, 38), "two exports per user run at once; the rest are refused");
    // Meanwhile everyone else signs in and is served.
    for _ in 0..5 {
        assert_eq!(instance.call("GET", "/api/v1/auth/me", &victim, b"").status, 200);
        instance.login("victim");
    }
    // The stalled exports are cut off and their threads end; mallory can export again.
    let freed = instance.eventually(30, || instance.server.threads() <= baseline + 2);
    assert!(freed, "{} threads with stalled exports, {baseline} before", instance.server.threads());
    drop(stalled);
    // The last two may still be ending (the thread count above allows for them): their slots
    // come back within the stall limit, so mallory is answered again, not refused for good.
    let mut last = (0, 0);
    let again = instance.eventually(30, || {
        let reply = instance.call("GET", "/api/v1/user-data/export", &mallory, b"");
        last = (reply.status, reply.body.len());
        reply.status != 429
    });
    assert!(again && last.0 == 200 && last.1 > big.len(), "mallory could not export again: {last:?}");
}

#[test]
fn f07_sign_in_floods_are_refused_with_429_and_memory_stays_flat() {
    let instance =
        Instance::start("abuse-07", &[("LVBAK_HOSTING", "trust_forwarded=1,login_burst=5,login_interval=60")]);
    instance.add_user("victim");
    let address = instance.address().to_string();
    let flood = |name: &'static str, from: fn(usize) -> String| {
        let handles: Vec<_> = (0..128)
            .map(|n| {
                let address = address.clone();
                std::thread::spawn(move || {
                    let body = json!({"username": name, "password": "wrong"}).to_string();
                    let forwarded = from(n);
                    let headers = [("Content-Type", "application/json"), ("X-Forwarded-For", forwarded.as_str())];
                    let reply = request(&address, "POST", "/api/v1/auth/login", &headers, body.as_bytes());
                    (reply.status, reply.header("retry-after").map(str::to_string))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    };
    let mut answers = Vec::new();
    let rise = instance.memory_rise(|| {
        answers = flood("nobody", |_| "10.6.6.6".to_string());
        // The victim signs in from elsewhere while the flood's answers come back.
        let body = json!({"username": "victim", "password": "pw-victim"}).to_string();
        let headers = [("Content-Type", "application/json"), ("X-Forwarded-For", "10.0.0.7")];
        assert_eq!(request(instance.address(), "POST", "/api/v1/auth/login", &headers, body.as_bytes()).status, 200);
    });
    assert_memory(rise, "128 parallel wrong-password sign-ins");
    let limited = answers.iter().filter(|(status, _)| *status == 429).count();
    let refused = answers.iter().filter(|(status, _)| *status == 401).count();
    assert_eq!((refused, limited), (5, 123), "a burst of 5 per address, then 429");
    assert!(answers.iter().filter(|(status, _)| *status == 429).all(|(_, retry)| retry.is_some()));
    // From many addresses, the failures of one name are limited too.
    let spread = flood("victim", |n| format!("10.9.{}.{}", n / 200, n % 200));
    assert_eq!(spread.iter().filter(|(status, _)| *status == 401).count(), 5);
}

#[test]
fn f08_idle_batch_jobs_do_not_starve_other_imports() {
    let instance = Instance::start("abuse-08", &[("LVBAK_HOSTING", "import_workers=2")]);
    let idlers: Vec<(String, String)> = ["idle-a", "idle-b"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let token = instance.account(name);
            let job = instance.open_batches(&token, manifest(json!({})));
            let row = format!("{}\n", json!({"id": uuid(0x800 + n as u64), "name": "lore"}));
            assert_eq!(instance.put_batch(&token, &job, 0, &rows_batch("world_books", 1, row.as_bytes())).status, 200);
            (token, job)
        })
        .collect();
    let worker = instance.account("worker");
    let bytes = archive(json!({}), vec![table("world_books", &[json!({"id": uuid(0x810), "name": "lore"})])]);
    let status = instance.import_raw(&worker, &bytes);
    assert_eq!(status["status"], "complete", "a third user's import waited behind idle ones: {status}");
    for (token, job) in idlers {
        assert_eq!(instance.commit(&token, &job, 1).status, 200);
    }
}

fn f09_a_quota_stops_a_file_bomb_and_leaves_nothing_behind(start: Start) {
    let instance = start("abuse-09", &[("LVBAK_QUOTA", "8M")]);
    let token = instance.account("mallory");
    let user = instance.user_id(&token);
    let characters: Vec<Value> = (0..10).map(|n| json!({"id": uuid(0x900 + n), "name": format!("c{n}")})).collect();
    let asset = |name: &str| json!({"id": uuid(0x950 + name.len() as u64), "user_id": "x", "bundle_id": "b", "slug": name, "storage_type": "file", "file_name": name});
    let bomb = archive(
        json!({}),
        vec![
            table("characters", &characters),
            table("theme_assets", &[asset("bomb.bin")]),
            RawEntry::deflated("files/theme-assets/b/bomb.bin", &vec![0u8; 64 << 20]),
        ],
    );
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let status = instance.import_raw(&token, &bomb);
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error"]["code"], "quota_exceeded", "{status}");
    let sql = format!("SELECT count(*) FROM characters WHERE user_id = '{user}'");
    assert_eq!(instance.count_rows(&sql), 0, "rows of the failed import stayed");
    assert!(files_under(&instance.data.join("theme-assets").join(&user)).is_empty());
    assert!(instance.staging_files().is_empty(), "{:?}", instance.staging_files());

    // The same through the browser's batches: refused at the file's first chunk.
    let job = instance.open_batches(&token, manifest(json!({"archiveId": uuid(0x9b)})));
    let asset_row = format!("{}\n", asset("huge.bin"));
    assert_eq!(instance.put_batch(&token, &job, 0, &rows_batch("theme_assets", 1, asset_row.as_bytes())).status, 200);
    let chunk = crate::support::file_batch("theme-assets", "b/huge.bin", 0, 1 << 30, &[0u8; 1024]);
    instance.put_batch(&token, &job, 1, &chunk);
    let status = instance.wait_job(&token, &job);
    assert_eq!(status["error"]["code"], "quota_exceeded", "{status}");
    assert!(instance.staging_files().is_empty());

    // What fits is imported and counted.
    let small = archive(
        json!({"archiveId": uuid(0x9c)}),
        vec![table("theme_assets", &[asset("ok.bin")]), RawEntry::stored("files/theme-assets/b/ok.bin", &[7u8; 4096])],
    );
    assert_eq!(instance.import_raw(&token, &small)["status"], "complete");
    let used = instance.count_rows(&format!("SELECT bytes FROM lvbak_usage WHERE user_id = '{user}'"));
    assert!((4096..1 << 20).contains(&used), "{used} bytes counted");
}

fn f10_prepared_exports_are_bounded_per_user(start: Start) {
    let instance = start("abuse-10", &[]);
    let token = instance.account("mallory");
    let mut ids = Vec::new();
    let rise = instance.memory_rise(|| {
        for _ in 0..2000 {
            let reply = instance.call("POST", "/api/v1/user-data/export/prepare", &token, b"{}");
            assert_eq!(reply.status, 200);
            ids.push(reply.json()["archiveId"].as_str().unwrap().to_string());
        }
    });
    assert_memory(rise, "2,000 prepared exports");
    let first = instance.call("GET", &format!("/api/v1/user-data/export/archive/{}", ids[0]), &token, b"");
    assert_eq!(first.status, 404, "the oldest prepared export is forgotten");
    let events = instance.call("GET", &format!("/api/v1/user-data/export/{}/events", ids[0]), &token, b"");
    assert_eq!(events.status, 404, "so is its progress channel");
    let last = instance.call("GET", &format!("/api/v1/user-data/export/archive/{}", ids[1999]), &token, b"");
    assert_eq!(last.status, 200);
}

#[test]
fn f11_uploads_cut_short_leave_no_staging() {
    let instance = Instance::start("abuse-11", &[]);
    let token = instance.account("mallory");
    for _ in 0..5 {
        // The server frees the user's import slot once it notices the previous client left;
        // until then a new upload is refused with 409 (one import per user), so retry.
        let mut attempts = 0;
        let stream = loop {
            let mut stream = TcpStream::connect(instance.address()).unwrap();
            let head = format!(
                "POST /api/v1/user-data/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
                64 << 20
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(b"PK\x03\x04").unwrap();
            match stream.write_all(&vec![0u8; 8 << 20]) {
                Ok(()) => break stream,
                Err(error) => {
                    let mut answer = String::new();
                    let _ = stream.read_to_string(&mut answer);
                    attempts += 1;
                    assert!(answer.starts_with("HTTP/1.1 409") && attempts < 50, "{error}: {answer}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        std::thread::sleep(Duration::from_millis(200));
        drop(stream);
    }
    assert!(instance.eventually(10, || instance.staging_files().is_empty()), "{:?}", instance.staging_files());
    // The user's import slot came back each time.
    let bytes = archive(json!({}), vec![table("world_books", &[json!({"id": uuid(0xb01), "name": "lore"})])]);
    assert_eq!(instance.import_raw(&token, &bytes)["status"], "complete");
}

#[test]
fn f12_users_with_different_vector_dimensions_restore_side_by_side() {
    let source = crate::common::scratch("abuse-12-source");
    let data = source.join("data");
    let data_arg = data.to_str().unwrap();
    let mut archives = Vec::new();
    for (name, dimension) in [("two", "2"), ("four", "4"), ("eight", "8")] {
        run_lvbak(&["user", "add", name, "--password", "x", "--data-dir", data_arg]);
        run_lvbak(&["seed", "--user", name, "--vectors", "12", "--dimension", dimension, "--data-dir", data_arg]);
        let out = source.join(format!("{name}.lvbak"));
        run_lvbak(&[
            "export",
            "--user",
            name,
            "--include-vectors",
            "-o",
            out.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ]);
        archives.push((name, std::fs::read(out).unwrap()));
    }
    let instance = Instance::start("abuse-12", &[]);
    for (name, bytes) in archives {
        let token = instance.account(&format!("importer-{name}"));
        let status = instance.import_raw(&token, &bytes);
        assert_eq!(status["vectorSummary"]["restored"], true, "{name}: {}", status["vectorSummary"]);
        let tables = &status["vectorSummary"]["tables"];
        let restored: u64 =
            ["embeddings", "embeddings_world_books"].iter().map(|t| tables[t]["imported"].as_u64().unwrap_or(0)).sum();
        assert!(restored >= 12, "{name}: {tables}");
        assert_eq!(tables["embeddings"]["rejected"], 0, "{name}: {tables}");
    }
    let _ = std::fs::remove_dir_all(source);
}

fn f13_ticket_uses_are_recorded_per_user(start: Start) {
    let instance = start("abuse-13", &[]);
    let use_ticket = |token: &str| -> Value {
        let reply = instance.call("POST", "/api/v1/user-data/import", token, fixtures::SECRETS);
        let job = reply.json()["jobId"].as_str().unwrap().to_string();
        let path = format!("/api/v1/user-data/import/{job}/status");
        assert!(
            instance.eventually(30, || instance.call("GET", &path, token, b"").json()["status"] == "awaiting_ticket")
        );
        let answer =
            instance.call("POST", &format!("/api/v1/user-data/import/{job}/ticket"), token, fixtures::SECRETS_TICKET);
        assert_eq!(answer.status, 200);
        instance.wait_job(token, &job);
        answer.json()
    };
    let (alice, bob) = (instance.account("alice"), instance.account("bob"));
    assert_eq!(use_ticket(&alice)["wasReused"], false);
    let bobs = use_ticket(&bob);
    assert_eq!(bobs["wasReused"], false, "alice's use is not bob's: {bobs}");
    assert_eq!(bobs["previouslyConsumedAt"], Value::Null);
    assert_eq!(use_ticket(&alice)["wasReused"], true);
}

#[test]
fn f14_the_data_directory_is_private_and_cookies_are_secure_behind_https() {
    let instance = Instance::start("abuse-14", &[]);
    let token = instance.account("alice");
    let asset = json!({"id": uuid(0xe01), "user_id": "x", "bundle_id": "b", "slug": "s", "storage_type": "file", "file_name": "a.css"});
    let bytes = archive(
        json!({}),
        vec![table("theme_assets", &[asset]), RawEntry::stored("files/theme-assets/b/a.css", b"body{}")],
    );
    assert_eq!(instance.import_raw(&token, &bytes)["fileSummary"]["imported"], 1);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&instance.data), 0o700);
    let mut checked = 0;
    let mut pending = vec![instance.data.clone()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            assert_eq!(mode(&path) & 0o077, 0, "{path:?} is open to others ({:o})", mode(&path));
            checked += 1;
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    assert!(checked >= 5, "{checked}");

    let body = json!({"username": "alice", "password": "pw-alice"}).to_string();
    let cookie = |headers: &[(&str, &str)]| {
        let reply = request(instance.address(), "POST", "/api/v1/auth/login", headers, body.as_bytes());
        reply.header("set-cookie").unwrap_or_default().to_string()
    };
    let json = ("Content-Type", "application/json");
    assert!(cookie(&[json, ("X-Forwarded-Proto", "https")]).contains("; Secure"));
    assert!(!cookie(&[json]).contains("Secure"));
}

fn f15_rows_keyed_by_another_users_ids_are_refused(start: Start) {
    let instance = start("abuse-15", &[]);
    let (alice, bob) = (instance.account("alice"), instance.account("bob"));
    let (message, session) = (uuid(0xf01), uuid(0xf02));
    // Alice learns ids of Bob's and imports rows keyed by them before Bob restores.
    let squat = archive(
        json!({"archiveId": uuid(0xf0a)}),
        vec![
            table("characters", &[json!({"id": uuid(0xf03), "name": "decoy"})]),
            table("chats", &[json!({"id": uuid(0xf04), "character_id": uuid(0xf03)})]),
            table(
                "message_breakdowns",
                &[json!({"message_id": message, "chat_id": uuid(0xf04), "data": "{\"squat\":1}"})],
            ),
            table("weaver_bible", &[json!({"session_id": session, "user_id": "x"})]),
        ],
    );
    let status = instance.import_raw(&alice, &squat);
    assert_eq!(status["summary"]["message_breakdowns"]["rejected"], 1, "{status}");
    assert_eq!(status["summary"]["weaver_bible"]["rejected"], 1, "{status}");
    let own = archive(
        json!({"archiveId": uuid(0xf0b)}),
        vec![
            table("characters", &[json!({"id": uuid(0xf05), "name": "mine"})]),
            table("chats", &[json!({"id": uuid(0xf06), "character_id": uuid(0xf05)})]),
            table("messages", &[json!({"id": message, "chat_id": uuid(0xf06), "index_in_chat": 0})]),
            table(
                "message_breakdowns",
                &[json!({"message_id": message, "chat_id": uuid(0xf06), "data": "{\"mine\":1}"})],
            ),
            table("weaver_sessions", &[json!({"id": session, "user_id": "x"})]),
            table("weaver_bible", &[json!({"session_id": session, "user_id": "x"})]),
        ],
    );
    let status = instance.import_raw(&bob, &own);
    assert_eq!(status["summary"]["message_breakdowns"]["imported"], 1, "{status}");
    assert_eq!(status["summary"]["weaver_bible"]["imported"], 1, "{status}");
}

fn f16_sign_ins_and_another_import_go_through_while_a_large_import_writes(start: Start) {
    // Sign-ins are limited per address (10, then one per 6 s): this is about being answered
    // while the import writes, for as long as it writes, so the limit is out of the way.
    let instance = start("abuse-16", &[("LVBAK_HOSTING", "login_burst=1000")]);
    let mallory = instance.account("mallory");
    let victim = instance.account("victim");
    let rows = 60_000u64;
    let characters: Vec<Value> = (0..rows)
        .map(|n| json!({"id": uuid(0x1600_0000 + n), "name": format!("c{n}"), "description": "x".repeat(200)}))
        .collect();
    let large = archive(json!({}), vec![table("characters", &characters)]);
    let small = archive(json!({}), vec![table("characters", &[json!({"id": uuid(0x1601), "name": "mine"})])]);

    let reply = instance.call("POST", "/api/v1/user-data/import", &mallory, &large);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let job = reply.json()["jobId"].as_str().unwrap().to_string();
    let status_path = format!("/api/v1/user-data/import/{job}/status");
    // Sign-ins (each writes a session) and a second import (a second bulk writer) while the
    // large import holds the write turns; each must be answered and land.
    let (mut signed_in_while_running, mut signed_in) = (0, 0);
    let mut victim_import = None;
    for _ in 0..200 {
        let running = instance.call("GET", &status_path, &mallory, b"").json()["status"] == "running";
        if !running && signed_in_while_running > 0 {
            break;
        }
        let token = instance.login("victim");
        assert_eq!(instance.call("GET", "/api/v1/auth/me", &token, b"").status, 200);
        signed_in += 1;
        if running {
            signed_in_while_running += 1;
            if victim_import.is_none() {
                let reply = instance.call("POST", "/api/v1/user-data/import", &victim, &small);
                assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
                victim_import = Some(reply.json()["jobId"].as_str().unwrap().to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(signed_in_while_running > 0, "the large import ended before any sign-in ({signed_in} sign-ins)");
    eprintln!("{signed_in_while_running} of {signed_in} sign-ins while the large import ran");
    let done = instance.wait_job(&mallory, &job);
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["summary"]["characters"]["imported"], rows, "{done}");
    let theirs = instance.wait_job(&victim, victim_import.as_deref().unwrap());
    assert_eq!(theirs["status"], "complete", "{theirs}");
    assert_eq!(theirs["summary"]["characters"]["imported"], 1, "{theirs}");
    let victim_id = instance.user_id(&victim);
    let mallory_id = instance.user_id(&mallory);
    let count = |user: &str| instance.count_rows(&format!("SELECT count(*) FROM characters WHERE user_id = '{user}'"));
    assert_eq!((count(&mallory_id), count(&victim_id)), (rows as i64, 1));
}

#[test]
fn f17_a_shared_instance_does_not_call_inside_its_own_network_for_embeddings() {
    let stub = lvbak_tests::embedding_stub::EmbeddingStub::start(8);
    let instance = Instance::start("abuse-17", &[("LVBAK_HOSTING", "embedding_private_hosts=0")]);
    let mallory = instance.account("mallory");
    // A literal loopback address, a name that resolves to it, and a metadata address.
    let port = stub.url.trim_start_matches("http://127.0.0.1:").trim_end_matches("/v1").to_string();
    for url in [stub.url.clone(), format!("http://localhost:{port}/v1"), "http://169.254.169.254/latest".to_string()] {
        let body = json!({"enabled": true, "provider": "openai-compatible", "api_url": url, "model": "m"});
        let reply = instance.call("PUT", "/api/v1/embeddings/config", &mallory, body.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        let test = instance.call("POST", "/api/v1/embeddings/test", &mallory, b"");
        assert_eq!((test.status, test.json()["code"].as_str()), (502, Some("private_host")), "{url}: {}", test.json());
    }
    assert_eq!(stub.seen(|s| s.embedded_requests + s.refused), 0, "the stub was called");
    // The same instance with the default lets an account use a local provider.
    drop(instance);
    let open = Instance::start("abuse-17-open", &[]);
    let alice = open.account("alice");
    let body = json!({"enabled": false, "provider": "openai-compatible", "api_url": stub.url, "model": "m"});
    assert_eq!(open.call("PUT", "/api/v1/embeddings/config", &alice, body.to_string().as_bytes()).status, 200);
    let test = open.call("POST", "/api/v1/embeddings/test", &alice, b"");
    assert_eq!(test.status, 200, "{}", test.json());
    assert_eq!(stub.seen(|s| s.embedded_requests), 1);
}

/// Opening a batch import makes the server read the account's own files to tell which it
/// holds already: an account cannot make it read more than `held_check_bytes` per import
/// (files past it are simply sent again), nor read every id it has more than a few times.
fn f18_telling_what_an_account_holds_is_bounded(start: Start) {
    let instance = start("abuse-18", &[("LVBAK_HOSTING", "held_check_bytes=3M")]);
    let token = instance.account("holder");
    let images: Vec<(String, Vec<u8>)> =
        (0..3).map(|n| (format!("{}.png", uuid(0x1800 + n)), noise(2 << 20, 0x18 + n))).collect();
    let rows: Vec<Value> = images
        .iter()
        .map(|(name, _)| json!({"id": name.trim_end_matches(".png"), "filename": name, "mime_type": "image/png"}))
        .collect();
    let mut entries = vec![table("images", &rows)];
    entries.extend(images.iter().map(|(name, bytes)| RawEntry::stored(&format!("files/images/{name}"), bytes)));
    let bytes = archive(json!({}), entries);
    let first = instance.import_raw(&token, &bytes);
    assert_eq!(first["fileSummary"]["imported"], 3, "{first}");

    // Three 2 MiB files the account holds; 3 MiB of reading tells one of them.
    let claims = lvbak_core::upload::file_claims(
        &Archive::open(std::io::Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap(),
    );
    let body = json!({"manifest": manifest(json!({})), "files": claims}).to_string();
    let opened = instance.call("POST", "/api/v1/user-data/import/batches", &token, body.as_bytes());
    assert_eq!(opened.status, 201, "{}", String::from_utf8_lossy(&opened.body));
    let held = opened.json()["heldFiles"].as_array().unwrap().len();
    assert_eq!(held, 1, "{}", opened.json());

    // The account's ids: eight readings per import (HELD_ROWS_READS), then 429.
    let job = opened.json()["jobId"].as_str().unwrap().to_string();
    let path = format!("/api/v1/user-data/import/{job}/held-rows");
    for reading in 0..8 {
        let answer = instance.call("GET", &path, &token, b"");
        assert_eq!(answer.status, 200, "reading {reading}");
        assert!(
            answer.json()["tables"]["images"].as_str().is_some_and(|hashes| hashes.len() == 32),
            "{}",
            answer.json()
        );
    }
    let refused = instance.call("GET", &path, &token, b"");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["code"], "rate_limited");

    // Nobody else's job: another account asks for this job's held rows and is refused.
    let stranger = instance.account("stranger");
    assert_eq!(instance.call("GET", &path, &stranger, b"").status, 404);
}

on_each_backend!(
    f03_finished_jobs_are_forgotten_and_their_reports_stay_small,
    f05_an_export_holds_only_its_owners_files_and_nobody_plants_files_for_another,
    f09_a_quota_stops_a_file_bomb_and_leaves_nothing_behind,
    f10_prepared_exports_are_bounded_per_user,
    f13_ticket_uses_are_recorded_per_user,
    f15_rows_keyed_by_another_users_ids_are_refused,
    f16_sign_ins_and_another_import_go_through_while_a_large_import_writes,
    f18_telling_what_an_account_holds_is_bounded,
);
