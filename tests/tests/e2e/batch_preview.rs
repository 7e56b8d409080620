//! The restore preview over HTTP (a batch job opened with `preview`), driven natively with
//! the same lvbak-core upload code the Worker runs: it answers exactly what `lvbak import
//! --dry-run` answers for the same archive and account, writes nothing (no row, file,
//! quota use or job), and a second, hostile account can neither reach another's preview
//! nor use one to write, nor ask for previews without end.

use std::io::Cursor;

use lvbak_core::batch::{deflate_ndjson, Batch};
use lvbak_core::upload::{file_claims, UploadPlan};
use lvbak_core::{Archive, FileBucket, Limits};
use serde_json::{json, Value};

use crate::batches::{held_of, held_rows_of, put_batch, send_and_commit};
use crate::export::export;
use crate::support::{on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    a_preview_over_http_answers_as_the_command_line_and_writes_nothing,
    a_hostile_account_cannot_reach_or_abuse_a_preview,
    previews_are_bounded_per_preview_and_in_the_instance,
);

/// Opens a preview job for `archive` as the page does: its open request plus `preview`.
async fn open_preview(server: &TestServer, account: &Account, archive: &[u8]) -> (u16, Value) {
    let opened = Archive::open(Cursor::new(archive), Limits::STANDARD).unwrap();
    let body = json!({"manifest": opened.manifest(), "files": file_claims(&opened), "preview": true});
    status_json(server.post(account, "/api/v1/user-data/import/batches").json(&body).send().await.unwrap()).await
}

