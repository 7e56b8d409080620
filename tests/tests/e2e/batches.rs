//! The browser's import path, driven natively with the same lvbak-core upload code the
//! Wasm Worker runs: fixtures give the same counts as a raw upload, secrets arrive sealed
//! with HPKE, replays and gaps behave, a lying client is refused, the wire stays small.

use std::collections::BTreeMap;
use std::io::Cursor;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lvbak_core::batch::{deflate_ndjson, encode_bundle, Batch, PlainSecret};
use lvbak_core::upload::{
    file_claims, upload_batches, BatchSink, FileClaim, HeldRows, SealedSecretsPlan, UploadPlan, UploadProgress,
    UploadReport,
};
use lvbak_core::FileBucket;
use lvbak_core::{Archive, FormatError, Limits, Ticket};
use lvbak_tests::fixtures;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use crate::import::{assert_fixture_secrets_stored, import};
use crate::support::{on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    fixtures_imported_in_batches_count_exactly_as_raw_uploads,
    replays_gaps_conflicts_and_bad_hashes_are_answered_precisely,
    a_bundle_lands_its_parts_in_order_for_its_own_account_and_a_hostile_one_lands_nothing,
    rows_sent_as_the_archives_deflate_stream_arrive_whole_and_a_broken_stream_fails_its_job,
    the_held_rows_of_a_large_table_are_one_base64_string,
    an_interrupted_upload_resumes_where_it_stopped_and_the_wire_stays_near_the_archive_size,
    a_re_import_sends_no_file_the_server_holds,
);

/// `PUT`s batch `number` of `job` with its hash, as the Worker does.
pub(crate) fn put_batch(
    server: &TestServer,
    account: &Account,
    job: &str,
    number: u64,
    body: Vec<u8>,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
    server
        .client
        .put(server.url(&format!("/api/v1/user-data/import/{job}/batches/{number}")))
        .bearer_auth(&account.token)
        .header("x-batch-sha256", hex::encode(Sha256::digest(&body)))
        .body(body)
        .send()
}

/// Sends batches with blocking calls, as the Worker's synchronous requests do: batch `n`
/// to `urls[n % urls.len()]` (one job's batch URL on each node a balancer would alternate
/// between; one URL for one server).
pub(crate) struct HttpSink {
    pub(crate) runtime: Handle,
    pub(crate) client: reqwest::Client,
    pub(crate) urls: Vec<String>,
    pub(crate) token: String,
    pub(crate) sent: Vec<u64>,
    /// Fails (as a dropped connection would) once this many batches were sent.
    pub(crate) fail_after: Option<usize>,
}

impl BatchSink for HttpSink {
    fn send(&mut self, number: u64, batch: &[u8]) -> Result<(), FormatError> {
        if self.fail_after == Some(self.sent.len()) {
            return Err(FormatError::Io(std::io::Error::other("connection dropped")));
        }
        let request = self
            .client
            .put(format!("{}/{number}", self.urls[number as usize % self.urls.len()]))
            .bearer_auth(&self.token)
            .header("x-batch-sha256", hex::encode(Sha256::digest(batch)))
            .body(batch.to_vec());
        let (code, answer) = self.runtime.block_on(async { status_json(request.send().await.unwrap()).await });
        if code != 200 {
            return Err(FormatError::Io(std::io::Error::other(format!("batch {number}: {code} {answer}"))));
        }
        self.sent.push(number);
        Ok(())
    }

    fn progress(&mut self, _: &UploadProgress) {}

    fn vectors_accepted(&mut self) -> Result<bool, FormatError> {
        let url = self.urls[0].replace("/batches", "/vectors-check");
        let request = self.client.post(url).bearer_auth(&self.token);
        let (code, answer) = self.runtime.block_on(async { status_json(request.send().await.unwrap()).await });
        if code != 200 {
            return Err(FormatError::Io(std::io::Error::other(format!("vectors check: {code} {answer}"))));
        }
        Ok(answer["acceptVectors"] == true)
    }
}

/// Uploads `archive`'s batches into `job` from `plan`, spreading them over `urls` (each a
/// job's `…/batches`, batch `n` to `urls[n % len]`), stopping as a dropped connection would
/// once `stop_after` went: the batch count, or why it stopped, and the batches sent.
pub(crate) async fn send_batches(
    urls: Vec<String>,
    token: &str,
    archive: &[u8],
    plan: UploadPlan,
    stop_after: Option<usize>,
) -> (Result<u64, String>, Vec<u64>) {
    let mut sink = HttpSink {
        runtime: Handle::current(),
        client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap(),
        urls,
        token: token.to_string(),
        sent: Vec::new(),
        fail_after: stop_after,
    };
    let reader = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    tokio::task::spawn_blocking(move || {
        let report = upload_batches(&reader, plan, &mut sink).map(|report| report.batches);
        (report.map_err(|error| error.to_string()), sink.sent)
    })
    .await
    .unwrap()
}

