//! Crashes and a full disk. A real `lvbak serve` is killed with SIGKILL at ten points of an
//! import — raw uploads and the browser's batches, before, during and after rows, files,
//! vectors and the commit — and after each restart the database passes
//! `PRAGMA integrity_check`, no staging is left, the interrupted job reads `failed`, and
//! importing the archive again completes with every row, file and vector accounted for.
//! On a data directory that runs out of space, an import fails `disk_full`, leaves
//! nothing half-written, and the server goes on serving others.
//!
//! The crashes run on both backends (`on_each_backend!`, at the end). On PostgreSQL the
//! database check is amcheck's over every index, and a batch import is not failed by the
//! kill: the restarted node takes it over under the same job id (issue 22), and the
//! archive sent again from batch 0 completes it.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use lvbak_core::batch::Batch;
use lvbak_core::upload::{upload_batches, BatchSink, UploadPlan, UploadProgress};
use lvbak_core::{Archive, FormatError, Limits};
use lvbak_tests::zipcraft::RawEntry;
use serde_json::{json, Value};

use crate::common::Reply;
use crate::support::{archive, files_under, on_each_backend, table, uuid, Instance, Start};

/// The archive every crash test imports: rows in several batches, two files of three
/// chunks each, vectors, and the settings that let them restore.
pub(crate) struct FaultArchive {
    pub(crate) bytes: Vec<u8>,
    rows: BTreeMap<&'static str, u64>,
    files: u64,
    vectors: u64,
}

pub(crate) const MESSAGES: u64 = 60_000;
const CHUNKS: u64 = 200;

pub(crate) fn fault_archive() -> &'static FaultArchive {
    static ARCHIVE: OnceLock<FaultArchive> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let config = json!({"provider": "openai", "model": "text-embedding-3-small", "dimensions": 4});
        let (character, chat) = (uuid(0x7c0), uuid(0x7c1));
        let words = "the harbour bell rang twice before the fog came in ".repeat(6);
        let messages: Vec<Value> = (0..MESSAGES)
            .map(|n| json!({"id": uuid(0x70_0000 + n), "chat_id": chat, "index_in_chat": n, "content": format!("{n} {words}")}))
            .collect();
        let chunk_ids: Vec<String> = (0..CHUNKS).map(|n| uuid(0x71_0000 + n)).collect();
        let chunks: Vec<Value> = chunk_ids
            .iter()
            .map(|id| {
                json!({"id": id, "chat_id": chat, "start_message_id": "a", "end_message_id": "b", "message_ids": "[]",
                    "content": "a chunk", "token_count": 3, "message_count": 2, "created_at": 1, "updated_at": 1})
            })
            .collect();
        let vector = base64::engine::general_purpose::STANDARD.encode([0u8, 0, 128, 63].repeat(4));
        let vectors: String = chunk_ids
            .iter()
            .map(|id| {
                let row = json!({"id": format!("someone:chat_chunk:{id}:0"), "source_type": "chat_chunk", "source_id": id,
                    "owner_id": chat, "chunk_index": 0, "metadata_json": "{}", "updated_at": 1, "vector_b64": vector});
                format!("{row}\n")
            })
            .collect();
        let asset = |n: u64| {
            json!({"id": uuid(0x7a0 + n), "user_id": "x", "bundle_id": "b", "slug": format!("s{n}"),
                "storage_type": "file", "file_name": format!("f{n}.bin")})
        };
        let noise = |seed: u8| (0..20usize << 20).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect::<Vec<u8>>();
        let bytes = archive(
            json!({"includeVectors": true, "embeddingConfig": {"provider": "openai", "model": "text-embedding-3-small", "dimension": 4}}),
            vec![
                table("settings", &[json!({"key": "embeddingConfig", "value": config.to_string(), "updated_at": 1})]),
                table("characters", &[json!({"id": character, "name": "Mira"})]),
                table("theme_assets", &[asset(0), asset(1)]),
                table("chats", &[json!({"id": chat, "character_id": character})]),
                table("messages", &messages),
                table("chat_chunks", &chunks),
                RawEntry::stored("files/theme-assets/b/f0.bin", &noise(1)),
                RawEntry::stored("files/theme-assets/b/f1.bin", &noise(2)),
                RawEntry::deflated("lancedb/embeddings.ndjson", vectors.as_bytes()),
            ],
        );
        let rows = BTreeMap::from([
            ("settings", 1),
            ("characters", 1),
            ("theme_assets", 2),
            ("chats", 1),
            ("messages", MESSAGES),
            ("chat_chunks", CHUNKS),
        ]);
        FaultArchive { bytes, rows, files: 2, vectors: CHUNKS }
    })
}

