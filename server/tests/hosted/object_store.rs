//! `lvbak serve --object-store`: accounts' files in S3-compatible object storage (a prefix
//! of the tests' SeaweedFS, `lvbak_tests::s3_server`), attacked by one of two accounts as
//! the data directory's are in `abuse`; the same archives export value for value from both
//! storages; a failed import leaves no object; health names the object store while it does
//! not answer, and a node does not start without it.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lvbak_core::FileBucket;
use lvbak_server::storage::object_storage::files::ObjectFileStore;
use lvbak_server::storage::object_storage::{ObjectStorage, ObjectStoreUrl};
use lvbak_server::storage::FileStorage;
use lvbak_tests::s3_server::{test_prefix, TestPrefix};
use lvbak_tests::zipcraft::RawEntry;
use serde_json::{json, Value};

use crate::common::request;
use crate::support::{archive, count_rows, entry_bytes, files_under, plant_then_restore, table, uuid, Instance};

/// An instance whose files live under `place`.
fn start_on(label: &str, place: &TestPrefix, extra: &[(&str, &str)]) -> Instance {
    let env = place.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    all.extend_from_slice(extra);
    Instance::start(label, &all)
}

/// The test's own client of `place`, to see what the instance stored there.
fn files_in(place: &TestPrefix) -> ObjectFileStore {
    let url: ObjectStoreUrl = place.url().parse().unwrap();
    let url = url.with_variables(place.env().iter().map(|(name, value)| (name.as_str(), value.as_str())));
    ObjectFileStore::new(ObjectStorage::connect(&url).unwrap())
}

/// No account's file folder in the data directory: files live in the object store.
fn assert_no_local_files(instance: &Instance) {
    for folder in ["images", "avatars", "databank", "theme-assets", "notification-sounds"] {
        assert!(files_under(&instance.data.join(folder)).is_empty(), "{folder} has files on the node's disk");
    }
}

/// The archive's `database/`, `lancedb/` and `files/` entries, rows without their
/// `*user_id` and vectors' ids without their user's (each instance gives the account an id
/// of its own): what must be equal between two exports.
fn contents(archive: &[u8]) -> Vec<(String, Value)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    let mut entries = Vec::new();
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name.starts_with("files/") {
            entries.push((name, json!(hex::encode(&bytes))));
        } else if name.starts_with("database/") || name.starts_with("lancedb/") {
            let mut rows: Vec<Value> = String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| {
                    let mut row: Value = serde_json::from_str(line).unwrap();
                    let row_map = row.as_object_mut().unwrap();
                    row_map.retain(|column, _| !column.ends_with("user_id"));
                    // A vector's id starts with its user's id.
                    if let (true, Some(Value::String(id))) = (name.starts_with("lancedb/"), row_map.get_mut("id")) {
                        *id = id.split_once(':').map_or(id.clone(), |(_, rest)| rest.to_string());
                    }
                    row
                })
                .collect();
            rows.sort_by_key(|row| row.to_string());
            entries.push((name, Value::Array(rows)));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[test]