/// Opens a batch job for `archive`, listing its files as the Worker does.
pub(crate) async fn open_job(server: &TestServer, account: &Account, archive: &[u8]) -> (u16, Value) {
    let opened = Archive::open(Cursor::new(archive), Limits::STANDARD).unwrap();
    open_job_claiming(server, account, archive, file_claims(&opened)).await
}

/// Opens a batch job for `archive`, describing its files as `claims`.
async fn open_job_claiming(
    server: &TestServer,
    account: &Account,
    archive: &[u8],
    claims: Vec<FileClaim>,
) -> (u16, Value) {
    let opened = Archive::open(Cursor::new(archive), Limits::STANDARD).unwrap();
    let index = opened.secrets_index().map(|index| serde_json::from_slice::<Value>(&index.to_line()).unwrap());
    let body = json!({"manifest": opened.manifest(), "secretsIndex": index, "files": claims});
    status_json(server.post(account, "/api/v1/user-data/import/batches").json(&body).send().await.unwrap()).await
}

/// The server's held rows for a job, as the upload plan takes them.
pub(crate) async fn held_rows_of(server: &TestServer, account: &Account, job: &str) -> HeldRows {
    let answer = server.get(account, &format!("/api/v1/user-data/import/{job}/held-rows")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    HeldRows::parse(&answer.bytes().await.unwrap()).unwrap()
}

/// The files a job's opening answer says the server holds.
pub(crate) fn held_of(opened: &Value) -> std::collections::HashSet<String> {
    opened["heldFiles"].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_string()).collect()
}

/// Imports `archive` the browser's way; the ticket (if any) is used on this side only.
async fn batch_import(
    server: &TestServer,
    account: &Account,
    archive: &[u8],
    ticket: Option<&[u8]>,
    start_batch: u64,
) -> (Value, UploadReport) {
    let (code, opened) = open_job(server, account, archive).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    let recipient: [u8; 32] = BASE64.decode(opened["hpkePublicKey"].as_str().unwrap()).unwrap().try_into().unwrap();
    let mut reader = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let secrets = ticket.map(|ticket| {
        let ticket = Ticket::parse(ticket).unwrap();
        let secrets = reader
            .decrypt_secrets(&ticket)
            .unwrap()
            .into_iter()
            .filter_map(|outcome| {
                outcome.result.ok().map(|value| PlainSecret { key: outcome.key, value: value.to_string() })
            })
            .collect();
        SealedSecretsPlan { recipient, ephemeral: [0x42; 32], job_id: job.clone(), secrets }
    });
    let held_rows = held_rows_of(server, account, &job).await;
    let plan = UploadPlan {
        start_batch,
        secrets,
        held_files: held_of(&opened),
        held_rows: held_rows.tables,
        fresh_tables: held_rows.fresh,
        only: None,
        copy: None,
    };
    let (report, (code, status)) = send_and_commit(server, account, &job, reader, plan).await;
    assert_eq!(code, 200, "{status}");
    (status, report)
}

/// Sends `reader`'s batches under `plan` to `job` as the Worker does, then commits: the
/// upload's report and the commit's status and answer.
pub(crate) async fn send_and_commit(
    server: &TestServer,
    account: &Account,
    job: &str,
    reader: Archive<Cursor<Vec<u8>>>,
    plan: UploadPlan,
) -> (UploadReport, (u16, Value)) {
    let mut sink = HttpSink {
        runtime: Handle::current(),
        client: server.client.clone(),
        urls: vec![server.url(&format!("/api/v1/user-data/import/{job}/batches"))],
        token: account.token.clone(),
        sent: Vec::new(),
        fail_after: None,
    };
    // An upload the server stopped (its job failed) commits what was sent: the commit
    // answers the job's failure.
    let (report, batches) = tokio::task::spawn_blocking(move || match upload_batches(&reader, plan, &mut sink) {
        Ok(report) => {
            let batches = report.batches;
            (report, batches)
        }
        Err(_) => (UploadReport::default(), sink.sent.len() as u64),
    })
    .await
    .unwrap();
    let commit = server.post(account, &format!("/api/v1/user-data/import/{job}/commit"));
    let answer = status_json(commit.json(&json!({"batches": batches})).send().await.unwrap()).await;
    (report, answer)
}

