//! Users, credentials and sessions. Lumiverse's own `user` table holds the accounts (so the
//! registry tables' foreign keys are the real ones); lvbak keeps password hashes and session
//! token hashes in tables of its own.

use rusqlite::{params, OptionalExtension};

use super::{Database, DbError, DbResult};
use crate::storage::backend::{SessionUser, UserRecord};

impl Database {
    /// Creates an account; fails if the name is taken.
    pub fn create_user(&self, id: &str, username: &str, password_hash: &str, now: i64) -> DbResult<UserRecord> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let taken: bool = transaction.query_row(
                r#"SELECT EXISTS (SELECT 1 FROM "user" WHERE username = ?1)"#,
                [username],
                |row| row.get(0),
            )?;
            if taken {
                return Err(DbError::NameTaken(username.to_string()));
            }
            transaction.execute(
                r#"INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt", username, "displayUsername", role)
                   VALUES (?1, ?2, ?3, 0, ?4, ?4, ?2, ?2, 'user')"#,
                params![id, username, format!("{username}@lvbak.invalid"), now],
            )?;
            transaction.execute(
                "INSERT INTO lvbak_credentials (user_id, password_hash, updated_at) VALUES (?1, ?2, ?3)",
                params![id, password_hash, now],
            )?;
            transaction.commit()?;
            Ok(UserRecord { id: id.to_string(), username: username.to_string() })
        })
    }

    /// The account of a user name.
    pub fn user_by_name(&self, username: &str) -> DbResult<Option<UserRecord>> {
        self.read(|connection| {
            Ok(connection
                .query_row(r#"SELECT id, username FROM "user" WHERE username = ?1"#, [username], |row| {
                    Ok(UserRecord { id: row.get(0)?, username: row.get(1)? })
                })
                .optional()?)
        })
    }

    /// The account and password hash of a user name.
    pub fn credentials(&self, username: &str) -> DbResult<Option<(UserRecord, String)>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    r#"SELECT u.id, u.username, c.password_hash FROM "user" u
                       JOIN lvbak_credentials c ON c.user_id = u.id WHERE u.username = ?1"#,
                    [username],
                    |row| Ok((UserRecord { id: row.get(0)?, username: row.get(1)? }, row.get(2)?)),
                )
                .optional()?)
        })
    }

    /// Records a session by the hash of its token.
    pub fn create_session(&self, token_hash: &str, user_id: &str, now: i64, expires_at: i64) -> DbResult<()> {
        self.write(|connection| {
            // Expired sessions are swept whenever a new one starts.
            connection.execute("DELETE FROM lvbak_sessions WHERE expires_at <= ?1", [now])?;
            connection.execute(
                "INSERT INTO lvbak_sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, user_id, now, expires_at],
            )?;
            Ok(())
        })
    }

    /// The user of a live session.
    pub fn session_user(&self, token_hash: &str, now: i64) -> DbResult<Option<SessionUser>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    r#"SELECT u.id, u.username FROM lvbak_sessions s JOIN "user" u ON u.id = s.user_id
                       WHERE s.token_hash = ?1 AND s.expires_at > ?2"#,
                    params![token_hash, now],
                    |row| Ok(UserRecord { id: row.get(0)?, username: row.get(1)? }),
                )
                .optional()?)
        })
    }

    /// Ends a session.
    pub fn delete_session(&self, token_hash: &str) -> DbResult<()> {
        self.write(|connection| {
            connection.execute("DELETE FROM lvbak_sessions WHERE token_hash = ?1", [token_hash])?;
            Ok(())
        })
    }

    /// Every account name, for the CLI.
    pub fn user_names(&self) -> DbResult<Vec<String>> {
        self.read(|connection| {
            let mut statement =
                connection.prepare(r#"SELECT username FROM "user" WHERE username IS NOT NULL ORDER BY username"#)?;
            let names = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
    }
}
