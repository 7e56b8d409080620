//! Registry rows: reading one user's rows of a table from a consistent snapshot (export),
//! with the ownership filters of the registry (SQLite's `storage::backend::row_snapshot::RowSnapshot`).
//! Values are handed out as `RowValue` so no caller needs rusqlite's types.

use std::collections::{BTreeMap, HashMap};

use lvbak_core::closure::RowKey;
use lvbak_core::registry::{table_spec, Ownership, TableSpec, TABLES};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{quoted, Database, DbError, DbResult};
use crate::storage::backend::row_snapshot::{Flow, RowSnapshot, RowValue, StoredRow};

/// One row being read by SQLite.
pub struct RowRef<'a> {
    row: &'a rusqlite::Row<'a>,
}

impl StoredRow for RowRef<'_> {
    fn value(&self, index: usize) -> RowValue<'_> {
        self.row.get_ref(index).map_or(RowValue::Null, row_value)
    }
}

/// A value as SQLite stores it, as every backend hands it out (text that is not UTF-8 as a
/// blob).
pub(crate) fn row_value(value: ValueRef<'_>) -> RowValue<'_> {
    match value {
        ValueRef::Null => RowValue::Null,
        ValueRef::Integer(value) => RowValue::Integer(value),
        ValueRef::Real(value) => RowValue::Real(value),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => RowValue::Text(text),
            Err(_) => RowValue::Blob(bytes),
        },
        ValueRef::Blob(bytes) => RowValue::Blob(bytes),
    }
}

/// A read transaction on a connection of its own: every table read through it sees the
/// same moment, however long the export takes.
pub struct TableScan {
    connection: Connection,
}

/// The SQL that selects the rows of `spec` that belong to a user (`?1`).
pub(super) fn owned_rows_sql(spec: &TableSpec) -> DbResult<String> {
    let table = quoted(spec.name);
    let mut sql = match spec.ownership {
        Ownership::Direct { column } => {
            format!("SELECT * FROM {table} WHERE {} = ?1", quoted(column))
        }
        Ownership::Parent { parent_table, column } => {
            let Some(Ownership::Direct { column: owner }) = table_spec(parent_table).map(|parent| parent.ownership)
            else {
                return Err(DbError::Invalid(format!("{parent_table} is not owned directly")));
            };
            format!(
                "SELECT * FROM {table} WHERE {} IN (SELECT id FROM {} WHERE {} = ?1)",
                quoted(column),
                quoted(parent_table),
                quoted(owner)
            )
        }
    };
    if let Some((column, value)) = spec.row_filter {
        sql.push_str(&format!(" AND {} = '{}'", quoted(column), value.replace('\'', "''")));
    }
    Ok(sql)
}

impl Database {
    /// The JSON text of one of a user's settings.
    pub fn setting(&self, user_id: &str, key: &str) -> DbResult<Option<String>> {
        self.read(|connection| setting_in(connection, user_id, key))
    }

    /// Starts a snapshot for reading many tables consistently.
    pub fn table_scan(&self) -> DbResult<TableScan> {
        let connection = self.connect()?;
        connection.execute_batch("BEGIN DEFERRED")?;
        Ok(TableScan { connection })
    }
}

