//! Selective export over HTTP: the account's own items listed a page at a time, and
//! `export/prepare` with `only` writes just the picked items' closure (never API keys),
//! which imports into another account with exactly those rows. A second, hostile account
//! sees none of the first's items and cannot export them by naming their ids.

use std::collections::BTreeSet;
use std::io::Cursor;

use lvbak_core::{Archive, Limits};
use serde_json::{json, Value};

use crate::export::{entries, ndjson};
use crate::import::import;
use crate::support::{ok_bytes, on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(the_page_lists_an_accounts_items_and_exports_just_the_picked_ones);

async fn items(server: &TestServer, account: &Account, kind: &str, start: u64, count: u64) -> Value {
    let path = format!("/api/v1/user-data/items?kind={kind}&start={start}&count={count}");
    let (code, answer) = status_json(server.get(account, &path).send().await.unwrap()).await;
    assert_eq!(code, 200, "{answer}");
    answer
}

async fn prepare(server: &TestServer, account: &Account, body: Value) -> (u16, Value) {
    status_json(server.post(account, "/api/v1/user-data/export/prepare").json(&body).send().await.unwrap()).await
}

fn ids_of(bytes: &[u8], table: &str) -> BTreeSet<String> {
    let entries = entries(bytes);
    entries
        .get(&format!("database/{table}.ndjson"))
        .map(|lines| ndjson(lines).iter().map(|row| row["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

async fn the_page_lists_an_accounts_items_and_exports_just_the_picked_ones(backend: Backend) {
    let server = TestServer::start_on(backend, "selective-export-http").await;
    let ada = server.account("pick-ada", Some(small_seed())).await;
    let mal = server.account("pick-mal", None).await;
    let owned = |sql: &str| server.texts(sql, &[&ada.user.id]);
    // In stored order: the order a plain scan of the account's rows gives (SQLite's rowid,
    // PostgreSQL's heap), as the listing reads them.
    let characters = owned("SELECT id FROM characters WHERE user_id = ?1");
    // Listed a page at a time, in stored order, with names; the total is the account's.
    let first = items(&server, &ada, "character", 0, 2).await;
    assert_eq!(first["total"], characters.len(), "{first}");
    let rest = items(&server, &ada, "character", 2, 200).await;
    let listed: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, characters);
    assert!(first["items"].as_array().unwrap().iter().all(|item| item["name"] != ""), "{first}");
    let chats = items(&server, &ada, "chat", 0, 200).await;
    assert_eq!(chats["total"], owned("SELECT id FROM chats WHERE user_id = ?1").len());

    // One character with its chats: its closure, no API keys even when asked for.
    let picked = owned("SELECT character_id FROM chats WHERE user_id = ?1 ORDER BY id LIMIT 1").remove(0);
    let its_chats: BTreeSet<String> =
        server.texts("SELECT id FROM chats WHERE character_id = ?1", &[&picked]).into_iter().collect();
    let body = json!({"includeVectors": true, "includeSecrets": true, "only": [format!("character:{picked}")]});
    let (code, prepared) = prepare(&server, &ada, body).await;
    assert_eq!(code, 200, "{prepared}");
    assert!(prepared["ticket"].is_null() && prepared["secretsCount"] == 0, "{prepared}");
    let url = prepared["archiveUrl"].as_str().unwrap().to_string();
    // Mallory cannot fetch it.
    assert_eq!(server.get(&mal, &url).send().await.unwrap().status(), 404);
    let bytes = ok_bytes(server.get(&ada, &url).send().await.unwrap()).await;
    let archive = Archive::open(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap();
    assert!(!archive.manifest().has_encrypted_secrets);
    assert_eq!(ids_of(&bytes, "characters"), BTreeSet::from([picked.clone()]));
    assert_eq!(ids_of(&bytes, "chats"), its_chats);
    let messages = ids_of(&bytes, "messages");
    let expected: BTreeSet<String> =
        its_chats.iter().flat_map(|chat| server.texts("SELECT id FROM messages WHERE chat_id = ?1", &[chat])).collect();
    assert_eq!(messages, expected);

    // Without chats: the character alone.
    let body = json!({"only": [format!("character:{picked}")], "withoutChats": true});
    let (code, prepared) = prepare(&server, &ada, body).await;
    assert_eq!(code, 200, "{prepared}");
    let alone = ok_bytes(server.get(&ada, prepared["archiveUrl"].as_str().unwrap()).send().await.unwrap()).await;
    assert_eq!(ids_of(&alone, "characters"), BTreeSet::from([picked.clone()]));
    assert!(ids_of(&alone, "chats").is_empty());

    // The subset imports into another server's account with exactly those rows.
    let other = TestServer::start_on(backend, "selective-export-http-target").await;
    let eve = other.account("pick-eve", None).await;
    let status = import(&other, &eve, &bytes, None).await;
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["summary"]["characters"]["imported"], 1, "{status}");
    assert_eq!(status["summary"]["chats"]["imported"], its_chats.len(), "{status}");
    assert_eq!(status["summary"]["messages"]["imported"], expected.len(), "{status}");

    // Mallory: none of Ada's items are listed; naming their ids exports nothing.
    let theirs = items(&server, &mal, "character", 0, 200).await;
    assert_eq!((theirs["total"].as_u64(), theirs["items"].as_array().map(Vec::len)), (Some(0), Some(0)), "{theirs}");
    let (code, refused) = prepare(&server, &mal, json!({"only": [format!("character:{picked}")]})).await;
    assert_eq!((code, refused["code"].as_str()), (404, Some("not_in_account")), "{refused}");
    assert!(refused["error"].as_str().unwrap().contains(&picked), "{refused}");
    let (code, refused) = prepare(&server, &mal, json!({"only": ["planet:x"]})).await;
    assert_eq!((code, refused["code"].as_str()), (400, Some("bad_pick")), "{refused}");
    let many: Vec<String> = (0..1001).map(|n| format!("chat:{n}")).collect();
    let (code, refused) = prepare(&server, &mal, json!({"only": many})).await;
    assert_eq!((code, refused["code"].as_str()), (400, Some("bad_pick")), "{refused}");
    let path = "/api/v1/user-data/items?kind=planet";
    assert_eq!(server.get(&mal, path).send().await.unwrap().status(), 400);
    assert_eq!(
        server.client.get(server.url("/api/v1/user-data/items?kind=character")).send().await.unwrap().status(),
        401
    );
}
