//! What re-vectorization reads and writes in SQLite (the statements behind
//! `backend::EmbeddingQueue`): the SQL of each of the four kinds of rows that carry a vector
//! ([`SourceKind`]), the per-user queue of rows waiting for one (`lvbak_embedding_queue`),
//! the text each is embedded from, marking a row vectorized, and resetting a user's rows
//! when their embedding model changes. Every statement is scoped to one user, through the
//! row's own `user_id` or its parent's (a chat, a world book).

use rusqlite::{params, OptionalExtension};

use super::{Database, DbResult};
pub use crate::storage::backend::{SourceKind, SourceRow};

/// Lumiverse's desired index state of a world-book entry, as SQL (see
/// `ResetValue::WorldBookDesiredStatus`): eligible entries wait for a vector.
pub const WORLD_BOOK_DESIRED_STATUS: &str = "CASE WHEN vectorized = 1 AND disabled = 0 \
     AND length(trim(COALESCE(content, ''))) > 0 THEN 'pending' ELSE 'not_enabled' END";

/// `SET`'s assignments that make a row of `spec` wait for a vector again when an import did
/// not restore its vector (the registry's `revectorize` resets, FORMAT §3): plain SQL both
/// backends run.
pub(crate) fn revectorize_assignments(spec: &lvbak_core::registry::TableSpec) -> String {
    use lvbak_core::registry::ResetValue;
    let assignments: Vec<String> = spec
        .revectorize
        .iter()
        .map(|(column, value)| {
            let value = match value {
                ResetValue::Null => "NULL".to_string(),
                ResetValue::Integer(number) => number.to_string(),
                ResetValue::Text(text) => format!("'{}'", text.replace('\'', "''")),
                ResetValue::WorldBookDesiredStatus => WORLD_BOOK_DESIRED_STATUS.to_string(),
            };
            format!("{} = {value}", super::quoted(column))
        })
        .collect();
    assignments.join(", ")
}

/// Takes one row out of a user's queue (`?1` user, `?2` source type, `?3` row id).
const DEQUEUE: &str = "DELETE FROM lvbak_embedding_queue WHERE user_id = ?1 AND source = ?2 AND row_id = ?3";

/// The SQL of each kind of row: its owner, when it waits, what is read, marked and reset.
trait KindSql {
    fn owned_from(self) -> &'static str;
    fn pending(self) -> &'static str;
    fn columns(self) -> &'static str;
    fn mark(self) -> &'static str;
    fn reset(self) -> String;
    fn owner_check(self) -> &'static str;
    fn owned_ids(self) -> String;
}