/// Everything of the archive is in the account after `status` (a completed import),
/// whether this import or an earlier one brought it.
pub(crate) fn assert_all_accounted(status: &Value) {
    let expected = fault_archive();
    assert_eq!(status["status"], "complete", "{status}");
    for (table, rows) in &expected.rows {
        let counts = &status["summary"][table];
        let total = counts["imported"].as_u64().unwrap_or(0)
            + counts["skipped"].as_u64().unwrap_or(0)
            + counts["merged"].as_u64().unwrap_or(0);
        assert_eq!(total, *rows, "{table}: {counts}");
        assert_eq!(counts["rejected"], 0, "{table}: {counts}");
    }
    let files = &status["fileSummary"];
    assert_eq!(files["imported"].as_u64().unwrap() + files["skipped"].as_u64().unwrap(), expected.files, "{files}");
    let vectors = &status["vectorSummary"]["tables"]["embeddings"];
    let restored = vectors["imported"].as_u64().unwrap_or(0) + vectors["skipped"].as_u64().unwrap_or(0);
    assert_eq!(restored, expected.vectors, "{}", status["vectorSummary"]);
}

/// Kills the server where it stands, checks the database, restarts it, and checks that
/// the interrupted jobs read as such and that importing again completes the work.
fn crash_and_recover(instance: &mut Instance, user: &str, interrupted: &[&str]) {
    kill_and_restart(instance);
    let token = instance.login(user);
    for job in interrupted {
        let path = format!("/api/v1/user-data/import/{job}/status");
        let status = || instance.call("GET", &path, &token, b"").json();
        // On PostgreSQL a node ends a gone node's job once the database has let go of that
        // node's lock: at once, or at its next sweep.
        let ended = instance.eventually(40, || {
            let status = status();
            status["status"] == "complete" || status["error"]["code"] == "interrupted"
        });
        assert!(ended, "job {job} after the crash: {}", status());
    }
    let again = import_again(instance, &token);
    assert_all_accounted(&again);
    assert_eq!(instance.integrity(), "ok");
}

/// Kills the server, checks its database, and starts it again; no staging is left.
fn kill_and_restart(instance: &mut Instance) {
    instance.server.kill();
    assert_eq!(instance.integrity(), "ok");
    instance.restart();
    assert!(instance.staging_files().is_empty(), "staging left: {:?}", instance.staging_files());
}

/// Imports the fault archive again the raw way, once the account's interrupted import has
/// let go of it (on PostgreSQL a gone node's job keeps the account's one open import
/// until a node ends it); the job's final status.
fn import_again(instance: &Instance, token: &str) -> Value {
    let mut job = None;
    let accepted = instance.eventually(40, || {
        let reply = instance.call("POST", "/api/v1/user-data/import", token, &fault_archive().bytes);
        if reply.status == 202 {
            job = reply.json()["jobId"].as_str().map(str::to_string);
            return true;
        }
        assert_eq!(reply.json()["code"], "import_running", "{}", String::from_utf8_lossy(&reply.body));
        false
    });
    assert!(accepted, "the interrupted import never let go of the account");
    instance.wait_job(token, &job.unwrap())
}