fn table_counts(status: &Value) -> BTreeMap<String, Value> {
    status["summary"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

async fn fixtures_imported_in_batches_count_exactly_as_raw_uploads(backend: Backend) {
    // Two servers: row ids are global, so the second import of an id on one server is another
    // user's row.
    let raw_server = TestServer::start_on(backend, "batch-fixtures-raw").await;
    let server = TestServer::start_on(backend, "batch-fixtures").await;
    for (name, bytes, _) in fixtures::ARCHIVES {
        let ticket = (name == "secrets").then_some(fixtures::SECRETS_TICKET);
        let raw_account = raw_server.account(&format!("raw-{name}"), None).await;
        let raw = import(&raw_server, &raw_account, bytes, ticket).await;
        let account = server.account(&format!("batch-{name}"), None).await;
        let (batched, report) = batch_import(&server, &account, bytes, ticket, 0).await;
        assert_eq!(batched["status"], "complete", "{name}: {batched}");
        assert_eq!(table_counts(&batched), table_counts(&raw), "{name}");
        assert_eq!(batched["fileSummary"], raw["fileSummary"], "{name}");
        assert_eq!(batched["vectorSummary"]["restored"], raw["vectorSummary"]["restored"], "{name}: {batched}");
        assert_eq!(batched["vectorSummary"]["tables"], raw["vectorSummary"]["tables"], "{name}");
        assert!(report.batches > 0);
        if name == "secrets" {
            assert_eq!(batched["secretSummary"]["imported"], 3, "{batched}");
            assert_eq!(batched["ticket"]["wasReused"], false);
            assert_fixture_secrets_stored(&server, &account);
        }
        // Again: everything is already there.
        let (again, _) = batch_import(&server, &account, bytes, ticket, 0).await;
        let imported: u64 = table_counts(&again).values().map(|c| c["imported"].as_u64().unwrap()).sum();
        assert_eq!(imported, 0, "{name}: {again}");
        if name == "secrets" {
            assert_eq!(again["ticket"]["wasReused"], true);
        }
    }
}

async fn replays_gaps_conflicts_and_bad_hashes_are_answered_precisely(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-protocol").await;
    let account = server.account("proto", None).await;
    let (code, opened) = open_job(&server, &account, fixtures::ARCHIVES[0].1).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap();
    let put = |number: u64, body: Vec<u8>, hash: Option<String>| {
        let hash = hash.unwrap_or_else(|| hex::encode(Sha256::digest(&body)));
        server
            .client
            .put(server.url(&format!("/api/v1/user-data/import/{job}/batches/{number}")))
            .bearer_auth(&account.token)
            .header("x-batch-sha256", hash)
            .body(body)
            .send()
    };
    let rows = |id: &str| {
        let line = format!("{{\"id\":\"{id}\",\"name\":\"Lore {id}\",\"created_at\":1,\"updated_at\":1}}\n");
        rows_batch("world_books", 1, 1, 0, line.as_bytes())
    };
    let first = rows("3f1c2a4e-0000-4000-8000-000000000001");
    let (code, answer) = status_json(put(0, first.clone(), None).await.unwrap()).await;
    assert_eq!((code, answer["nextBatch"].as_u64()), (200, Some(1)), "{answer}");
    let (code, replay) = status_json(put(0, first.clone(), None).await.unwrap()).await;
    assert_eq!((code, replay.clone()), (200, answer));
    let (code, conflict) = status_json(put(0, rows("3f1c2a4e-0000-4000-8000-000000000002"), None).await.unwrap()).await;
    assert_eq!((code, conflict["code"].as_str()), (409, Some("batch_conflict")));
    let (code, gap) = status_json(put(5, first.clone(), None).await.unwrap()).await;
    assert_eq!((code, gap["code"].as_str(), gap["nextBatch"].as_u64()), (409, Some("batch_gap"), Some(1)));
    let (code, damaged) = status_json(put(1, first.clone(), Some("00".repeat(32))).await.unwrap()).await;
    assert_eq!((code, damaged["code"].as_str()), (400, Some("batch_hash_mismatch")));

    // A lying client: every refusal leaves the job able to go on.
    let traversal = Batch::FileChunk {
        bucket: FileBucket::Images,
        name: "../../../etc/passwd".into(),
        offset: 0,
        size: 4,
        bytes: b"root".to_vec(),
    }
    .encode()
    .unwrap();
    let (code, refused) = status_json(put(1, traversal, None).await.unwrap()).await;
    assert_eq!((code, refused["code"].as_str()), (422, Some("path_traversal")), "{refused}");
    let (code, refused) = status_json(put(1, b"PK\x03\x04 not a batch".to_vec(), None).await.unwrap()).await;
    assert_eq!((code, refused["code"].as_str()), (422, Some("bad_batch")));
    let vectors = vectors_batch();
    if opened["acceptVectors"] == false {
        let (code, refused) = status_json(put(1, vectors, None).await.unwrap()).await;
        assert_eq!((code, refused["code"].as_str()), (409, Some("vectors_not_accepted")));
    }

    let commit = |batches: u64| {
        server
            .post(&account, &format!("/api/v1/user-data/import/{job}/commit"))
            .json(&json!({"batches": batches}))
            .send()
    };
    let (code, early) = status_json(commit(3).await.unwrap()).await;
    assert_eq!((code, early["nextBatch"].as_u64()), (409, Some(1)));
    let (code, done) = status_json(commit(1).await.unwrap()).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["summary"]["world_books"]["imported"], 1, "{done}");
    let (code, after) = status_json(put(1, first, None).await.unwrap()).await;
    assert_eq!((code, after["code"].as_str()), (409, Some("import_complete")));

    // A line that is not JSON passes the frame checks, then ends the job at the parse stage
    // with its code and line, which the next request answers.
    let (code, opened) = open_job(&server, &account, fixtures::ARCHIVES[0].1).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap();
    let not_json = rows_batch("world_books", 7, 1, 0, b"{nope\n");
    let send = |number: u64, body: Vec<u8>| put_batch(&server, &account, job, number, body);
    let (code, _) = status_json(send(0, not_json).await.unwrap()).await;
    assert_eq!(code, 200);
    let failed = crate::import::wait_for(&server, &account, job, &["failed", "complete"]).await;
    assert_eq!(failed["error"]["code"], "bad_json", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("line 7"), "{failed}");
    let late = "3f1c2a4e-0000-4000-8000-000000000003";
    let (code, answer) = status_json(send(1, rows(late)).await.unwrap()).await;
    assert_eq!((code, answer["code"].as_str()), (409, Some("bad_json")));
    let stored = crate::export::owned_rows(&server, "world_books", &account.user.id);
    assert!(!stored.iter().any(|row| row["id"] == late));
}

async fn a_bundle_lands_its_parts_in_order_for_its_own_account_and_a_hostile_one_lands_nothing(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-bundles").await;
    let (first, second) = (server.account("bundler", None).await, server.account("neighbour", None).await);
    let books = ["3f1c2a4e-0000-4000-8000-0000000000b1", "3f1c2a4e-0000-4000-8000-0000000000b2"];
    let row = |id: &str, line: u64| {
        let text = format!("{{\"id\":\"{id}\",\"name\":\"Lore {id}\",\"created_at\":1,\"updated_at\":1}}\n");
        rows_batch("world_books", line, 1, 0, text.as_bytes())
    };
    let file = |bucket: &str, name: &str, bytes: &[u8]| {
        let bucket = FileBucket::from_archive_folder(bucket).unwrap();
        let size = bytes.len() as u64;
        Batch::FileChunk { bucket, name: name.into(), offset: 0, size, bytes: bytes.to_vec() }.encode().unwrap()
    };
    let sound = b"ID3\x04\0\0\0\0\0\0 a chime";
    let good =
        encode_bundle(&[row(books[0], 1), row(books[1], 2), file("notification-sounds", "completion.mp3", sound)])
            .unwrap();
    let send =
        |account: &Account, job: String, number: u64, body: Vec<u8>| put_batch(&server, account, &job, number, body);

    let commit_one = |account: &Account, job: String| {
        let request = server.post(account, &format!("/api/v1/user-data/import/{job}/commit"));
        async move {
            let (code, done) = status_json(request.json(&json!({"batches": 1})).send().await.unwrap()).await;
            assert_eq!(code, 200, "{done}");
            done
        }
    };

    let (code, opened) = open_job(&server, &first, fixtures::ARCHIVES[0].1).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    // Every part is checked as a batch of its own, before anything is taken: a refused
    // bundle lands none of its parts, and the job goes on.
    let secrets = Batch::Secrets { enc: [7; 32], sealed: b"sealed".to_vec() }.encode().unwrap();
    let traversal = file("theme-assets", "../../escape.css", b"x");
    let vectors = vectors_batch();
    let mut cut_short = good.clone();
    cut_short.truncate(good.len() - 3);
    let hostile = [
        ("a bundle in a bundle", encode_bundle(&[row(books[0], 1), good.clone()]).unwrap(), 422, "bad_batch"),
        ("secrets in a bundle", encode_bundle(&[row(books[0], 1), secrets]).unwrap(), 422, "bad_batch"),
        ("a part outside its folder", encode_bundle(&[row(books[0], 1), traversal]).unwrap(), 422, "path_traversal"),
        (
            "vectors not accepted",
            encode_bundle(&[row(books[0], 1), vectors.clone()]).unwrap(),
            409,
            "vectors_not_accepted",
        ),
        ("parts past the end", cut_short, 422, "bad_batch"),
    ];
    assert_eq!(opened["acceptVectors"], false, "{opened}");
    for (what, body, status, error) in hostile {
        let (code, refused) = status_json(send(&first, job.clone(), 0, body).await.unwrap()).await;
        assert_eq!((code, refused["code"].as_str()), (status, Some(error)), "{what}: {refused}");
    }
    let (code, answer) = status_json(send(&first, job.clone(), 0, good.clone()).await.unwrap()).await;
    assert_eq!((code, answer["nextBatch"].as_u64()), (200, Some(1)), "{answer}");
    let done = commit_one(&first, job.clone()).await;
    assert_eq!(done["summary"]["world_books"]["imported"], 2, "{done}");
    let stored = crate::export::owned_rows(&server, "world_books", &first.user.id);
    let mut ids: Vec<&str> = stored.iter().filter_map(|row| row["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, books);
    let sounds = server.data.path.join("data").join("notification-sounds");
    assert_eq!(std::fs::read(sounds.join(&first.user.id).join("completion.mp3")).unwrap(), sound);
    assert!(!server.data.path.join("data").join("escape.css").exists());

    // Again into the same account: both books held. A bundle refused for one part draws
    // nothing on the held-rows budget, so the same rows sent again still count as skipped.
    let (code, opened) = open_job(&server, &first, fixtures::ARCHIVES[0].1).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    assert_eq!(held_rows_of(&server, &first, &job).await.tables["world_books"].len(), 2);
    let held = rows_batch("world_books", 1, 0, 2, b"");
    let refused = encode_bundle(&[held.clone(), vectors]).unwrap();
    let (code, answer) = status_json(send(&first, job.clone(), 0, refused).await.unwrap()).await;
    assert_eq!((code, answer["code"].as_str()), (409, Some("vectors_not_accepted")), "{answer}");
    let (code, answer) =
        status_json(send(&first, job.clone(), 0, encode_bundle(&[held]).unwrap()).await.unwrap()).await;
    assert_eq!(code, 200, "{answer}");
    let done = commit_one(&first, job.clone()).await;
    assert_eq!(done["summary"]["world_books"]["skipped"], 2, "{done}");

    // The same bundle from another account of the instance: its own copies, under its own
    // folder; the first account's rows and file stay as they were.
    let (code, opened) = open_job(&server, &second, fixtures::ARCHIVES[0].1).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    let (code, answer) = status_json(send(&second, job.clone(), 0, good).await.unwrap()).await;
    assert_eq!(code, 200, "{answer}");
    let done = commit_one(&second, job.clone()).await;
    assert_eq!(done["summary"]["world_books"]["remapped"], 2, "{done}");
    let theirs = crate::export::owned_rows(&server, "world_books", &second.user.id);
    assert_eq!(theirs.len(), 2);
    assert!(theirs.iter().all(|row| !books.contains(&row["id"].as_str().unwrap())), "{theirs:?}");
    assert_eq!(crate::export::owned_rows(&server, "world_books", &first.user.id).len(), 2);
    assert_eq!(std::fs::read(sounds.join(&second.user.id).join("completion.mp3")).unwrap(), sound);
}

/// A rows batch of `ndjson` (plain lines), as encoded.
fn rows_batch(table: &str, first_line: u64, lines: u64, held: u64, ndjson: &[u8]) -> Vec<u8> {
    let deflated = deflate_ndjson(ndjson).unwrap();
    Batch::Rows { table: table.into(), first_line, lines, held, deflated }.encode().unwrap()
}

/// A vectors batch of one empty row of `embeddings`, as encoded.
fn vectors_batch() -> Vec<u8> {
    let deflated = deflate_ndjson(b"{}\n").unwrap();
    Batch::Vectors { table: "embeddings".into(), first_line: 1, lines: 1, deflated }.encode().unwrap()
}

/// `world_books` lines `ids`, deflated as an archive's entry would be.
fn deflated_books(ids: &[&str]) -> (Vec<u8>, Vec<u8>) {
    use std::io::Write as _;
    let text: String = ids
        .iter()
        .map(|id| format!("{{\"id\":\"{id}\",\"name\":\"Lore {id}\",\"created_at\":1,\"updated_at\":1}}\n"))
        .collect();
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(text.as_bytes()).unwrap();
    (text.into_bytes(), encoder.finish().unwrap())
}

async fn rows_sent_as_the_archives_deflate_stream_arrive_whole_and_a_broken_stream_fails_its_job(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-row-stream").await;
    let (alice, bob) = (server.account("streamer", None).await, server.account("other-streamer", None).await);
    let put = |account: &Account, job: &str, number: u64, body: Vec<u8>| put_batch(&server, account, job, number, body);
    let segment = |offset: usize, last: bool, bytes: &[u8]| {
        let deflated = bytes.to_vec();
        Batch::RowStream { table: "world_books".into(), offset: offset as u64, last, deflated }.encode().unwrap()
    };
    let commit = |account: &Account, job: &str, batches: u64| {
        server
            .post(account, &format!("/api/v1/user-data/import/{job}/commit"))
            .json(&json!({"batches": batches}))
            .send()
    };
    let ids = [
        "5a1b0000-0000-4000-8000-000000000001",
        "5a1b0000-0000-4000-8000-000000000002",
        "5a1b0000-0000-4000-8000-000000000003",
    ];

    // Three segments cut anywhere (mid-line, mid-block): every row arrives, exactly.
    let (_, deflated) = deflated_books(&ids);
    let cuts = [0, 5, deflated.len() / 2, deflated.len()];
    let (code, opened) = open_job(&server, &alice, fixtures::ARCHIVES[0].1).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap();
    for (n, pair) in cuts.windows(2).enumerate() {
        let body = segment(pair[0], n == 2, &deflated[pair[0]..pair[1]]);
        let (code, answer) = status_json(put(&alice, job, n as u64, body).await.unwrap()).await;
        assert_eq!(code, 200, "{answer}");
    }
    let (code, done) = status_json(commit(&alice, job, 3).await.unwrap()).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["summary"]["world_books"]["imported"], 3, "{done}");
    let mut stored: Vec<(String, String)> = crate::export::owned_rows(&server, "world_books", &alice.user.id)
        .iter()
        .map(|row| (row["id"].as_str().unwrap().to_string(), row["name"].as_str().unwrap().to_string()))
        .collect();
    stored.sort();
    let expected: Vec<(String, String)> = ids.iter().map(|id| (id.to_string(), format!("Lore {id}"))).collect();
    assert_eq!(stored, expected);

    // A line that is not JSON in the second segment is reported with its number in the
    // whole stream.
    let bad_ids = ["5a1b0000-0000-4000-8000-000000000004", "5a1b0000-0000-4000-8000-000000000005"];
    let (mut text, _) = deflated_books(&bad_ids);
    text.extend_from_slice(b"{nope\n");
    let deflated = {
        use std::io::Write as _;
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(&text).unwrap();
        encoder.finish().unwrap()
    };
    let (_, opened) = open_job(&server, &bob, fixtures::ARCHIVES[0].1).await;
    let job = opened["jobId"].as_str().unwrap();
    let half = deflated.len() / 2;
    assert_eq!(status_json(put(&bob, job, 0, segment(0, false, &deflated[..half])).await.unwrap()).await.0, 200);
    assert_eq!(status_json(put(&bob, job, 1, segment(half, true, &deflated[half..])).await.unwrap()).await.0, 200);
    let failed = crate::import::wait_for(&server, &bob, job, &["failed", "complete"]).await;
    assert_eq!(failed["error"]["code"], "bad_json", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("line 3"), "{failed}");

    // A segment that does not start where the last ended fails the job.
    let (_, deflated) = deflated_books(&bad_ids);
    let (_, opened) = open_job(&server, &bob, fixtures::ARCHIVES[0].1).await;
    let job = opened["jobId"].as_str().unwrap();
    assert_eq!(status_json(put(&bob, job, 0, segment(0, false, &deflated[..10])).await.unwrap()).await.0, 200);
    assert_eq!(status_json(put(&bob, job, 1, segment(11, true, &deflated[11..])).await.unwrap()).await.0, 200);
    let failed = crate::import::wait_for(&server, &bob, job, &["failed", "complete"]).await;
    assert_eq!(failed["error"]["code"], "bad_batch", "{failed}");

    // A stream never ended (its last line would be lost) fails the job at commit.
    let (_, opened) = open_job(&server, &bob, fixtures::ARCHIVES[0].1).await;
    let job = opened["jobId"].as_str().unwrap();
    let cut = deflated.len() - 4;
    assert_eq!(status_json(put(&bob, job, 0, segment(0, false, &deflated[..cut])).await.unwrap()).await.0, 200);
    let (code, refused) = status_json(commit(&bob, job, 1).await.unwrap()).await;
    assert_ne!(code, 200, "{refused}");
    let failed = crate::import::wait_for(&server, &bob, job, &["failed", "complete"]).await;
    assert_eq!(failed["error"]["code"], "bad_batch", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("stopped before"), "{failed}");

    // Nothing of bob's broken jobs stayed (each failed job is rolled back whole or kept
    // only whole lines it applied), and alice's rows are as she left them.
    let bobs = crate::export::owned_rows(&server, "world_books", &bob.user.id);
    assert!(bobs.iter().all(|row| bad_ids.contains(&row["id"].as_str().unwrap())), "{bobs:?}");
    assert_eq!(crate::export::owned_rows(&server, "world_books", &alice.user.id).len(), 3);
}

/// A table's held rows are one base64 string however many there are: over 5000 messages
/// (over 40,000 bytes of hashes, past the 24 KiB the server once encoded at a time) read back
/// as the canonical base64 of every hash the account holds, padded only at the end.
async fn the_held_rows_of_a_large_table_are_one_base64_string(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-held-large").await;
    let mut seed = small_seed();
    seed.messages_per_chat = 2500;
    let account = server.account("held-large", Some(seed)).await;
    let archive = server.get(&account, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let archive = archive.bytes().await.unwrap().to_vec();
    let (code, opened) = open_job(&server, &account, &archive).await;
    assert_eq!(code, 201, "{opened}");
    let path = format!("/api/v1/user-data/import/{}/held-rows", opened["jobId"].as_str().unwrap());
    let answer = server.get(&account, &path).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    let text = answer["tables"]["messages"].as_str().unwrap();
    let bytes = BASE64.decode(text).unwrap();
    assert_eq!(BASE64.encode(&bytes), text);
    let held: std::collections::HashSet<u64> =
        bytes.chunks_exact(8).map(|hash| u64::from_le_bytes(hash.try_into().unwrap())).collect();
    let ids = crate::export::owned_rows(&server, "messages", &account.user.id);
    let expected: std::collections::HashSet<u64> =
        ids.iter().map(|row| lvbak_core::upload::held_id_hash(row["id"].as_str().unwrap())).collect();
    assert!(ids.len() >= 5000 && bytes.len() == 8 * ids.len(), "{} bytes for {} ids", bytes.len(), ids.len());
    assert_eq!(held, expected);
}

async fn an_interrupted_upload_resumes_where_it_stopped_and_the_wire_stays_near_the_archive_size(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-resume").await;
    let mut seed = small_seed();
    seed.chats = 4;
    seed.messages_per_chat = 3000;
    let source = server.account("resume-source", Some(seed)).await;
    let archive = server.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let archive = archive.bytes().await.unwrap().to_vec();
    assert!(archive.len() > 1_000_000, "{}", archive.len());
    let opened = Archive::open(Cursor::new(archive.clone()), Limits::STANDARD).unwrap();
    let index = opened.table_entry("messages").unwrap();
    let rows = opened.ndjson_lines(index).unwrap().count().unwrap();
    assert!(rows >= 12_000, "{rows}");

    // Another server: the rows' ids already belong to the source account on this one.
    let server = TestServer::start_on(backend, "batch-resume-target").await;
    let account = server.account("resume-target", None).await;
    let (code, opened) = open_job(&server, &account, &archive).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    let url = server.url(&format!("/api/v1/user-data/import/{job}/batches"));
    // Each upload asks for the held rows first, as the Worker does: when it resumes, the
    // account has the rows of the batches taken, and the stream cut off must go on as one.
    let upload = |start_batch: u64, fail_after: Option<usize>, held: HeldRows| {
        let reader = Archive::open(Cursor::new(archive.clone()), Limits::STANDARD).unwrap();
        let mut sink = HttpSink {
            runtime: Handle::current(),
            client: server.client.clone(),
            urls: vec![url.clone()],
            token: account.token.clone(),
            sent: Vec::new(),
            fail_after,
        };
        tokio::task::spawn_blocking(move || {
            let plan =
                UploadPlan { start_batch, held_rows: held.tables, fresh_tables: held.fresh, ..UploadPlan::default() };
            (upload_batches(&reader, plan, &mut sink), sink.sent)
        })
    };
    // The connection drops after two batches: the small tables before the messages, and
    // the first segment of the messages' stream.
    let (report, sent) = upload(0, Some(2), held_rows_of(&server, &account, &job).await).await.unwrap();
    assert!(report.unwrap_err().to_string().contains("connection dropped"));
    assert_eq!(sent, vec![0, 1]);
    // Taken batches are applied a moment later.
    let messages = || crate::export::owned_rows(&server, "messages", &account.user.id).len() as u64;
    for _ in 0..500 {
        if messages() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let taken = messages();
    let again = held_rows_of(&server, &account, &job).await;
    assert!(again.tables["messages"].len() as u64 == taken && taken > 0 && taken < rows, "{taken} of {rows}");
    assert!(again.fresh.as_ref().unwrap().contains("messages"), "fresh as at the first reading");
    // The client resumes from batch 2: nothing is sent twice.
    let (report, sent) = upload(2, None, again).await.unwrap();
    let report = report.unwrap();
    assert!(report.batches >= 4, "{report:?}");
    assert_eq!(sent, (2..report.batches).collect::<Vec<_>>());
    let response = server
        .post(&account, &format!("/api/v1/user-data/import/{job}/commit"))
        .json(&json!({"batches": report.batches}))
        .send()
        .await
        .unwrap();
    let (code, done) = status_json(response).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["summary"]["messages"]["imported"].as_u64(), Some(rows), "{done}");
    assert_eq!(done["summary"]["messages"]["rejected"].as_u64(), Some(0));

    // The whole archive through the batch path, for its size on the wire.
    let server = TestServer::start_on(backend, "batch-wire").await;
    let fresh = server.account("resume-wire", None).await;
    let (status, full) = batch_import(&server, &fresh, &archive, None, 0).await;
    assert_eq!(status["summary"]["messages"]["imported"].as_u64(), Some(rows));
    let ratio = full.wire_bytes as f64 / archive.len() as f64;
    assert!(ratio <= 1.1, "wire {} bytes for a {}-byte archive ({ratio:.3}x)", full.wire_bytes, archive.len());
}

/// A re-import sends none of the files the account holds already: the server compares its
/// own copies (size and CRC-32) with the archive's central directory, the client leaves the
/// held ones out, and they count as skipped exactly as when sent. A changed copy, a claim
/// that lies about a checksum and another account's copy are all sent in full.
async fn a_re_import_sends_no_file_the_server_holds(backend: Backend) {
    let source_server = TestServer::start_on(backend, "held-source").await;
    // 2,000 messages: a ~90-byte frame still goes out per table of held rows (the batch
    // numbers must not move), which is 8% of a 50 KB archive but nothing of a real one.
    let seed = lvbak_server::seed::SeedOptions { chats: 4, messages_per_chat: 500, ..small_seed() };
    let source = source_server.account("held-source", Some(seed)).await;
    let archive = source_server.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let archive = archive.bytes().await.unwrap().to_vec();
    let claims = file_claims(&Archive::open(Cursor::new(archive.as_slice()), Limits::STANDARD).unwrap());
    assert!(claims.len() >= 5, "{claims:?}");
    let file_bytes: u64 = claims.iter().map(|claim| claim.size).sum();

    let server = TestServer::start_on(backend, "held-target").await;
    let account = server.account("held-target", None).await;
    let (first, first_report) = batch_import(&server, &account, &archive, None, 0).await;
    assert_eq!(first["status"], "complete", "{first}");
    assert_eq!(first_report.files_held, 0, "a first import sends every file");
    let imported = first["fileSummary"]["imported"].as_u64().unwrap();
    assert_eq!(imported, claims.len() as u64, "{}", first["fileSummary"]);

    let (again, again_report) = batch_import(&server, &account, &archive, None, 0).await;
    assert_eq!(again["status"], "complete", "{again}");
    assert_eq!(again_report.files_held, claims.len() as u64, "{again_report:?}");
    assert_eq!(again_report.held_bytes, file_bytes);
    assert_eq!(again["fileSummary"]["skipped"].as_u64(), Some(imported), "held files count as skipped: {again}");
    assert_eq!(again["fileSummary"]["imported"], 0);
    assert!(
        again_report.wire_bytes + file_bytes <= first_report.wire_bytes,
        "the re-import sent {} bytes, the first {} of which {file_bytes} were files",
        again_report.wire_bytes,
        first_report.wire_bytes
    );
    // Rows too: every row the account has is left out and counted skipped, as if sent.
    assert!(again_report.rows_held > 0, "{again_report:?}");
    for (table, counts) in table_counts(&first) {
        if table == "settings" {
            continue;
        }
        let expected = counts["imported"].as_u64().unwrap() + counts["skipped"].as_u64().unwrap();
        assert_eq!(
            again["summary"][&table]["skipped"].as_u64(),
            Some(expected),
            "{table}: {}",
            again["summary"][&table]
        );
        assert_eq!(again["summary"][&table]["imported"], 0, "{table}");
    }
    let ratio = again_report.wire_bytes as f64 / archive.len() as f64;
    eprintln!(
        "re-import: {} of {} bytes on the wire ({:.1}% of the archive's {} bytes); first import {} bytes",
        again_report.wire_bytes,
        first_report.wire_bytes,
        100.0 * again_report.wire_bytes as f64 / archive.len() as f64,
        archive.len(),
        first_report.wire_bytes
    );
    assert!(ratio < 0.05, "a re-import sent {:.1}% of the archive's bytes", 100.0 * ratio);

    // A copy changed on the server (same size): the server sees it and asks for the file;
    // a claim with another checksum is not believed either way.
    let changed = claims.iter().position(|claim| claim.bucket == "images").expect("an image");
    let liar = (changed + 1) % claims.len();
    let path = lvbak_server::storage::FileStore::new(&server.store.data_dir, &server.store.staging_dir())
        .path(lvbak_core::FileBucket::Images, &account.user.id, &claims[changed].name)
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut lying = claims.clone();
    lying[liar].crc32 ^= 1;
    let (code, opened) = open_job_claiming(&server, &account, &archive, lying).await;
    assert_eq!(code, 201, "{opened}");
    let held = held_of(&opened);
    assert!(!held.contains(&claims[changed].entry_name()), "a changed copy is not held");
    assert!(!held.contains(&claims[liar].entry_name()), "a claim with another CRC-32 is not held");
    assert_eq!(held.len(), claims.len() - 2, "{held:?}");
    let job = opened["jobId"].as_str().unwrap();
    let answer = server.post(&account, &format!("/api/v1/user-data/import/{job}/cancel")).send().await.unwrap();
    assert_eq!(answer.status(), 200);

    // Another account of the same server holds none of them.
    let other = server.account("held-other", None).await;
    let (code, opened) = open_job(&server, &other, &archive).await;
    assert_eq!(code, 201, "{opened}");
    assert_eq!(opened["heldFiles"], json!([]), "another account's copies are not this account's");
}
