//! Two nodes of one instance: two servers in this process over one PostgreSQL database,
//! each with its own address and data directory. A batch import's requests alternate
//! between them (the node that does not run the job forwards them), a hostile account gets
//! nothing of another's job through either node, an account runs one import across both,
//! rows of an unfinished import stay out of exports, and when the node running the job
//! stops (its address refuses, its database connection holding the job's lock is cut, as a
//! `kill -9` leaves them) the other node takes the job over under the same id: the upload
//! starts again from batch 0 there and the import completes, its export equal to a single
//! SQLite node's import of the same archive.

use std::collections::BTreeMap;
use std::io::Cursor;

use lvbak_core::upload::{file_claims, HeldRows, UploadPlan};
use lvbak_core::{Archive, Limits};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::batches::{held_rows_of, open_job, send_batches};
use crate::export::{entries, export};
use crate::import::import;
use crate::support::{small_seed, status_json, Account, Backend, TestServer};

/// Uploads `archive` into `job` from `plan`, alternating between `nodes`.
async fn upload(
    nodes: &[&TestServer],
    account: &Account,
    job: &str,
    archive: &[u8],
    plan: UploadPlan,
    stop_after: Option<usize>,
) -> (Result<u64, String>, Vec<u64>) {
    let urls = nodes.iter().map(|node| node.url(&format!("/api/v1/user-data/import/{job}/batches"))).collect();
    send_batches(urls, &account.token, archive, plan, stop_after).await
}

/// An export's entries as compared across instances: the manifest left out (its id and
/// time are each export's), the account's own id named `USER`, each table's lines sorted
/// (each database reads rows in its own plan's order).
fn comparable(bytes: &[u8], user_id: &str) -> BTreeMap<String, Vec<u8>> {
    entries(bytes)
        .into_iter()
        .filter(|(name, _)| name != "manifest.json")
        .map(|(name, content)| {
            if !name.ends_with(".ndjson") {
                return (name, content);
            }
            let text = String::from_utf8_lossy(&content).replace(user_id, "USER");
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            (name, lines.join("\n").into_bytes())
        })
        .collect()
}

