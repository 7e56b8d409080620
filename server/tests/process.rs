//! The real `lvbak serve` process: killed with SIGKILL in the middle of an import, its
//! database still opens cleanly, the interrupted job reads `failed` after a restart, no
//! staging file is left, and importing the archive again completes the work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{http, login, run_lvbak, scratch, Server};
use serde_json::Value;

fn json_call(server: &Server, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let mut answer = Vec::new();
    let (status, _) = http(&server.address, method, path, &[("Authorization", &bearer)], body, &mut answer);
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

#[test]
fn a_killed_server_leaves_a_sound_database_and_a_resumable_import() {
    let dir = scratch("kill");
    let (source, target) = (dir.join("source"), dir.join("target"));
    let (source_arg, target_arg) = (source.to_str().unwrap(), target.to_str().unwrap());
    run_lvbak(&["user", "add", "src", "--password", "pw-src", "--data-dir", source_arg]);
    run_lvbak(&[
        "seed",
        "--user",
        "src",
        "--chats",
        "2",
        "--messages-per-chat",
        "40000",
        "--vectors",
        "0",
        "--data-dir",
        source_arg,
    ]);
    let archive = dir.join("src.lvbak");
    run_lvbak(&["export", "--user", "src", "-o", archive.to_str().unwrap(), "--data-dir", source_arg]);
    let bytes = std::fs::read(&archive).unwrap();
    run_lvbak(&["user", "add", "dst", "--password", "pw-dst", "--data-dir", target_arg]);

    let mut server = Server::start(&target);
    let token = login(&server.address, "dst", "pw-dst");
    let (status, accepted) = json_call(&server, "POST", "/api/v1/user-data/import", &token, &bytes);
    assert_eq!(status, 202, "{accepted}");
    let job = accepted["jobId"].as_str().unwrap().to_string();
    let status_path = format!("/api/v1/user-data/import/{job}/status");
    let mut running = false;
    for _ in 0..400 {
        let (_, status) = json_call(&server, "GET", &status_path, &token, b"");
        if status["status"] == "running" {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(running, "the import never started");
    // Kill only once some messages are committed, so the second run has real work to skip.
    let database = target.join("lvbak.sqlite");
    let reader = rusqlite::Connection::open_with_flags(&database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut committed = 0_u64;
    for _ in 0..2000 {
        committed = reader.query_row("SELECT count(*) FROM messages", [], |row| row.get(0)).unwrap_or(0);
        if committed > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(committed > 0, "no message was committed while the import ran");
    server.child.kill().unwrap();
    drop(reader);
    server.child.wait().unwrap();

    let check = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('pragma integrity_check').fetchone()[0])"])
        .arg(&database)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&check.stderr));

    let server = Server::start(&target);
    let token = login(&server.address, "dst", "pw-dst");
    let (status, after) = json_call(&server, "GET", &status_path, &token, b"");
    assert_eq!(status, 200);
    assert_eq!(after["status"], "failed", "{after}");
    assert_eq!(after["error"]["code"], "interrupted");
    let staging: Vec<_> = std::fs::read_dir(target.join("staging")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(staging.is_empty(), "staging files left: {staging:?}");

    let (status, again) = json_call(&server, "POST", "/api/v1/user-data/import", &token, &bytes);
    assert_eq!(status, 202, "{again}");
    let job = again["jobId"].as_str().unwrap().to_string();
    let mut finished = Value::Null;
    for _ in 0..600 {
        let (_, status) = json_call(&server, "GET", &format!("/api/v1/user-data/import/{job}/status"), &token, b"");
        if status["status"] == "complete" || status["status"] == "failed" {
            finished = status;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(finished["status"], "complete", "{finished}");
    let messages = &finished["summary"]["messages"];
    let total = messages["imported"].as_u64().unwrap() + messages["skipped"].as_u64().unwrap();
    assert_eq!(total, 80_002, "{messages}");
    assert!(
        messages["skipped"].as_u64().unwrap() >= committed,
        "rows committed before the kill were not merged: {messages}"
    );
    assert_eq!(messages["rejected"], 0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