impl RowSnapshot for TableScan {
    fn scan_held_row_ids(&self, user_id: &str, each: &mut dyn FnMut(&'static str, &str) -> Flow) -> DbResult<()> {
        // Table → the copy's id here → the archive ids it was made from.
        let mut copies: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
        let mut statement =
            self.connection.prepare("SELECT table_name, new_id, original_id FROM lvbak_id_map WHERE user_id = ?1")?;
        let mut rows = statement.query([user_id])?;
        while let Some(row) = rows.next()? {
            let (table, new_id, original): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
            copies.entry(table).or_default().entry(new_id).or_default().push(original);
        }
        for (table, original, new_id) in super::apply::staged_copies_of(&self.connection, user_id)? {
            copies.entry(table).or_default().entry(new_id).or_default().push(original);
        }
        for spec in TABLES.iter().filter(|spec| spec.primary_key == ["id"]) {
            let copied = copies.get(spec.name);
            let sql = owned_rows_sql(spec)?.replacen("SELECT *", "SELECT id", 1);
            let mut statement = self.connection.prepare(&sql)?;
            let mut rows = statement.query([user_id])?;
            while let Some(row) = rows.next()? {
                let Ok(ValueRef::Text(id)) = row.get_ref(0) else { continue };
                let Ok(id) = std::str::from_utf8(id) else { continue };
                if each(spec.name, id).is_break() {
                    return Ok(());
                }
                for original in copied.and_then(|copied| copied.get(id)).into_iter().flatten() {
                    if each(spec.name, original).is_break() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn scan_owned_rows(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64> {
        let sql = owned_rows_sql(spec)?;
        let mut statement = self.connection.prepare(&sql)?;
        let columns: Vec<String> = statement.column_names().into_iter().map(str::to_string).collect();
        let mut rows = statement.query([user_id])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            if each(&columns, &RowRef { row }).is_break() {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    fn scan_owned_rows_where(
        &self,
        spec: &'static TableSpec,
        user_id: &str,
        key: RowKey,
        values: &[String],
        each: &mut dyn FnMut(&[String], &dyn StoredRow) -> Flow,
    ) -> DbResult<u64> {
        let matched = match key {
            RowKey::Column(column) => quoted(column),
            RowKey::JsonKey { column, key } => {
                if !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    return Err(DbError::Invalid(format!("{key:?} is not a plain JSON key")));
                }
                let column = quoted(column);
                format!("(CASE WHEN json_valid({column}) THEN json_extract({column}, '$.{key}') END)")
            }
        };
        let mut count = 0;
        // A statement per few hundred values, under SQLite's limit on parameters.
        for chunk in values.chunks(500) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
            let sql = format!("{} AND {matched} IN ({})", owned_rows_sql(spec)?, marks.join(", "));
            let mut statement = self.connection.prepare_cached(&sql)?;
            let columns: Vec<String> = statement.column_names().into_iter().map(str::to_string).collect();
            let parameters = std::iter::once(user_id).chain(chunk.iter().map(String::as_str));
            let mut rows = statement.query(rusqlite::params_from_iter(parameters))?;
            while let Some(row) = rows.next()? {
                if each(&columns, &RowRef { row }).is_break() {
                    return Ok(count);
                }
                count += 1;
            }
        }
        Ok(count)
    }
}

fn setting_in(connection: &Connection, user_id: &str, key: &str) -> DbResult<Option<String>> {
    Ok(connection
        .query_row("SELECT value FROM settings WHERE user_id = ?1 AND key = ?2", [user_id, key], |row| row.get(0))
        .optional()?)
}

/// A JSON value as SQLite stores it: booleans as 0/1, arrays and objects as JSON text.
fn to_sql(value: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        serde_json::Value::Null => Sql::Null,
        serde_json::Value::Bool(flag) => Sql::Integer(i64::from(*flag)),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Sql::Integer(integer),
            None => Sql::Real(number.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(text) => Sql::Text(text.clone()),
        other => Sql::Text(other.to_string()),
    }
}

impl Database {
    /// Inserts rows given as JSON objects (keys are columns) into `table`, in one
    /// transaction; any conflict fails the whole batch. For demo data and tests: imports go
    /// through the import engine's merge rules instead.
    pub fn insert_json_rows(&self, table: &str, rows: &[serde_json::Map<String, serde_json::Value>]) -> DbResult<u64> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for row in rows {
                let columns: Vec<String> = row.keys().map(|column| quoted(column)).collect();
                let placeholders: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quoted(table),
                    columns.join(", "),
                    placeholders.join(", ")
                );
                let values: Vec<rusqlite::types::Value> = row.values().map(to_sql).collect();
                transaction.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(values))?;
            }
            transaction.commit()?;
            Ok(rows.len() as u64)
        })
    }

    /// The id map of `user_id`: (the copy's id, the archive's id), for tests.
    #[cfg(test)]
    pub(crate) fn id_map_of(&self, user_id: &str) -> DbResult<Vec<(String, String)>> {
        self.read(|connection| {
            let mut statement =
                connection.prepare("SELECT new_id, original_id FROM lvbak_id_map WHERE user_id = ?1")?;
            let pairs = statement.query_map([user_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let mut pairs: Vec<(String, String)> = pairs.collect::<Result<_, _>>()?;
            let staged = super::apply::staged_copies_of(connection, user_id)?;
            pairs.extend(staged.into_iter().map(|(_, original, new_id)| (new_id, original)));
            Ok(pairs)
        })
    }

    /// Every row of `table` whose `column` equals `value`, as JSON objects
    /// (for tests and checks).
    pub fn rows_where(
        &self,
        table: &str,
        column: &str,
        value: &str,
    ) -> DbResult<Vec<serde_json::Map<String, serde_json::Value>>> {
        self.read(|connection| {
            let sql = format!("SELECT * FROM {} WHERE {} = ?1", quoted(table), quoted(column));
            let mut statement = connection.prepare(&sql)?;
            let columns: Vec<String> = statement.column_names().into_iter().map(str::to_string).collect();
            let mut rows = statement.query([value])?;
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                let mut object = serde_json::Map::new();
                for (index, column) in columns.iter().enumerate() {
                    let value = match row.get_ref(index)? {
                        ValueRef::Null => serde_json::Value::Null,
                        ValueRef::Integer(integer) => integer.into(),
                        ValueRef::Real(real) => real.into(),
                        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned().into(),
                        ValueRef::Blob(bytes) => bytes.to_vec().into(),
                    };
                    object.insert(column.clone(), value);
                }
                found.push(object);
            }
            Ok(found)
        })
    }

    /// The number of rows of `table` (every user's), for checks that nothing else changed.
    pub fn count_rows(&self, table: &str) -> DbResult<u64> {
        self.read(|connection| {
            Ok(connection
                .query_row(&format!("SELECT count(*) FROM {}", quoted(table)), [], |row| row.get::<_, i64>(0))?
                as u64)
        })
    }
}

/// One table's columns and foreign keys, in the shape of `lumiverse-schema.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableFacts {
    pub columns: Vec<ColumnFacts>,
    pub foreign_keys: Vec<ForeignKeyFacts>,
}

/// A column as `PRAGMA table_info` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnFacts {
    pub name: String,
    #[serde(rename = "type")]
    pub declared_type: String,
    pub notnull: bool,
    /// The default's SQL text.
    pub default: Option<String>,
    /// The column's place in the primary key (1-based), 0 outside it.
    pub pk: i64,
}

