//! The page's restore flows share this: an account (the demo seed) whose backup was taken
//! and what changed since — a character with chats deleted, a message of another
//! character's chat edited ([`backup_then_changes`]) — with readings of its rows, and the
//! page's sign-in and preview steps (`browser_preview`, `browser_selective`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use lvbak_core::registry::TABLES;
use lvbak_server::seed::SeedOptions;
use rusqlite::Connection;
use serde_json::Value;

use crate::browser::write;
use crate::export::owned_rows;
use crate::support::{ok_bytes, Account, ScratchDir, TestServer};
use crate::webdriver::Browser;

/// Item kinds (lvbak-core's words) and the tables their rows are in.
pub(crate) const ITEM_TABLES: [(&str, &str); 5] = [
    ("character", "characters"),
    ("chat", "chats"),
    ("persona", "personas"),
    ("world_book", "world_books"),
    ("preset", "presets"),
];

/// Every row an account owns, per registry table, each as its JSON text, sorted.
pub(crate) type Snapshot = BTreeMap<&'static str, Vec<String>>;

pub(crate) fn snapshot(server: &TestServer, account: &Account) -> Snapshot {
    TABLES
        .iter()
        .map(|spec| {
            let rows = owned_rows(server, spec.name, &account.user.id);
            let mut texts: Vec<String> = rows.into_iter().map(|row| Value::Object(row).to_string()).collect();
            texts.sort();
            (spec.name, texts)
        })
        .collect()
}

/// The server's SQLite database.
pub(crate) fn database(server: &TestServer) -> Connection {
    let db = Connection::open(server.data.path.join("data").join("lvbak.sqlite")).unwrap();
    db.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    db
}

/// The first column of every row a query answers.
pub(crate) fn texts(db: &Connection, sql: &str, params: &[&str]) -> Vec<String> {
    let mut statement = db.prepare(sql).unwrap();
    let rows = statement.query_map(rusqlite::params_from_iter(params), |row| row.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// An account whose backup was taken, and what changed since: a character with chats
/// deleted (its chats and their messages with it) and one message of another character's
/// chat edited.
pub(crate) struct Since {
    pub(crate) server: TestServer,
    pub(crate) ada: Account,
    /// Holds the archive's file (removed when dropped).
    _files: ScratchDir,
    pub(crate) backup: Vec<u8>,
    pub(crate) archive: PathBuf,
    /// Ada's rows when the backup was taken.
    pub(crate) at_backup: Snapshot,
    pub(crate) character: String,
    pub(crate) deleted_chats: BTreeSet<String>,
    /// The chat whose message was edited, the message, and its text in the backup.
    pub(crate) chat: String,
    pub(crate) message: String,
    pub(crate) original: String,
}

pub(crate) async fn backup_then_changes(label: &str) -> Since {
    assert!(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/lvbak-wasm_bg.wasm").exists(),
        "build the page first: trunk build --release"
    );
    let server = TestServer::start(label).await;
    let ada = server.account("ada", Some(SeedOptions::default())).await;
    let files = ScratchDir::new(&format!("{label}-files"));
    let backup = ok_bytes(server.get(&ada, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    let archive = write(&files.path, "ada.lvbak", &backup);
    let at_backup = snapshot(&server, &ada);

    // Picked by name (the seed's names are fixed, its ids are not), so every run changes
    // the same.
    let db = database(&server);
    let with_chats = "SELECT id FROM characters WHERE user_id = ?1 AND id IN (SELECT character_id FROM chats) \
        ORDER BY name";
    let character = texts(&db, with_chats, &[&ada.user.id]).remove(0);
    let other_chats = "SELECT id FROM chats WHERE user_id = ?1 AND character_id != ?2 \
        AND id IN (SELECT chat_id FROM messages) ORDER BY name";
    let chat = texts(&db, other_chats, &[&ada.user.id, &character]).remove(0);
    let message = texts(&db, "SELECT id FROM messages WHERE chat_id = ?1 ORDER BY index_in_chat", &[&chat]).remove(0);
    let original = texts(&db, "SELECT content FROM messages WHERE id = ?1", &[&message]).remove(0);
    let deleted_chats: BTreeSet<String> =
        texts(&db, "SELECT id FROM chats WHERE character_id = ?1", &[&character]).into_iter().collect();
    assert!(!deleted_chats.is_empty(), "the deleted character has chats");
    // Message breakdowns name their chat without a foreign key, so they go by hand (left
    // behind, one keyed by a message id would still be ada's, and match another account's
    // copy of it).
    for chat in &deleted_chats {
        db.execute("DELETE FROM message_breakdowns WHERE chat_id = ?1", [chat]).unwrap();
    }
    db.execute("DELETE FROM characters WHERE id = ?1", [&character]).unwrap();
    db.execute("UPDATE messages SET content = 'edited since' WHERE id = ?1", [&message]).unwrap();
    assert_ne!(original, "edited since");
    Since { server, ada, _files: files, backup, archive, at_backup, character, deleted_chats, chat, message, original }
}

/// Clicks "Preview restore" and waits for the preview the page shows.
pub(crate) async fn preview_in_page(browser: &Browser) -> Value {
    browser.wait_script("return !document.querySelector('[data-testid=\"import-preview\"]').disabled || null").await;
    browser.click("import-preview").await;
    let answer = browser
        .wait_script(
            "const shown = document.querySelector('[data-testid=\"restore-preview\"]'); \
             if (shown.dataset.preview && !shown.hidden) return {preview: shown.dataset.preview}; \
             const said = document.getElementById('import-progress').textContent; \
             return said.startsWith('Preview refused') ? {refused: said} : null",
        )
        .await;
    assert!(answer["refused"].is_null(), "{}", answer["refused"]);
    serde_json::from_str(answer["preview"].as_str().unwrap()).unwrap()
}

/// Signs the page out (the session cookie) and `account` in.
pub(crate) async fn sign_in_as(browser: &Browser, server: &TestServer, account: &Account) {
    let logout = "return fetch('/api/v1/auth/logout', {method: 'POST', headers: {'X-Requested-With': 'lvbak'}}).then(r => r.status)";
    browser.script(logout).await;
    browser.sign_in(&server.url("/"), &account.user.username, &account.password).await;
}
