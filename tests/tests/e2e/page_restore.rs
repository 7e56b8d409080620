//! The page's restore flows share this: an account (the demo seed) whose backup was taken
//! and what changed since — a character with chats deleted, a message of another
//! character's chat edited ([`backup_then_changes`]) — with readings of its rows, and the
//! page's sign-in and preview steps (`browser_preview`, `browser_selective`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use lvbak_core::registry::{table_spec, TABLES};
use lvbak_server::seed::SeedOptions;
use serde_json::Value;

use crate::browser::write;
use crate::export::owned_rows;
use crate::support::{ok_bytes, Account, Backend, ScratchDir, TestServer};
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

/// Deletes the `table` rows whose `column` is `value` as Lumiverse's SQLite would, by its
/// schema's foreign keys (`tests/data/lumiverse-schema.json`, which the live SQLite schema
/// equals: `schema.rs`): rows naming them ON DELETE CASCADE go too, SET NULL references
/// are cleared. Done by hand, the same on both backends (PostgreSQL's row tables have no
/// foreign keys, and only the registry's tables: the others travel in no backup).
fn delete_as_lumiverse(server: &TestServer, table: &str, column: &str, value: &str) {
    let schema: Value = serde_json::from_str(include_str!("../../data/lumiverse-schema.json")).unwrap();
    for (child, facts) in schema["tables"].as_object().unwrap() {
        for key in facts["foreign_keys"].as_array().into_iter().flatten() {
            if key["references"] != table || table_spec(child).is_none() {
                continue;
            }
            let (from, to) = (key["column"].as_str().unwrap(), key["to"].as_str().unwrap());
            let targets = format!("SELECT \"{to}\" FROM \"{table}\" WHERE \"{column}\" = ?1");
            for target in server.texts(&targets, &[value]) {
                match key["on_delete"].as_str() {
                    Some("CASCADE") => delete_as_lumiverse(server, child, from, &target),
                    Some("SET NULL") => {
                        let clear = format!("UPDATE \"{child}\" SET \"{from}\" = NULL WHERE \"{from}\" = ?1");
                        server.execute(&clear, &[&target]);
                    }
                    _ => {}
                }
            }
        }
    }
    server.execute(&format!("DELETE FROM \"{table}\" WHERE \"{column}\" = ?1"), &[value]);
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

pub(crate) async fn backup_then_changes(backend: Backend, label: &str) -> Since {
    assert!(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/lvbak-wasm_bg.wasm").exists(),
        "build the page first: trunk build --release"
    );
    let server = TestServer::start_on(backend, label).await;
    let ada = server.account("ada", Some(SeedOptions::default())).await;
    let files = ScratchDir::new(&format!("{label}-files"));
    let backup = ok_bytes(server.get(&ada, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    let archive = write(&files.path, "ada.lvbak", &backup);
    let at_backup = snapshot(&server, &ada);

    // Picked by name (the seed's names are fixed, its ids are not), so every run changes
    // the same.
    let with_chats = "SELECT id FROM characters WHERE user_id = ?1 AND id IN (SELECT character_id FROM chats) \
        ORDER BY name";
    let character = server.texts(with_chats, &[&ada.user.id]).remove(0);
    let other_chats = "SELECT id FROM chats WHERE user_id = ?1 AND character_id != ?2 \
        AND id IN (SELECT chat_id FROM messages) ORDER BY name";
    let chat = server.texts(other_chats, &[&ada.user.id, &character]).remove(0);
    let in_chat = "SELECT id FROM messages WHERE chat_id = ?1 ORDER BY index_in_chat";
    let message = server.texts(in_chat, &[&chat]).remove(0);
    let original = server.texts("SELECT content FROM messages WHERE id = ?1", &[&message]).remove(0);
    let deleted_chats: BTreeSet<String> =
        server.texts("SELECT id FROM chats WHERE character_id = ?1", &[&character]).into_iter().collect();
    assert!(!deleted_chats.is_empty(), "the deleted character has chats");
    // Message breakdowns name their chat without a foreign key, so they go by hand (left
    // behind, one keyed by a message id would still be ada's, and match another account's
    // copy of it).
    for chat in &deleted_chats {
        server.execute("DELETE FROM message_breakdowns WHERE chat_id = ?1", &[chat]);
    }
    delete_as_lumiverse(&server, "characters", "id", &character);
    assert_eq!(server.execute("UPDATE messages SET content = 'edited since' WHERE id = ?1", &[&message]), 1);
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
