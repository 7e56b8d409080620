//! One test per finding of the hostile-users issue (the surfaces added after the hosting
//! work: settings and re-vectorization, remapping, batches, bundles and row streams, held
//! rows and files, quotas), each against a real `lvbak serve` on 127.0.0.1 with two or more
//! accounts, one attacking, and each asserting the bound or the rule: requests a provider
//! saw and the keys they carried, peak memory, ids in the victim's rows, bytes charged,
//! and — where time is the point — progress within a deadline ten times the normal time.
//! The tests about accounts' rows, keys and settings run on SQLite and on PostgreSQL
//! (`on_each_backend!`, at the end); h15 weighs SQLite's own pages and stays on SQLite.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lvbak_core::batch::{deflate_ndjson, encode_bundle, Batch, PlainSecret};
use lvbak_tests::embedding_stub::EmbeddingStub;
use lvbak_tests::zipcraft::RawEntry;
use serde_json::{json, Value};

use crate::common::run_lvbak;
use crate::support::{archive, count_rows, manifest, on_each_backend, rows_batch, table, uuid, Instance, Start};

/// The most an attack may raise the server's resident memory, in MiB.
const MEMORY_BOUND_MIB: f64 = 256.0;

fn assert_memory(rise: f64, what: &str) {
    assert!(rise < MEMORY_BOUND_MIB, "{what}: peak RSS rose {rise:.0} MiB (bound {MEMORY_BOUND_MIB} MiB)");
    eprintln!("{what}: peak RSS rose {rise:.1} MiB");
}

