//! One account read out raw, as SQLite stores it, for `lvbak migrate` to copy into
//! PostgreSQL (`postgres::copy_in`): every table that moves with an account
//! ([`moved_tables`], in the order they are written — parents first): the account itself
//! (`user`), its password hash, quota and recorded use, stored API keys (sealed, as they
//! are) with their endpoint bindings, whether its embeddings setting was confirmed, its
//! ticket uses, every registry table by the registry's ownership rules (the rows an export
//! reads: `rows::owned_rows_sql`), and lvbak's id map and re-vectorization queue. Sessions,
//! job records and the instance's own facts (`lvbak_meta`) do not move.
//!
//! [`Database::copy_out`] streams an account's rows table by table through one read
//! transaction on a connection of its own, handing them over in chunks of at most
//! [`CHUNK_ROWS`] rows and about [`CHUNK_BYTES`]: a table is never held whole.

use std::ops::ControlFlow;

use lvbak_core::registry::TABLES;
use rusqlite::types::ValueRef;

use super::rows::owned_rows_sql;
use super::schema::{shapes, Affinity, StoredValue};
use super::{quoted, Database, DbError, DbResult};

/// Rows one chunk holds at most.
pub(crate) const CHUNK_ROWS: usize = 2000;
/// Bytes of values after which a chunk ends (with the row that passed them).
pub(crate) const CHUNK_BYTES: usize = 8 << 20;

/// A table that moves with its account.
#[derive(Clone, Debug)]
pub(crate) struct MovedTable {
    pub(crate) name: &'static str,
    /// Its columns as both databases name them, with their affinity (what PostgreSQL's
    /// column type is).
    pub(crate) columns: Vec<(String, Affinity)>,
    /// The primary key's columns.
    pub(crate) key: Vec<String>,
    /// A registry table: PostgreSQL keeps a value its typed column cannot hold beside the
    /// row (`lvbak_odd`). lvbak's own tables hold only values of their columns' types.
    pub(crate) registry: bool,
    /// The statement that reads an account's rows (the user as `?1`), its columns in order.
    select: String,
}

use Affinity::{Integer as I, Text as T};

/// One of lvbak's tables (or Lumiverse's `user` and `secrets`) that move: its name, the
/// column naming the account, its columns and its key.
type PlainTable = (&'static str, &'static str, &'static [(&'static str, Affinity)], &'static [&'static str]);

/// The plain tables written before the registry tables (`user` first: the others refer to
/// it).
const ACCOUNT_TABLES: &[PlainTable] = &[
    (
        "user",
        "id",
        &[
            ("id", T),
            ("name", T),
            ("email", T),
            ("emailVerified", I),
            ("image", T),
            ("createdAt", I),
            ("updatedAt", I),
            ("username", T),
            ("displayUsername", T),
            ("role", T),
            ("banned", I),
            ("banReason", T),
            ("banExpires", I),
        ],
        &["id"],
    ),
    ("lvbak_credentials", "user_id", &[("user_id", T), ("password_hash", T), ("updated_at", I)], &["user_id"]),
    ("lvbak_quotas", "user_id", &[("user_id", T), ("quota_bytes", I)], &["user_id"]),
    ("lvbak_usage", "user_id", &[("user_id", T), ("bytes", I)], &["user_id"]),
    (
        "secrets",
        "user_id",
        &[("key", T), ("encrypted_value", T), ("iv", T), ("tag", T), ("updated_at", I), ("user_id", T)],
        &["key", "user_id"],
    ),
    ("lvbak_key_endpoints", "user_id", &[("user_id", T), ("key", T), ("endpoint", T)], &["user_id", "key"]),
    ("lvbak_embedding_unconfirmed", "user_id", &[("user_id", T), ("restored_at", I)], &["user_id"]),
    (
        "lvbak_ticket_uses",
        "user_id",
        &[("archive_id", T), ("user_id", T), ("consumed_at", I), ("uses", I), ("last_used_at", I)],
        &["archive_id", "user_id"],
    ),
];

/// lvbak's tables that move after the registry tables.
const AFTER_ROWS: &[PlainTable] = &[
    (
        "lvbak_id_map",
        "user_id",
        &[("user_id", T), ("original_id", T), ("table_name", T), ("new_id", T)],
        &["user_id", "original_id", "table_name"],
    ),
    (
        "lvbak_embedding_queue",
        "user_id",
        &[("user_id", T), ("source", T), ("row_id", T), ("written", I)],
        &["user_id", "source", "row_id"],
    ),
];

