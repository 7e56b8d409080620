//! Rows on PostgreSQL give what rows on SQLite give, value for value: the same archives
//! imported through the import engine into a store of each backend (a fresh account, and a
//! second account whose every id is the first's, so that everything is copied under new
//! ids), then exported through the export engine, give the same archives — every table
//! entry line for line, every file byte for byte — the same import summaries, and the same
//! restore previews before and after each import.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lvbak_core::{Archive, Limits};

use crate::export::archive::write_archive;
use crate::export::plan::ExportPlan;
use crate::import::from_archive::import_archive;
use crate::import::session::ImportSession;
use crate::storage::{DatabaseUrl, Store, UserRecord};
use crate::test_support::postgres_cluster::test_database;

/// A scratch folder removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(label: &str) -> Scratch {
    let path =
        std::env::temp_dir().join(format!("lvbak-parity-{label}-{}-{}", std::process::id(), crate::util::new_id()));
    std::fs::create_dir_all(&path).unwrap();
    Scratch(path)
}

/// Imports `archive` into `user`'s account; the summary as JSON.
fn import(store: &Store, user: &str, archive: &[u8]) -> serde_json::Value {
    let handle = tokio::runtime::Handle::current();
    let mut archive = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let progress = |_: crate::progress::Event| {};
    let mut session =
        ImportSession::new(store, user, None, Arc::new(AtomicBool::new(false)), &progress, handle).unwrap();
    import_archive(&mut session, &mut archive, None, None).unwrap();
    let summary = session.finish().unwrap();
    serde_json::to_value(lvbak_core::protocol::SummaryReport::from(&summary)).unwrap()
}

/// What restoring `archive` into `user`'s account would do (`lvbak import --dry-run`), as
/// JSON.
fn preview(store: &Store, user: &str, archive: &[u8]) -> serde_json::Value {
    let mut archive = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let preview = crate::import::preview::preview_archive(store, user, &mut archive, None).unwrap();
    serde_json::to_value(preview).unwrap()
}

/// Every entry of `user`'s export (fixed archive id and time), by name.
fn export(store: &Store, user: &UserRecord) -> BTreeMap<String, Vec<u8>> {
    let handle = tokio::runtime::Handle::current();
    let mut plan = ExportPlan::new(user.clone(), 1_700_000_000, true);
    plan.archive_id = "parity".into();
    let (bytes, _) = write_archive(store, &handle, &plan, Vec::new(), &|_| {}).unwrap();
    let archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
    let mut entries = BTreeMap::new();
    for (index, entry) in archive.entries().iter().enumerate() {
        let mut content = Vec::new();
        archive.open_entry(index).unwrap().read_to_end(&mut content).unwrap();
        entries.insert(entry.name.clone(), content);
    }
    entries
}

/// `entries` with every id an import gave a copy (`copies`: new id → archive id) put back
/// as `copy-of:<archive id>`, and each table entry's lines sorted: the order rows are read
/// in is each database's plan's (SQLite reads a chat's messages through its index of chats).
fn with_copies_named(entries: BTreeMap<String, Vec<u8>>, copies: &[(String, String)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .into_iter()
        .map(|(name, content)| {
            let mut text = String::from_utf8_lossy(&content).into_owned();
            let mut name = name;
            for (new_id, original) in copies {
                text = text.replace(new_id.as_str(), &format!("copy-of:{original}"));
                name = name.replace(new_id.as_str(), &format!("copy-of:{original}"));
            }
            if name.ends_with(".ndjson") {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.sort_unstable();
                text = lines.join("\n");
            }
            (name, text.into_bytes())
        })
        .collect()
}

/// Asserts two exports are equal, naming the first entry that differs.
fn assert_same(label: &str, sqlite: &BTreeMap<String, Vec<u8>>, postgres: &BTreeMap<String, Vec<u8>>) {
    lvbak_tests::exports::assert_same_entries(label, ("sqlite", "postgres"), sqlite, postgres);
}

/// The id map of `user` in a store: (new id, archive id).
async fn copies_in(store: &Store, user: &str) -> Vec<(String, String)> {
    let mut copies: Vec<(String, String)> = match store.postgres() {
        Some(postgres) => {
            let client = postgres.client().await.unwrap();
            client
                .query("SELECT new_id, original_id FROM lvbak_id_map WHERE user_id = $1", &[&user])
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect()
        }
        None => store.db.id_map_of(user).unwrap(),
    };
    // Longer ids first, so no id is replaced inside another.
    copies.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.cmp(b)));
    copies
}