impl KindSql for SourceKind {
    /// `FROM … WHERE` joining the row (alias `r`) to its owner, the user being `?1`.
    fn owned_from(self) -> &'static str {
        match self {
            Self::ChatChunk => "chat_chunks r JOIN chats p ON p.id = r.chat_id WHERE p.user_id = ?1",
            Self::MemoryConsolidation => {
                "memory_consolidations r JOIN chats p ON p.id = r.chat_id WHERE p.user_id = ?1"
            }
            Self::DatabankChunk => "databank_chunks r WHERE r.user_id = ?1",
            Self::WorldBookEntry => {
                "world_book_entries r JOIN world_books p ON p.id = r.world_book_id WHERE p.user_id = ?1"
            }
        }
    }

    /// The condition of a row that waits for a vector.
    fn pending(self) -> &'static str {
        match self {
            Self::WorldBookEntry => {
                "r.vector_index_status = 'pending' AND r.vectorized = 1 AND r.disabled = 0 \
                 AND length(trim(COALESCE(r.content, ''))) > 0"
            }
            Self::MemoryConsolidation => "r.vectorized_at IS NULL AND length(trim(COALESCE(r.summary, ''))) > 0",
            _ => "r.vectorized_at IS NULL AND length(trim(COALESCE(r.content, ''))) > 0",
        }
    }

    /// The columns read to embed a row: id, owner id, text, then kind-specific ones.
    fn columns(self) -> &'static str {
        match self {
            Self::ChatChunk => "r.id, r.chat_id, r.content, r.token_count, NULL, NULL, NULL",
            Self::MemoryConsolidation => "r.id, r.chat_id, r.summary, r.token_count, r.title, NULL, NULL",
            Self::DatabankChunk => "r.id, r.databank_id, r.content, r.token_count, r.metadata, NULL, NULL",
            Self::WorldBookEntry => "r.id, r.world_book_id, r.content, NULL, r.comment, r.key, r.keysecondary",
        }
    }

    /// `SET …` marking a row vectorized (`?3` the time, `?4` the model).
    fn mark(self) -> &'static str {
        match self {
            Self::WorldBookEntry => {
                "vector_index_status = 'indexed', vector_indexed_at = ?3, vector_index_error = NULL"
            }
            _ => "vectorized_at = ?3, vector_model = ?4",
        }
    }

    /// `SET …` making every row wait for a vector again.
    fn reset(self) -> String {
        match self {
            Self::WorldBookEntry => {
                format!("vector_index_status = {WORLD_BOOK_DESIRED_STATUS}, vector_indexed_at = NULL")
            }
            _ => "vectorized_at = NULL, vector_model = NULL".to_string(),
        }
    }

    /// That the row of the statement's table is the user's (`?1`), checked through its own
    /// or its parent's `user_id` for that row alone.
    fn owner_check(self) -> &'static str {
        match self {
            Self::ChatChunk => "EXISTS (SELECT 1 FROM chats p WHERE p.id = chat_chunks.chat_id AND p.user_id = ?1)",
            Self::MemoryConsolidation => {
                "EXISTS (SELECT 1 FROM chats p WHERE p.id = memory_consolidations.chat_id AND p.user_id = ?1)"
            }
            Self::DatabankChunk => "user_id = ?1",
            Self::WorldBookEntry => {
                "EXISTS (SELECT 1 FROM world_books p WHERE p.id = world_book_entries.world_book_id AND p.user_id = ?1)"
            }
        }
    }

    /// `id IN (…)` of the user's rows of this kind, for UPDATEs.
    fn owned_ids(self) -> String {
        format!("id IN (SELECT r.id FROM {})", self.owned_from())
    }
}

/// The SQL (`?1` the row's id) telling whether a row of `kind` waits for a vector: such a
/// row gets its vector from a re-vectorization run, never from an import (which would race
/// the run and leave two).
pub fn pending_row_sql(kind: SourceKind) -> String {
    format!("SELECT EXISTS (SELECT 1 FROM {} r WHERE r.id = ?1 AND {})", kind.table(), kind.pending())
}

