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
    let demo_archive = archive_of(&seeded, &demo, "demo").await;

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

/// A SQLite instance in a scratch folder whose user `holder` has `count` bulk characters
/// and nothing else.
async fn bulk_characters(count: usize) -> (Scratch, Arc<Store>, UserRecord) {
    let dir = scratch("seeded");
    let store = Arc::new(Store::open(&dir.0).await.unwrap());
    let holder = store.accounts().create_user("id-holder", "holder", "hash", 1).await.unwrap();
    let options = crate::seed::SeedOptions {
        characters: 0,
        chats: 0,
        messages_per_chat: 0,
        images: 0,
        vectors: 0,
        secrets: 0,
        bulk_characters: count,
        ..crate::seed::SeedOptions::default()
    };
    crate::seed::seed(&store, &holder, options, 1_700_000_000).await.unwrap();
    (dir, store, holder)
}

/// `user`'s export from `store`, as an archive's bytes.
async fn archive_of(store: &Arc<Store>, user: &UserRecord, archive_id: &str) -> Vec<u8> {
    let (store, user, archive_id) = (store.clone(), user.clone(), archive_id.to_string());
    tokio::task::spawn_blocking(move || {
        let handle = tokio::runtime::Handle::current();
        let mut plan = ExportPlan::new(user, 1_700_000_000, true);
        plan.archive_id = archive_id;
        write_archive(&store, &handle, &plan, Vec::new(), &|_| {}).unwrap().0
    })
    .await
    .unwrap()
}

/// Runs of rows long enough to go in by `COPY`, some of whose values PostgreSQL keeps in
/// `lvbak_odd` (text and a fraction in INTEGER columns, a number in a TEXT one, text with a
/// NUL character), export as they do from SQLite; and so do an import whose run meets rows
/// that are there already partway (its `COPY` is taken back and the run goes in by
/// `INSERT … ON CONFLICT`) and one that meets nothing but rows that are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_written_by_copy_export_as_on_sqlite() {
    let database = test_database().await;
    let url = DatabaseUrl { config: database.config.clone() };
    let (sqlite_dir, postgres_dir) = (scratch("sqlite"), scratch("postgres"));
    let sqlite = Arc::new(Store::open(&sqlite_dir.0).await.unwrap());
    let postgres = Arc::new(Store::open_with(&postgres_dir.0, None, Some(&url)).await.unwrap());
    let (seeded_dir, seeded, holder) = bulk_characters(300).await;
    let raw = rusqlite::Connection::open(seeded_dir.0.join("lvbak.sqlite")).unwrap();
    raw.execute_batch(
        "UPDATE characters SET updated_at = 'soon' WHERE rowid % 7 = 0;
         UPDATE characters SET created_at = 1.5 WHERE rowid % 11 = 0;
         UPDATE characters SET personality = 'a' || char(0) || 'b' WHERE rowid % 13 = 0;
         UPDATE characters SET scenario = 42 WHERE rowid % 17 = 0;",
    )
    .unwrap();
    let whole = archive_of(&seeded, &holder, "whole").await;
    raw.execute("DELETE FROM characters WHERE rowid % 2 = 0", []).unwrap();
    let half = archive_of(&seeded, &holder, "half").await;

    let mut runs = Vec::new();
    for store in [sqlite.clone(), postgres.clone()] {
        let alice = store.accounts().create_user("id-alice", "alice", "h", 1).await.unwrap();
        let (store, half, whole, alice) = (store.clone(), half.clone(), whole.clone(), alice.clone());
        runs.push(
            tokio::task::spawn_blocking(move || {
                let summaries = [&half, &whole, &whole].map(|archive| import(&store, &alice.id, archive)).to_vec();
                (summaries, export(&store, &alice))
            })
            .await
            .unwrap(),
        );
    }
    let ((sqlite_summaries, sqlite_export), (postgres_summaries, postgres_export)) = (&runs[0], &runs[1]);
    assert_eq!(sqlite_summaries, postgres_summaries, "the three imports' summaries");
    let characters = |summary: &serde_json::Value| summary["summary"]["characters"]["imported"].as_u64();
    let imported: Vec<Option<u64>> = postgres_summaries.iter().map(characters).collect();
    assert_eq!(imported, [Some(150), Some(150), Some(0)]);
    let lines = postgres_export["database/characters.ndjson"].split(|&byte| byte == b'\n');
    assert_eq!(lines.filter(|line| !line.is_empty()).count(), 300);
    assert_same(
        "characters with odd values",
        &with_copies_named(sqlite_export.clone(), &[]),
        &with_copies_named(postgres_export.clone(), &[]),
    );
}

