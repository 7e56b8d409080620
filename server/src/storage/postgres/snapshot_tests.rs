//! PostgreSQL's row snapshot against SQLite's: the same rows written to both (to PostgreSQL
//! as the import writes them: SQLite's stored value, placed by `values::place`) read back
//! the same — columns, values and their storage classes — by every reading of the trait.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use lvbak_core::closure::RowKey;
use lvbak_core::registry::{table_spec, TableSpec};
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;

use crate::config::HostingLimits;
use crate::storage::backend::row_snapshot::{RowSnapshot, RowValue};
use crate::storage::postgres::row_tables::ODD_COLUMN;
use crate::storage::postgres::values::{odd_object, place, Typed};
use crate::storage::postgres::PostgresStores;
use crate::storage::sqlite::schema::{shapes, StoredValues};
use crate::storage::sqlite::{quoted, Database};
use crate::storage::AccountStore;
use crate::test_support::postgres_cluster::{test_database, TestDatabase};
use crate::test_support::{test_state, TestState};

/// A value handed out, owned (reals by their bits, so equal means the same value).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Null,
    Integer(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<RowValue<'_>> for Held {
    fn from(value: RowValue<'_>) -> Self {
        match value {
            RowValue::Null => Self::Null,
            RowValue::Integer(integer) => Self::Integer(integer),
            RowValue::Real(real) => Self::Real(real.to_bits()),
            RowValue::Text(text) => Self::Text(text.into()),
            RowValue::Blob(bytes) => Self::Blob(bytes.into()),
        }
    }
}

/// Rows as a reading handed them out: each with the column names it came with.
type Rows = Vec<(Vec<String>, Vec<Held>)>;

/// The same accounts in a SQLite data directory and in a fresh PostgreSQL database.
struct Both {
    sqlite: TestState,
    postgres: PostgresStores,
    _database: TestDatabase,
}

async fn both(label: &str) -> Both {
    let sqlite = test_state(label, HostingLimits::default()).await;
    let database = test_database().await;
    let postgres = PostgresStores::connect(database.config.clone()).await.unwrap();
    for name in ["alice", "bob"] {
        sqlite.state.store().accounts().create_user(name, name, "hash", 1).await.unwrap();
        postgres.create_user(name, name, "hash", 1).await.unwrap();
    }
    Both { sqlite, postgres, _database: database }
}

impl Both {
    fn db(&self) -> Arc<Database> {
        self.sqlite.state.store().db.clone()
    }

    /// Writes `rows` (JSON objects, keys are columns) to both databases.
    async fn insert(&self, table: &str, rows: &[Value]) {
        let objects: Vec<Map<String, Value>> = rows.iter().map(|row| row.as_object().unwrap().clone()).collect();
        self.db().insert_json_rows(table, &objects).unwrap();
        insert_as_imported(&self.postgres, table, rows).await;
    }

    /// Runs `read` on a snapshot of each backend (SQLite's first), on a thread of its own.
    async fn read<T: Send + 'static>(&self, read: impl Fn(&dyn RowSnapshot) -> T + Send + 'static) -> (T, T) {
        let (db, postgres) = (self.db(), self.postgres.clone());
        tokio::task::spawn_blocking(move || {
            let sqlite = read(&db.table_scan().unwrap());
            let postgres = read(&postgres.row_snapshot().unwrap());
            (sqlite, postgres)
        })
        .await
        .unwrap()
    }
}