/// A batch import's server killed. On SQLite (as [`crash_and_recover`]) the job reads
/// `interrupted` after the restart and the archive imports again. On PostgreSQL the job
/// goes on: its user's next batch reaches the restarted node, which takes it over, and the
/// archive sent again from batch 0 and committed completes it (unless the kill came after
/// the job completed).
fn crash_and_recover_batches(instance: &mut Instance, user: &str, job: &str) {
    if !instance.on_postgres() {
        return crash_and_recover(instance, user, &[job]);
    }
    kill_and_restart(instance);
    let token = instance.login(user);
    // A commit the kill came too late for has completed the job.
    let status = instance.call("GET", &format!("/api/v1/user-data/import/{job}/status"), &token, b"").json();
    if status["status"] == "complete" {
        assert_all_accounted(&status);
        return;
    }
    let sent = upload_to(instance, &token, job, |_| false).expect("the whole archive was sent again");
    let reply = instance.commit(&token, job, sent);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let status = instance.wait_job(&token, job);
    assert_all_accounted(&status);
    assert_eq!(instance.integrity(), "ok");
}

/// Makes an import stop for good once it has committed some of its messages (the first
/// commit comes at 50,000 rows at the latest, before the archive's 60,000th message), so
/// that a test kills it there on any machine, however fast or slow.
pub(crate) const HOLD_AFTER_MESSAGES: (&str, &str) = (lvbak_server::faults::HOLD_AFTER_VAR, "messages");

/// Starts a raw upload; the job id once accepted.
fn start_raw(instance: &Instance, token: &str) -> String {
    let reply = instance.call("POST", "/api/v1/user-data/import", token, &fault_archive().bytes);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["jobId"].as_str().unwrap().to_string()
}

/// Rows of `table` the user has now.
fn user_rows(instance: &Instance, user_id: &str, sql_table: &str) -> i64 {
    let sql = match sql_table {
        "messages" => {
            format!("SELECT count(*) FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.user_id = '{user_id}'")
        }
        other => format!("SELECT count(*) FROM {other} WHERE user_id = '{user_id}'"),
    };
    instance.count_rows(&sql)
}