/// `PUT /api/v1/embeddings/config`; the answer.
fn configure(instance: &Instance, token: &str, body: Value) -> Value {
    let reply = instance.call("PUT", "/api/v1/embeddings/config", token, body.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn embeddings_status(instance: &Instance, token: &str) -> Value {
    instance.call("GET", "/api/v1/embeddings/status", token, b"").json()
}

/// A world book and its entries (vector search on, so an import without vectors marks
/// them to be embedded again), and, if given, an `embeddingConfig` setting.
fn world_book_archive(archive_id: u64, book: u64, contents: &[&str], setting: Option<Value>) -> Vec<u8> {
    let entries: Vec<Value> = contents
        .iter()
        .enumerate()
        .map(|(n, content)| {
            json!({"id": uuid(book + 1 + n as u64), "world_book_id": uuid(book), "uid": n, "content": content,
                   "vectorized": 1, "vector_index_status": "indexed"})
        })
        .collect();
    let mut tables = Vec::new();
    if let Some(setting) = setting {
        tables.push(table(
            "settings",
            &[json!({"key": "embeddingConfig", "value": setting.to_string(), "user_id": "x"})],
        ));
    }
    tables.push(table("world_books", &[json!({"id": uuid(book), "name": "lore"})]));
    tables.push(table("world_book_entries", &entries));
    archive(json!({"archiveId": uuid(archive_id)}), tables)
}

/// An `embeddingConfig` a pack author would ship: their own server, switched on.
fn pack_setting(url: &str) -> Value {
    json!({"enabled": true, "provider": "openai-compatible", "api_url": url, "model": "pack-model",
           "vectorize_world_books": true, "vectorize_chat_messages": true, "request_timeout": 0})
}

/// Restores API keys the way the page does: a batch import whose secrets come sealed to
/// the job's key (the browser decrypted them with the archive's ticket).
fn restore_secrets(instance: &Instance, token: &str, secrets: &[(&str, &str)]) -> Value {
    let archive_id = uuid(0x5ec0);
    let keys: Vec<&str> = secrets.iter().map(|(key, _)| *key).collect();
    let body = json!({
        "manifest": manifest(json!({"archiveId": archive_id, "hasEncryptedSecrets": true, "secretsCount": keys.len()})),
        "secretsIndex": {"version": 1, "archiveId": archive_id, "keys": keys},
    });
    let opened = instance.call("POST", "/api/v1/user-data/import/batches", token, body.to_string().as_bytes());
    assert_eq!(opened.status, 201, "{}", String::from_utf8_lossy(&opened.body));
    let opened = opened.json();
    let job = opened["jobId"].as_str().unwrap().to_string();
    let batch = sealed_secrets(&opened, &job, secrets);
    assert_eq!(instance.put_batch(token, &job, 0, &batch).status, 200);
    let done = instance.commit(token, &job, 1);
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    done.json()
}

/// A secrets batch sealed to an open job's key.
fn sealed_secrets(opened: &Value, job: &str, secrets: &[(&str, &str)]) -> Vec<u8> {
    let recipient: [u8; 32] = BASE64.decode(opened["hpkePublicKey"].as_str().unwrap()).unwrap().try_into().unwrap();
    let plain: Vec<PlainSecret> =
        secrets.iter().map(|(key, value)| PlainSecret { key: key.to_string(), value: value.to_string() }).collect();
    let plaintext = serde_json::to_vec(&plain).unwrap();
    let (enc, sealed) =
        lvbak_core::hpke::seal(&recipient, [0x42; 32], lvbak_core::hpke::SECRETS_INFO, job.as_bytes(), &plaintext)
            .unwrap();
    Batch::Secrets { enc, sealed }.encode().unwrap()
}

/// Finding 1: a shared archive's settings never send an account's key or texts to the
/// pack author — not by filling the URL of a setting saved without one, not with a key
/// restored from a backup, not by starting a run over the account's own waiting rows.
fn h01_a_shared_archive_never_sends_an_accounts_key_or_texts_anywhere(start: Start) {
    let attacker = EmbeddingStub::start(8);
    let own = EmbeddingStub::start(8);
    own.set(|s| s.key = Some("victim-key".into()));
    let instance = start("hostile-01", &[]);
    let mallory = instance.account("mallory");
    let pack =
        |n: u64| world_book_archive(0x1a0 + n, 0x1000 * (n + 1), &["pack lore"], Some(pack_setting(&attacker.url)));
    // The pack imports into the author's own account as any archive does.
    assert_eq!(instance.import_raw(&mallory, &pack(0))["status"], "complete");

    // (a) An account whose setting was saved without a URL, with a key.
    let alice = instance.account("alice");
    configure(&instance, &alice, json!({"enabled": true, "model": "m", "api_key": "victim-key"}));
    let before = instance.call("GET", "/api/v1/embeddings/config", &alice, b"").json();
    assert_eq!(instance.import_raw(&alice, &pack(1))["status"], "complete");
    let after = instance.call("GET", "/api/v1/embeddings/config", &alice, b"").json();
    assert_eq!(after, before, "the account's own connection changed");
    assert_eq!(instance.call("POST", "/api/v1/embeddings/test", &alice, b"").status, 502, "api.openai.com is not here");

    // (b) An account with no setting whose key came back from its own backup (the older
    // shared name Lumiverse still reads), then a pack with the author's URL.
    let bob = instance.account("bob");
    let restored = restore_secrets(&instance, &bob, &[("embedding_api_key", "victim-key")]);
    assert_eq!(restored["secretSummary"]["imported"], 1, "{restored}");
    assert_eq!(instance.import_raw(&bob, &pack(2))["status"], "complete");
    let config = instance.call("GET", "/api/v1/embeddings/config", &bob, b"").json();
    assert_eq!((config["restored"].as_bool(), config["enabled"].as_bool()), (Some(true), Some(false)), "{config}");
    assert_eq!(config["has_api_key"], false, "{config}");
    let start = instance.call("POST", "/api/v1/embeddings/start", &bob, b"");
    assert_eq!((start.status, start.json()["code"].as_str()), (409, Some("embeddings_not_confirmed")));
    // Testing the connection is the user's own act: it may reach the URL, never with the key.
    instance.call("POST", "/api/v1/embeddings/test", &bob, b"");

    // (c) An account whose own rows wait for vectors, with no setting and no key: the
    // pack's setting must not start a run over them.
    let carol = instance.account("carol");
    let secret_lore = world_book_archive(0x1c0, 0xc000, &["carol's private memory"], None);
    assert_eq!(instance.import_raw(&carol, &secret_lore)["revectorized"], 1);
    assert_eq!(instance.import_raw(&carol, &pack(3))["status"], "complete");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(embeddings_status(&instance, &carol)["status"], "idle");

    let (keys, texts): (Vec<String>, Vec<String>) = attacker.seen(|s| (s.authorizations.clone(), s.texts.clone()));
    assert!(keys.iter().all(|k| !k.contains("victim-key")), "the pack author received the key: {keys:?}");
    assert!(texts.iter().all(|t| !t.contains("private memory")), "the pack author received texts: {texts:?}");
    assert!(attacker.seen(|s| s.requests) <= 1, "only bob's own test may reach the pack's URL");

    // Confirming the restored setting with the account's own provider sends the key there
    // (and only there), and the waiting rows go with it.
    let confirmed = configure(
        &instance,
        &carol,
        json!({"enabled": true, "api_url": own.url, "model": "m", "api_key": "victim-key"}),
    );
    assert_eq!((confirmed["restored"].as_bool(), confirmed["has_api_key"].as_bool()), (Some(false), Some(true)));
    assert!(instance.eventually(60, || embeddings_status(&instance, &carol)["status"] == "complete"));
    assert!(own.seen(|s| s.texts.iter().any(|t| t.contains("private memory"))));
    // Bob's restored key was bound to nowhere; once he confirms his own provider it goes there.
    let bobs = configure(&instance, &bob, json!({"enabled": true, "api_url": own.url, "model": "m"}));
    assert_eq!(bobs["has_api_key"], true, "{bobs}");
    assert_eq!(instance.call("POST", "/api/v1/embeddings/test", &bob, b"").status, 200);
    // A key saved for one URL is not sent to another the user types later.
    let moved = configure(&instance, &bob, json!({"api_url": attacker.url}));
    assert_eq!(
        (moved["has_api_key"].as_bool(), moved["key_saved_for"].as_str()),
        (Some(false), Some(format!("{}/embeddings", own.url).as_str())),
        "{moved}"
    );
    instance.call("POST", "/api/v1/embeddings/test", &bob, b"");
    let keys = attacker.seen(|s| s.authorizations.clone());
    assert!(keys.iter().all(|k| !k.contains("victim-key")), "the key followed the URL: {keys:?}");
}

/// Finding 2: looked-up values are cached by their full text; an account with one copied
/// row sent rows whose parent ids are megabytes long (+1 GiB per MB-sized request).
fn h02_the_remap_lookup_cache_is_bounded_in_bytes(start: Start) {
    let instance = start("hostile-02", &[]);
    let (victim, mallory) = (instance.account("victim"), instance.account("mallory"));
    let shared =
        archive(json!({"archiveId": uuid(0x2a)}), vec![table("characters", &[json!({"id": uuid(0x2b), "name": "c"})])]);
    assert_eq!(instance.import_raw(&victim, &shared)["status"], "complete");
    let copied = instance.import_raw(&mallory, &shared);
    assert_eq!(copied["summary"]["characters"]["remapped"], 1, "{copied}");
    let job = instance.open_batches(&mallory, manifest(json!({})));
    let long = "x".repeat(1 << 20);
    let rise = instance.memory_rise(|| {
        for batch in 0..16u64 {
            let lines: String = (0..64u64)
                .map(|n| format!("{}\n", json!({"id": uuid(0x2000 + batch * 64 + n), "chat_id": format!("{long}{batch}-{n}"), "index_in_chat": 0})))
                .collect();
            let body = rows_batch("messages", batch * 64 + 1, lines.as_bytes());
            assert!(body.len() < 128 * 1024, "a small request: {}", body.len());
            let reply = instance.put_batch(&mallory, &job, batch, &body);
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        }
        let done = instance.commit(&mallory, &job, 16);
        assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
        assert_eq!(done.json()["summary"]["messages"]["rejected"], 1024, "{}", done.json());
    });
    assert_memory(rise, "1 GiB of distinct parent ids in 16 small batches");
}

/// Finding 3: the connection test read a 48 MB answer whole into a JSON tree (+1.7 GiB),
/// took no place among the instance's requests, and a timeout of 0 never ended.
#[test]
fn h03_the_connection_test_is_bounded_in_memory_places_and_time() {
    let huge = EmbeddingStub::start(8);
    huge.set(|s| s.huge_answer = Some(48 << 20));
    let instance = Instance::start("hostile-03", &[("LVBAK_HOSTING", "embedding_timeout=5")]);
    let (mallory, victim) = (instance.account("mallory"), instance.account("victim"));
    configure(&instance, &mallory, json!({"enabled": false, "api_url": huge.url, "model": "m"}));
    let rise = instance.memory_rise(|| {
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    let reply = instance.call("POST", "/api/v1/embeddings/test", &mallory, b"");
                    assert_eq!(
                        (reply.status, reply.json()["code"].as_str()),
                        (502, Some("provider_error")),
                        "{}",
                        reply.json()
                    );
                });
            }
        });
    });
    assert_memory(rise, "three tests against a 48 MB answer");

    // Twelve tests at once from one account: the provider sees one at a time.
    let slow = EmbeddingStub::start(8);
    slow.set(|s| s.delay = Duration::from_millis(300));
    configure(&instance, &mallory, json!({"api_url": slow.url}));
    std::thread::scope(|scope| {
        for _ in 0..12 {
            scope.spawn(|| assert_eq!(instance.call("POST", "/api/v1/embeddings/test", &mallory, b"").status, 200));
        }
    });
    assert_eq!(slow.seen(|s| (s.requests, s.most_open)), (12, 1));

    // A provider that never answers, with Lumiverse's "no limit": the test ends at the
    // instance's longest timeout (5 s here), and another account's test goes through.
    let hanging = EmbeddingStub::start(8);
    hanging.set(|s| s.hang = true);
    configure(&instance, &mallory, json!({"api_url": hanging.url, "request_timeout": 0}));
    configure(&instance, &victim, json!({"enabled": false, "api_url": slow.url, "model": "m"}));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let hung = scope.spawn(|| instance.call("POST", "/api/v1/embeddings/test", &mallory, b""));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(instance.call("POST", "/api/v1/embeddings/test", &victim, b"").status, 200);
        let reply = hung.join().unwrap();
        assert_eq!((reply.status, reply.json()["code"].as_str()), (502, Some("unreachable")), "{}", reply.json());
    });
    assert!(started.elapsed() < Duration::from_secs(50), "took {:?} (the timeout is 5 s)", started.elapsed());
}