/// Writes rows to PostgreSQL as an import does: each value as SQLite would store it in its
/// column, in the typed column or the row's odd object.
async fn insert_as_imported(stores: &PostgresStores, table: &str, rows: &[Value]) {
    let shape = shapes().unwrap().table(table).unwrap();
    let mut statements = Vec::new();
    {
        let converter = StoredValues::new().unwrap();
        for row in rows {
            let mut columns = Vec::new();
            let mut marks = Vec::new();
            let mut parameters: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            let mut odd = Map::new();
            for (column, value) in row.as_object().unwrap() {
                let affinity = shape.columns.iter().find(|shape| &shape.name == column).unwrap().affinity;
                let (typed, entry) = place(affinity, converter.stored(affinity, value).unwrap());
                if let Some(entry) = entry {
                    odd.insert(column.clone(), entry);
                }
                columns.push(quoted(column));
                marks.push(format!("${}", marks.len() + 1));
                parameters.push(match typed {
                    Typed::Integer(value) => Box::new(value),
                    Typed::Real(value) => Box::new(value),
                    Typed::Text(value) => Box::new(value),
                });
            }
            columns.push(ODD_COLUMN.to_string());
            marks.push(format!("${}::text::jsonb", marks.len() + 1));
            parameters.push(Box::new(odd_object(odd)));
            let sql = format!("INSERT INTO {} ({}) VALUES ({})", quoted(table), columns.join(", "), marks.join(", "));
            statements.push((sql, parameters));
        }
    }
    let client = stores.client().await.unwrap();
    for (sql, parameters) in statements {
        let parameters: Vec<&(dyn ToSql + Sync)> = parameters.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        client.execute(&sql, &parameters).await.unwrap();
    }
}

fn spec(name: &str) -> &'static TableSpec {
    table_spec(name).unwrap()
}

/// Every row of `table` the user owns, and the count the reading answered.
fn owned(snapshot: &dyn RowSnapshot, table: &str, user: &str) -> (Rows, u64) {
    let mut rows = Rows::new();
    let count = snapshot
        .owned_rows::<crate::storage::sqlite::DbError>(spec(table), user, |columns, row| {
            rows.push((columns.to_vec(), (0..columns.len()).map(|index| row.value(index).into()).collect()));
            Ok(())
        })
        .unwrap();
    (rows, count)
}

/// The rows of `table` the user owns whose `key` is one of `values`, and the count.
fn owned_where(snapshot: &dyn RowSnapshot, table: &str, user: &str, key: RowKey, values: &[&str]) -> (Rows, u64) {
    let values: Vec<String> = values.iter().map(|value| value.to_string()).collect();
    let mut rows = Rows::new();
    let count = snapshot
        .owned_rows_where::<crate::storage::sqlite::DbError>(spec(table), user, key, &values, |columns, row| {
            rows.push((columns.to_vec(), (0..columns.len()).map(|index| row.value(index).into()).collect()));
            Ok(())
        })
        .unwrap();
    (rows, count)
}

/// `ids`, sorted.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Rows in primary key order (each database reads them in its query plan's order).
fn in_key_order(table: &str, mut rows: Rows) -> Rows {
    let key = spec(table).primary_key;
    rows.sort_by_key(|(columns, values)| {
        key.iter()
            .map(|column| values[columns.iter().position(|name| name == column).unwrap()].clone())
            .collect::<Vec<_>>()
    });
    rows
}

/// The value of `column` in the row whose id is `id`.
fn value_of(rows: &Rows, id: &str, column: &str) -> Held {
    let (columns, values) = rows
        .iter()
        .find(|(columns, values)| values[columns.iter().position(|c| c == "id").unwrap()] == Held::Text(id.into()))
        .unwrap_or_else(|| panic!("no row {id}"));
    values[columns.iter().position(|c| c == column).unwrap()].clone()
}

fn ids(rows: &Rows) -> Vec<String> {
    rows.iter()
        .map(|(columns, values)| match &values[columns.iter().position(|c| c == "id").unwrap()] {
            Held::Text(id) => id.clone(),
            other => panic!("an id {other:?}"),
        })
        .collect()
}

fn character(id: &str, user: &str) -> Value {
    json!({"id": id, "user_id": user, "name": format!("name of {id}"), "created_at": 10, "updated_at": 20})
}

fn chat(id: &str, user: &str, character: &str, metadata: &str) -> Value {
    json!({"id": id, "user_id": user, "character_id": character, "metadata": metadata,
           "created_at": 10, "updated_at": 20})
}