impl Database {
    /// Queues the user's rows of `kinds` that wait for a vector; how many are queued now.
    pub fn queue_pending_embeddings(&self, user_id: &str, kinds: &[SourceKind]) -> DbResult<u64> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for kind in kinds {
                let sql = format!(
                    "INSERT OR IGNORE INTO lvbak_embedding_queue (user_id, source, row_id)
                     SELECT ?1, ?2, r.id FROM {} AND {}",
                    kind.owned_from(),
                    kind.pending()
                );
                transaction.execute(&sql, params![user_id, kind.source_type()])?;
            }
            transaction.commit()?;
            Ok(())
        })?;
        self.queued_embeddings(user_id)
    }

    /// How many rows of the user wait in the queue.
    pub fn queued_embeddings(&self, user_id: &str) -> DbResult<u64> {
        self.read(|connection| {
            Ok(connection.query_row(
                "SELECT count(*) FROM lvbak_embedding_queue WHERE user_id = ?1",
                [user_id],
                |row| row.get::<_, i64>(0),
            )? as u64)
        })
    }

    /// Users with rows in the queue (runs to resume after a restart).
    pub fn users_with_queued_embeddings(&self) -> DbResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare("SELECT DISTINCT user_id FROM lvbak_embedding_queue")?;
            let users = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(users)
        })
    }

    /// Up to `limit` queued rows of the user with their text. Queue entries whose row is
    /// gone, no longer the user's, or no longer waiting are dropped on the way.
    /// `after` is the (source type, id) of the last row a run took, so that rows it holds
    /// but has not marked yet are not handed out again.
    pub fn next_embedding_sources(
        &self,
        user_id: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> DbResult<Vec<SourceRow>> {
        let (after_source, after_id) = after.unwrap_or(("", ""));
        let queued: Vec<(String, String, bool)> = self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT source, row_id, written FROM lvbak_embedding_queue
                 WHERE user_id = ?1 AND (source, row_id) > (?2, ?3) ORDER BY source, row_id LIMIT ?4",
            )?;
            let rows = statement
                .query_map(params![user_id, after_source, after_id, limit as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        let mut found = Vec::with_capacity(queued.len());
        let mut stale = Vec::new();
        self.read(|connection| {
            for (source, row_id, written) in &queued {
                let Some(kind) = SourceKind::from_source_type(source) else {
                    stale.push((source.clone(), row_id.clone()));
                    continue;
                };
                let sql = format!(
                    "SELECT {} FROM {} AND r.id = ?2 AND {}",
                    kind.columns(),
                    kind.owned_from(),
                    kind.pending()
                );
                let row = connection
                    .prepare_cached(&sql)?
                    .query_row(params![user_id, row_id], |row| {
                        Ok(SourceRow {
                            kind,
                            id: row.get(0)?,
                            owner_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            text: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            token_count: row.get(3)?,
                            label: row.get(4)?,
                            keys: row.get(5)?,
                            secondary_keys: row.get(6)?,
                            written: *written,
                        })
                    })
                    .optional()?;
                match row {
                    Some(row) => found.push(row),
                    None => stale.push((source.clone(), row_id.clone())),
                }
            }
            Ok(())
        })?;
        if !stale.is_empty() {
            self.write(|connection| {
                let transaction = connection.transaction()?;
                for (source, row_id) in &stale {
                    transaction.execute(DEQUEUE, params![user_id, source, row_id])?;
                }
                transaction.commit()?;
                Ok(())
            })?;
        }
        Ok(found)
    }

    /// Records that the rows' vectors are about to be written (before LanceDB is touched).
    pub fn mark_writing(&self, user_id: &str, rows: &[(SourceKind, String)]) -> DbResult<()> {
        self.write(|connection| {
            let transaction = connection.transaction()?;
            for (kind, id) in rows {
                transaction
                    .prepare_cached(
                        "UPDATE lvbak_embedding_queue SET written = 1 WHERE user_id = ?1 AND source = ?2 AND row_id = ?3",
                    )?
                    .execute(params![user_id, kind.source_type(), id])?;
            }
            transaction.commit()?;
            Ok(())
        })
    }

    /// Marks rows vectorized by `model` at `now` and takes them out of the queue, in one
    /// transaction (their vectors are already written).
    pub fn mark_embedded(&self, user_id: &str, rows: &[(SourceKind, String)], model: &str, now: i64) -> DbResult<()> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (kind, id) in rows {
                let sql =
                    format!("UPDATE {} SET {} WHERE id = ?2 AND {}", kind.table(), kind.mark(), kind.owner_check());
                let mut statement = transaction.prepare_cached(&sql)?;
                match kind {
                    SourceKind::WorldBookEntry => statement.execute(params![user_id, id, now])?,
                    _ => statement.execute(params![user_id, id, now, model])?,
                };
                drop(statement);
                transaction.execute(DEQUEUE, params![user_id, kind.source_type(), id])?;
            }
            transaction.commit()?;
            Ok(())
        })
    }

    /// Makes every row of the user wait for a vector again (their model changed) and
    /// empties their queue; how many rows were reset.
    pub fn reset_embeddings(&self, user_id: &str) -> DbResult<u64> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut reset = 0;
            for kind in SourceKind::ALL {
                let sql = format!("UPDATE {} SET {} WHERE {}", kind.table(), kind.reset(), kind.owned_ids());
                reset += transaction.execute(&sql, [user_id])? as u64;
            }
            transaction.execute("DELETE FROM lvbak_embedding_queue WHERE user_id = ?1", [user_id])?;
            transaction.commit()?;
            Ok(reset)
        })
    }

    /// Writes one setting of the user (insert or replace).
    pub fn put_setting(&self, user_id: &str, key: &str, value: &str, now: i64) -> DbResult<()> {
        self.write(|connection| {
            connection.execute(
                "INSERT INTO settings (key, value, updated_at, user_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key, user_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![key, value, now, user_id],
            )?;
            Ok(())
        })
    }

    /// Removes one secret of the user; whether it existed.
    pub fn delete_secret(&self, user_id: &str, key: &str) -> DbResult<bool> {
        self.write(|connection| {
            connection.execute("DELETE FROM lvbak_key_endpoints WHERE key = ?1 AND user_id = ?2", [key, user_id])?;
            Ok(connection.execute("DELETE FROM secrets WHERE key = ?1 AND user_id = ?2", [key, user_id])? > 0)
        })
    }
}