fn k01_killed_while_a_raw_upload_is_arriving(start: Start) {
    let mut instance = start("fault-01", &[]);
    let token = instance.account("crash");
    let bytes = &fault_archive().bytes;
    let mut stream = TcpStream::connect(instance.address()).unwrap();
    let head = format!(
        "POST /api/v1/user-data/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
    assert!(instance.eventually(10, || !instance.staging_files().is_empty()), "the upload was not being staged");
    crash_and_recover(&mut instance, "crash", &[]);
}

fn k02_killed_while_waiting_for_a_ticket(start: Start) {
    let mut instance = start("fault-02", &[]);
    let token = instance.account("crash");
    let reply = instance.call("POST", "/api/v1/user-data/import", &token, lvbak_tests::fixtures::SECRETS);
    let job = reply.json()["jobId"].as_str().unwrap().to_string();
    let path = format!("/api/v1/user-data/import/{job}/status");
    assert!(instance.eventually(20, || instance.call("GET", &path, &token, b"").json()["status"] == "awaiting_ticket"));
    crash_and_recover(&mut instance, "crash", &[&job]);
}

fn k03_killed_in_the_middle_of_a_raw_imports_rows(start: Start) {
    let mut instance = start("fault-03", &[HOLD_AFTER_MESSAGES]);
    let token = instance.account("crash");
    let user = instance.user_id(&token);
    let job = start_raw(&instance, &token);
    let midway = instance.eventually(60, || (1..MESSAGES as i64).contains(&user_rows(&instance, &user, "messages")));
    assert!(midway, "never caught the import between its first and last message");
    assert!((1..MESSAGES as i64).contains(&user_rows(&instance, &user, "messages")), "the import did not hold");
    crash_and_recover(&mut instance, "crash", &[&job]);
}

fn k04_killed_with_one_import_running_and_another_queued(start: Start) {
    let mut instance = start("fault-04", &[("LVBAK_HOSTING", "import_workers=1"), HOLD_AFTER_MESSAGES]);
    let (first, second) = (instance.account("crash"), instance.account("queued"));
    let user = instance.user_id(&first);
    let running = start_raw(&instance, &first);
    assert!(instance.eventually(60, || user_rows(&instance, &user, "messages") > 0));
    let queued = start_raw(&instance, &second);
    let path = format!("/api/v1/user-data/import/{queued}/status");
    assert_eq!(instance.call("GET", &path, &second, b"").json()["status"], "queued");
    crash_and_recover(&mut instance, "crash", &[&running]);
    // The queued job ended with the process too. (Importing the same archive into a second
    // account of one instance is issue 12's remapping: the ids are the first account's.)
    let second = instance.login("queued");
    let status = instance.call("GET", &path, &second, b"").json();
    assert_eq!(status["error"]["code"], "interrupted", "{status}");
}

/// Sends the fault archive the browser's way until `stop(batch)` says to stop after a
/// batch (which is sent); the job id and, if it never stopped, how many batches it sent.
fn batch_upload_until(instance: &Instance, token: &str, stop: impl Fn(&Batch) -> bool) -> (String, Option<u64>) {
    let archive = Archive::open(Cursor::new(fault_archive().bytes.clone()), Limits::STANDARD).unwrap();
    let job = instance.open_batches(token, serde_json::to_value(archive.manifest()).unwrap());
    let sent = upload_to(instance, token, &job, stop);
    (job, sent)
}

/// Sends the fault archive's batches to `job` from batch 0 until `stop(batch)` says to stop
/// after a batch (which is sent); how many batches it sent, if it never stopped.
fn upload_to(instance: &Instance, token: &str, job: &str, stop: impl Fn(&Batch) -> bool) -> Option<u64> {
    struct Sink<'a, F> {
        instance: &'a Instance,
        token: &'a str,
        job: &'a str,
        stop: F,
    }
    impl<F: Fn(&Batch) -> bool> BatchSink for Sink<'_, F> {
        fn send(&mut self, number: u64, batch: &[u8]) -> Result<(), FormatError> {
            let reply: Reply = self.instance.put_batch(self.token, self.job, number, batch);
            assert_eq!(reply.status, 200, "batch {number}: {}", String::from_utf8_lossy(&reply.body));
            if Batch::decode(batch)?.parts().into_iter().any(&self.stop) {
                return Err(FormatError::Io(std::io::Error::other("stopped here")));
            }
            Ok(())
        }
        fn progress(&mut self, _: &UploadProgress) {}
        fn vectors_accepted(&mut self) -> Result<bool, FormatError> {
            let path = format!("/api/v1/user-data/import/{}/vectors-check", self.job);
            Ok(self.instance.call("POST", &path, self.token, b"").json()["acceptVectors"] == true)
        }
    }
    let reader = Archive::open(Cursor::new(fault_archive().bytes.clone()), Limits::STANDARD).unwrap();
    let mut sink = Sink { instance, token, job, stop };
    upload_batches(&reader, UploadPlan::default(), &mut sink).ok().map(|report| report.batches)
}

/// [`batch_upload_until`] for a stop that must come.
fn batch_upload_stopping(instance: &Instance, token: &str, stop: impl Fn(&Batch) -> bool) -> String {
    let (job, finished) = batch_upload_until(instance, token, stop);
    assert!(finished.is_none(), "the upload was meant to stop early");
    job
}

fn k05_killed_after_a_batch_import_opened(start: Start) {
    let mut instance = start("fault-05", &[]);
    let token = instance.account("crash");
    let archive = Archive::open(Cursor::new(fault_archive().bytes.clone()), Limits::STANDARD).unwrap();
    let job = instance.open_batches(&token, serde_json::to_value(archive.manifest()).unwrap());
    crash_and_recover_batches(&mut instance, "crash", &job);
}

fn k06_killed_in_the_middle_of_batches_of_rows(start: Start) {
    let mut instance = start("fault-06", &[]);
    let token = instance.account("crash");
    let user = instance.user_id(&token);
    let job = batch_upload_stopping(&instance, &token, |batch| match batch {
        Batch::Rows { table, first_line, .. } => table == "messages" && *first_line > 1,
        Batch::RowStream { table, offset, .. } => table == "messages" && *offset > 0,
        _ => false,
    });
    assert!(instance.eventually(60, || user_rows(&instance, &user, "messages") > 0));
    assert!(user_rows(&instance, &user, "messages") < MESSAGES as i64);
    crash_and_recover_batches(&mut instance, "crash", &job);
}