/// The private-host guard's addendum: IPv6 forms of a loopback address, and a name that
/// does not resolve (retried twice, not eight times).
#[test]
fn h03b_embedded_ipv4_forms_are_private_and_unknown_names_fail_fast() {
    let instance = Instance::start("hostile-03b", &[("LVBAK_HOSTING", "embedding_private_hosts=0")]);
    let mallory = instance.account("mallory");
    for host in ["[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::127.0.0.1]", "[2002:7f00:1::]"] {
        configure(&instance, &mallory, json!({"api_url": format!("http://{host}:9/v1"), "model": "m"}));
        let reply = instance.call("POST", "/api/v1/embeddings/test", &mallory, b"");
        assert_eq!(reply.json()["code"], "private_host", "{host}: {}", reply.json());
    }
    // A run against a name that does not resolve stops after two attempts (it made eight,
    // about 2.5 minutes of backoff).
    let open = Instance::start("hostile-03b-open", &[("LVBAK_HOSTING", "embedding_timeout=10")]);
    let alice = open.account("alice");
    let lore = world_book_archive(0x3b0, 0x3b_0000, &["a"], None);
    assert_eq!(open.import_raw(&alice, &lore)["revectorized"], 1);
    let started = Instant::now();
    configure(&open, &alice, json!({"enabled": true, "api_url": "http://no-such-host.invalid/v1", "model": "m"}));
    let stopped = open.eventually(60, || embeddings_status(&open, &alice)["status"] == "unreachable");
    assert!(stopped, "{}", embeddings_status(&open, &alice));
    eprintln!("a run against an unknown name stopped after {:?}", started.elapsed());
}

/// Opens a PUT of a batch that claims `length` bytes and sends `sent` of them, then stalls.
fn stalled_put(instance: &Instance, token: &str, job: &str, number: u64, length: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(instance.address()).unwrap();
    // A refused body is not read: the writes stop where the server stopped taking them.
    stream.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let head = format!(
        "PUT /api/v1/user-data/import/{job}/batches/{number} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         X-Batch-Sha256: 00\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(&vec![b'x'; sent]);
    stream
}

/// Finding 4: the batch memory was reserved from Content-Length before the body was read,
/// with no time limit: eight stalled PUTs of one account made everyone's batches `busy`.
#[test]
fn h04_stalled_uploads_hold_only_what_they_sent_and_only_until_their_deadline() {
    let instance = Instance::start("hostile-04", &[]);
    let (mallory, victim) = (instance.account("mallory"), instance.account("victim"));
    let job = instance.open_batches(&mallory, manifest(json!({})));
    let length = 8 << 20;
    let stalled: Vec<TcpStream> =
        (0..8).map(|n| stalled_put(&instance, &mallory, &job, n, length, length - 1024)).collect();
    std::thread::sleep(Duration::from_secs(1));
    // Another account's whole import goes through while those sockets stay open, in
    // batches of 1.5 MB as the page sends them (each needs 2 MiB of the budget).
    let other = instance.open_batches(&victim, manifest(json!({})));
    for n in 0..4u64 {
        let rows: String = (0..2000u64)
            .map(|i| {
                let mut state = (n * 2000 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let noise: String = (0..1100)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        char::from(b'a' + (state % 26) as u8)
                    })
                    .collect();
                format!("{}\n", json!({"id": uuid(0x4_0000 + n * 2000 + i), "name": noise}))
            })
            .collect();
        let body = rows_batch("world_books", n * 2000 + 1, rows.as_bytes());
        assert!(body.len() > 1 << 20, "{}", body.len());
        let reply = instance.put_batch(&victim, &other, n, &body);
        assert_eq!(reply.status, 200, "the victim's batch {n}: {}", String::from_utf8_lossy(&reply.body));
    }
    assert_eq!(instance.commit(&victim, &other, 4).status, 200);
    // Past their deadline (15 s + 64 s for 8 MiB) the stalled bodies are answered and closed.
    let deadline = Instant::now() + Duration::from_secs(120);
    for mut stream in stalled {
        stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1))))
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 503"), "a stalled body got: {text:.80}");
    }
}