fn message(id: &str, chat: &str, index: i64) -> Value {
    json!({"id": id, "chat_id": chat, "index_in_chat": index, "content": format!("said in {id}"),
           "send_date": 30, "created_at": 30})
}

fn extension(id: &str, user: &str, scope: &str) -> Value {
    json!({"id": id, "identifier": id, "name": id, "version": "1", "author": "a", "github": "g",
           "install_scope": scope, "installed_by_user_id": user, "installed_at": 1, "updated_at": 2})
}

/// Alice's and Bob's characters (one of Alice's with values of odd classes), chats (one
/// of Alice's a branch by its metadata, others with metadata that is no JSON or names the
/// key elsewhere), messages through the chats, and extensions of both scopes.
async fn seed(both: &Both) {
    let mut odd = character("c-odd", "alice");
    let fields = odd.as_object_mut().unwrap();
    fields.insert("created_at".into(), json!("yesterday")); // text in an INTEGER column
    fields.insert("updated_at".into(), json!(1.5)); // a fraction in an INTEGER column
    fields.insert("description".into(), json!("a\u{0}b")); // text with a NUL
    fields.insert("name".into(), json!(42)); // a number in a TEXT column: SQLite's text "42"
    fields.insert("deleting".into(), json!("7")); // numeric text in an INTEGER column: 7
    fields.insert("creator".into(), json!(2.5)); // a real in a TEXT column: "2.5"
    both.insert("characters", &[character("c-a2", "alice"), odd, character("c-a1", "alice"), character("c-b1", "bob")])
        .await;
    both.insert(
        "chats",
        &[
            chat("chat-a1", "alice", "c-a1", "{}"),
            chat("chat-a2", "alice", "c-a1", r#"{"branched_from":"chat-a1"}"#),
            chat("chat-a3", "alice", "c-a2", r#"not json {"branched_from":"chat-a1"#),
            chat("chat-a4", "alice", "c-a2", r#"{"x":{"branched_from":"chat-a1"}}"#),
            chat("chat-a5", "alice", "c-a2", r#"{"branched_from":5}"#),
            chat("chat-a6", "alice", "c-a2", r#"{"branched\u005ffrom":"chat-a1"}"#),
            chat("chat-a7", "alice", "c-a2", r#" {"branched_from":"chat-\u00611"} "#),
            chat("chat-a8", "alice", "c-a2", r#"{"branched_from":"chat-a1","branched_from":"x"}"#),
            chat("chat-a9", "alice", "c-a2", r#"{"branched_from":"x","branched_from":"chat-a1"}"#),
            chat("chat-aa", "alice", "c-a2", r#"{"branched_from":"chat-a1"} trailing"#),
            chat("chat-ab", "alice", "c-a2", r#"["branched_from","chat-a1"]"#),
            chat("chat-b1", "bob", "c-b1", r#"{"branched_from":"chat-a1"}"#),
        ],
    )
    .await;
    both.insert(
        "messages",
        &[
            message("m-a1-2", "chat-a1", 2),
            message("m-a1-1", "chat-a1", 1),
            message("m-a2-1", "chat-a2", 1),
            message("m-b1-1", "chat-b1", 1),
        ],
    )
    .await;
    both.insert(
        "extensions",
        &[
            extension("x-a-user", "alice", "user"),
            extension("x-a-operator", "alice", "operator"),
            extension("x-b-user", "bob", "user"),
        ],
    )
    .await;
}

/// Each user's rows of a directly owned table, of one owned through a parent and of one
/// with a row filter come out of PostgreSQL as out of SQLite: the same columns, values
/// and storage classes (odd ones included), in primary key order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_rows_are_sqlites() {
    let both = both("pg-snapshot-rows").await;
    seed(&both).await;
    let expected_ids = [
        ("characters", "alice", vec!["c-a1", "c-a2", "c-odd"]),
        ("characters", "bob", vec!["c-b1"]),
        ("messages", "alice", vec!["m-a1-1", "m-a1-2", "m-a2-1"]),
        ("messages", "bob", vec!["m-b1-1"]),
        ("extensions", "alice", vec!["x-a-user"]),
        ("extensions", "bob", vec!["x-b-user"]),
        ("chats", "bob", vec!["chat-b1"]),
    ];
    let reads = expected_ids.iter().map(|(table, user, _)| (table.to_string(), user.to_string())).collect::<Vec<_>>();
    let (sqlite, postgres) = both
        .read(move |snapshot| reads.iter().map(|(table, user)| owned(snapshot, table, user)).collect::<Vec<_>>())
        .await;
    for (((table, user, ids_wanted), (sqlite, sqlite_count)), (postgres, postgres_count)) in
        expected_ids.iter().zip(sqlite).zip(postgres)
    {
        assert_eq!(ids(&in_key_order(table, postgres.clone())), *ids_wanted, "{table} of {user}");
        assert_eq!(in_key_order(table, postgres.clone()), in_key_order(table, sqlite), "{table} of {user}");
        assert_eq!((postgres_count, sqlite_count), (ids_wanted.len() as u64, ids_wanted.len() as u64));
        let described: Vec<String> =
            shapes().unwrap().table(table).unwrap().columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(postgres[0].0, described, "{table}: the registry columns, in SQLite's order");
    }
    // The odd values, as SQLite stored them.
    let (_, (characters, _)) = both.read(|snapshot| owned(snapshot, "characters", "alice")).await;
    assert_eq!(value_of(&characters, "c-odd", "created_at"), Held::Text("yesterday".into()));
    assert_eq!(value_of(&characters, "c-odd", "updated_at"), Held::Real(1.5f64.to_bits()));
    assert_eq!(value_of(&characters, "c-odd", "description"), Held::Text("a\u{0}b".into()));
    assert_eq!(value_of(&characters, "c-odd", "name"), Held::Text("42".into()));
    assert_eq!(value_of(&characters, "c-odd", "deleting"), Held::Integer(7));
    assert_eq!(value_of(&characters, "c-odd", "creator"), Held::Text("2.5".into()));
    assert_eq!(value_of(&characters, "c-a1", "image_id"), Held::Null);

    // A reader that stops: the row it stopped at is not counted, as SQLite counts.
    let (sqlite, postgres) = both
        .read(|snapshot| {
            let mut seen = 0;
            let count = snapshot
                .scan_owned_rows(spec("messages"), "alice", &mut |_, _| {
                    seen += 1;
                    if seen == 2 {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                })
                .unwrap();
            (seen, count)
        })
        .await;
    assert_eq!((postgres, sqlite), ((2, 1), (2, 1)));
}

/// The ids an import would skip: the user's rows of every id-keyed table (settings not),
/// each followed by the archive ids it was copied from while the copy exists — never
/// another user's copies, never those of a copy since deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_row_ids_are_sqlites() {
    let both = both("pg-snapshot-held").await;
    seed(&both).await;
    both.insert("settings", &[json!({"key": "theme", "user_id": "alice", "value": "\"dark\"", "updated_at": 1})]).await;
    let copies = [
        ("alice", "orig-2", "c-a2"),
        ("alice", "orig-1", "c-a2"),
        ("alice", "orig-gone", "c-deleted"),
        ("alice", "orig-chat", "chat-a1"),
        ("bob", "orig-bob", "c-a1"),
    ];
    for (user, original, new) in copies {
        let row = json!({"user_id": user, "original_id": original, "table_name": if new.starts_with("chat") { "chats" } else { "characters" }, "new_id": new});
        both.db().insert_json_rows("lvbak_id_map", &[row.as_object().unwrap().clone()]).unwrap();
        both.postgres.insert_json_rows("lvbak_id_map", &[row]).await.unwrap();
    }
    let held = |snapshot: &dyn RowSnapshot| {
        let mut held = Vec::new();
        snapshot
            .held_row_ids::<crate::storage::sqlite::DbError>("alice", |table, id| {
                held.push((table.to_string(), id.to_string()));
                Ok(())
            })
            .unwrap();
        held
    };
    let (mut sqlite, postgres) = both.read(held).await;
    let expected: Vec<(String, String)> = [
        ("characters", "c-a1"),
        ("characters", "c-a2"),
        ("characters", "orig-1"),
        ("characters", "orig-2"),
        ("characters", "c-odd"),
        ("extensions", "x-a-user"),
    ]
    .into_iter()
    .chain(
        [
            "chat-a1",
            "orig-chat",
            "chat-a2",
            "chat-a3",
            "chat-a4",
            "chat-a5",
            "chat-a6",
            "chat-a7",
            "chat-a8",
            "chat-a9",
            "chat-aa",
            "chat-ab",
        ]
        .map(|id| ("chats", id)),
    )
    .chain(["m-a1-1", "m-a1-2", "m-a2-1"].map(|id| ("messages", id)))
    .map(|(table, id)| (table.to_string(), id.to_string()))
    .collect();
    let mut expected_in_registry_order = expected.clone();
    let place = |table: &str| lvbak_core::registry::TABLES.iter().position(|spec| spec.name == table).unwrap();
    expected_in_registry_order.sort_by_key(|(table, _)| place(table));
    assert_eq!(postgres, expected_in_registry_order);
    let mut postgres_sorted = postgres.clone();
    postgres_sorted.sort();
    sqlite.sort();
    assert_eq!(postgres_sorted, sqlite);

    // Stopping stops the reading.
    let (sqlite, postgres) = both
        .read(|snapshot| {
            let mut seen = 0;
            snapshot
                .scan_held_row_ids("alice", &mut |_, _| {
                    seen += 1;
                    if seen == 3 {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                })
                .unwrap();
            seen
        })
        .await;
    assert_eq!((postgres, sqlite), (3, 3));
}

/// A selective reading's case: table, user, key, the values asked for, the ids found.
type SelectCase = (&'static str, &'static str, RowKey, Vec<&'static str>, Vec<&'static str>);

/// A selective reading finds the user's rows by a column (text keys, a text with a NUL,
/// numeric text in an INTEGER column, text kept there) and by a key of a column's JSON
/// (text that is no JSON, a key elsewhere, a number under the key: no match), as SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_rows_are_sqlites() {
    let both = both("pg-snapshot-where").await;
    seed(&both).await;
    let cases: Vec<SelectCase> = vec![
        ("characters", "alice", RowKey::Column("id"), vec!["c-a1", "c-b1", "missing"], vec!["c-a1"]),
        ("characters", "bob", RowKey::Column("id"), vec!["c-a1", "c-b1"], vec!["c-b1"]),
        ("characters", "alice", RowKey::Column("description"), vec!["a\u{0}b", "x"], vec!["c-odd"]),
        ("characters", "alice", RowKey::Column("deleting"), vec!["7"], vec!["c-odd"]),
        ("characters", "alice", RowKey::Column("deleting"), vec!["0"], vec!["c-a1", "c-a2"]),
        ("characters", "alice", RowKey::Column("created_at"), vec!["yesterday", "10"], vec!["c-a1", "c-a2", "c-odd"]),
        ("characters", "alice", RowKey::Column("updated_at"), vec!["1.5"], vec!["c-odd"]),
        ("messages", "alice", RowKey::Column("chat_id"), vec!["chat-a1", "chat-b1"], vec!["m-a1-1", "m-a1-2"]),
        ("extensions", "alice", RowKey::Column("id"), vec!["x-a-user", "x-a-operator"], vec!["x-a-user"]),
        (
            "chats",
            "alice",
            RowKey::JsonKey { column: "metadata", key: "branched_from" },
            vec!["chat-a1", "5"],
            vec!["chat-a2", "chat-a6", "chat-a7", "chat-a8"],
        ),
        (
            "chats",
            "bob",
            RowKey::JsonKey { column: "metadata", key: "branched_from" },
            vec!["chat-a1"],
            vec!["chat-b1"],
        ),
    ];
    let reads: Vec<_> = cases
        .iter()
        .map(|(table, user, key, values, _)| {
            (table.to_string(), user.to_string(), *key, values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
        })
        .collect();
    let (sqlite, postgres) = both
        .read(move |snapshot| {
            reads
                .iter()
                .map(|(table, user, key, values)| {
                    let values: Vec<&str> = values.iter().map(String::as_str).collect();
                    owned_where(snapshot, table, user, *key, &values)
                })
                .collect::<Vec<_>>()
        })
        .await;
    for (((table, user, key, values, wanted), (sqlite, sqlite_count)), (postgres, postgres_count)) in
        cases.iter().zip(sqlite).zip(postgres)
    {
        let case = format!("{table} of {user} by {key:?} in {values:?}");
        assert_eq!(ids(&in_key_order(table, postgres.clone())), *wanted, "{case}");
        assert_eq!(in_key_order(table, postgres), in_key_order(table, sqlite), "{case}");
        assert_eq!((postgres_count, sqlite_count), (wanted.len() as u64, wanted.len() as u64), "{case}");
    }
}

/// Every reading of a snapshot sees the moment it began: a row committed after is not
/// seen by it, and is by the next (which a dropped snapshot's connection does not hold
/// back in its old transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sees_one_moment() {
    let both = both("pg-snapshot-moment").await;
    seed(&both).await;
    let stores = both.postgres.clone();
    // Nothing is read before the rows are added: the moment is the snapshot's start, not
    // its first reading.
    let snapshot = tokio::task::spawn_blocking(move || stores.row_snapshot().unwrap()).await.unwrap();
    insert_as_imported(&both.postgres, "characters", &[character("c-late", "alice")]).await;
    insert_as_imported(&both.postgres, "messages", &[message("m-late", "chat-a1", 3)]).await;
    let before = vec!["m-a1-1".to_string(), "m-a1-2".into(), "m-a2-1".into()];
    let (snapshot, during) = tokio::task::spawn_blocking(move || {
        let during = (
            sorted(ids(&owned(&snapshot, "characters", "alice").0)),
            sorted(ids(&owned(&snapshot, "messages", "alice").0)),
        );
        (snapshot, during)
    })
    .await
    .unwrap();
    assert_eq!(during, (vec!["c-a1".to_string(), "c-a2".into(), "c-odd".into()], before.clone()));
    drop(snapshot);
    let stores = both.postgres.clone();
    let after = tokio::task::spawn_blocking(move || {
        (0..10)
            .map(|_| {
                let snapshot = stores.row_snapshot().unwrap();
                (
                    sorted(ids(&owned(&snapshot, "characters", "alice").0)),
                    sorted(ids(&owned(&snapshot, "messages", "alice").0)),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut messages = before;
    messages.push("m-late".into());
    for seen in after {
        assert_eq!(seen, (vec!["c-a1".to_string(), "c-a2".into(), "c-late".into(), "c-odd".into()], messages.clone()));
    }
}

/// A table of more rows than one fetch holds is read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_is_read_in_chunks() {
    let both = both("pg-snapshot-chunks").await;
    seed(&both).await;
    let many = super::FETCH_ROWS * 2 + 100;
    let messages: Vec<Value> =
        (0..many).rev().map(|n| message(&format!("m-many-{n:05}"), "chat-a2", n as i64)).collect();
    both.insert("messages", &messages).await;
    let ((sqlite, sqlite_count), (postgres, postgres_count)) =
        both.read(|snapshot| owned(snapshot, "messages", "alice")).await;
    assert_eq!((postgres_count, sqlite_count), (many as u64 + 3, many as u64 + 3));
    assert_eq!(in_key_order("messages", postgres), in_key_order("messages", sqlite));
}