fn k07_killed_in_the_middle_of_a_file(start: Start) {
    let mut instance = start("fault-07", &[]);
    let token = instance.account("crash");
    let job = batch_upload_stopping(
        &instance,
        &token,
        |batch| matches!(batch, Batch::FileChunk { offset, .. } if *offset > 0),
    );
    assert!(instance.eventually(20, || !instance.staging_files().is_empty()), "no partial file was staged");
    crash_and_recover_batches(&mut instance, "crash", &job);
}

fn k08_killed_between_two_files(start: Start) {
    let mut instance = start("fault-08", &[]);
    let token = instance.account("crash");
    let user = instance.user_id(&token);
    let job = batch_upload_stopping(
        &instance,
        &token,
        |batch| matches!(batch, Batch::FileChunk { offset, size, bytes, name, .. } if name.ends_with("f0.bin") && offset + bytes.len() as u64 == *size),
    );
    let folder = instance.data.join("theme-assets").join(&user);
    assert!(instance.eventually(20, || files_under(&folder).len() == 1), "the first file never landed");
    crash_and_recover_batches(&mut instance, "crash", &job);
}

fn k09_killed_while_vectors_arrive(start: Start) {
    let mut instance = start("fault-09", &[]);
    let token = instance.account("crash");
    let job = batch_upload_stopping(&instance, &token, |batch| matches!(batch, Batch::Vectors { .. }));
    std::thread::sleep(Duration::from_millis(100));
    crash_and_recover_batches(&mut instance, "crash", &job);
}

fn k10_killed_during_the_commit(start: Start) {
    let mut instance = start("fault-10", &[]);
    let token = instance.account("crash");
    let (job, sent) = batch_upload_until(&instance, &token, |_| false);
    let batches = sent.expect("the whole archive was sent");
    let mut stream = TcpStream::connect(instance.address()).unwrap();
    let body = json!({"batches": batches}).to_string();
    let head = format!(
        "POST /api/v1/user-data/import/{job}/commit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    crash_and_recover_batches(&mut instance, "crash", &job);
}

/// Runs [`full_disk`] on each backend (it mounts its data directory before the server
/// starts, so it takes no `Start`).
mod a_full_disk_fails_the_import_cleanly_and_others_are_still_served {
    #[test]
    fn sqlite() {
        super::full_disk(false)
    }

    #[test]
    fn postgres() {
        super::full_disk(true)
    }
}

/// On a data directory that fills up, an import fails `disk_full`, its rows and files are
/// taken back, and everyone else is still served.
fn full_disk(on_postgres: bool) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a small tmpfs for a full disk needs root (this test runs as a user)");
        return;
    }
    /// Unmounts the small disk when the test ends, however it ends.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
            if let Some(scratch) = self.0.parent() {
                let _ = std::fs::remove_dir_all(scratch);
            }
        }
    }
    let mut mounted_at = None;
    let instance = Instance::start_prepared("fault-disk-full", &[], on_postgres, |data| {
        let mounted =
            std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(data).status();
        assert!(mounted.unwrap().success(), "mount tmpfs failed");
        mounted_at = Some(Unmount(data.to_path_buf()));
    });
    let data = instance.data.clone();
    let (victim, other) = (instance.account("big"), instance.account("other"));
    let user = instance.user_id(&victim);
    let asset = json!({"id": uuid(0xd01), "user_id": "x", "bundle_id": "b", "slug": "s", "storage_type": "file", "file_name": "big.bin"});
    let big: Vec<u8> = (0..96usize << 20).map(|i| (i as u8) ^ (i >> 11) as u8).collect();
    let bytes = archive(
        json!({}),
        vec![
            table("characters", &[json!({"id": uuid(0xd02), "name": "Mira"})]),
            table("theme_assets", &[asset]),
            RawEntry::deflated("files/theme-assets/b/big.bin", &big),
        ],
    );
    let status = instance.import_raw(&victim, &bytes);
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error"]["code"], "disk_full", "{status}");
    assert!(files_under(&data.join("theme-assets").join(&user)).is_empty(), "a half-written file is visible");
    assert!(instance.staging_files().is_empty(), "{:?}", instance.staging_files());
    let sql = format!("SELECT count(*) FROM characters WHERE user_id = '{user}'");
    assert_eq!(instance.count_rows(&sql), 0, "the failed import's rows stayed");
    // Everyone else is still served: sign-in, an export, a small import.
    instance.login("other");
    assert!(instance.export(&other).starts_with(b"PK\x03\x04"));
    let small = archive(
        json!({"archiveId": uuid(0xd0a)}),
        vec![table("characters", &[json!({"id": uuid(0xd03), "name": "Ok"})])],
    );
    assert_eq!(instance.import_raw(&other, &small)["status"], "complete");
    // The server goes first (dropped in reverse order), then the disk and the folder.
}

