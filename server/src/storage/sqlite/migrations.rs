//! Schema migrations, tracked by `PRAGMA user_version`: the Lumiverse tables, then lvbak's,
//! then the reshaping of tables whose Lumiverse 1.1 form changed.

use rusqlite::Connection;

use super::DbResult;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_lumiverse_tables.sql"),
    include_str!("../../../migrations/0002_lvbak.sql"),
    include_str!("../../../migrations/0003_hosting.sql"),
    include_str!("../../../migrations/0004_lumiverse_1_1_shape.sql"),
    include_str!("../../../migrations/0005_id_map.sql"),
    include_str!("../../../migrations/0006_embedding_queue.sql"),
    include_str!("../../../migrations/0007_file_name_indexes.sql"),
    include_str!("../../../migrations/0008_hostile_users.sql"),
    include_str!("../../../migrations/0009_id_map_staged.sql"),
    include_str!("../../../migrations/0010_id_map_staged_pairs.sql"),
    include_str!("../../../migrations/0011_id_map_staged_by_user.sql"),
];

/// Applies every migration the database has not seen yet, each in one transaction.
/// Foreign keys are off meanwhile (they cannot change inside a transaction): a migration
/// that rebuilds a table drops the old one, and that must not cascade to its children.
pub fn migrate(connection: &mut Connection) -> DbResult<()> {
    migrate_to(connection, MIGRATIONS.len())
}

/// Applies the first `count` migrations (those not applied yet).
fn migrate_to(connection: &mut Connection, count: usize) -> DbResult<()> {
    let applied: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if applied >= count {
        return Ok(());
    }
    let enforced: bool = connection.pragma_query_value(None, "foreign_keys", |row| row.get(0))?;
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| -> DbResult<()> {
        for (index, sql) in MIGRATIONS.iter().enumerate().take(count).skip(applied) {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            transaction.execute_batch(sql)?;
            transaction.pragma_update(None, "user_version", index + 1)?;
            transaction.commit()?;
        }
        Ok(())
    })();
    connection.pragma_update(None, "foreign_keys", enforced)?;
    result
}