/// The node recorded as running `job`, as PostgreSQL says.
async fn node_of(server: &TestServer, job: &str) -> Option<String> {
    let client = server.postgres_client().unwrap();
    let row = client.query_opt("SELECT node_url FROM lvbak_open_jobs WHERE job_id = $1", &[&job]).await.unwrap();
    row.and_then(|row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_batch_import_and_a_gone_node_s_job_is_taken_over() {
    // The archive: a seeded account's export on an instance of its own, and what one
    // SQLite node makes of it.
    let source = TestServer::start("nodes-source").await;
    let mut seed = small_seed();
    seed.chats = 4;
    seed.messages_per_chat = 3000;
    let owner = source.account("nodes-owner", Some(seed)).await;
    let archive = export(&source, &owner, false).await;
    drop(source);
    let single = TestServer::start("nodes-single").await;
    let reference_account = single.account("nodes-reference", None).await;
    let done = import(&single, &reference_account, &archive, None).await;
    assert_eq!(done["status"], "complete", "{done}");
    let reference = comparable(&export(&single, &reference_account, false).await, &reference_account.user.id);

    // Two nodes over one database.
    let mut a = TestServer::start_on(Backend::Postgres, "node-a").await;
    let b = a.another_node("node-b").await;
    let victim = a.account("victim", None).await;
    let hostile = a.account("hostile", None).await;
    let opened = Archive::open(Cursor::new(archive.clone()), Limits::STANDARD).unwrap();
    let body = json!({"manifest": opened.manifest(), "files": file_claims(&opened)});
    let (code, job) =
        status_json(a.post(&victim, "/api/v1/user-data/import/batches").json(&body).send().await.unwrap()).await;
    assert_eq!(code, 201, "{job}");
    let job = job["jobId"].as_str().unwrap().to_string();
    assert_eq!(node_of(&a, &job).await.as_deref(), Some(a.base.as_str()), "the job runs where it was opened");

    // The node that does not run the job answers for it (held rows, status) by forwarding.
    let held = held_rows_of(&b, &victim, &job).await;
    let plan = |held: HeldRows| UploadPlan {
        start_batch: 0,
        held_rows: held.tables,
        fresh_tables: held.fresh,
        ..UploadPlan::default()
    };
    let (stopped, sent) = upload(&[&a, &b], &victim, &job, &archive, plan(held), Some(4)).await;
    assert!(stopped.unwrap_err().contains("connection dropped"));
    assert_eq!(sent, vec![0, 1, 2, 3], "batches alternate between the nodes");
    let (code, status) =
        status_json(b.get(&victim, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap()).await;
    assert_eq!((code, status["nextBatch"].as_u64()), (200, Some(4)), "{status}");

    // Rows of the unfinished import are not in an export, from either node.
    let applied = || crate::export::owned_rows(&a, "messages", &victim.user.id).len();
    for _ in 0..500 {
        if applied() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(applied() > 0, "the batches taken are applied");
    for node in [&a, &b] {
        let during = entries(&export(node, &victim, false).await);
        let messages = during
            .get("database/messages.ndjson")
            .map_or(0, |lines| lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count());
        assert_eq!(messages, 0, "an export during the import shows none of its rows");
    }

    // A hostile account reaches nothing of the job through either node.
    let paths = ["status", "held-rows", "held-files"];
    for node in [&a, &b] {
        for path in paths {
            let answer = node.get(&hostile, &format!("/api/v1/user-data/import/{job}/{path}")).send().await.unwrap();
            assert_eq!(answer.status(), 404, "{path} through {}", node.base);
        }
        let commit =
            node.post(&hostile, &format!("/api/v1/user-data/import/{job}/commit")).json(&json!({"batches": 4}));
        assert_eq!(commit.send().await.unwrap().status(), 404);
        let put = node
            .client
            .put(node.url(&format!("/api/v1/user-data/import/{job}/batches/4")))
            .bearer_auth(&hostile.token)
            .header("x-batch-sha256", hex::encode(Sha256::digest(b"x")))
            .body("x");
        assert_eq!(put.send().await.unwrap().status(), 404);
    }
    // One import per account across the nodes.
    let (code, refused) =
        status_json(b.post(&victim, "/api/v1/user-data/import/batches").json(&body).send().await.unwrap()).await;
    assert_eq!((code, refused["code"].as_str()), (409, Some("import_running")), "{refused}");

    // Node A goes: its address refuses connections and its lock holder's connection ends.
    a.stop_serving();
    let database = a.postgres_client().unwrap();
    let holder = lock_holder_of(database, &job).await.expect("one connection holds the job's lock");
    database.execute("SELECT pg_terminate_backend($1)", &[&holder]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // The hostile account's requests through B never take the job over.
    for path in paths {
        let answer = b.get(&hostile, &format!("/api/v1/user-data/import/{job}/{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
    assert_eq!(node_of(&a, &job).await.as_deref(), Some(a.base.as_str()), "still A's");

    // The victim's next batch reaches B: B takes the job over, and the upload starts again.
    let retry = b
        .client
        .put(b.url(&format!("/api/v1/user-data/import/{job}/batches/4")))
        .bearer_auth(&victim.token)
        .header("x-batch-sha256", hex::encode(Sha256::digest(b"x")))
        .body("x");
    let (code, gap) = status_json(retry.send().await.unwrap()).await;
    assert_eq!((code, gap["code"].as_str(), gap["nextBatch"].as_u64()), (409, Some("batch_gap"), Some(0)), "{gap}");
    assert_eq!(node_of(&a, &job).await.as_deref(), Some(b.base.as_str()), "B runs it now");
    let (code, status) =
        status_json(b.get(&victim, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap()).await;
    assert_eq!(
        (code, status["status"].as_str(), status["nextBatch"].as_u64()),
        (200, Some("running"), Some(0)),
        "{status}"
    );

    // The page's resume: held files and rows asked again, every batch from 0, to B.
    let (code, files) =
        status_json(b.get(&victim, &format!("/api/v1/user-data/import/{job}/held-files")).send().await.unwrap()).await;
    assert_eq!(code, 200, "{files}");
    let held_files =
        files["heldFiles"].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_string()).collect();
    let held = held_rows_of(&b, &victim, &job).await;
    let resumed = UploadPlan { held_files, ..plan(held) };
    let (report, _) = upload(&[&b], &victim, &job, &archive, resumed, None).await;
    let batches = report.unwrap();
    let commit = b.post(&victim, &format!("/api/v1/user-data/import/{job}/commit")).json(&json!({"batches": batches}));
    let (code, done) = status_json(commit.send().await.unwrap()).await;
    assert_eq!((code, done["status"].as_str()), (200, Some("complete")), "{done}");
    assert_eq!(node_of(&a, &job).await, None, "an ended job is no node's");
    let open_imports = database.query("SELECT id FROM lvbak_imports", &[]).await.unwrap();
    assert!(open_imports.is_empty(), "no import is left open: {}", open_imports.len());

    // What the two nodes hold is what one SQLite node makes of the archive.
    let cluster = comparable(&export(&b, &victim, false).await, &victim.user.id);
    lvbak_tests::exports::assert_same_entries("the export", ("one SQLite node", "two nodes"), &reference, &cluster);
    let (code, status) =
        status_json(b.get(&victim, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap()).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("complete")), "{status}");
    drop(hostile);
}

/// A node given another identity key than the instance's does not start: the API keys the
/// other nodes stored would not open on it. Given the instance's key file, it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_identity_key_is_refused() {
    let a = TestServer::start_on(Backend::Postgres, "node-key-a").await;
    let url = a.database_url().unwrap();
    let other = crate::support::ScratchDir::new("node-key-b");
    let refused = lvbak_server::storage::Store::open_with(&other.path.join("data"), None, Some(&url)).await;
    let refusal = refused.err().expect("a node with its own identity key started").to_string();
    assert!(refusal.contains("identity key"), "{refusal}");
    let key = a.data.path.join("data/identity.key");
    let shared_dir = other.path.join("data2");
    let shared = lvbak_server::storage::Store::open_with_identity(&shared_dir, None, Some(&url), Some(&key)).await;
    assert!(shared.is_ok(), "a node with the instance's key starts");
}

/// An account's re-vectorization run goes on one node, and the Embeddings page sees it
/// whichever node answers: status, start and cancel through the other node reach it there
/// (forwarded), another account's status through that node is its own, and a run started
/// through the other node once the first ended goes on there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_vectorization_run_goes_on_one_node_and_answers_through_either() {
    use crate::embeddings::{configure, until_stopped};
    use lvbak_tests::embedding_stub::EmbeddingStub;
    use std::time::Duration;

    let stub = EmbeddingStub::start(crate::embeddings::DIMENSIONS);
    stub.set(|s| s.delay = Duration::from_secs(30));
    let a = TestServer::start_on(Backend::Postgres, "run-a").await;
    let b = a.another_node("run-b").await;
    let frank = a.account("frank", Some(small_seed())).await;
    let other = a.account("other", None).await;
    let node_of_run = || async {
        let client = a.postgres_client().unwrap();
        let sql = "SELECT node_url FROM lvbak_open_runs WHERE user_id = $1";
        let row = client.query_opt(sql, &[&frank.user.id]).await.unwrap();
        row.and_then(|row| row.get::<_, Option<String>>(0))
    };
    // Configured through A: the seeded rows wait for the new model, and A starts the run.
    configure(&a, &frank, &stub, json!({"vectorize_chat_messages": true, "batch_size": 2})).await;
    let (code, started) = status_json(a.post(&frank, "/api/v1/embeddings/start").send().await.unwrap()).await;
    assert_eq!((code, started["status"].as_str()), (200, Some("running")), "{started}");
    assert_eq!(node_of_run().await.as_deref(), Some(a.base.as_str()));

    // Through B: the same run (B alone would answer idle), started once.
    let (code, seen) = status_json(b.get(&frank, "/api/v1/embeddings/status").send().await.unwrap()).await;
    assert_eq!((code, seen["status"].as_str()), (200, Some("running")), "{seen}");
    let (code, again) = status_json(b.post(&frank, "/api/v1/embeddings/start").send().await.unwrap()).await;
    assert_eq!((code, again["status"].as_str()), (200, Some("running")), "{again}");
    assert_eq!(node_of_run().await.as_deref(), Some(a.base.as_str()), "still A's run");
    let (code, theirs) = status_json(b.get(&other, "/api/v1/embeddings/status").send().await.unwrap()).await;
    assert_eq!((code, theirs["status"].as_str()), (200, Some("idle")), "another account's own: {theirs}");
    let (code, refused) = status_json(b.post(&other, "/api/v1/embeddings/cancel").send().await.unwrap()).await;
    assert_eq!((code, refused["cancelled"].as_bool()), (200, Some(false)), "{refused}");

    // Cancelled through B, stopped on A.
    let (code, cancelled) = status_json(b.post(&frank, "/api/v1/embeddings/cancel").send().await.unwrap()).await;
    assert_eq!((code, cancelled["cancelled"].as_bool()), (200, Some(true)), "{cancelled}");
    let stopped = until_stopped(&b, &frank).await;
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    assert_eq!(node_of_run().await, None, "an ended run is no node's");

    // Started through B now, it goes on B, and A answers for it.
    stub.set(|s| s.delay = Duration::ZERO);
    let (code, _) = status_json(b.post(&frank, "/api/v1/embeddings/start").send().await.unwrap()).await;
    assert_eq!(code, 200);
    let finished = until_stopped(&a, &frank).await;
    assert_eq!((finished["status"].as_str(), finished["pending"].as_u64()), (Some("complete"), Some(0)), "{finished}");
    assert!(stub.seen(|s| s.embedded_requests) > 0);
}

/// The backend holding `job`'s lock, if one does (an advisory lock has one holder).
pub(crate) async fn lock_holder_of(database: &tokio_postgres::Client, job: &str) -> Option<i32> {
    let row = database
        .query_opt(
            "SELECT l.pid FROM pg_locks l, lvbak_open_jobs j WHERE j.job_id = $1 \
             AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid::bigint = ((j.lock_key >> 32) & 4294967295) AND l.objid::bigint = (j.lock_key & 4294967295)",
            &[&job],
        )
        .await
        .unwrap();
    row.map(|row| row.get(0))
}

/// A node whose lock holder's connection ends while the node stays (PostgreSQL restarted,
/// a network blip) is not left without locks: it takes its job's lock again at once (no
/// other node took it), the import goes on through either node and ends recorded as
/// complete, and new imports open on it as before. Another account's requests for the job
/// meanwhile get nothing through either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lock_holder_connection_ends_keeps_its_job_and_takes_new_ones() {
    let source = TestServer::start("blip-source").await;
    let mut seed = small_seed();
    seed.chats = 2;
    seed.messages_per_chat = 1500;
    let owner = source.account("blip-owner", Some(seed)).await;
    let archive = export(&source, &owner, false).await;
    drop(source);

    let a = TestServer::start_on(Backend::Postgres, "blip-a").await;
    let b = a.another_node("blip-b").await;
    let victim = a.account("blip-victim", None).await;
    let hostile = a.account("blip-hostile", None).await;
    let (code, job) = open_job(&a, &victim, &archive).await;
    assert_eq!(code, 201, "{job}");
    let job = job["jobId"].as_str().unwrap().to_string();

    // A's lock holder's connection is cut; A takes the job's lock again on a new one.
    let database = a.postgres_client().unwrap();
    let before = lock_holder_of(database, &job).await.expect("A holds the job's lock");
    database.execute("SELECT pg_terminate_backend($1)", &[&before]).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut after = None;
    while std::time::Instant::now() < deadline {
        after = lock_holder_of(database, &job).await.filter(|pid| *pid != before);
        if after.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(after.is_some(), "the job's lock is held again");
    assert_eq!(node_of(&a, &job).await.as_deref(), Some(a.base.as_str()), "still A's");

    // The hostile account gets nothing of the job through either node.
    for node in [&a, &b] {
        for path in ["status", "held-rows", "held-files"] {
            let answer = node.get(&hostile, &format!("/api/v1/user-data/import/{job}/{path}")).send().await.unwrap();
            assert_eq!(answer.status(), 404, "{path}");
        }
    }

    // The upload goes through both nodes to A, and the job ends recorded as complete.
    let held = held_rows_of(&b, &victim, &job).await;
    let plan = UploadPlan { start_batch: 0, held_rows: held.tables, fresh_tables: held.fresh, ..UploadPlan::default() };
    let (report, sent) = upload(&[&a, &b], &victim, &job, &archive, plan, None).await;
    let batches = report.unwrap();
    assert!(sent.len() >= 2, "{sent:?}");
    let commit = b.post(&victim, &format!("/api/v1/user-data/import/{job}/commit")).json(&json!({"batches": batches}));
    let (code, done) = status_json(commit.send().await.unwrap()).await;
    assert_eq!((code, done["status"].as_str()), (200, Some("complete")), "{done}");
    assert_eq!(node_of(&a, &job).await, None, "an ended job is no node's");
    assert_eq!(lock_holder_of(database, &job).await, None);
    for node in [&a, &b] {
        let (code, status) =
            status_json(node.get(&victim, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap())
                .await;
        assert_eq!((code, status["status"].as_str()), (200, Some("complete")), "{status}");
    }

    // New work takes locks on A as before: another account's whole import.
    let imported = import(&a, &hostile, &archive, None).await;
    assert_eq!(imported["status"], "complete", "{imported}");
    let victims = comparable(&export(&a, &victim, false).await, &victim.user.id);
    // (Without an object store each node keeps its own files: both exported through A.)
    let hostiles = comparable(&export(&a, &hostile, false).await, &hostile.user.id);
    // The second account's copies have ids of their own: rows and files are counted.
    let shape = |entries: &BTreeMap<String, Vec<u8>>| -> (BTreeMap<String, usize>, usize) {
        let tables = entries
            .iter()
            .filter(|(name, _)| name.ends_with(".ndjson"))
            .map(|(name, lines)| (name.clone(), lines.split(|byte| *byte == b'\n').filter(|l| !l.is_empty()).count()))
            .collect();
        (tables, entries.keys().filter(|name| name.starts_with("files/")).count())
    };
    assert_eq!(shape(&victims), shape(&hostiles));
    assert!(shape(&victims).0["database/messages.ndjson"] >= 3000);
}
