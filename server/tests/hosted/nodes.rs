//! Two `lvbak serve` processes over one PostgreSQL database, one killed with SIGKILL in the
//! middle of a raw upload's import: the other node, which forwarded the job's status while
//! the first ran it, finds the job's node gone (its lock free) and fails the job as
//! `interrupted` — on its own sweep, with no request asking — and the archive imports
//! whole through it. A second account asks for the job through either node and gets 404.

use std::time::Instant;

use crate::faults::{assert_all_accounted, fault_archive, HOLD_AFTER_MESSAGES, MESSAGES};
use crate::support::Instance;

#[test]
fn n01_a_raw_upload_on_a_killed_node_fails_as_interrupted_seen_from_the_other() {
    let mut a = Instance::start_on_postgres("node-raw-a", &[HOLD_AFTER_MESSAGES]);
    let b = a.another_node("node-raw-b", &[]);
    let token = a.account("crash");
    let hostile = a.account("snoop");
    let user = a.user_id(&token);
    let reply = a.call("POST", "/api/v1/user-data/import", &token, &fault_archive().bytes);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let job = reply.json()["jobId"].as_str().unwrap().to_string();
    let messages = || {
        a.count_rows(&format!(
            "SELECT count(*) FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.user_id = '{user}'"
        ))
    };
    assert!(a.eventually(60, || (1..MESSAGES as i64).contains(&messages())), "never caught the import midway");
    let status = format!("/api/v1/user-data/import/{job}/status");
    // B answers for A's job by asking A.
    let seen = b.call("GET", &status, &token, b"").json();
    assert_eq!(seen["status"], "running", "{seen}");
    for node in [&a, &b] {
        assert_eq!(node.call("GET", &status, &hostile, b"").status, 404);
    }

    a.server.kill();
    let killed = Instant::now();
    // Nobody asks: B's sweep finds the job's node gone.
    let recorded = || a.text(&format!("SELECT status FROM lvbak_import_jobs WHERE id = '{job}'"));
    assert!(a.eventually(60, || recorded() == "failed"), "still {} after 60 s", recorded());
    let seconds = killed.elapsed().as_secs_f64();
    let failed = b.call("GET", &status, &token, b"").json();
    assert_eq!(failed["error"]["code"], "interrupted", "{failed}");
    assert_eq!(b.call("GET", &status, &hostile, b"").status, 404);
    eprintln!("the job read as interrupted {seconds:.1} s after its node was killed");
    assert_eq!(a.count_rows(&format!("SELECT count(*) FROM lvbak_open_jobs WHERE job_id = '{job}'")), 0);

    // The account is free to import again, through the surviving node.
    let again = b.import_raw(&token, &fault_archive().bytes);
    assert_all_accounted(&again);
}
