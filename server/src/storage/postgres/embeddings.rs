//! [`EmbeddingQueue`] over PostgreSQL — re-vectorization's queue (`lvbak_embedding_queue`),
//! the four kinds of rows that carry a vector, marking them vectorized and resetting them —
//! with the same statements as SQLite's (`sqlite::embeddings`), each scoped to one account
//! through the row's own `user_id` or its parent's (a chat, a world book); and
//! [`PostgresStores::rows_usage_by_user`], what every account's rows count for against its
//! quota by SQLite's formula (`sqlite::charge::RowCharge`).
//!
//! Values kept in `lvbak_odd` are not looked at by the queue: the typed columns decide
//! whether a row waits for a vector (a value SQLite would keep of another class reads as
//! NULL here). Marking and resetting a row take the columns they set out of `lvbak_odd`, so
//! the typed value they write is the one read back.
//!
//! Concurrency. SQLite runs every write of the queue one after another (its one writer);
//! nodes sharing PostgreSQL do not, so:
//! - every write to an account's queue (queueing, `mark_writing`, `mark_embedded`, reset)
//!   takes a transaction-scoped advisory lock of that account's first (`lock_queue`):
//!   one account's writes follow one another as they do in SQLite, so two nodes marking
//!   the same rows in different orders wait instead of deadlocking, and a reset never
//!   interleaves with a mark; other accounts never wait.
//! - a row leaves the queue in the transaction that marks it, and `mark_embedded` deletes
//!   the queue entries before it touches the rows; `next_embedding_sources` reads the queue
//!   `FOR SHARE SKIP LOCKED`, so an entry whose mark (or `mark_writing`) is in flight on
//!   another node is passed over rather than handed out a moment before it is done, and one
//!   already marked is gone. Reads never wait for a writer, as SQLite's (WAL) do not.
//! - like SQLite's, the queue hands rows out without claiming them (a run keeps its place
//!   with `after`; rows stay queued until marked): two runs of one account at once may be
//!   handed the same rows, as two runs over SQLite would. One run per account is the
//!   runner's rule (`embeddings::runs`), not this table's.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use lvbak_core::registry::{table_spec, Ownership, TABLES};
use serde_json::Value;
use tokio_postgres::GenericClient;

use super::row_tables::ODD_COLUMN;
use super::{unsigned, values, PostgresStores};
use crate::storage::backend::{EmbeddingQueue, SourceKind, SourceRow};
use crate::storage::sqlite::embeddings::WORLD_BOOK_DESIRED_STATUS;
use crate::storage::sqlite::schema::{self, Affinity, StoredValue};
use crate::storage::sqlite::{quoted, DbError, DbResult};

/// The seed of the advisory lock key of an account's queue (`hashtextextended(user, seed)`),
/// apart from the keys other per-account locks hash to (`prepared` uses seed 0).
const QUEUE_LOCK_SEED: i64 = 0x6c76_6261_6b00_0022;

/// Rows `rows_usage_by_user` reads at a time.
const USAGE_CHUNK_ROWS: i32 = 2_000;

/// The SQL of each kind of row, PostgreSQL's spelling of `sqlite::embeddings`' `KindSql`.
trait KindSql {
    fn owned_from(self) -> &'static str;
    fn pending(self) -> &'static str;
    fn columns(self) -> &'static str;
    fn mark(self) -> &'static str;
    fn marked_columns(self) -> &'static str;
    fn reset(self) -> String;
    fn reset_columns(self) -> &'static str;
}

impl KindSql for SourceKind {
    /// `FROM … WHERE` joining the row (alias `r`) to its owner, the account being `$1`.
    fn owned_from(self) -> &'static str {
        match self {
            Self::ChatChunk => "chat_chunks r JOIN chats p ON p.id = r.chat_id WHERE p.user_id = $1",
            Self::MemoryConsolidation => {
                "memory_consolidations r JOIN chats p ON p.id = r.chat_id WHERE p.user_id = $1"
            }
            Self::DatabankChunk => "databank_chunks r WHERE r.user_id = $1",
            Self::WorldBookEntry => {
                "world_book_entries r JOIN world_books p ON p.id = r.world_book_id WHERE p.user_id = $1"
            }
        }
    }

    /// The condition of a row that waits for a vector (`trim` takes spaces only, as SQLite's).
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

    /// The columns read to embed a row: id, owner id, text, token count, label, keys.
    fn columns(self) -> &'static str {
        match self {
            Self::ChatChunk => "r.id, r.chat_id, r.content, r.token_count, NULL::text, NULL::text, NULL::text",
            Self::MemoryConsolidation => "r.id, r.chat_id, r.summary, r.token_count, r.title, NULL::text, NULL::text",
            Self::DatabankChunk => "r.id, r.databank_id, r.content, r.token_count, r.metadata, NULL::text, NULL::text",
            Self::WorldBookEntry => "r.id, r.world_book_id, r.content, NULL::bigint, r.comment, r.key, r.keysecondary",
        }
    }

    /// `SET …` marking a row vectorized (`$3` the time, `$4` the model for chunks).
    fn mark(self) -> &'static str {
        match self {
            Self::WorldBookEntry => {
                "vector_index_status = 'indexed', vector_indexed_at = $3, vector_index_error = NULL"
            }
            _ => "vectorized_at = $3, vector_model = $4::text",
        }
    }

    /// The columns [`Self::mark`] sets, as a PostgreSQL array of text.
    fn marked_columns(self) -> &'static str {
        match self {
            Self::WorldBookEntry => "'{vector_index_status,vector_indexed_at,vector_index_error}'",
            _ => "'{vectorized_at,vector_model}'",
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

    /// The columns [`Self::reset`] sets.
    fn reset_columns(self) -> &'static str {
        match self {
            Self::WorldBookEntry => "'{vector_index_status,vector_indexed_at}'",
            _ => "'{vectorized_at,vector_model}'",
        }
    }
}