/// Finding 5: restored API keys were outside the quota, and any number of secrets batches
/// could follow.
fn h05_secrets_count_against_the_quota_and_come_once(start: Start) {
    let instance = start("hostile-05", &[("LVBAK_QUOTA", "4M")]);
    let (mallory, victim) = (instance.account("mallory"), instance.account("victim"));
    let value = "k".repeat(60 * 1024);
    let names: Vec<String> = (0..120).map(|n| format!("connection_{n}_api_key")).collect();
    let secrets: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), value.as_str())).collect();
    let archive_id = uuid(0x5a);
    let body = json!({
        "manifest": manifest(json!({"archiveId": archive_id, "hasEncryptedSecrets": true, "secretsCount": names.len()})),
        "secretsIndex": {"version": 1, "archiveId": archive_id, "keys": names},
    });
    let opened =
        instance.call("POST", "/api/v1/user-data/import/batches", &mallory, body.to_string().as_bytes()).json();
    let job = opened["jobId"].as_str().unwrap().to_string();
    let batch = sealed_secrets(&opened, &job, &secrets);
    assert!(batch.len() > 7 << 20, "{}", batch.len());
    assert_eq!(instance.put_batch(&mallory, &job, 0, &batch).status, 200);
    let done = instance.commit(&mallory, &job, 1);
    assert_eq!(done.json()["code"], "quota_exceeded", "{}", String::from_utf8_lossy(&done.body));
    let mallory_id = instance.user_id(&mallory);
    let stored = instance.count_rows(&format!(
        "SELECT coalesce(sum(length(encrypted_value)), 0) FROM secrets WHERE user_id = '{mallory_id}'"
    ));
    assert!(stored <= 4 << 20, "{stored} bytes of secrets stored under a 4 MiB quota");
    let used = instance.count_rows(&format!("SELECT bytes FROM lvbak_usage WHERE user_id = '{mallory_id}'"));
    assert!(used >= stored && used <= 4 << 20, "usage {used} for {stored} bytes of secrets");

    // A second secrets batch in one job is refused.
    let opened = instance.call("POST", "/api/v1/user-data/import/batches", &victim, body.to_string().as_bytes()).json();
    let job = opened["jobId"].as_str().unwrap().to_string();
    let one = sealed_secrets(&opened, &job, &secrets[..1]);
    assert_eq!(instance.put_batch(&victim, &job, 0, &one).status, 200);
    assert_eq!(instance.put_batch(&victim, &job, 1, &one).status, 200);
    let done = instance.commit(&victim, &job, 2);
    assert_eq!(done.json()["code"], "bad_secrets", "{}", String::from_utf8_lossy(&done.body));
    let victim_id = instance.user_id(&victim);
    assert_eq!(instance.count_rows(&format!("SELECT count(*) FROM secrets WHERE user_id = '{victim_id}'")), 1);
}

/// Finding 6: four accounts pointed at providers that never answer held every request
/// place; a fifth account's run stayed at 0 for 120 s.
#[test]
fn h06_providers_that_never_answer_do_not_starve_another_accounts_run() {
    let hanging = EmbeddingStub::start(8);
    hanging.set(|s| s.hang = true);
    let good = EmbeddingStub::start(8);
    let instance = Instance::start("hostile-06", &[("LVBAK_HOSTING", "embedding_requests=4,embedding_timeout=5")]);
    for n in 0..4u64 {
        let token = instance.account(&format!("mallory{n}"));
        let lore = world_book_archive(0x600 + n, 0x6_0000 * (n + 1), &["a", "b"], None);
        assert_eq!(instance.import_raw(&token, &lore)["revectorized"], 2);
        configure(
            &instance,
            &token,
            json!({"enabled": true, "api_url": hanging.url, "model": "m", "request_timeout": 0}),
        );
    }
    assert!(instance.eventually(10, || hanging.seen(|s| s.open) == 4), "the four runs are waiting on the provider");
    let victim = instance.account("victim");
    let lore = world_book_archive(0x6ff, 0x6f_0000, &["one", "two", "three"], None);
    assert_eq!(instance.import_raw(&victim, &lore)["revectorized"], 3);
    configure(&instance, &victim, json!({"enabled": true, "api_url": good.url, "model": "m", "batch_size": 1}));
    // Normal time is about one request timeout of the hanging providers (5 s): ten times that.
    let done = instance.eventually(50, || embeddings_status(&instance, &victim)["status"] == "complete");
    assert!(done, "the victim's run: {}", embeddings_status(&instance, &victim));
    assert_eq!(good.seen(|s| s.embedded_texts), 3);
}

/// A raw import of `tables` for the account behind `token`; its final status.
fn import(instance: &Instance, token: &str, archive_id: u64, tables: Vec<RawEntry>) -> Value {
    instance.import_raw(token, &archive(json!({"archiveId": uuid(archive_id)}), tables))
}