/// A run whose `COPY` has sent most of its rows when it meets rows that are there already
/// (the last hundred of a thousand, in key order: seven of its chunks have gone out) is
/// taken back whole and goes in by `INSERT … ON CONFLICT`: no row is lost or written twice,
/// and each is counted once — the importer's own rows skipped, another account's copied
/// under new ids — as on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_meeting_existing_rows_late_in_its_run_loses_and_doubles_nothing() {
    let (seeded_dir, seeded, holder) = bulk_characters(1000).await;
    let whole = archive_of(&seeded, &holder, "whole").await;
    let raw = rusqlite::Connection::open(seeded_dir.0.join("lvbak.sqlite")).unwrap();
    raw.execute("DELETE FROM characters WHERE id NOT IN (SELECT id FROM characters ORDER BY id DESC LIMIT 100)", [])
        .unwrap();
    let last_hundred = archive_of(&seeded, &holder, "last-hundred").await;
    meet_rows_late(&whole, &last_hundred, 1000, 100).await;
}

/// A `COPY` left open over several batches of a thousand characters (each batch's rows
/// joining the one the first began, while PostgreSQL still writes the last ones) meets rows
/// that are there already: it is taken back whole only when it is finished, after those
/// batches returned, and they all go in by `INSERT … ON CONFLICT`. Met in the third of
/// three batches (finished at the table's end), and in the second of five (finished when
/// the fifth starts the next `COPY`, the first one full; sooner if a commit falls between
/// the batches): the summary counts every row once, as SQLite's does batch by batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_left_open_over_batches_meeting_existing_rows_loses_and_doubles_nothing() {
    for (total, kept) in [(3000, 2900..3000), (5000, 1900..2000)] {
        let (seeded_dir, seeded, holder) = bulk_characters(total).await;
        let whole = archive_of(&seeded, &holder, "whole").await;
        // Characters by their place in the archive, so in the import's batches.
        let archive = Archive::open(Cursor::new(whole.clone()), Limits::STANDARD).unwrap();
        let index = archive.entries().iter().position(|entry| entry.name == "database/characters.ndjson").unwrap();
        let mut lines = String::new();
        archive.open_entry(index).unwrap().read_to_string(&mut lines).unwrap();
        let ids: Vec<String> = lines
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), total);
        let raw = rusqlite::Connection::open(seeded_dir.0.join("lvbak.sqlite")).unwrap();
        raw.execute_batch("CREATE TEMP TABLE kept (id TEXT)").unwrap();
        for id in &ids[kept.clone()] {
            raw.execute("INSERT INTO kept VALUES (?1)", [id]).unwrap();
        }
        raw.execute("DELETE FROM characters WHERE id NOT IN (SELECT id FROM kept)", []).unwrap();
        let some = archive_of(&seeded, &holder, "some").await;
        meet_rows_late(&whole, &some, total as u64, kept.len() as u64).await;
    }
}

/// Alice has the characters of `kept` (`held` of them); then she imports the `total` of
/// `whole` (her own rows met late), or Bob does (another account's rows met late). Each on
/// a fresh store of each backend: the same summaries, every row once.
async fn meet_rows_late(whole: &[u8], kept: &[u8], total: u64, held: u64) {
    for (bob_imports, expected) in
        [(false, [(held, 0, 0), (total - held, held, 0)]), (true, [(held, 0, 0), (total, 0, held)])]
    {
        let database = test_database().await;
        let url = DatabaseUrl { config: database.config.clone() };
        let (sqlite_dir, postgres_dir) = (scratch("sqlite"), scratch("postgres"));
        let sqlite = Arc::new(Store::open(&sqlite_dir.0).await.unwrap());
        let postgres = Arc::new(Store::open_with(&postgres_dir.0, None, Some(&url)).await.unwrap());
        let mut runs = Vec::new();
        for store in [sqlite, postgres] {
            let alice = store.accounts().create_user("id-alice", "alice", "h", 1).await.unwrap();
            let bob = store.accounts().create_user("id-bob", "bob", "h", 1).await.unwrap();
            let second = if bob_imports { bob } else { alice.clone() };
            let (whole, kept) = (whole.to_vec(), kept.to_vec());
            runs.push(
                tokio::task::spawn_blocking(move || {
                    let summaries = [(&alice, &kept), (&second, &whole)]
                        .map(|(user, archive)| import(&store, &user.id, archive))
                        .to_vec();
                    (summaries, export(&store, &second))
                })
                .await
                .unwrap(),
            );
        }
        let ((sqlite_summaries, _), (postgres_summaries, second_export)) = (&runs[0], &runs[1]);
        assert_eq!(sqlite_summaries, postgres_summaries, "the imports' summaries (Bob imports: {bob_imports})");
        let counts = |summary: &serde_json::Value| {
            let characters = &summary["summary"]["characters"];
            let count = |key: &str| characters[key].as_u64().unwrap_or(0);
            (count("imported"), count("skipped"), count("remapped"))
        };
        let counted: Vec<_> = postgres_summaries.iter().map(counts).collect();
        assert_eq!(counted, expected, "Bob imports: {bob_imports}");
        let lines = second_export["database/characters.ndjson"].split(|&byte| byte == b'\n');
        assert_eq!(lines.filter(|line| !line.is_empty()).count() as u64, total, "Bob imports: {bob_imports}");
    }
}