/// A database with every migration applied, in memory: the live column lists of every
/// table without a data directory (for `lvbak inspect`).
pub fn in_memory() -> DbResult<Connection> {
    let mut connection = Connection::open_in_memory()?;
    migrate(&mut connection)?;
    Ok(connection)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn columns(connection: &Connection, table: &str) -> Vec<(String, bool, Option<String>)> {
        connection
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap()
            .query_map([], |row| Ok((row.get(1)?, row.get::<_, i64>(3)? != 0, row.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn count(connection: &Connection, sql: &str) -> i64 {
        connection.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    /// A data directory made before the Lumiverse 1.1 reshaping: every row kept, sessions
    /// numbered per user in creation order (ties by id), children still attached.
    #[test]
    fn an_existing_database_is_reshaped_with_nothing_lost() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate_to(&mut connection, 3).unwrap();
        connection
            .execute_batch(
                r#"
                INSERT INTO "user" (id, name, email) VALUES ('u1', 'one', 'a@x'), ('u2', 'two', 'b@x');
                INSERT INTO characters (id, name, user_id) VALUES ('c1', 'Mira', 'u1');
                INSERT INTO chats (id, character_id, name, user_id, created_at, updated_at)
                    VALUES ('chat1', 'c1', 'First', 'u1', 5, 6), ('chat2', 'c1', 'Second', 'u1', 7, 8);
                INSERT INTO messages (id, chat_id, index_in_chat, content) VALUES ('m1', 'chat1', 0, 'hello');
                INSERT INTO dream_weaver_sessions (id, user_id, created_at, updated_at, dream_text, status, draft, character_id)
                    VALUES ('s-b', 'u1', 200, 201, 'second', NULL, '{"kind":"scenario"}', 'c1'),
                           ('s-a', 'u1', 100, 101, 'first', 'done', NULL, NULL),
                           ('s-c', 'u1', 200, 202, 'tie, later id', 'draft', 'not json', NULL),
                           ('s-z', 'u2', 300, 300, 'other user', 'draft', '{"kind":"character"}', NULL);
                INSERT INTO dream_weaver_messages (id, session_id, user_id, seq, kind, payload)
                    VALUES ('dm1', 's-b', 'u1', 0, 'prompt', '{}');
                "#,
            )
            .unwrap();
        let before: Vec<i64> = ["chats", "messages", "dream_weaver_sessions", "dream_weaver_messages"]
            .iter()
            .map(|table| count(&connection, &format!("SELECT COUNT(*) FROM {table}")))
            .collect();
        migrate(&mut connection).unwrap();
        let after: Vec<i64> = ["chats", "messages", "dream_weaver_sessions", "dream_weaver_messages"]
            .iter()
            .map(|table| count(&connection, &format!("SELECT COUNT(*) FROM {table}")))
            .collect();
        assert_eq!(before, [2, 1, 4, 1]);
        assert_eq!(after, before);

        let names: Vec<String> = columns(&connection, "dream_weaver_sessions").into_iter().map(|c| c.0).collect();
        assert_eq!(
            names,
            [
                "id",
                "user_id",
                "session_number",
                "created_at",
                "updated_at",
                "dream_text",
                "tone",
                "constraints",
                "dislikes",
                "persona_id",
                "connection_id",
                "model",
                "draft",
                "status",
                "workspace_kind",
                "character_id",
                "launch_chat_id"
            ]
        );
        let sessions: Vec<(String, i64, String, String, Option<String>)> = connection
            .prepare("SELECT id, session_number, status, workspace_kind, character_id FROM dream_weaver_sessions ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [
            ("s-a", 1, "done", "character", None),
            ("s-b", 2, "draft", "scenario", Some("c1")),
            ("s-c", 3, "draft", "character", None),
            ("s-z", 1, "draft", "character", None),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(id, n, status, kind, character)| {
                (id.to_string(), *n, status.to_string(), kind.to_string(), character.map(str::to_string))
            })
            .collect();
        assert_eq!(sessions, expected);

        // chats.character_id takes NULL now; the chats' children still point at them.
        let character = columns(&connection, "chats").into_iter().find(|c| c.0 == "character_id").unwrap();
        assert!(!character.1, "chats.character_id is still NOT NULL");
        connection.execute("INSERT INTO chats (id, character_id, user_id) VALUES ('chat3', NULL, 'u1')", []).unwrap();
        assert_eq!(count(&connection, "SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
        assert_eq!(count(&connection, "SELECT COUNT(*) FROM messages m JOIN chats c ON c.id = m.chat_id"), 1);
        // Session numbers are unique per user, as in Lumiverse.
        let duplicate = connection
            .execute("INSERT INTO dream_weaver_sessions (id, user_id, session_number) VALUES ('s-d', 'u1', 2)", []);
        assert!(duplicate.is_err());
        // The indexes of the rebuilt tables are back.
        let indexes = count(
            &connection,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN \
             ('lvbak_chats_user', 'lvbak_dream_weaver_sessions_user', 'lvbak_dream_weaver_sessions_number')",
        );
        assert_eq!(indexes, 3);
    }

    /// Copies an interrupted import staged a row each (before migration 0010) join the id
    /// map, those of a deleted account excepted, and the staged table starts over in its
    /// new form.
    #[test]
    fn copies_staged_the_old_way_join_the_id_map() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate_to(&mut connection, 9).unwrap();
        connection
            .execute_batch(
                r#"
                PRAGMA foreign_keys = OFF;
                INSERT INTO "user" (id, name, email) VALUES ('u1', 'one', 'a@x');
                INSERT INTO lvbak_id_map (user_id, original_id, table_name, new_id) VALUES ('u1', 'a', 'characters', 'a1');
                INSERT INTO lvbak_id_map_staged (user_id, original_id, table_name, new_id)
                    VALUES ('u1', 'b', 'characters', 'b1'), ('u1', 'a', 'characters', 'a2'), ('gone', 'c', 'chats', 'c1');
                "#,
            )
            .unwrap();
        migrate(&mut connection).unwrap();
        let map: Vec<(String, String, String)> = connection
            .prepare("SELECT user_id, original_id, new_id FROM lvbak_id_map ORDER BY 1, 2")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [("u1", "a", "a1"), ("u1", "b", "b1")];
        assert_eq!(map, expected.map(|(u, o, n)| (u.to_string(), o.to_string(), n.to_string())));
        assert_eq!(count(&connection, "SELECT COUNT(*) FROM lvbak_id_map_staged"), 0);
        let names: Vec<String> = columns(&connection, "lvbak_id_map_staged").into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["id", "user_id", "table_name", "pairs"]);
    }
}