/// Finding 7: after another account squats a victim's ids, the victim's copies kept ids
/// of the squatter's rows in columns the remap did not know.
fn h07_a_restore_under_new_ids_rewrites_every_id_column(start: Start) {
    let instance = start("hostile-07", &[]);
    let (mallory, victim) = (instance.account("mallory"), instance.account("victim"));
    let [character, chat, m1, m2, chunk, consolidation, entity, regex, databank] =
        [0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79].map(uuid);
    let tables = || {
        vec![
            table("characters", &[json!({"id": character, "name": "c"})]),
            table(
                "regex_scripts",
                &[json!({"id": regex, "name": "r", "find_regex": "x", "scope": "character", "scope_id": character})],
            ),
            table(
                "databanks",
                &[
                    json!({"id": databank, "name": "d", "scope": "chat", "scope_id": chat, "created_at": 1, "updated_at": 1}),
                ],
            ),
            table("chats", &[json!({"id": chat, "character_id": character, "metadata": "{}"})]),
            table(
                "messages",
                &[
                    json!({"id": m1, "chat_id": chat, "index_in_chat": 0}),
                    json!({"id": m2, "chat_id": chat, "index_in_chat": 1}),
                ],
            ),
            table(
                "chat_chunks",
                &[json!({"id": chunk, "chat_id": chat, "start_message_id": m1, "end_message_id": m2,
                "message_ids": json!([m1, m2]).to_string(), "entity_ids": json!([entity]).to_string(), "consolidation_id": consolidation,
                "content": "t", "token_count": 1, "message_count": 2, "created_at": 1, "updated_at": 1})],
            ),
            table(
                "memory_entities",
                &[
                    json!({"id": entity, "chat_id": chat, "name": "e", "first_seen_chunk_id": chunk, "last_seen_chunk_id": chunk, "created_at": 1, "updated_at": 1}),
                ],
            ),
            table(
                "memory_consolidations",
                &[json!({"id": consolidation, "chat_id": chat, "summary": "s", "created_at": 1, "updated_at": 1})],
            ),
        ]
    };
    // The squatter imports the victim's ids first (learnt from a shared backup).
    assert_eq!(import(&instance, &mallory, 0x7a, tables())["status"], "complete");
    let restored = import(&instance, &victim, 0x7b, tables());
    assert_eq!(restored["summary"]["chat_chunks"]["remapped"], 1, "{restored}");
    let victim_id = instance.user_id(&victim);
    let one = |sql: &str| -> String { instance.text(&sql.replace("$V", &victim_id)) };
    let chunk_row = instance.row(&format!(
        "SELECT k.id, start_message_id, end_message_id, message_ids, entity_ids, consolidation_id FROM chat_chunks k
         JOIN chats c ON c.id = k.chat_id WHERE c.user_id = '{victim_id}'"
    ));
    let column = |index: usize| chunk_row[index].as_str().unwrap_or_else(|| panic!("{chunk_row:?}")).to_string();
    let (chunk_id, start, end, ids, entities, folded) =
        (column(0), column(1), column(2), column(3), column(4), column(5));
    let mine = |table: &str, id: &str| {
        instance.count_rows(&format!(
            "SELECT count(*) FROM {table} t WHERE t.id = '{id}' AND {}",
            match table {
                "characters" | "chats" => format!("t.user_id = '{victim_id}'"),
                _ => format!("t.chat_id IN (SELECT id FROM chats WHERE user_id = '{victim_id}')"),
            }
        )) == 1
    };
    assert_ne!(chunk_id, chunk);
    for message in [&start, &end] {
        assert!(mine("messages", message), "a chunk names message {message}, not the victim's copy");
    }
    let listed: Vec<String> = serde_json::from_str(&ids).unwrap();
    assert!(listed.len() == 2 && listed.iter().all(|m| mine("messages", m)), "{ids}");
    let listed: Vec<String> = serde_json::from_str(&entities).unwrap();
    assert!(listed.len() == 1 && mine("memory_entities", &listed[0]), "{entities}");
    assert!(mine("memory_consolidations", &folded), "{folded}");
    let seen = one("SELECT first_seen_chunk_id || ' ' || last_seen_chunk_id FROM memory_entities e JOIN chats c ON c.id = e.chat_id WHERE c.user_id = '$V'");
    assert_eq!(seen, format!("{chunk_id} {chunk_id}"));
    let scoped = one("SELECT scope_id FROM regex_scripts WHERE user_id = '$V'");
    assert!(mine("characters", &scoped), "the victim's regex script is scoped to {scoped}");
    let scoped = one("SELECT scope_id FROM databanks WHERE user_id = '$V'");
    assert!(mine("chats", &scoped), "the victim's databank is scoped to {scoped}");
}

/// Finding 8: a chat naming a character that was not there kept the id, so whoever imported
/// that id later owned the victim's chat's character — and deleting it deleted the chat.
fn h08_a_dangling_reference_is_cleared_and_nobody_can_claim_it_later(start: Start) {
    let instance = start("hostile-08", &[]);
    let (victim, mallory) = (instance.account("victim"), instance.account("mallory"));
    let (character, chat) = (uuid(0x81), uuid(0x82));
    let status = import(
        &instance,
        &victim,
        0x8a,
        vec![
            table("chats", &[json!({"id": chat, "character_id": character, "metadata": "{}"})]),
            table("messages", &[json!({"id": uuid(0x83), "chat_id": chat, "index_in_chat": 0})]),
            table(
                "cortex_chat_links",
                &[
                    json!({"id": uuid(0x84), "chat_id": chat, "target_chat_id": uuid(0x85), "user_id": "x", "link_type": "sibling", "created_at": 1}),
                ],
            ),
        ],
    );
    assert_eq!(status["summary"]["chats"]["imported"], 1, "{status}");
    assert_eq!(
        import(
            &instance,
            &mallory,
            0x8b,
            vec![
                table("characters", &[json!({"id": character, "name": "claimed"})]),
                table("chats", &[json!({"id": uuid(0x85)})]),
            ]
        )["status"],
        "complete"
    );
    let victim_id = instance.user_id(&victim);
    let linked = instance
        .count_rows(&format!("SELECT count(*) FROM chats WHERE user_id = '{victim_id}' AND character_id IS NOT NULL"));
    assert_eq!(linked, 0, "the victim's chat points at a character it never had");
    let links = instance.count_rows(&format!(
        "SELECT count(*) FROM cortex_chat_links WHERE user_id = '{victim_id}' AND target_chat_id IS NOT NULL"
    ));
    assert_eq!(links, 0);
    // With foreign keys on (SQLite's, as Lumiverse opens it), the other account deleting
    // its character leaves the chat.
    instance.execute(&format!(
        "DELETE FROM characters WHERE id = '{character}'; DELETE FROM chats WHERE id = '{}'",
        uuid(0x85)
    ));
    let kept = instance.count_rows(&format!("SELECT (SELECT count(*) FROM chats WHERE user_id = '{victim_id}') + (SELECT count(*) FROM messages WHERE chat_id = '{chat}') + (SELECT count(*) FROM cortex_chat_links WHERE user_id = '{victim_id}')"));
    assert_eq!(kept, 3, "the victim's chat, message and link");
}