/// A foreign key as `PRAGMA foreign_key_list` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForeignKeyFacts {
    pub column: String,
    pub references: String,
    pub to: String,
    pub on_delete: String,
}

impl Database {
    /// Every table's columns and foreign keys as `PRAGMA table_info` / `foreign_key_list`
    /// report them (for schema checks).
    pub fn schema_facts(&self) -> DbResult<BTreeMap<String, TableFacts>> {
        self.read(|connection| {
            let mut tables = BTreeMap::new();
            let names: Vec<String> = connection
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            for name in names {
                let mut columns = Vec::new();
                let mut statement = connection.prepare(&format!("PRAGMA table_info({})", quoted(&name)))?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    columns.push(ColumnFacts {
                        name: row.get(1)?,
                        declared_type: row.get(2)?,
                        notnull: row.get::<_, i64>(3)? != 0,
                        default: row.get(4)?,
                        pk: row.get(5)?,
                    });
                }
                let mut foreign_keys = Vec::new();
                let mut statement = connection.prepare(&format!("PRAGMA foreign_key_list({})", quoted(&name)))?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    foreign_keys.push(ForeignKeyFacts {
                        column: row.get(3)?,
                        references: row.get(2)?,
                        to: row.get(4)?,
                        on_delete: row.get(6)?,
                    });
                }
                tables.insert(name, TableFacts { columns, foreign_keys });
            }
            Ok(tables)
        })
    }
}

impl Database {
    /// The accounts whose rows name a file kept directly in the shared `images/` or
    /// `avatars/` folder of an earlier layout (an image by its file name, a thumbnail by its
    /// image's, an avatar by the last segment of a character's or persona's path).
    pub fn owners_of_shared_file(&self, folder: &str, name: &str) -> DbResult<Vec<String>> {
        let sql = match folder {
            "images" => {
                "SELECT DISTINCT user_id FROM images WHERE user_id IS NOT NULL AND (filename = ?1 OR \
                 (instr(?1, '_thumb_') > 1 AND (filename = substr(?1, 1, instr(?1, '_thumb_') - 1) \
                  OR substr(filename, 1, instr(?1, '_thumb_')) = substr(?1, 1, instr(?1, '_thumb_') - 1) || '.')))"
            }
            "avatars" => {
                "SELECT user_id FROM characters WHERE avatar_path = ?1 OR (substr(avatar_path, -length(?1)) = ?1 \
                 AND substr(avatar_path, -length(?1) - 1, 1) IN ('/', '\\')) \
                 UNION SELECT user_id FROM personas WHERE avatar_path = ?1 OR (substr(avatar_path, -length(?1)) = ?1 \
                 AND substr(avatar_path, -length(?1) - 1, 1) IN ('/', '\\'))"
            }
            _ => return Ok(Vec::new()),
        };
        self.read(|connection| {
            let mut statement = connection.prepare(sql)?;
            let owners = statement.query_map([name], |row| row.get::<_, Option<String>>(0))?;
            let mut found: Vec<String> = owners.filter_map(|owner| owner.ok().flatten()).collect();
            found.sort();
            found.dedup();
            Ok(found)
        })
    }
}
