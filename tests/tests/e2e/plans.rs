//! Per-user cost flat in instance size: every statement an import (plain, into copies, and
//! again) or an export runs is answered by an index — none reads a whole registry table,
//! so nothing an import or export does grows with other users' data. Checked with SQLite's
//! own query plans of the statements the server really ran.

use std::collections::BTreeMap;

use lvbak_core::registry::table_spec;
use lvbak_server::storage::sqlite::plans::record_statements;

use crate::import::import;
use crate::support::{ok_bytes, small_seed, TestServer};

/// Table names by the name or alias a statement gives them (`FROM chats AS t` → t: chats).
fn aliases(sql: &str) -> BTreeMap<String, String> {
    const NOT_ALIASES: &[&str] = &[
        "WHERE",
        "SET",
        "ON",
        "JOIN",
        "LEFT",
        "INNER",
        "CROSS",
        "ORDER",
        "GROUP",
        "LIMIT",
        "USING",
        "VALUES",
        "SELECT",
        "UNION",
        "DEFAULT",
        "AND",
        "OR",
        "NOT",
        "INDEXED",
        "RETURNING",
        "(",
        ")",
        ",",
    ];
    let spaced = sql.replace('(', " ( ").replace(')', " ) ").replace(',', " , ");
    let tokens: Vec<String> = spaced.split_whitespace().map(|t| t.trim_matches('"').to_string()).collect();
    let mut names = BTreeMap::new();
    for (index, token) in tokens.iter().enumerate() {
        if !["FROM", "JOIN", "UPDATE", "INTO"].contains(&token.to_uppercase().as_str()) {
            continue;
        }
        let Some(table) = tokens.get(index + 1) else { continue };
        names.insert(table.clone(), table.clone());
        let alias = match tokens.get(index + 2).map(|t| t.to_uppercase()) {
            Some(word) if word == "AS" => tokens.get(index + 3),
            Some(word) if !NOT_ALIASES.contains(&word.as_str()) => tokens.get(index + 2),
            _ => None,
        };
        if let Some(alias) = alias {
            names.insert(alias.clone(), table.clone());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_and_exports_read_no_registry_table_whole() {
    let server = TestServer::start("plans").await;
    let alice = server.account("alice", Some(small_seed())).await;
    let archive = ok_bytes(server.get(&alice, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    let bob = server.account("bob", None).await;
    record_statements(true);
    // Alice's archive into bob: every row a copy under a new id; then again (all skipped);
    // bob's export; and a plain import on another instance.
    for _ in 0..2 {
        let status = import(&server, &bob, &archive, None).await;
        assert_eq!(status["status"], "complete", "{status}");
    }
    ok_bytes(server.get(&bob, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    // The rows a batch import would leave out: every table of bob's, and his copies.
    let manifest = lvbak_core::Archive::open(std::io::Cursor::new(archive.as_slice()), lvbak_core::Limits::STANDARD)
        .unwrap()
        .manifest()
        .clone();
    let opened = server.post(&bob, "/api/v1/user-data/import/batches").json(&serde_json::json!({"manifest": manifest}));
    let opened: serde_json::Value = opened.send().await.unwrap().json().await.unwrap();
    let job = opened["jobId"].as_str().unwrap();
    let held = server.get(&bob, &format!("/api/v1/user-data/import/{job}/held-rows")).send().await.unwrap();
    assert_eq!(held.status(), 200);
    server.post(&bob, &format!("/api/v1/user-data/import/{job}/cancel")).send().await.unwrap();
    let elsewhere = TestServer::start("plans-elsewhere").await;
    let carol = elsewhere.account("carol", None).await;
    let status = import(&elsewhere, &carol, &archive, None).await;
    assert_eq!(status["status"], "complete", "{status}");
    let statements = record_statements(false);
    assert!(statements.len() > 50, "{} statements recorded", statements.len());

    // The check can fail: a lookup by an unindexed column reads the table whole.
    assert_eq!(server.store.db.full_scans("SELECT id FROM characters WHERE name = ?1").unwrap(), ["characters"]);
    let mut offenders = Vec::new();
    for sql in &statements {
        let names = aliases(sql);
        for scanned in server.store.db.full_scans(sql).unwrap() {
            let table = names.get(&scanned).cloned().unwrap_or(scanned.clone());
            if table_spec(&table).is_some() {
                offenders.push(format!("SCAN {table}: {sql}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "{} statements read a registry table whole:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn aliases_are_read_from_statements() {
    let names =
        aliases("UPDATE \"chats\" AS t SET x = 1 WHERE t.id IN (SELECT id FROM \"characters\" c WHERE c.user_id = ?1)");
    assert_eq!(names["t"], "chats");
    assert_eq!(names["c"], "characters");
    assert_eq!(names["chats"], "chats");
}