/// Imports `archive` into `user`'s account held to `quota`: the summary, or whether it
/// failed over the quota.
fn import_within(store: &Store, user: &str, archive: &[u8], quota: u64) -> Result<serde_json::Value, bool> {
    let handle = tokio::runtime::Handle::current();
    let mut archive = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let progress = |_: crate::progress::Event| {};
    let cancel = Arc::new(AtomicBool::new(false));
    let mut session = ImportSession::new(store, user, Some(quota), cancel, &progress, handle).unwrap();
    let over = |error: crate::import::session::ImportError| {
        matches!(error, crate::import::session::ImportError::QuotaExceeded(_))
    };
    import_archive(&mut session, &mut archive, None, None).map_err(over)?;
    let summary = session.finish().map_err(over)?;
    Ok(serde_json::to_value(lvbak_core::protocol::SummaryReport::from(&summary)).unwrap())
}

/// The quota holds rows written by `COPY`s left open as it holds SQLite's: three thousand
/// characters are charged the same bytes on both backends, and an import of them into an
/// account with room for half fails over the quota on both, leaving no row and the
/// account's use as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_holds_rows_written_by_open_copies_as_on_sqlite() {
    let (_seeded_dir, seeded, holder) = bulk_characters(3000).await;
    let whole = archive_of(&seeded, &holder, "whole").await;
    let database = test_database().await;
    let url = DatabaseUrl { config: database.config.clone() };
    let (sqlite_dir, postgres_dir) = (scratch("sqlite"), scratch("postgres"));
    let sqlite = Arc::new(Store::open(&sqlite_dir.0).await.unwrap());
    let postgres = Arc::new(Store::open_with(&postgres_dir.0, None, Some(&url)).await.unwrap());
    let mut charged = Vec::new();
    for store in [sqlite, postgres] {
        let alice = store.accounts().create_user("id-alice", "alice", "h", 1).await.unwrap();
        let bob = store.accounts().create_user("id-bob", "bob", "h", 1).await.unwrap();
        let (imports, archive) = (store.clone(), whole.clone());
        let (alice_id, bob_id) = (alice.id.clone(), bob.id.clone());
        let use_of = |user: String| {
            let store = store.clone();
            async move { store.accounts().usage_of(&user).await.unwrap().unwrap_or(0) }
        };
        let room = 1 << 40;
        let summary = tokio::task::spawn_blocking(move || import_within(&imports, &alice_id, &archive, room))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary["summary"]["characters"]["imported"], 3000, "{summary}");
        let used = use_of(alice.id.clone()).await;
        let bob_before = use_of(bob.id.clone()).await;
        let (imports, archive) = (store.clone(), whole.clone());
        let half = bob_before + used / 2;
        let failed =
            tokio::task::spawn_blocking(move || import_within(&imports, &bob_id, &archive, half)).await.unwrap();
        assert_eq!(failed, Err(true), "an import over the quota");
        assert_eq!(use_of(bob.id.clone()).await, bob_before, "the failed import's bytes stayed counted");
        let (exports, bob_record) = (store.clone(), bob.clone());
        let left = tokio::task::spawn_blocking(move || export(&exports, &bob_record)).await.unwrap();
        let lines = left
            .get("database/characters.ndjson")
            .map_or(0, |content| content.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).count());
        assert_eq!(lines, 0, "rows of the import over the quota stayed");
        charged.push(used);
    }
    assert_eq!(charged[0], charged[1], "bytes charged on SQLite and on PostgreSQL");
    assert!(charged[0] > 3000 * 1000, "{} bytes for 3000 characters", charged[0]);
}