fn s01_files_in_object_storage_are_each_accounts_own() {
    let place = test_prefix();
    let instance = start_on("s3-01", &place, &[]);
    instance.add_user("bob");
    instance.run_lvbak(&["seed", "--user", "bob", "--vectors", "0", "--data-dir", instance.data.to_str().unwrap()]);
    assert_no_local_files(&instance);
    let bob = instance.login("bob");
    let bob_id = instance.user_id(&bob);
    let store = files_in(&place);
    let bob_images = store.list(FileBucket::Images, &bob_id).unwrap();
    let bob_avatars = store.list(FileBucket::Avatars, &bob_id).unwrap();
    let image = bob_images.iter().find(|name| name.ends_with(".png")).unwrap().clone();
    let avatar = bob_avatars[0].clone();
    let bob_bytes: Vec<Vec<u8>> = [(FileBucket::Images, &image), (FileBucket::Avatars, &avatar)]
        .iter()
        .map(|(bucket, name)| {
            let (mut file, _) = store.open(*bucket, &bob_id, name).unwrap().unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            bytes
        })
        .collect();
    let bob_usage = store.usage_of(&bob_id).unwrap();
    let bobs_export = instance.export(&bob);
    assert_eq!(entry_bytes(&bobs_export, &format!("files/images/{image}")).as_ref(), Some(&bob_bytes[0]));

    // Mallory's rows name Bob's files by every spelling an export would follow.
    let mallory = instance.account("mallory");
    let mallory_id = instance.user_id(&mallory);
    let stolen = archive(
        json!({}),
        vec![
            table("characters", &[json!({"id": uuid(0x501), "name": "thief", "avatar_path": format!("x/{avatar}")})]),
            table(
                "images",
                &[
                    json!({"id": uuid(0x502), "filename": image}),
                    json!({"id": uuid(0x506), "filename": format!("../{bob_id}/{image}")}),
                ],
            ),
        ],
    );
    let status = instance.import_raw(&mallory, &stolen);
    assert_eq!(status["status"], "complete", "{status}");
    let export = instance.export(&mallory);
    for bytes in &bob_bytes {
        assert!(!export.windows(bytes.len()).any(|w| w == bytes.as_slice()), "bob's file is in mallory's export");
    }

    // Mallory writes a file under a name Bob's archive uses next; Bob's import keeps his.
    let name = plant_then_restore(&instance, &mallory, &bob);
    assert_eq!(store.list(FileBucket::Images, &bob_id).unwrap().len(), bob_images.len() + 1);
    assert_eq!(store.list(FileBucket::Images, &mallory_id).unwrap(), vec![name.clone()]);

    // Files whose names are dots and dashes (all a name may spell besides letters and
    // digits) land in her place.
    let tricky = ["...", ".hidden", "-", "x..y.bin"];
    let asset = |index: usize, name: &str| json!({"id": uuid(0x510 + index as u64), "user_id": "x", "bundle_id": "b", "slug": name, "storage_type": "file", "file_name": name});
    let rows: Vec<Value> = tricky.iter().enumerate().map(|(index, name)| asset(index, name)).collect();
    let mut entries = vec![table("theme_assets", &rows)];
    entries
        .extend(tricky.iter().map(|name| RawEntry::stored(&format!("files/theme-assets/b/{name}"), name.as_bytes())));
    let status = instance.import_raw(&mallory, &archive(json!({"archiveId": uuid(0x5c)}), entries));
    assert_eq!(status["fileSummary"]["imported"], tricky.len(), "{status}");
    let export = instance.export(&mallory);
    for tricky in tricky {
        let bytes = entry_bytes(&export, &format!("files/theme-assets/b/{tricky}"));
        assert_eq!(bytes.as_deref(), Some(tricky.as_bytes()), "{tricky}");
    }
    let bobs_planted = b"the owner's own picture".len() as u64;
    assert_eq!(store.usage_of(&bob_id).unwrap(), bob_usage + bobs_planted, "bob's objects are as they were");

    // Each account is charged for its own objects.
    let used =
        |user: &str| count_rows(&instance.data, &format!("SELECT bytes FROM lvbak_usage WHERE user_id = '{user}'"));
    assert!(used(&mallory_id) as u64 >= store.usage_of(&mallory_id).unwrap(), "mallory's objects are counted");
    let tricky_bytes: usize = tricky.iter().map(|name| name.len()).sum();
    assert_eq!(store.usage_of(&mallory_id).unwrap(), (b"planted here".len() + tricky_bytes) as u64);
    assert_no_local_files(&instance);
}

/// Every real Lumiverse archive, and a demo account's with its files and vectors, exports
/// from an instance on object storage (files and LanceDB's tables) exactly as from one on
/// its data directory.
#[test]
fn s02_archives_export_the_same_from_object_storage_and_from_the_data_directory() {
    let place = test_prefix();
    let on_s3 = start_on("s3-02", &place, &[]);
    let on_disk = Instance::start("s3-02-disk", &[]);
    // Made in a data directory of its own: restored into the one that holds it, it would
    // be copied under new ids.
    let source = on_disk.dir.join("source");
    let demo_data = source.to_str().unwrap();
    on_disk.run_lvbak(&["user", "add", "demo", "--password", "pw-demo", "--data-dir", demo_data]);
    on_disk.run_lvbak(&["seed", "--user", "demo", "--data-dir", demo_data]);
    let demo_archive = on_disk.dir.join("demo.lvbak");
    let demo_path = demo_archive.to_str().unwrap();
    on_disk.run_lvbak(&["export", "--user", "demo", "--include-vectors", "-o", demo_path, "--data-dir", demo_data]);
    let demo = std::fs::read(&demo_archive).unwrap();
    let mut archives: Vec<(&str, &[u8])> = vec![("demo", &demo)];
    archives.extend(lvbak_tests::fixtures::ARCHIVES.iter().map(|(name, bytes, _)| (*name, *bytes)));
    for (name, bytes) in archives {
        let exports: Vec<Vec<(String, Value)>> = [&on_s3, &on_disk]
            .iter()
            .map(|instance| {
                let token = instance.account(&format!("u-{name}"));
                let status = instance.import_raw(&token, bytes);
                assert_eq!(status["status"], "complete", "{name}: {status}");
                let export = instance.call("GET", "/api/v1/user-data/export?includeVectors=1", &token, b"");
                assert_eq!(export.status, 200, "{name}");
                contents(&export.body)
            })
            .collect();
        if name == "demo" {
            let files = exports[0].iter().filter(|(entry, _)| entry.starts_with("files/")).count();
            assert!(files >= 5, "the demo account's export holds {files} files");
            let vectors = exports[0].iter().find(|(entry, _)| entry == "lancedb/embeddings.ndjson");
            let vectors = vectors.and_then(|(_, rows)| rows.as_array()).map_or(0, Vec::len);
            assert!(vectors > 0, "the demo account's export holds no vector");
        }
        assert_same(name, &exports[0], &exports[1]);
    }
    assert_no_local_files(&on_s3);
    assert!(files_under(&on_s3.data.join("lancedb")).is_empty(), "vectors on the node's disk");
}