/// Sets the account's embeddings to the stub; the call's answer.
fn point_at_stub(instance: &Instance, token: &str, stub: &lvbak_tests::embedding_stub::EmbeddingStub) -> Value {
    let body = json!({"enabled": true, "provider": "openai-compatible", "api_url": stub.url, "model": "stub-embed",
        "dimensions": 8, "send_dimensions": true, "vectorize_chat_messages": true, "batch_size": 2});
    let reply = instance.call("PUT", "/api/v1/embeddings/config", token, body.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn k11_killed_in_the_middle_of_a_re_vectorization_run(start: Start) {
    let stub = lvbak_tests::embedding_stub::EmbeddingStub::start(8);
    // Slow enough that the run writes (every 2 s) more than once before it ends.
    stub.set(|s| s.delay = Duration::from_millis(500));
    let mut instance = start("fault-11", &[]);
    instance.add_user("crash");
    let data = instance.data.to_str().unwrap().to_string();
    instance.run_lvbak(&["seed", "--user", "crash", "--chats", "2", "--messages-per-chat", "40", "--data-dir", &data]);
    let token = instance.login("crash");
    point_at_stub(&instance, &token, &stub);
    let status =
        |instance: &Instance, token: &str| instance.call("GET", "/api/v1/embeddings/status", token, b"").json();
    let total = status(&instance, &token)["total"].as_u64().unwrap();
    assert!(total > 10, "{}", status(&instance, &token));
    let midway =
        instance.eventually(60, || (4..total - 4).contains(&status(&instance, &token)["done"].as_u64().unwrap()));
    assert!(midway, "never caught the run midway: {}", status(&instance, &token));
    instance.restart();
    assert_eq!(instance.integrity(), "ok");
    // The restarted server resumes the run by itself and finishes it.
    let token = instance.login("crash");
    let finished = instance.eventually(60, || {
        let now = status(&instance, &token);
        now["status"] == "complete" && now["pending"] == 0
    });
    assert!(finished, "{}", status(&instance, &token));
    // Every waiting row has exactly one vector, whatever was written before the kill.
    let archive = instance.export(&token);
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let mut ids = Vec::new();
    for name in ["lancedb/embeddings.ndjson", "lancedb/embeddings_world_books.ndjson"] {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
        ids.extend(
            text.lines().map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].as_str().unwrap().to_string()),
        );
    }
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate vectors after the restart");
    assert_eq!(ids.len() as u64, total, "one vector per row that waited");
}

on_each_backend!(
    k01_killed_while_a_raw_upload_is_arriving,
    k02_killed_while_waiting_for_a_ticket,
    k03_killed_in_the_middle_of_a_raw_imports_rows,
    k04_killed_with_one_import_running_and_another_queued,
    k05_killed_after_a_batch_import_opened,
    k06_killed_in_the_middle_of_batches_of_rows,
    k07_killed_in_the_middle_of_a_file,
    k08_killed_between_two_files,
    k09_killed_while_vectors_arrive,
    k10_killed_during_the_commit,
    k11_killed_in_the_middle_of_a_re_vectorization_run,
);