/// A seeded account's export, and each real Lumiverse fixture, imported into both backends
/// — by a first account, then by a second whose every id is the first's — export the same
/// and are summarised the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_on_postgres_export_as_rows_on_sqlite_do() {
    let database = test_database().await;
    let url = DatabaseUrl { config: database.config.clone() };
    let (sqlite_dir, postgres_dir, seeded_dir) = (scratch("sqlite"), scratch("postgres"), scratch("seeded"));
    let sqlite = Arc::new(Store::open(&sqlite_dir.0).await.unwrap());
    let postgres = Arc::new(Store::open_with(&postgres_dir.0, None, Some(&url)).await.unwrap());
    assert!(postgres.postgres().is_some());

    // An archive of many tables: a demo account's export.
    let seeded = Arc::new(Store::open(&seeded_dir.0).await.unwrap());
    let demo = seeded.accounts().create_user("id-demo", "demo", "hash", 1).await.unwrap();
    crate::seed::seed(&seeded, &demo, crate::seed::SeedOptions::default(), 1_700_000_000).await.unwrap();
    let demo_archive = {
        let (seeded, demo) = (seeded.clone(), demo.clone());
        tokio::task::spawn_blocking(move || {
            let handle = tokio::runtime::Handle::current();
            let mut plan = ExportPlan::new(demo, 1_700_000_000, true);
            plan.archive_id = "demo".into();
            write_archive(&seeded, &handle, &plan, Vec::new(), &|_| {}).unwrap().0
        })
        .await
        .unwrap()
    };

    let mut archives: Vec<(&str, Vec<u8>)> = vec![("demo", demo_archive)];
    archives.extend(lvbak_tests::fixtures::ARCHIVES.iter().map(|(name, bytes, _)| (*name, bytes.to_vec())));
    for (number, (name, archive)) in archives.into_iter().enumerate() {
        let mut exports = Vec::new();
        for store in [sqlite.clone(), postgres.clone()] {
            let (alice, bob) = {
                let accounts = store.accounts();
                let alice =
                    accounts.create_user(&format!("a{number}"), &format!("alice{number}"), "h", 1).await.unwrap();
                let bob = accounts.create_user(&format!("b{number}"), &format!("bob{number}"), "h", 1).await.unwrap();
                (alice, bob)
            };
            let (first, second, alice_export, bob_export) = {
                let (store, archive, alice, bob) = (store.clone(), archive.clone(), alice.clone(), bob.clone());
                tokio::task::spawn_blocking(move || {
                    // Previews before and after: all new; the holder's own rows unchanged,
                    // another account's ids copied, and the copies unchanged.
                    let mut previews = vec![preview(&store, &alice.id, &archive)];
                    let first = import(&store, &alice.id, &archive);
                    previews.push(preview(&store, &alice.id, &archive));
                    previews.push(preview(&store, &bob.id, &archive));
                    let second = import(&store, &bob.id, &archive);
                    previews.push(preview(&store, &bob.id, &archive));
                    assert_ne!(previews[0], previews[1], "an import changes what a preview sees");
                    assert_ne!(previews[1], previews[2], "another account sees the holder's ids as ones to copy");
                    let first = serde_json::json!({"summary": first, "previews": previews});
                    (first, second, export(&store, &alice), export(&store, &bob))
                })
                .await
                .unwrap()
            };
            let copies = copies_in(&store, &bob.id).await;
            assert!(!copies.is_empty() || name != "demo", "{name}: the second account's import copied nothing");
            exports.push((first, second, alice_export, with_copies_named(bob_export, &copies)));
        }
        let (sqlite_run, postgres_run) = (&exports[0], &exports[1]);
        assert_eq!(sqlite_run.0, postgres_run.0, "{name}: the first import's summary and the previews");
        assert_eq!(sqlite_run.1, postgres_run.1, "{name}: the second import's summary");
        assert_same(
            &format!("{name}, first account"),
            &with_copies_named(sqlite_run.2.clone(), &[]),
            &with_copies_named(postgres_run.2.clone(), &[]),
        );
        assert_same(&format!("{name}, second account"), &sqlite_run.3, &postgres_run.3);
    }
}