/// Previews `archive` the page's way: the rows go up in batches, the commit answers.
async fn batch_preview(server: &TestServer, account: &Account, archive: &[u8]) -> Value {
    let (code, opened) = open_preview(server, account, archive).await;
    assert_eq!(code, 201, "{opened}");
    assert_eq!(opened["acceptVectors"], false, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    let held_rows = held_rows_of(server, account, &job).await;
    assert!(held_rows.tables.is_empty(), "a preview holds back no rows");
    let plan = UploadPlan {
        start_batch: 0,
        secrets: None,
        held_files: held_of(&opened),
        held_rows: held_rows.tables,
        fresh_tables: held_rows.fresh,
        only: None,
        copy: None,
    };
    let reader = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let (report, (code, preview)) = send_and_commit(server, account, &job, reader, plan).await;
    assert_eq!(report.files, 0, "a preview sends no file");
    assert_eq!(code, 200, "{preview}");
    let commit = format!("/api/v1/user-data/import/{job}/commit");
    let body = json!({"batches": report.batches});
    // The job is gone: nothing of it is kept or answered again.
    let (again, _) = status_json(server.post(account, &commit).json(&body).send().await.unwrap()).await;
    assert_eq!(again, 404);
    let status = server.get(account, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap();
    assert_eq!(status.status(), 404);
    preview
}

/// The preview `lvbak import --dry-run` computes for the same archive and account (on a
/// thread that may block: the store waits for PostgreSQL's answers there).
pub(crate) fn command_line_preview(server: &TestServer, account: &Account, archive: &[u8]) -> Value {
    let mut reader = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let preview = tokio::task::block_in_place(|| {
        lvbak_server::preview_archive(&server.store, &account.user.id, &mut reader, None).unwrap()
    });
    serde_json::to_value(preview).unwrap()
}

/// What the instance holds, as counts a preview must leave alone: every account's rows of
/// the main tables, their disk use, the job log (in the backend's database), and the files
/// on disk.
fn footprint(server: &TestServer) -> Vec<i64> {
    let mut counts: Vec<i64> = [
        "SELECT count(*) FROM characters",
        "SELECT count(*) FROM chats",
        "SELECT count(*) FROM messages",
        "SELECT coalesce(sum(length(content)), 0) FROM messages",
        "SELECT CAST(coalesce(sum(bytes), 0) AS BIGINT) FROM lvbak_usage",
        "SELECT count(*) FROM lvbak_import_jobs",
        "SELECT count(*) FROM lvbak_id_map",
    ]
    .iter()
    .map(|sql| server.integer(sql, &[]))
    .collect();
    let files = walk_count(&server.data.path.join("data"));
    counts.push(files as i64);
    counts
}

/// The files under `dir` but LanceDB's and the SQLite database's (their files change with
/// no row written: [`footprint`] counts rows instead).
fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    entry.file_name() != "lancedb" && !entry.file_name().to_string_lossy().starts_with("lvbak.sqlite")
                })
                .map(|entry| if entry.path().is_dir() { walk_count(&entry.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

fn items_in(preview: &Value, state: &str) -> Vec<(String, String)> {
    preview["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["state"] == state)
        .map(|item| (item["kind"].as_str().unwrap().to_string(), item["id"].as_str().unwrap().to_string()))
        .collect()
}

async fn a_preview_over_http_answers_as_the_command_line_and_writes_nothing(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-preview").await;
    let ada = server.account("preview-ada", Some(small_seed())).await;
    let mal = server.account("preview-mal", None).await;
    let backup = export(&server, &ada, true).await;

    // Since the backup: a character with its chats deleted, a message of another chat edited.
    let gone_and_kept = server.text_rows(
        "SELECT c.id, (SELECT id FROM chats WHERE character_id != c.id AND user_id = ?1 ORDER BY id LIMIT 1)
         FROM characters c WHERE c.user_id = ?1 AND EXISTS (SELECT 1 FROM chats WHERE character_id = c.id)
         ORDER BY c.id LIMIT 1",
        &[&ada.user.id],
    );
    let [gone, kept_chat] = <[String; 2]>::try_from(gone_and_kept.into_iter().next().unwrap()).unwrap();
    let gone_chats = server.texts("SELECT id FROM chats WHERE character_id = ?1", &[&gone]);
    assert!(!gone_chats.is_empty());
    for chat in &gone_chats {
        server.execute("DELETE FROM messages WHERE chat_id = ?1", &[chat]);
        assert_eq!(server.execute("DELETE FROM chats WHERE id = ?1", &[chat]), 1);
    }
    assert_eq!(server.execute("DELETE FROM characters WHERE id = ?1", &[&gone]), 1);
    let edited = server.execute(
        "UPDATE messages SET content = 'edited since the backup'
         WHERE id = (SELECT id FROM messages WHERE chat_id = ?1 ORDER BY id LIMIT 1)",
        &[&kept_chat],
    );
    assert_eq!(edited, 1);

    for account in [&ada, &mal] {
        let before = footprint(&server);
        let over_http = batch_preview(&server, account, &backup).await;
        assert_eq!(footprint(&server), before, "{}: a preview wrote something", account.user.username);
        let expected = command_line_preview(&server, account, &backup);
        assert_eq!(over_http, expected, "{}", account.user.username);
    }

    // Ada's own backup: what she deleted comes back new, the edited chat differs, the rest
    // is unchanged; her files are all there.
    let own = batch_preview(&server, &ada, &backup).await;
    let new: Vec<String> = items_in(&own, "new").into_iter().map(|(_, id)| id).collect();
    let mut expected_new = gone_chats.clone();
    expected_new.push(gone.clone());
    expected_new.sort();
    let mut new_sorted = new.clone();
    new_sorted.sort();
    assert_eq!(new_sorted, expected_new, "{own}");
    assert_eq!(items_in(&own, "differs"), vec![("chat".to_string(), kept_chat.clone())], "{own}");
    let chat = own["items"].as_array().unwrap().iter().find(|item| item["id"] == kept_chat.as_str()).unwrap();
    assert_eq!(chat["differs"]["messages"]["edited"], 1, "{chat}");
    assert!(own["files"]["unchanged"].as_u64().unwrap() > 0, "{}", own["files"]);
    assert_eq!(
        own["files"]["new"].as_u64().unwrap() + own["files"]["differs"].as_u64().unwrap(),
        0,
        "{}",
        own["files"]
    );

    // Mallory's: every item ada still has would come as a copy, what she deleted is free
    // (so new); nothing else is told.
    let theirs = batch_preview(&server, &mal, &backup).await;
    let mut free: Vec<String> = items_in(&theirs, "new").into_iter().map(|(_, id)| id).collect();
    free.sort();
    assert_eq!(free, expected_new, "{theirs}");
    let items = theirs["items"].as_array().unwrap();
    assert_eq!(items_in(&theirs, "remapped").len() + free.len(), items.len(), "{theirs}");
}

async fn a_hostile_account_cannot_reach_or_abuse_a_preview(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-preview-abuse").await;
    let ada = server.account("victim-ada", Some(small_seed())).await;
    let mal = server.account("hostile-mal", None).await;
    let backup = export(&server, &ada, true).await;

    // Ada's preview, open: Mallory cannot see or feed it, and Ada cannot import meanwhile.
    let (code, opened) = open_preview(&server, &ada, &backup).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    for path in ["status", "held-rows", "held-files"] {
        let answer = server.get(&mal, &format!("/api/v1/user-data/import/{job}/{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
    let rows = Batch::Rows {
        table: "characters".into(),
        first_line: 1,
        lines: 1,
        held: 0,
        deflated: deflate_ndjson(b"{\"id\":\"planted\",\"name\":\"x\"}\n").unwrap(),
    };
    let answer = put_batch(&server, &mal, &job, 0, rows.encode().unwrap()).await.unwrap();
    assert_eq!(answer.status(), 404);
    let commit = format!("/api/v1/user-data/import/{job}/commit");
    let (code, _) = status_json(server.post(&mal, &commit).json(&json!({"batches": 0})).send().await.unwrap()).await;
    assert_eq!(code, 404);
    let (code, refused) = crate::import::upload(&server, &ada, &backup).await;
    assert_eq!((code, refused["code"].as_str()), (409, Some("import_running")), "{refused}");
    // On a connection of its own: the refused upload's may have been closed mid-body.
    let cancel = server.url(&format!("/api/v1/user-data/import/{job}/cancel"));
    let cancelled = reqwest::Client::new().post(cancel).bearer_auth(&ada.token).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);

    // Mallory's own preview takes rows only: a file sent anyway ends it with `bad_batch`,
    // vectors are refused as they come; nothing is written.
    let before = footprint(&server);
    let file = Batch::FileChunk {
        bucket: FileBucket::Avatars,
        name: "planted.png".into(),
        offset: 0,
        size: 4,
        bytes: b"\x89PNG".to_vec(),
    };
    let (code, opened) = open_preview(&server, &mal, &backup).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    assert_eq!(put_batch(&server, &mal, &job, 0, file.encode().unwrap()).await.unwrap().status(), 200);
    let commit = format!("/api/v1/user-data/import/{job}/commit");
    let (code, failed) =
        status_json(server.post(&mal, &commit).json(&json!({"batches": 1})).send().await.unwrap()).await;
    assert_eq!((code, failed["code"].as_str()), (409, Some("bad_batch")), "{failed}");
    let status = server.get(&mal, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap();
    let (code, status) = status_json(status).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("failed")), "{status}");
    // Ada cannot read Mallory's failed preview either.
    let theirs = server.get(&ada, &format!("/api/v1/user-data/import/{job}/status")).send().await.unwrap();
    assert_eq!(theirs.status(), 404);

    let vectors = Batch::Vectors {
        table: "chat_chunks".into(),
        first_line: 1,
        lines: 1,
        deflated: deflate_ndjson(b"{\"id\":\"v\"}\n").unwrap(),
    };
    let (code, opened) = open_preview(&server, &mal, &backup).await;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    let (code, refused) =
        status_json(put_batch(&server, &mal, &job, 0, vectors.encode().unwrap()).await.unwrap()).await;
    assert_eq!((code, refused["code"].as_str()), (409, Some("vectors_not_accepted")), "{refused}");
    let check = server.post(&mal, &format!("/api/v1/user-data/import/{job}/vectors-check")).send().await.unwrap();
    let (code, check) = status_json(check).await;
    assert_eq!((code, check["acceptVectors"].as_bool()), (200, Some(false)), "{check}");
    let cancel = format!("/api/v1/user-data/import/{job}/cancel");
    assert_eq!(server.post(&mal, &cancel).send().await.unwrap().status(), 200);
    assert_eq!(footprint(&server), before);

    // Previews are rate-limited per account: Mallory's burst runs out (2 taken above), Ada's
    // does not.
    let mut refused = None;
    for attempt in 0..20 {
        let (code, answer) = open_preview(&server, &mal, &backup).await;
        if code == 429 {
            refused = Some((attempt, answer));
            break;
        }
        assert_eq!(code, 201, "{answer}");
        let commit = format!("/api/v1/user-data/import/{}/commit", answer["jobId"].as_str().unwrap());
        let (code, preview) =
            status_json(server.post(&mal, &commit).json(&json!({"batches": 0})).send().await.unwrap()).await;
        assert_eq!(code, 200, "{preview}");
    }
    let (attempt, answer) = refused.expect("previews without end");
    assert_eq!(attempt, 8, "the burst is 10 previews");
    assert_eq!(answer["code"], "rate_limited", "{answer}");
    assert!(batch_preview(&server, &ada, &backup).await["items"].as_array().is_some_and(|items| !items.is_empty()));
}

async fn previews_are_bounded_per_preview_and_in_the_instance(backend: Backend) {
    let hosting = lvbak_server::config::HostingLimits {
        login_burst: 10_000,
        open_previews: 1,
        preview_rows: 50,
        ..Default::default()
    };
    let server = TestServer::start_on_with(backend, "batch-preview-bounds", Limits::STANDARD, hosting).await;
    let ada = server.account("bound-ada", Some(small_seed())).await;
    let mal = server.account("bound-mal", None).await;
    let backup = export(&server, &ada, true).await;

    // One preview open in the instance: Mallory waits while Ada's is open.
    let (code, opened) = open_preview(&server, &ada, &backup).await;
    assert_eq!(code, 201, "{opened}");
    let (code, busy) = open_preview(&server, &mal, &backup).await;
    assert_eq!((code, busy["code"].as_str()), (503, Some("busy")), "{busy}");
    let cancel = format!("/api/v1/user-data/import/{}/cancel", opened["jobId"].as_str().unwrap());
    assert_eq!(server.post(&ada, &cancel).send().await.unwrap().status(), 200);

    // Mallory's preview of Ada's backup would hold more than 50 rows: it ends, named.
    let mut answer = (0, Value::Null);
    for _ in 0..100 {
        answer = open_preview(&server, &mal, &backup).await;
        if answer.0 != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, opened) = answer;
    assert_eq!(code, 201, "{opened}");
    let job = opened["jobId"].as_str().unwrap().to_string();
    let held_rows = held_rows_of(&server, &mal, &job).await;
    let plan = UploadPlan {
        held_files: held_of(&opened),
        held_rows: held_rows.tables,
        fresh_tables: held_rows.fresh,
        ..UploadPlan::default()
    };
    let reader = Archive::open(Cursor::new(backup.clone()), Limits::STANDARD).unwrap();
    let (_, (code, failed)) = send_and_commit(&server, &mal, &job, reader, plan).await;
    assert_eq!((code, failed["code"].as_str()), (409, Some("preview_too_large")), "{failed}");
}