/// The two exports' contents are equal; else the first entry that differs, shortened.
fn assert_same(archive: &str, on_s3: &[(String, Value)], on_disk: &[(String, Value)]) {
    let names = |entries: &[(String, Value)]| {
        entries.iter().map(|(name, _)| name.clone()).collect::<std::collections::BTreeSet<_>>()
    };
    let (left, right) = (names(on_s3), names(on_disk));
    let only_s3: Vec<_> = left.difference(&right).collect();
    let only_disk: Vec<_> = right.difference(&left).collect();
    assert!(
        only_s3.is_empty() && only_disk.is_empty(),
        "{archive}: only from S3 {only_s3:?}, only from disk {only_disk:?}"
    );
    for ((name, left), (_, right)) in on_s3.iter().zip(on_disk) {
        let short = |value: &Value| value.to_string().chars().take(800).collect::<String>();
        assert!(left == right, "{archive}: {name} differs:\n{}\n{}", short(left), short(right));
    }
}

/// An import stopped by the quota takes back every object it wrote.
#[test]
fn s03_a_failed_import_leaves_no_object_behind() {
    let place = test_prefix();
    let instance = start_on("s3-03", &place, &[("LVBAK_QUOTA", "4M")]);
    let token = instance.account("mallory");
    let user = instance.user_id(&token);
    let mut rows = Vec::new();
    let mut entries = Vec::new();
    for index in 0..6u64 {
        let name = format!("{}.png", uuid(0x300 + index));
        rows.push(json!({"id": uuid(0x310 + index), "filename": name}));
        entries.push(RawEntry::stored(&format!("files/images/{name}"), &vec![index as u8; 1 << 20]));
    }
    entries.insert(0, table("images", &rows));
    let status = instance.import_raw(&token, &archive(json!({}), entries));
    assert_eq!(status["error"]["code"], "quota_exceeded", "{status}");
    let store = files_in(&place);
    assert_eq!(store.usage_of(&user).unwrap(), 0, "{:?}", store.list(FileBucket::Images, &user));
    assert!(instance.staging_files().is_empty());
}