/// Finding 9: a batch job cancelled before its commit left forward references naming
/// another account's rows (they are settled only at the end).
fn h09_a_cancelled_import_settles_its_references_as_a_commit_does(start: Start) {
    let instance = start("hostile-09", &[]);
    let (mallory, victim) = (instance.account("mallory"), instance.account("victim"));
    let (character, chat) = (uuid(0x91), uuid(0x92));
    assert_eq!(
        import(
            &instance,
            &mallory,
            0x9a,
            vec![
                table("characters", &[json!({"id": character, "name": "theirs"})]),
                table("chats", &[json!({"id": chat})]),
                table("messages", &[json!({"id": uuid(0x93), "chat_id": chat, "index_in_chat": 0})]),
            ]
        )["status"],
        "complete"
    );
    let job = instance.open_batches(&victim, manifest(json!({})));
    let image = format!(
        "{}\n",
        json!({"id": uuid(0x94), "filename": "a.png", "owner_character_id": character, "owner_chat_id": chat})
    );
    assert_eq!(instance.put_batch(&victim, &job, 0, &rows_batch("images", 1, image.as_bytes())).status, 200);
    let own_chat = format!("{}\n", json!({"id": uuid(0x95)}));
    assert_eq!(instance.put_batch(&victim, &job, 1, &rows_batch("chats", 1, own_chat.as_bytes())).status, 200);
    let message = format!(
        "{}\n",
        json!({"id": uuid(0x96), "chat_id": uuid(0x95), "index_in_chat": 0, "parent_message_id": uuid(0x93)})
    );
    assert_eq!(instance.put_batch(&victim, &job, 2, &rows_batch("messages", 1, message.as_bytes())).status, 200);
    let victim_id = instance.user_id(&victim);
    assert!(instance
        .eventually(20, || instance.count_rows(&format!("SELECT count(*) FROM messages WHERE id = '{}'", uuid(0x96)))
            == 1));
    let cancelled = instance.call("POST", &format!("/api/v1/user-data/import/{job}/cancel"), &victim, b"");
    assert_eq!(cancelled.status, 200);
    assert_eq!(instance.wait_job(&victim, &job)["status"], "cancelled");
    let foreign = instance.count_rows(&format!(
        "SELECT (SELECT count(*) FROM images WHERE user_id = '{victim_id}' AND (owner_character_id = '{character}' OR owner_chat_id = '{chat}'))
              + (SELECT count(*) FROM messages WHERE id = '{}' AND parent_message_id IS NOT NULL)", uuid(0x96)));
    assert_eq!(foreign, 0, "the victim's rows name the other account's rows after a cancel");
}

/// A bundle of `parts` row batches of a table this server does not apply, each inflating to
/// about 70 MiB of lines (one frame, repeated: nothing of a skipped table's lines is
/// numbered against the last).
fn bomb_bundle(parts: usize) -> Vec<u8> {
    let line = format!("{}\n", json!({"a": "x".repeat(1000)}));
    let lines = line.repeat((70 << 20) / line.len());
    let frame = rows_batch("not_a_table", 1, lines.as_bytes());
    encode_bundle(&vec![frame; parts]).unwrap()
}

/// Finding 10: a small bundle of lines for a table the server does not apply ran on for a
/// minute after cancel, holding the only worker.
#[test]
fn h10_bundles_are_bounded_work_and_stop_at_cancel() {
    let instance = Instance::start("hostile-10", &[("LVBAK_HOSTING", "import_workers=1")]);
    let (mallory, victim) = (instance.account("mallory"), instance.account("victim"));
    let bundle = bomb_bundle(36);
    assert!(bundle.len() < 8 << 20, "{}", bundle.len());
    let job = instance.open_batches(&mallory, manifest(json!({})));
    assert_eq!(instance.put_batch(&mallory, &job, 0, &bundle).status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    instance.call("POST", &format!("/api/v1/user-data/import/{job}/cancel"), &mallory, b"");
    let ended = instance.wait_job(&mallory, &job);
    assert!(matches!(ended["status"].as_str(), Some("cancelled" | "failed")), "{ended}");
    // Another account's import, which needs the one worker, goes through.
    let small = archive(json!({}), vec![table("world_books", &[json!({"id": uuid(0xa1), "name": "w"})])]);
    assert_eq!(instance.import_raw(&victim, &small)["status"], "complete");
    assert!(started.elapsed() < Duration::from_secs(15), "cancel took {:?}", started.elapsed());

    // Without a cancel, the bundle ends at the batch's inflation cap.
    let job = instance.open_batches(&mallory, manifest(json!({})));
    assert_eq!(instance.put_batch(&mallory, &job, 0, &bundle).status, 200);
    let ended = instance.wait_job(&mallory, &job);
    assert_eq!(ended["error"]["code"], "decompressed_cap", "{ended}");
}

/// Finding 11: a row stream's unfinished line (up to 64 MiB under the legacy cap) was held
/// between batches outside every budget, for the job's six-hour life, per account.
#[test]
fn h11_a_carried_line_counts_in_the_memory_budget() {
    let instance = Instance::start("hostile-11", &[]);
    let victim = instance.account("victim");
    let line_start = format!("{{\"id\": \"{}\", \"name\": \"", uuid(0xb1)).into_bytes();
    let mut deflated_line = line_start.clone();
    deflated_line.extend(std::iter::repeat_n(b'x', 40 << 20));
    // The start of a deflate stream that goes on (flushed, not finished).
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(&deflated_line).unwrap();
    deflater.flush().unwrap();
    let first_half = deflater.get_ref().clone();
    let carry = |name: &str| {
        let token = instance.account(name);
        // An archive without the line-cap field: the legacy 64 MiB lines.
        let job = instance.open_batches(&token, manifest(json!({"ndjsonFormatVersion": null})));
        let segment =
            Batch::RowStream { table: "characters".into(), offset: 0, last: false, deflated: first_half.clone() }
                .encode()
                .unwrap();
        (token, job, segment)
    };
    let rise = instance.memory_rise(|| {
        let (a, job_a, segment) = carry("mallory-a");
        assert_eq!(instance.put_batch(&a, &job_a, 0, &segment).status, 200);
        let (b, job_b, segment) = carry("mallory-b");
        assert_eq!(instance.put_batch(&b, &job_b, 0, &segment).status, 200);
        // The second carry does not fit beside the first in the 64 MiB budget: that job fails.
        let failed = instance.eventually(60, || {
            let status = instance.call("GET", &format!("/api/v1/user-data/import/{job_b}/status"), &b, b"").json();
            status["status"] == "failed" && status["error"]["code"] == "busy"
        });
        assert!(
            failed,
            "{}",
            instance.call("GET", &format!("/api/v1/user-data/import/{job_b}/status"), &b, b"").json()
        );
    });
    assert_memory(rise, "two accounts carrying 40 MiB lines");
    // What is left of the budget still takes another account's import.
    let job = instance.open_batches(&victim, manifest(json!({})));
    let row = format!("{}\n", json!({"id": uuid(0xb2), "name": "w"}));
    assert_eq!(instance.put_batch(&victim, &job, 0, &rows_batch("world_books", 1, row.as_bytes())).status, 200);
    assert_eq!(instance.commit(&victim, &job, 1).status, 200);
}

/// Finding 15: rows were charged ~95 bytes each against ~215 bytes of pages. An account a
/// fairer count puts over its quota keeps its data, imports nothing until under it, and
/// `lvbak user quota` says so.
#[test]
fn h15_rows_are_charged_at_the_pages_they_take() {
    let mut instance = Instance::start("hostile-15", &[("LVBAK_QUOTA", "none")]);
    let (bystander, mallory) = (instance.account("bystander"), instance.account("mallory"));
    let rows: Vec<Value> = (0..30_000u64).map(|n| json!({"id": uuid(0xf_0000 + n), "name": format!("c{n}")})).collect();
    let pages = |instance: &Instance| {
        count_rows(
            &instance.data,
            "SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count)",
        ) * count_rows(&instance.data, "SELECT page_size FROM pragma_page_size")
    };
    assert_eq!(
        import(&instance, &bystander, 0xf1, vec![table("world_books", &[json!({"id": uuid(0xf2), "name": "w"})])])
            ["status"],
        "complete"
    );
    let mallory_id = instance.user_id(&mallory);
    let usage = |instance: &Instance| {
        count_rows(
            &instance.data,
            &format!("SELECT coalesce((SELECT bytes FROM lvbak_usage WHERE user_id = '{mallory_id}'), 0)"),
        )
    };
    let (pages_before, charged_before) = (pages(&instance), usage(&instance));
    assert_eq!(
        import(&instance, &mallory, 0xf3, vec![table("characters", &rows)])["summary"]["characters"]["imported"],
        30_000
    );
    let (taken, charged) = (pages(&instance) - pages_before, usage(&instance) - charged_before);
    let ratio = charged as f64 / taken as f64;
    eprintln!("30,000 rows: {charged} bytes charged for {taken} bytes of pages ({ratio:.2})");
    assert!((0.85..=1.2).contains(&ratio), "{charged} bytes charged for {taken} bytes of pages");

    // An account counted by the old formula is counted again at start; over its quota, it
    // keeps its rows and is refused further imports until it is under.
    let connection = rusqlite::Connection::open(instance.data.join("lvbak.sqlite")).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    connection.execute("UPDATE lvbak_usage SET bytes = 100 WHERE user_id = ?1", [&mallory_id]).unwrap();
    connection.execute("UPDATE lvbak_meta SET value = '1' WHERE key = 'usage_formula'", []).unwrap();
    drop(connection);
    let data = instance.data.to_str().unwrap().to_string();
    run_lvbak(&["user", "quota", "mallory", "3M", "--data-dir", &data]);
    instance.restart();
    assert!(usage(&instance) as u64 > 3 << 20, "recounted: {}", usage(&instance));
    let mallory = instance.login("mallory");
    let refused = instance.call(
        "POST",
        "/api/v1/user-data/import/batches",
        &mallory,
        json!({"manifest": manifest(json!({}))}).to_string().as_bytes(),
    );
    assert_eq!((refused.status, refused.json()["code"].as_str()), (413, Some("quota_exceeded")), "{}", refused.json());
    assert_eq!(
        count_rows(&instance.data, &format!("SELECT count(*) FROM characters WHERE user_id = '{mallory_id}'")),
        30_000
    );
    let output = std::process::Command::new(crate::common::lvbak_binary())
        .args(["user", "quota", "mallory", "--data-dir", &data])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("over quota"), "{said}");
}

/// Finding 16: the same file claimed 256 times was held (and counted) 256 times.
fn h16_a_file_claimed_many_times_is_held_once(start: Start) {
    let instance = start("hostile-16", &[]);
    let (victim, mallory) = (instance.account("victim"), instance.account("mallory"));
    let name = format!("{}.png", uuid(0x161));
    let bytes = b"\x89PNG\r\n\x1a\n-not-really".to_vec();
    let image = json!({"id": uuid(0x161), "filename": name, "mime_type": "image/png"});
    for token in [&victim, &mallory] {
        let first = instance.import_raw(
            token,
            &archive(
                json!({"archiveId": uuid(0x16a)}),
                vec![
                    table("images", std::slice::from_ref(&image)),
                    RawEntry::stored(&format!("files/images/{name}"), &bytes),
                ],
            ),
        );
        assert_eq!(first["status"], "complete", "{first}");
    }
    let claim = json!({"bucket": "images", "name": name, "size": bytes.len(), "crc32": crc32fast::hash(&bytes)});
    let body = json!({"manifest": manifest(json!({})), "files": vec![claim; 256]});
    let opened = instance.call("POST", "/api/v1/user-data/import/batches", &mallory, body.to_string().as_bytes());
    assert_eq!(opened.status, 201, "{}", String::from_utf8_lossy(&opened.body));
    assert_eq!(opened.json()["heldFiles"].as_array().unwrap().len(), 1, "{}", opened.json());
    let job = opened.json()["jobId"].as_str().unwrap().to_string();
    let done = instance.commit(&mallory, &job, 0);
    assert_eq!(done.json()["fileSummary"]["skipped"], 1, "{}", done.json());
}

/// The architecture issue's leftover from the hosting work: vectors an import wrote before
/// it failed over its quota are taken back with its rows (they stayed, counted as kept).
fn h17_vectors_written_before_a_quota_failure_are_taken_back_with_the_rows(start: Start) {
    let mut instance = start("hostile-17", &[("LVBAK_QUOTA", "1M")]);
    let (bystander, mallory) = (instance.account("bystander"), instance.account("mallory"));
    assert_eq!(
        import(&instance, &bystander, 0x171, vec![table("world_books", &[json!({"id": uuid(0x172), "name": "w"})])])
            ["status"],
        "complete"
    );
    let mallory_id = instance.user_id(&mallory);
    let usage_sql = format!("SELECT coalesce((SELECT bytes FROM lvbak_usage WHERE user_id = '{mallory_id}'), 0)");
    let usage = |instance: &Instance| instance.count_rows(&usage_sql);
    let before = usage(&instance);
    let config = json!({"provider": "openai-compatible", "model": "m", "dimension": 4});
    let names: Vec<String> = (0..20).map(|n| format!("connection_{n}_api_key")).collect();
    let archive_id = uuid(0x173);
    let body = json!({
        "manifest": manifest(json!({"archiveId": archive_id, "includeVectors": true, "embeddingConfig": config,
            "hasEncryptedSecrets": true, "secretsCount": names.len()})),
        "secretsIndex": {"version": 1, "archiveId": archive_id, "keys": names},
    });
    let opened =
        instance.call("POST", "/api/v1/user-data/import/batches", &mallory, body.to_string().as_bytes()).json();
    let job = opened["jobId"].as_str().unwrap().to_string();
    let setting = json!({"key": "embeddingConfig", "user_id": "x",
        "value": json!({"provider": "openai-compatible", "model": "m", "dimensions": 4}).to_string()});
    let (book, entry) = (uuid(0x174), uuid(0x175));
    let batches = [
        rows_batch("settings", 1, format!("{setting}\n").as_bytes()),
        rows_batch("world_books", 1, format!("{}\n", json!({"id": book, "name": "lore"})).as_bytes()),
        rows_batch(
            "world_book_entries",
            1,
            format!("{}\n", json!({"id": entry, "world_book_id": book, "uid": 1, "content": "c"})).as_bytes(),
        ),
    ];
    for (n, batch) in batches.iter().enumerate() {
        assert_eq!(instance.put_batch(&mallory, &job, n as u64, batch).status, 200);
    }
    let check = instance.call("POST", &format!("/api/v1/user-data/import/{job}/vectors-check"), &mallory, b"");
    assert_eq!(check.json()["acceptVectors"], true, "{}", check.json());
    let vector = json!({"id": "x", "user_id": "x", "source_type": "world_book_entry", "source_id": entry, "owner_id": book,
        "chunk_index": 0, "content": "c", "vector_b64": lvbak_core::encode_vector(&[0.5, 0.25, 0.125, 1.0]),
        "metadata_json": "{}", "updated_at": 1});
    let deflated = deflate_ndjson(format!("{vector}\n").as_bytes()).unwrap();
    let vectors =
        Batch::Vectors { table: "embeddings_world_books".into(), first_line: 1, lines: 1, deflated }.encode().unwrap();
    assert_eq!(instance.put_batch(&mallory, &job, 3, &vectors).status, 200);
    let value = "k".repeat(60 * 1024);
    let secrets: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), value.as_str())).collect();
    assert_eq!(instance.put_batch(&mallory, &job, 4, &sealed_secrets(&opened, &job, &secrets)).status, 200);
    let done = instance.commit(&mallory, &job, 5);
    assert_eq!(done.json()["code"], "quota_exceeded", "{}", String::from_utf8_lossy(&done.body));
    // Nothing of the import stays: no rows, no vectors, and the usage is what it was.
    assert_eq!(instance.count_rows(&format!("SELECT count(*) FROM world_books WHERE user_id = '{mallory_id}'")), 0);
    // The secrets that fitted before the quota ran out stay (they are not among the rows a
    // rollback takes back), counted; nothing else does.
    let secrets = instance.count_rows(&format!("SELECT coalesce(sum(length(key) + length(encrypted_value) + length(iv) + length(tag) + 64), 0) FROM secrets WHERE user_id = '{mallory_id}'"));
    assert_eq!(usage(&instance), before + secrets, "usage after the rollback");
    // What the account keeps, counted again from the disk (rows, files and every vector the
    // store holds for it), is what was charged: no vector stayed behind uncounted.
    let charged = usage(&instance);
    instance.restart_recounting();
    assert_eq!(usage(&instance), charged, "the recount found what the rollback left");
}

on_each_backend!(
    h01_a_shared_archive_never_sends_an_accounts_key_or_texts_anywhere,
    h02_the_remap_lookup_cache_is_bounded_in_bytes,
    h05_secrets_count_against_the_quota_and_come_once,
    h07_a_restore_under_new_ids_rewrites_every_id_column,
    h08_a_dangling_reference_is_cleared_and_nobody_can_claim_it_later,
    h09_a_cancelled_import_settles_its_references_as_a_commit_does,
    h16_a_file_claimed_many_times_is_held_once,
    h17_vectors_written_before_a_quota_failure_are_taken_back_with_the_rows,
);