/// `lvbak_odd` without the entries of `columns` (a text array literal), NULL when empty.
fn odd_without(columns: &str) -> String {
    format!("{ODD_COLUMN} = NULLIF({ODD_COLUMN} - {columns}::text[], '{{}}'::jsonb)")
}

/// Waits for the account's queue: what SQLite's one writer does for every write (see the
/// module's notes), for the rest of `transaction`.
async fn lock_queue(transaction: &tokio_postgres::Transaction<'_>, user_id: &str) -> DbResult<()> {
    transaction
        .execute("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", &[&user_id, &QUEUE_LOCK_SEED])
        .await?;
    Ok(())
}

/// The ids of `rows` per kind, each once and sorted (one statement per kind takes them all).
fn ids_by_kind(rows: &[(SourceKind, String)]) -> BTreeMap<SourceKind, Vec<String>> {
    let mut by_kind: BTreeMap<SourceKind, Vec<String>> = BTreeMap::new();
    for (kind, id) in rows {
        by_kind.entry(*kind).or_default().push(id.clone());
    }
    for ids in by_kind.values_mut() {
        ids.sort();
        ids.dedup();
    }
    by_kind
}

#[async_trait]
impl EmbeddingQueue for PostgresStores {
    async fn queue_pending_embeddings(&self, user_id: &str, kinds: &[SourceKind]) -> DbResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        lock_queue(&transaction, user_id).await?;
        for kind in kinds {
            let sql = format!(
                "INSERT INTO lvbak_embedding_queue (user_id, source, row_id)
                 SELECT $1, $2::text, r.id FROM {} AND {} ON CONFLICT DO NOTHING",
                kind.owned_from(),
                kind.pending()
            );
            transaction.execute(&sql, &[&user_id, &kind.source_type()]).await?;
        }
        let queued = count_queued(&*transaction, user_id).await?;
        transaction.commit().await?;
        Ok(queued)
    }

    async fn queued_embeddings(&self, user_id: &str) -> DbResult<u64> {
        count_queued(&**self.client().await?, user_id).await
    }

    async fn users_with_queued_embeddings(&self) -> DbResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client.query("SELECT DISTINCT user_id FROM lvbak_embedding_queue ORDER BY user_id", &[]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn next_embedding_sources(
        &self,
        user_id: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> DbResult<Vec<SourceRow>> {
        let (after_source, after_id) = after.unwrap_or(("", ""));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // Held until the rows are read: an entry being marked elsewhere is passed over (see
        // the module's notes).
        let queued: Vec<(String, String, bool)> = transaction
            .query(
                "SELECT source, row_id, written <> 0 FROM lvbak_embedding_queue
                 WHERE user_id = $1 AND (source, row_id) > ($2, $3) ORDER BY source, row_id LIMIT $4
                 FOR SHARE SKIP LOCKED",
                &[&user_id, &after_source, &after_id, &limit],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let mut wanted: BTreeMap<SourceKind, Vec<String>> = BTreeMap::new();
        for (source, row_id, _) in &queued {
            if let Some(kind) = SourceKind::from_source_type(source) {
                wanted.entry(kind).or_default().push(row_id.clone());
            }
        }
        let mut read: HashMap<(SourceKind, String), SourceRow> = HashMap::new();
        for (kind, ids) in &wanted {
            let sql = format!(
                "SELECT {} FROM {} AND r.id = ANY($2) AND {}",
                kind.columns(),
                kind.owned_from(),
                kind.pending()
            );
            for row in transaction.query(&sql, &[&user_id, ids]).await? {
                let source = SourceRow {
                    kind: *kind,
                    id: row.get(0),
                    owner_id: row.get::<_, Option<String>>(1).unwrap_or_default(),
                    text: row.get::<_, Option<String>>(2).unwrap_or_default(),
                    token_count: row.get(3),
                    label: row.get(4),
                    keys: row.get(5),
                    secondary_keys: row.get(6),
                    written: false,
                };
                read.insert((*kind, source.id.clone()), source);
            }
        }
        let mut found = Vec::with_capacity(queued.len());
        let mut stale: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (source, row_id, written) in queued {
            let row = SourceKind::from_source_type(&source).and_then(|kind| read.remove(&(kind, row_id.clone())));
            match row {
                Some(row) => found.push(SourceRow { written, ..row }),
                None => stale.entry(source).or_default().push(row_id),
            }
        }
        // Entries whose row is gone, not the account's or not waiting leave the queue, still
        // so when deleted; one another transaction holds is left for a later call (SKIP
        // LOCKED: this never waits, so never deadlocks with a mark).
        for (source, ids) in &stale {
            let still_stale = match SourceKind::from_source_type(source) {
                Some(kind) => format!(
                    "AND NOT EXISTS (SELECT 1 FROM {} AND r.id = q.row_id AND {})",
                    kind.owned_from(),
                    kind.pending()
                ),
                None => String::new(),
            };
            let sql = format!(
                "DELETE FROM lvbak_embedding_queue WHERE user_id = $1 AND source = $2 AND row_id IN (
                     SELECT q.row_id FROM lvbak_embedding_queue q
                     WHERE q.user_id = $1 AND q.source = $2 AND q.row_id = ANY($3) {still_stale}
                     FOR UPDATE SKIP LOCKED)"
            );
            transaction.execute(&sql, &[&user_id, source, ids]).await?;
        }
        transaction.commit().await?;
        Ok(found)
    }

    async fn mark_writing(&self, user_id: &str, rows: &[(SourceKind, String)]) -> DbResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        lock_queue(&transaction, user_id).await?;
        for (kind, ids) in ids_by_kind(rows) {
            transaction
                .execute(
                    "UPDATE lvbak_embedding_queue SET written = 1
                     WHERE user_id = $1 AND source = $2 AND row_id = ANY($3)",
                    &[&user_id, &kind.source_type(), &ids],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn mark_embedded(&self, user_id: &str, rows: &[(SourceKind, String)], model: &str, now: i64) -> DbResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        lock_queue(&transaction, user_id).await?;
        for (kind, ids) in ids_by_kind(rows) {
            // The entries first: from here a concurrent `next_embedding_sources` passes them over.
            transaction
                .execute(
                    "DELETE FROM lvbak_embedding_queue WHERE user_id = $1 AND source = $2 AND row_id = ANY($3)",
                    &[&user_id, &kind.source_type(), &ids],
                )
                .await?;
            // As SQLite's: the account's rows named are marked, queued or not.
            let sql = format!(
                "UPDATE {table} SET {mark}, {odd} WHERE id IN (SELECT r.id FROM {owned} AND r.id = ANY($2))",
                table = kind.table(),
                mark = kind.mark(),
                odd = odd_without(kind.marked_columns()),
                owned = kind.owned_from(),
            );
            match kind {
                SourceKind::WorldBookEntry => transaction.execute(&sql, &[&user_id, &ids, &now]).await?,
                _ => transaction.execute(&sql, &[&user_id, &ids, &now, &model]).await?,
            };
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn reset_embeddings(&self, user_id: &str) -> DbResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        lock_queue(&transaction, user_id).await?;
        // The queue first, as `mark_embedded` does: the two meet their locks in one order.
        transaction.execute("DELETE FROM lvbak_embedding_queue WHERE user_id = $1", &[&user_id]).await?;
        let mut reset = 0;
        for kind in SourceKind::ALL {
            let sql = format!(
                "UPDATE {table} SET {set}, {odd} WHERE id IN (SELECT r.id FROM {owned})",
                table = kind.table(),
                set = kind.reset(),
                odd = odd_without(kind.reset_columns()),
                owned = kind.owned_from(),
            );
            reset += transaction.execute(&sql, &[&user_id]).await?;
        }
        transaction.commit().await?;
        Ok(reset)
    }
}

/// How many rows of the account wait in the queue.
async fn count_queued(client: &(impl GenericClient + Sync), user_id: &str) -> DbResult<u64> {
    let row = client.query_one("SELECT count(*) FROM lvbak_embedding_queue WHERE user_id = $1", &[&user_id]).await?;
    Ok(unsigned(row.get(0)))
}

/// A real as the charge takes it: every real counts alike in SQLite (9 bytes), so infinity,
/// which JSON cannot carry, stands as the largest finite one; SQLite stores NaN as NULL.
fn real_value(real: f64) -> Value {
    Value::from(if real.is_infinite() { f64::MAX.copysign(real) } else { real })
}

/// What is selected of a column `name` of `affinity` for the charge: a text's length in
/// bytes (its charge depends on nothing else, so the text itself is not sent), numbers as
/// they are.
fn charged_select(affinity: Affinity, name: &str) -> String {
    match affinity {
        Affinity::Text => format!("octet_length(r.{})::bigint", quoted(name)),
        Affinity::Integer | Affinity::Real => format!("r.{}", quoted(name)),
    }
}

/// The value the charge is computed from, read from column `index` of a row selected by
/// [`charged_select`] (a text of the same length in bytes stands for a text).
fn charged_value(affinity: Affinity, row: &tokio_postgres::Row, index: usize) -> Option<Value> {
    match affinity {
        Affinity::Text => row
            .get::<_, Option<i64>>(index)
            .map(|length| Value::String(" ".repeat(usize::try_from(length).unwrap_or(0)))),
        Affinity::Integer => row.get::<_, Option<i64>>(index).map(Value::from),
        Affinity::Real => row.get::<_, Option<f64>>(index).map(real_value),
    }
}

/// A value of `lvbak_odd` as the charge takes it.
fn odd_value(value: StoredValue) -> Option<Value> {
    match value {
        StoredValue::Null => None,
        StoredValue::Integer(integer) => Some(Value::from(integer)),
        StoredValue::Real(real) => Some(real_value(real)),
        StoredValue::Text(text) => Some(Value::String(text)),
    }
}

impl PostgresStores {
    /// What every account's rows and secrets count for against its quota, by the formula
    /// SQLite's recount uses (`sqlite::Database::rows_usage_by_user`): each registry row
    /// charged by `RowCharge` as SQLite's migrations shape its table (its record and an
    /// entry per full index, values as SQLite would store them, those in `lvbak_odd`
    /// included), owned through its own or its parent's owner column; a secret by the
    /// characters of its parts and 64. One reading of the database (a repeatable-read
    /// transaction), rows read a chunk at a time, texts as their lengths.
    pub(crate) async fn rows_usage_by_user(&self) -> DbResult<HashMap<String, u64>> {
        let shapes = tokio::task::spawn_blocking(schema::shapes)
            .await
            .map_err(|stopped| DbError::Invalid(format!("reading SQLite's table shapes stopped: {stopped}")))??;
        let mut client = self.client().await?;
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut usage: HashMap<String, u64> = HashMap::new();
        for spec in TABLES {
            let shape = shapes.table(spec.name)?;
            let charge = shapes
                .charges
                .get(spec.name)
                .ok_or_else(|| DbError::Invalid(format!("{}: no charge of the table", spec.name)))?;
            let (owner, join) = match spec.ownership {
                Ownership::Direct { column } => (format!("r.{}", quoted(column)), String::new()),
                Ownership::Parent { parent_table, column } => {
                    let parent_owner = match table_spec(parent_table).map(|parent| parent.ownership) {
                        Some(Ownership::Direct { column }) => column,
                        _ => "user_id",
                    };
                    (
                        format!("p.{}", quoted(parent_owner)),
                        format!("JOIN {} p ON p.id = r.{}", quoted(parent_table), quoted(column)),
                    )
                }
            };
            let selected: Vec<String> =
                shape.columns.iter().map(|column| charged_select(column.affinity, &column.name)).collect();
            let sql = format!(
                "SELECT {owner}::text, r.{ODD_COLUMN}::text, {selected} FROM {table} AS r {join} WHERE {owner} IS NOT NULL",
                selected = selected.join(", "),
                table = quoted(spec.name),
            );
            let portal = transaction.bind(sql.as_str(), &[]).await?;
            loop {
                let rows = transaction.query_portal(&portal, USAGE_CHUNK_ROWS).await?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let mut values: Vec<Option<Value>> = shape
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(index, column)| charged_value(column.affinity, row, index + 2))
                        .collect();
                    if let Some(odd) = row.get::<_, Option<String>>(1) {
                        for (name, value) in values::read_odd(&odd) {
                            if let Some(place) = shape.columns.iter().position(|column| column.name == name) {
                                values[place] = odd_value(value);
                            }
                        }
                    }
                    *usage.entry(row.get(0)).or_default() += charge.bytes(&values);
                }
            }
        }
        let secrets = transaction
            .query(
                "SELECT user_id::text, SUM(length(key)::bigint + length(encrypted_value) + length(iv) + length(tag) + 64)::bigint
                 FROM secrets WHERE user_id IS NOT NULL GROUP BY user_id",
                &[],
            )
            .await?;
        for row in secrets {
            *usage.entry(row.get(0)).or_default() += unsigned(row.get(1));
        }
        transaction.commit().await?;
        Ok(usage)
    }
}

/// Both backends given the same rows and the same calls answer alike (SQLite's answers are
/// the reference), each account's calls leave the other's rows alone, both count the same
/// rows at the same bytes, and two nodes working one account's queue at once never hand
/// out a row already marked, nor fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Map};

    use super::*;
    use crate::config::HostingLimits;
    use crate::storage::backend::AccountStore;
    use crate::storage::sqlite::{Database, SqliteStores};
    use crate::test_support::postgres_cluster::{test_database, TestDatabase};
    use crate::test_support::{test_state, TestState};

    const ALICE: &str = "id-alice";
    const BOB: &str = "id-bob";

    #[derive(Clone, Copy, Debug)]
    enum Side {
        Sqlite,
        Postgres,
    }

    /// A SQLite data directory and a fresh PostgreSQL database, each with alice and bob.
    struct Both {
        sqlite: TestState,
        postgres: PostgresStores,
        database: TestDatabase,
    }

    impl Both {
        async fn new(label: &str) -> Self {
            let sqlite = test_state(label, HostingLimits::default()).await;
            let database = test_database().await;
            let postgres = PostgresStores::connect(database.config.clone()).await.unwrap();
            for (id, name) in [(ALICE, "alice"), (BOB, "bob")] {
                sqlite.state.store().db.create_user(id, name, "hash", 1).unwrap();
                AccountStore::create_user(&postgres, id, name, "hash", 1).await.unwrap();
            }
            Self { sqlite, postgres, database }
        }

        fn db(&self) -> Arc<Database> {
            self.sqlite.state.store().db.clone()
        }

        fn queue(&self, side: Side) -> Arc<dyn EmbeddingQueue> {
            match side {
                Side::Sqlite => Arc::new(SqliteStores::new(self.db())),
                Side::Postgres => Arc::new(self.postgres.clone()),
            }
        }

        async fn insert_into(&self, side: Side, table: &str, rows: &[Value]) {
            match side {
                Side::Sqlite => {
                    let rows: Vec<Map<String, Value>> =
                        rows.iter().map(|row| row.as_object().unwrap().clone()).collect();
                    self.db().insert_json_rows(table, &rows).unwrap();
                }
                Side::Postgres => self.postgres.insert_json_rows(table, rows).await.unwrap(),
            }
        }

        /// The same rows into both.
        async fn insert(&self, table: &str, rows: &[Value]) {
            self.insert_into(Side::Sqlite, table, rows).await;
            self.insert_into(Side::Postgres, table, rows).await;
        }

        /// The row's re-vectorization columns (and its odd values, on PostgreSQL), as stored.
        async fn state(&self, side: Side, table: &str, id: &str) -> Value {
            let row: Map<String, Value> = match side {
                Side::Sqlite => self.db().rows_where(table, "id", id).unwrap().pop().unwrap(),
                Side::Postgres => {
                    let client = self.postgres.client().await.unwrap();
                    let sql = format!("SELECT to_jsonb(r)::text FROM {} r WHERE id = $1", quoted(table));
                    let text: String = client.query_one(&sql, &[&id]).await.unwrap().get(0);
                    let Value::Object(mut row) = serde_json::from_str(&text).unwrap() else { panic!("{text}") };
                    let odd = row.remove(ODD_COLUMN).unwrap();
                    assert!(odd.is_null(), "{table} {id}: odd values left behind: {odd}");
                    row
                }
            };
            let columns = [
                "vectorized_at",
                "vector_model",
                "vector_index_status",
                "vector_indexed_at",
                "vector_index_error",
                "content",
            ];
            Value::Object(
                columns.iter().filter_map(|column| Some((column.to_string(), row.get(*column)?.clone()))).collect(),
            )
        }
    }

    fn chat(id: &str, user: Option<&str>) -> Value {
        json!({"id": id, "character_id": null, "user_id": user, "name": id, "metadata": "{}",
               "created_at": 1, "updated_at": 1})
    }

    fn chunk(id: &str, chat: &str, content: &str, vectorized_at: Option<i64>) -> Value {
        json!({"id": id, "chat_id": chat, "start_message_id": "m", "end_message_id": "m", "message_ids": "[]",
               "content": content, "token_count": 3, "message_count": 1, "created_at": 1, "updated_at": 1,
               "vectorized_at": vectorized_at, "vector_model": vectorized_at.map(|_| "old")})
    }

    fn entry(id: &str, book: &str, content: &str, vectorized: i64, disabled: i64, status: &str) -> Value {
        json!({"id": id, "world_book_id": book, "uid": id, "content": content, "comment": format!("about {id}"),
               "key": "[\"k\"]", "keysecondary": "[]", "vectorized": vectorized, "disabled": disabled,
               "vector_index_status": status, "vector_indexed_at": 3, "vector_index_error": "earlier",
               "created_at": 1, "updated_at": 1})
    }

    /// Every kind of row, for alice and bob: some waiting, some blank, some done.
    async fn queue_rows(both: &Both) {
        both.insert("chats", &[chat("chat-a", Some(ALICE)), chat("chat-b", Some(BOB))]).await;
        both.insert(
            "chat_chunks",
            &[
                chunk("chunk-a1", "chat-a", "first of alice", None),
                // Before "chunk-a1" bytewise, after it in a natural-language order.
                chunk("chunk-B2", "chat-a", "second of alice", None),
                chunk("chunk-a3", "chat-a", "   ", None),
                chunk("chunk-a4", "chat-a", "done already", Some(7)),
                chunk("chunk-b1", "chat-b", "bob's", None),
            ],
        )
        .await;
        let memory = |id: &str, chat: &str, summary: &str| {
            json!({"id": id, "chat_id": chat, "title": format!("title of {id}"), "summary": summary,
                   "token_count": 12, "created_at": 1, "updated_at": 1})
        };
        both.insert(
            "memory_consolidations",
            &[
                memory("mem-a1", "chat-a", "a memory"),
                memory("mem-a2", "chat-a", ""),
                memory("mem-b1", "chat-b", "bob's"),
            ],
        )
        .await;
        both.insert(
            "world_books",
            &[
                json!({"id": "book-a", "name": "a", "user_id": ALICE}),
                json!({"id": "book-b", "name": "b", "user_id": BOB}),
            ],
        )
        .await;
        both.insert(
            "world_book_entries",
            &[
                entry("entry-a1", "book-a", "lore", 1, 0, "pending"),
                entry("entry-a2", "book-a", "not vectorized", 0, 0, "pending"),
                entry("entry-a3", "book-a", "indexed", 1, 0, "indexed"),
                entry("entry-a4", "book-a", "disabled", 1, 1, "pending"),
                entry("entry-b1", "book-b", "bob's lore", 1, 0, "pending"),
            ],
        )
        .await;
        let bank = |id: &str, user: &str| json!({"id": id, "user_id": user, "name": id, "scope": "global", "created_at": 1, "updated_at": 1});
        both.insert("databanks", &[bank("bank-a", ALICE), bank("bank-b", BOB)]).await;
        let document = |id: &str, bank: &str, user: &str| {
            json!({"id": id, "databank_id": bank, "user_id": user, "name": id, "slug": id, "file_path": id,
                   "created_at": 1, "updated_at": 1})
        };
        both.insert("databank_documents", &[document("doc-a", "bank-a", ALICE), document("doc-b", "bank-b", BOB)])
            .await;
        let piece = |id: &str, document: &str, bank: &str, user: &str| {
            json!({"id": id, "document_id": document, "databank_id": bank, "user_id": user, "chunk_index": 0,
                   "content": format!("fact of {id}"), "token_count": 4, "metadata": "{\"page\":1}", "created_at": 1})
        };
        both.insert(
            "databank_chunks",
            &[piece("bank-a1", "doc-a", "bank-a", ALICE), piece("bank-b1", "doc-b", "bank-b", BOB)],
        )
        .await;
    }

    /// The rows whose state the transcript records, alice's and bob's.
    const WATCHED: &[(&str, &str)] = &[
        ("chat_chunks", "chunk-a1"),
        ("chat_chunks", "chunk-a4"),
        ("memory_consolidations", "mem-a1"),
        ("world_book_entries", "entry-a1"),
        ("world_book_entries", "entry-a2"),
        ("world_book_entries", "entry-a3"),
        ("world_book_entries", "entry-a4"),
        ("databank_chunks", "bank-a1"),
    ];
    const BOBS: &[(&str, &str)] = &[
        ("chat_chunks", "chunk-b1"),
        ("memory_consolidations", "mem-b1"),
        ("world_book_entries", "entry-b1"),
        ("databank_chunks", "bank-b1"),
    ];

    fn ids(rows: &[SourceRow]) -> Vec<(&'static str, &str, bool)> {
        rows.iter().map(|row| (row.kind.source_type(), row.id.as_str(), row.written)).collect()
    }

    /// One backend's answers to the queue's calls, with what each call must answer on its
    /// own; bob's rows are the same at the end as at the start.
    async fn transcript(both: &Both, side: Side) -> Vec<String> {
        use SourceKind::*;
        let queue = both.queue(side);
        let mut seen = Vec::new();
        let mut record = |step: &str, answer: String| seen.push(format!("{step}: {answer}"));
        let mut bobs_before = Vec::new();
        for (table, id) in BOBS {
            bobs_before.push(both.state(side, table, id).await);
        }

        let queued = queue.queue_pending_embeddings(ALICE, &[ChatChunk, WorldBookEntry]).await.unwrap();
        assert_eq!(queued, 3, "{side:?}: chunk-a1, chunk-B2, entry-a1");
        record("queue chunks and entries", queued.to_string());
        let queued = queue.queue_pending_embeddings(ALICE, &SourceKind::ALL).await.unwrap();
        assert_eq!(queued, 5, "{side:?}: and mem-a1, bank-a1, once each");
        record("queue all", queued.to_string());
        let queued = queue.queue_pending_embeddings(BOB, &[DatabankChunk, ChatChunk]).await.unwrap();
        assert_eq!(queued, 2, "{side:?}");
        record("queue bob's", queued.to_string());
        record("users", format!("{:?}", queue.users_with_queued_embeddings().await.unwrap()));

        let first = queue.next_embedding_sources(ALICE, None, 2).await.unwrap();
        assert_eq!(ids(&first), [("chat_chunk", "chunk-B2", false), ("chat_chunk", "chunk-a1", false)], "{side:?}");
        record("first two", format!("{first:?}"));
        let rest = queue.next_embedding_sources(ALICE, Some(("chat_chunk", "chunk-a1")), 100).await.unwrap();
        assert_eq!(
            ids(&rest),
            [
                ("databank", "bank-a1", false),
                ("memory_consolidation", "mem-a1", false),
                ("world_book_entry", "entry-a1", false)
            ],
            "{side:?}"
        );
        record("the rest", format!("{rest:?}"));
        record("bob's", format!("{:?}", queue.next_embedding_sources(BOB, None, 100).await.unwrap()));

        let mine = [(ChatChunk, "chunk-a1".to_string()), (DatabankChunk, "bank-b1".to_string())];
        queue.mark_writing(ALICE, &mine).await.unwrap();
        let written = queue.next_embedding_sources(ALICE, None, 100).await.unwrap();
        assert_eq!(
            written.iter().filter(|row| row.written).map(|row| row.id.as_str()).collect::<Vec<_>>(),
            ["chunk-a1"]
        );
        record("after writing", format!("{:?}", ids(&written)));
        let bobs = queue.next_embedding_sources(BOB, None, 100).await.unwrap();
        assert!(bobs.iter().all(|row| !row.written), "{side:?}: alice's call marked bob's row written");
        record("bob's after writing", format!("{:?}", ids(&bobs)));

        let alices = [(ChatChunk, "chunk-a1".to_string()), (WorldBookEntry, "entry-a1".to_string())];
        queue.mark_embedded(BOB, &alices, "bob's model", 9).await.unwrap();
        assert_eq!(queue.queued_embeddings(ALICE).await.unwrap(), 5, "{side:?}: bob's call dequeued alice's rows");
        for (table, id) in WATCHED {
            record(&format!("{table} {id} after bob's mark"), both.state(side, table, id).await.to_string());
        }
        let marked = [
            (WorldBookEntry, "entry-a1".to_string()),
            (ChatChunk, "chunk-a1".to_string()),
            (DatabankChunk, "bank-b1".to_string()),
        ];
        queue.mark_embedded(ALICE, &marked, "model-1", 11).await.unwrap();
        assert_eq!(queue.queued_embeddings(ALICE).await.unwrap(), 3, "{side:?}");
        assert_eq!(queue.queued_embeddings(BOB).await.unwrap(), 2, "{side:?}: alice's mark dequeued bob's row");
        let chunk_state = both.state(side, "chat_chunks", "chunk-a1").await;
        assert_eq!((&chunk_state["vectorized_at"], &chunk_state["vector_model"]), (&json!(11), &json!("model-1")));
        let entry_state = both.state(side, "world_book_entries", "entry-a1").await;
        assert_eq!(
            (
                &entry_state["vector_index_status"],
                &entry_state["vector_indexed_at"],
                &entry_state["vector_index_error"]
            ),
            (&json!("indexed"), &json!(11), &Value::Null)
        );
        for (table, id) in WATCHED {
            record(&format!("{table} {id} after the mark"), both.state(side, table, id).await.to_string());
        }
        record("next after the mark", format!("{:?}", queue.next_embedding_sources(ALICE, None, 100).await.unwrap()));

        // Entries that no longer name a waiting row of alice's are dropped on the way.
        let stale = |source: &str, id: &str| json!({"user_id": ALICE, "source": source, "row_id": id});
        both.insert_into(
            side,
            "lvbak_embedding_queue",
            &[
                stale("chat_chunk", "chunk-b1"),
                stale("chat_chunk", "chunk-gone"),
                stale("chat_chunk", "chunk-a4"),
                stale("chat_chunk", "chunk-a1"),
                stale("nonsense", "x"),
            ],
        )
        .await;
        assert_eq!(queue.queued_embeddings(ALICE).await.unwrap(), 8, "{side:?}");
        let after_stale = queue.next_embedding_sources(ALICE, None, 100).await.unwrap();
        assert_eq!(
            ids(&after_stale),
            [
                ("chat_chunk", "chunk-B2", false),
                ("databank", "bank-a1", false),
                ("memory_consolidation", "mem-a1", false)
            ],
            "{side:?}"
        );
        record("next over stale entries", format!("{after_stale:?}"));
        assert_eq!(queue.queued_embeddings(ALICE).await.unwrap(), 3, "{side:?}: the stale entries stayed");
        assert_eq!(queue.queued_embeddings(BOB).await.unwrap(), 2, "{side:?}");

        let reset = queue.reset_embeddings(ALICE).await.unwrap();
        assert_eq!(reset, 11, "{side:?}: every row of alice's of the four kinds");
        record("reset", reset.to_string());
        assert_eq!(queue.queued_embeddings(ALICE).await.unwrap(), 0, "{side:?}");
        assert_eq!(queue.queued_embeddings(BOB).await.unwrap(), 2, "{side:?}");
        record("users after the reset", format!("{:?}", queue.users_with_queued_embeddings().await.unwrap()));
        for (table, id) in WATCHED {
            record(&format!("{table} {id} after the reset"), both.state(side, table, id).await.to_string());
        }
        let queued = queue.queue_pending_embeddings(ALICE, &SourceKind::ALL).await.unwrap();
        assert_eq!(queued, 7, "{side:?}: a1, B2, a4, mem-a1, bank-a1, entry-a1, entry-a3");
        record("queue after the reset", queued.to_string());
        record("all after the reset", format!("{:?}", queue.next_embedding_sources(ALICE, None, 100).await.unwrap()));

        let mut bobs_after = Vec::new();
        for (table, id) in BOBS {
            bobs_after.push(both.state(side, table, id).await);
        }
        assert_eq!(bobs_after, bobs_before, "{side:?}: alice's calls changed bob's rows");
        seen
    }

    /// PostgreSQL answers every call of the queue as SQLite does, for two accounts' rows of
    /// every kind, and each account's calls touch its own rows only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_answers_as_sqlites() {
        let both = Both::new("pg-queue").await;
        queue_rows(&both).await;
        let sqlite = transcript(&both, Side::Sqlite).await;
        let postgres = transcript(&both, Side::Postgres).await;
        for (sqlite, postgres) in sqlite.iter().zip(&postgres) {
            assert_eq!(postgres, sqlite);
        }
        assert_eq!(postgres.len(), sqlite.len());
    }

    /// Rows of direct and parent-owned tables, texts short and past 56 bytes (multi-byte
    /// ones too), integers of every size class, reals, NULLs, secrets, and values SQLite
    /// keeps of another class than the column's (in `lvbak_odd` on PostgreSQL) count the
    /// same bytes on both backends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_count_the_same_bytes_on_both() {
        let both = Both::new("pg-usage").await;
        both.insert("chats", &[chat("chat-a", Some(ALICE)), chat("chat-b", Some(BOB)), chat("chat-none", None)]).await;
        let long = "a text of more than fifty-six bytes, with é and ü in it, to pass the mark";
        assert!(long.len() > 56);
        let mut chunks = Vec::new();
        for (n, count) in
            [0i64, 1, -1, 2, 127, 128, -200, 32_767, 32_768, 8_388_607, 8_388_608, 2_147_483_648, i64::MAX]
                .into_iter()
                .enumerate()
        {
            let mut row = chunk(&format!("chunk-{n}"), "chat-a", if n % 2 == 0 { long } else { "é" }, None);
            row["token_count"] = json!(count);
            row["retrieval_count"] = json!(count / 3);
            row["avg_similarity_score"] = if n % 3 == 0 { Value::Null } else { json!(n as f64 / 7.0) };
            row["emotional_tags"] = if n % 2 == 0 { json!("[\"calm\"]") } else { Value::Null };
            chunks.push(row);
        }
        chunks.push(chunk("chunk-bob", "chat-b", "bob's", Some(5)));
        chunks.push(chunk("chunk-nobody", "chat-none", "nobody's", None));
        both.insert("chat_chunks", &chunks).await;
        both.insert(
            "settings",
            &[
                json!({"key": "theme", "value": long, "updated_at": 1_700_000_000, "user_id": ALICE}),
                json!({"key": "theme", "value": "{}", "updated_at": 3, "user_id": BOB}),
            ],
        )
        .await;
        both.insert(
            "secrets",
            &[json!({"key": "embedding_api_key", "encrypted_value": "ééé", "iv": "iv", "tag": "tag", "user_id": ALICE})],
        )
        .await;
        // A text in an INTEGER column, a fraction in one, a text in a REAL column.
        let mut odd = chunk("chunk-odd", "chat-b", long, None);
        odd["token_count"] = json!("many");
        odd["retrieval_count"] = json!(1.5);
        odd["avg_similarity_score"] = json!("high");
        both.insert_into(Side::Sqlite, "chat_chunks", std::slice::from_ref(&odd)).await;
        let mut kept = odd.clone();
        kept["token_count"] = Value::Null;
        kept["retrieval_count"] = Value::Null;
        kept["avg_similarity_score"] = Value::Null;
        kept[ODD_COLUMN] = json!({"token_count": {"t": "bWFueQ=="}, "retrieval_count": {"r": 1.5},
                                  "avg_similarity_score": {"t": "aGlnaA=="}});
        both.insert_into(Side::Postgres, "chat_chunks", &[kept]).await;

        let db = both.db();
        let sqlite = tokio::task::spawn_blocking(move || db.rows_usage_by_user().unwrap()).await.unwrap();
        let postgres = both.postgres.rows_usage_by_user().await.unwrap();
        assert_eq!(postgres, sqlite);
        let mut users: Vec<&String> = postgres.keys().collect();
        users.sort();
        assert_eq!(users, [ALICE, BOB], "the chunk of a chat of no one's counts for no one");
        assert!(postgres[ALICE] > postgres[BOB] && postgres[BOB] > 0, "{postgres:?}");
    }

    /// Two nodes (two pools over one database; on SQLite, two stores over one database)
    /// take and mark one account's rows at once, in opposite orders: neither fails (no
    /// deadlock), a row is never handed out once its mark has returned, and at the end
    /// every row is marked and the queue is empty. (The queue hands rows out without
    /// claiming them, on SQLite too, so the two may both take a row not marked yet.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_never_hand_out_a_marked_row() {
        let both = Both::new("pg-queue-nodes").await;
        both.insert("chats", &[chat("chat-a", Some(ALICE)), chat("chat-b", Some(BOB))]).await;
        let mut chunks: Vec<Value> =
            (0..60).map(|n| chunk(&format!("chunk-{n:02}"), "chat-a", &format!("text {n}"), None)).collect();
        chunks.push(chunk("chunk-bob", "chat-b", "bob's", None));
        both.insert("chat_chunks", &chunks).await;
        let second_node = PostgresStores::connect(both.database.config.clone()).await.unwrap();
        for side in [Side::Sqlite, Side::Postgres] {
            let nodes: [Arc<dyn EmbeddingQueue>; 2] = match side {
                Side::Sqlite => [both.queue(side), both.queue(side)],
                Side::Postgres => [both.queue(side), Arc::new(second_node.clone())],
            };
            assert_eq!(nodes[0].queue_pending_embeddings(ALICE, &[SourceKind::ChatChunk]).await.unwrap(), 60);
            let marked: Arc<Mutex<HashSet<String>>> = Arc::default();
            let tasks: Vec<_> = nodes
                .into_iter()
                .enumerate()
                .map(|(node, queue)| {
                    let marked = marked.clone();
                    tokio::spawn(async move {
                        for _ in 0..200 {
                            let done: HashSet<String> = marked.lock().unwrap().clone();
                            let rows = queue.next_embedding_sources(ALICE, None, 6).await.unwrap();
                            if rows.is_empty() {
                                return;
                            }
                            for row in &rows {
                                assert!(!done.contains(&row.id), "{side:?}: {} handed out after its mark", row.id);
                            }
                            let mut taken: Vec<(SourceKind, String)> =
                                rows.iter().map(|row| (row.kind, row.id.clone())).collect();
                            if node == 1 {
                                taken.reverse();
                            }
                            queue.mark_writing(ALICE, &taken).await.unwrap();
                            queue.mark_embedded(ALICE, &taken, &format!("model-{node}"), node as i64).await.unwrap();
                            marked.lock().unwrap().extend(taken.into_iter().map(|(_, id)| id));
                        }
                        panic!("{side:?}: node {node} never saw the queue empty");
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let queue = both.queue(side);
            assert_eq!(queue.queued_embeddings(ALICE).await.unwrap(), 0, "{side:?}");
            assert_eq!(marked.lock().unwrap().len(), 60, "{side:?}");
            assert_eq!(queue.queue_pending_embeddings(ALICE, &[SourceKind::ChatChunk]).await.unwrap(), 0, "{side:?}");
            assert_eq!(queue.queue_pending_embeddings(BOB, &[SourceKind::ChatChunk]).await.unwrap(), 1, "{side:?}");
        }
    }
}