/// `lvbak serve` over a fresh data directory on `place`, which must exit non-zero at start;
/// what it said on stderr.
fn refused_start(label: &str, place: &TestPrefix) -> String {
    let scratch = std::env::temp_dir().join(format!("lvbak-{label}-{}", std::process::id()));
    let output = std::process::Command::new(crate::common::lvbak_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&scratch)
        .envs(place.env())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    assert_ne!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A TCP relay to the S3 server that can be cut: the object store going away and coming
/// back, as a node sees it.
struct Relay {
    address: String,
    open: Arc<AtomicBool>,
}

impl Relay {
    fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicBool::new(true));
        let (target, gate) = (target.to_string(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if !gate.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    let gate = gate.clone();
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16 << 10];
                        while gate.load(Ordering::SeqCst) {
                            match from.read(&mut buffer) {
                                Ok(0) | Err(_) => break,
                                Ok(read) => {
                                    if to.write_all(&buffer[..read]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { address, open }
    }
}

#[test]
fn s04_health_names_the_object_store_while_it_does_not_answer() {
    let place = test_prefix();
    let relay = Relay::to(place.endpoint.trim_start_matches("http://"));
    let through_relay = TestPrefix { endpoint: format!("http://{}", relay.address), ..place.clone() };
    let instance = start_on("s3-04", &through_relay, &[]);
    let health = || request(instance.address(), "GET", "/api/v1/health", &[], b"");
    let answer = health();
    assert_eq!((answer.status, answer.json()["ok"].clone()), (200, json!(true)));

    relay.open.store(false, Ordering::SeqCst);
    let down = instance.eventually(30, || health().status == 503);
    assert!(down, "health stayed {}", health().status);
    assert_eq!(health().json()["failing"], "object_store");

    relay.open.store(true, Ordering::SeqCst);
    assert!(instance.eventually(30, || health().status == 200), "health stayed {}", health().status);
}

/// A second instance (another database of accounts) pointed at an instance's object store
/// does not start: their accounts' files and vectors would mix. The first restarts fine.
#[test]
fn s06_an_object_store_serves_one_instance() {
    let place = test_prefix();
    let mut first = start_on("s3-06", &place, &[]);
    let said = refused_start("s3-06-other", &place);
    assert!(said.contains("holds another instance's accounts"), "{said}");
    first.restart();
    let answer = request(first.address(), "GET", "/api/v1/health", &[], b"");
    assert_eq!(answer.status, 200);
}

/// An import meeting an object store that does not answer fails with
/// `storage_unavailable` and keeps nothing; once the store is back the same archive imports.
#[test]
fn s07_an_import_without_its_object_store_fails_and_keeps_nothing() {
    let place = test_prefix();
    let relay = Relay::to(place.endpoint.trim_start_matches("http://"));
    let through_relay = TestPrefix { endpoint: format!("http://{}", relay.address), ..place.clone() };
    let instance = start_on("s3-07", &through_relay, &[]);
    let token = instance.account("ada");
    let user = instance.user_id(&token);
    let name = format!("{}.png", uuid(0x700));
    let pictures = archive(
        json!({}),
        vec![
            table("characters", &[json!({"id": uuid(0x701), "name": "Ada"})]),
            table("images", &[json!({"id": uuid(0x702), "filename": name})]),
            RawEntry::stored(&format!("files/images/{name}"), &[9u8; 4096]),
        ],
    );
    relay.open.store(false, Ordering::SeqCst);
    let status = instance.import_raw(&token, &pictures);
    assert_eq!(status["error"]["code"], "storage_unavailable", "{status}");
    let characters = format!("SELECT count(*) FROM characters WHERE user_id = '{user}'");
    assert_eq!(count_rows(&instance.data, &characters), 0);
    assert!(instance.staging_files().is_empty());

    relay.open.store(true, Ordering::SeqCst);
    let status = instance.import_raw(&token, &pictures);
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(count_rows(&instance.data, &characters), 1);
    assert_eq!(files_in(&place).list(FileBucket::Images, &user).unwrap(), vec![name]);
    // Again: the file is found (from the listing the import keeps), skipped, not sent.
    let status = instance.import_raw(&token, &pictures);
    assert_eq!(
        (status["fileSummary"]["imported"].clone(), status["fileSummary"]["skipped"].clone()),
        (json!(0), json!(1)),
        "{status}"
    );
}

/// `lvbak migrate` moves a single-node instance's files and vectors into the object store:
/// every account exports the same afterwards from a node on it, with the data directory's
/// files gone; a second run moves nothing and says so.
#[test]
fn s08_an_instance_moves_into_object_storage() {
    let place = test_prefix();
    let mut instance = Instance::start("s3-08", &[]);
    let data = instance.data.to_str().unwrap().to_string();
    let mut tokens = Vec::new();
    for name in ["bob", "alice"] {
        instance.add_user(name);
        instance.run_lvbak(&["seed", "--user", name, "--characters", "3", "--data-dir", &data]);
        tokens.push(instance.login(name));
    }
    let export = |instance: &Instance, token: &str| {
        let reply = instance.call("GET", "/api/v1/user-data/export?includeVectors=1", token, b"");
        assert_eq!(reply.status, 200);
        contents(&reply.body)
    };
    let before: Vec<_> = tokens.iter().map(|token| export(&instance, token)).collect();
    instance.server.kill();

    let migrate = |expect: &str| {
        let output = std::process::Command::new(crate::common::lvbak_binary())
            .args(["migrate", "--data-dir", &data])
            .envs(place.env())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).to_string();
        assert_eq!(output.status.code(), Some(0), "{said}{}", String::from_utf8_lossy(&output.stderr));
        assert!(said.starts_with(expect), "{said}");
        assert!(said.contains("every account exports the same from the object store"), "{said}");
    };
    migrate("moved ");
    migrate("moved 0 files (0 bytes; ");
    for folder in ["images", "avatars", "databank", "theme-assets", "notification-sounds", "lancedb"] {
        let _ = std::fs::remove_dir_all(instance.data.join(folder));
    }

    let env = place.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    instance.server = crate::common::Server::start_with(&instance.data, &env);
    for (token, before) in tokens.iter().zip(&before) {
        let after = export(&instance, token);
        assert!(after.iter().any(|(entry, _)| entry.starts_with("files/")), "no file after the move");
        assert!(after.iter().any(|(entry, _)| entry.starts_with("lancedb/")), "no vector after the move");
        assert_same("moved", &after, before);
    }
}

#[test]
fn s05_a_node_does_not_start_without_its_object_store() {
    let place = test_prefix();
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let said = refused_start("s3-05", &TestPrefix { endpoint, ..place });
    assert!(said.contains("object store s3://lvbak-tests/"), "{said}");
    assert!(said.trim().lines().count() <= 3, "{said}");
}