/// Every table that moves with an account, in the order they are written.
pub(crate) fn moved_tables() -> DbResult<Vec<MovedTable>> {
    let plain = |(name, owner, columns, key): &PlainTable| {
        let names: Vec<String> = columns.iter().map(|(column, _)| quoted(column)).collect();
        MovedTable {
            name,
            columns: columns.iter().map(|(column, affinity)| (column.to_string(), *affinity)).collect(),
            key: key.iter().map(|column| column.to_string()).collect(),
            registry: false,
            select: format!("SELECT {} FROM {} WHERE {} = ?1", names.join(", "), quoted(name), quoted(owner)),
        }
    };
    let mut tables: Vec<MovedTable> = ACCOUNT_TABLES.iter().map(plain).collect();
    let shapes = shapes()?;
    for spec in TABLES {
        let shape = shapes.table(spec.name)?;
        let names: Vec<String> = shape.columns.iter().map(|column| quoted(&column.name)).collect();
        let mut key: Vec<_> = shape.columns.iter().filter(|column| column.primary_key > 0).collect();
        key.sort_by_key(|column| column.primary_key);
        tables.push(MovedTable {
            name: spec.name,
            columns: shape.columns.iter().map(|column| (column.name.clone(), column.affinity)).collect(),
            key: key.iter().map(|column| column.name.clone()).collect(),
            registry: true,
            select: owned_rows_sql(spec)?.replacen("SELECT *", &format!("SELECT {}", names.join(", ")), 1),
        });
    }
    tables.extend(AFTER_ROWS.iter().map(plain));
    Ok(tables)
}

impl Database {
    /// Reads `user_id`'s rows of each of `tables` in turn, in one read transaction on a
    /// connection of its own, and hands them to `each` (the table's index, the rows with
    /// their values aligned with its columns) in chunks of at most [`CHUNK_ROWS`] rows,
    /// ending a chunk once its values passed [`CHUNK_BYTES`]; stops when `each` breaks. A
    /// blob, or text that is not UTF-8, is an error naming its table and column: no
    /// PostgreSQL column keeps it (imports never store either).
    pub(crate) fn copy_out(
        &self,
        user_id: &str,
        tables: &[MovedTable],
        each: &mut dyn FnMut(usize, Vec<Vec<StoredValue>>) -> ControlFlow<()>,
    ) -> DbResult<()> {
        let connection = self.connect()?;
        connection.execute_batch("BEGIN DEFERRED")?;
        for (index, table) in tables.iter().enumerate() {
            let mut statement = connection.prepare(&table.select)?;
            let mut rows = statement.query([user_id])?;
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(table.columns.len());
                for (column, (name, _)) in table.columns.iter().enumerate() {
                    let value = stored(row.get_ref(column)?).ok_or_else(|| {
                        DbError::Invalid(format!(
                            "{}.{name}: a blob or text that is not UTF-8, which PostgreSQL cannot keep",
                            table.name
                        ))
                    })?;
                    bytes += match &value {
                        StoredValue::Text(text) => text.len() + 8,
                        _ => 8,
                    };
                    values.push(value);
                }
                chunk.push(values);
                if chunk.len() >= CHUNK_ROWS || bytes >= CHUNK_BYTES {
                    bytes = 0;
                    if each(index, std::mem::take(&mut chunk)).is_break() {
                        return Ok(());
                    }
                }
            }
            if !chunk.is_empty() && each(index, chunk).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The instance's id, if it has one yet (what its object store was claimed with).
    pub(crate) fn instance_id_if_any(&self) -> DbResult<Option<String>> {
        self.meta(crate::storage::INSTANCE_ID_KEY)
    }
}

/// A value as SQLite stores it, owned; `None` for what no other backend stores.
fn stored(value: ValueRef<'_>) -> Option<StoredValue> {
    Some(match value {
        ValueRef::Null => StoredValue::Null,
        ValueRef::Integer(integer) => StoredValue::Integer(integer),
        ValueRef::Real(real) => StoredValue::Real(real),
        ValueRef::Text(bytes) => StoredValue::Text(String::from_utf8(bytes.to_vec()).ok()?),
        ValueRef::Blob(_) => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// Every moved table's statement runs against the schema (its columns exist), the
    /// account's tables come first and the registry's in registry order.
    #[test]
    fn every_moved_table_reads() {
        let connection = super::super::migrations::in_memory().unwrap();
        let tables = moved_tables().unwrap();
        assert_eq!(tables[0].name, "user");
        assert_eq!(tables.iter().filter(|table| table.registry).count(), TABLES.len());
        for table in &tables {
            let statement = connection.prepare(&table.select).unwrap_or_else(|error| panic!("{}: {error}", table.name));
            assert_eq!(statement.column_count(), table.columns.len(), "{}", table.name);
            assert!(!table.key.is_empty(), "{}", table.name);
        }
    }
}
