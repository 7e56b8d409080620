//! The registry tables as SQLite's migrations shape them, for another backend to build the
//! same tables from ([`shapes`]: columns with their affinity, NOT NULL, default and key
//! position, and the indexes), and the value SQLite stores for an archive's JSON value in a
//! column of a given affinity ([`StoredValues`]), so that a second backend keeps, and an
//! export writes back, exactly what SQLite would have.

use lvbak_core::registry::TABLES;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use serde_json::Value;

use super::{quoted, DbError, DbResult};

/// How SQLite converts a value written to a column (its declared type's affinity; the
/// registry tables declare only these three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affinity {
    Integer,
    Real,
    Text,
}

impl Affinity {
    fn of(declared: &str) -> DbResult<Self> {
        match declared.to_ascii_uppercase().as_str() {
            "INTEGER" => Ok(Self::Integer),
            "REAL" => Ok(Self::Real),
            "TEXT" => Ok(Self::Text),
            other => Err(DbError::Invalid(format!("a registry column is declared {other:?}"))),
        }
    }
}

/// One column of a registry table.
#[derive(Clone, Debug)]
pub(crate) struct ColumnShape {
    pub(crate) name: String,
    pub(crate) affinity: Affinity,
    pub(crate) not_null: bool,
    /// The default as SQL text, as SQLite's schema spells it.
    pub(crate) default: Option<String>,
    /// The column's place in the primary key (1 for the first), 0 if not in it.
    pub(crate) primary_key: usize,
}

/// An index of a registry table over columns (indexes over expressions are the backend's
/// own concern).
#[derive(Clone, Debug)]
pub(crate) struct IndexShape {
    pub(crate) unique: bool,
    pub(crate) columns: Vec<String>,
}

/// One registry table.
#[derive(Clone, Debug)]
pub(crate) struct TableShape {
    pub(crate) name: &'static str,
    pub(crate) columns: Vec<ColumnShape>,
    /// Indexes besides the primary key's.
    pub(crate) indexes: Vec<IndexShape>,
}

/// The registry tables as SQLite's migrations shape them, in registry order, and what a
/// row of each counts for against the quota as SQLite stores it (`charge::RowCharge`, the
/// one formula every backend charges by, for rows aligned with the table's columns).
pub(crate) struct RegistryShapes {
    pub(crate) tables: Vec<TableShape>,
    pub(crate) charges: std::collections::HashMap<&'static str, super::charge::RowCharge>,
}

impl RegistryShapes {
    /// The shape of the registry table `name`.
    pub(crate) fn table(&self, name: &str) -> DbResult<&TableShape> {
        self.tables
            .iter()
            .find(|shape| shape.name == name)
            .ok_or_else(|| DbError::Invalid(format!("{name} is not a registry table")))
    }
}

/// The registry's shapes, worked out once per process (it runs the migrations in memory):
/// what PostgreSQL's tables are built from, its rows are read and written by, and charged by.
pub(crate) fn shapes() -> DbResult<&'static RegistryShapes> {
    static SHAPES: std::sync::OnceLock<RegistryShapes> = std::sync::OnceLock::new();
    if let Some(shapes) = SHAPES.get() {
        return Ok(shapes);
    }
    let connection = super::migrations::in_memory()?;
    let mut tables = Vec::with_capacity(TABLES.len());
    let mut charges = std::collections::HashMap::new();
    for spec in TABLES {
        let shape = describe_table(&connection, spec.name)?;
        let names: Vec<String> = shape.columns.iter().map(|column| column.name.clone()).collect();
        charges.insert(spec.name, super::charge::RowCharge::of(&connection, spec.name, &names)?);
        tables.push(shape);
    }
    Ok(SHAPES.get_or_init(|| RegistryShapes { tables, charges }))
}

fn describe_table(connection: &Connection, name: &'static str) -> DbResult<TableShape> {
    let mut columns = Vec::new();
    let mut statement = connection.prepare(&format!("PRAGMA table_info({})", quoted(name)))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let declared: String = row.get(2)?;
        columns.push(ColumnShape {
            name: row.get(1)?,
            affinity: Affinity::of(&declared)?,
            not_null: row.get::<_, i64>(3)? != 0,
            default: row.get(4)?,
            primary_key: row.get::<_, i64>(5)?.max(0) as usize,
        });
    }
    let mut indexes = Vec::new();
    let listed: Vec<(String, bool, String)> = connection
        .prepare(&format!("PRAGMA index_list({})", quoted(name)))?
        .query_map([], |row| Ok((row.get(1)?, row.get::<_, i64>(2)? != 0, row.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (index, unique, origin) in listed {
        if origin == "pk" {
            continue;
        }
        let parts: Vec<Option<String>> = connection
            .prepare(&format!("PRAGMA index_info({})", quoted(&index)))?
            .query_map([], |row| row.get(2))?
            .collect::<Result<_, _>>()?;
        if let Some(columns) = parts.into_iter().collect::<Option<Vec<String>>>() {
            indexes.push(IndexShape { unique, columns });
        } else if unique {
            return Err(DbError::Invalid(format!("{name}: a unique index over an expression ({index})")));
        }
    }
    Ok(TableShape { name, columns, indexes })
}

/// A value as SQLite stores it, owned.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StoredValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// Works out what SQLite stores for a JSON value bound as the import binds it
/// (`apply::rows::Param`) in a column of an affinity: the common cases directly, the rest
/// (a number in a text column, text in a numeric one, a real in an integer one) by asking
/// SQLite itself, so the answer is SQLite's own.
pub(crate) struct StoredValues {
    connection: Connection,
}

impl StoredValues {
    pub(crate) fn new() -> DbResult<Self> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch("CREATE TABLE t (i INTEGER, r REAL, x TEXT)")?;
        Ok(Self { connection })
    }

    /// What SQLite stores for `value` in a column of `affinity`.
    pub(crate) fn stored(&self, affinity: Affinity, value: &Value) -> DbResult<StoredValue> {
        let bound = match value {
            Value::Null => return Ok(StoredValue::Null),
            Value::Bool(flag) => SqlValue::Integer(i64::from(*flag)),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => SqlValue::Integer(integer),
                None => SqlValue::Real(number.as_f64().unwrap_or(0.0)),
            },
            Value::String(text) => SqlValue::Text(text.clone()),
            other => SqlValue::Text(other.to_string()),
        };
        match (affinity, bound) {
            (Affinity::Text, SqlValue::Text(text)) => Ok(StoredValue::Text(text)),
            (Affinity::Integer, SqlValue::Integer(integer)) => Ok(StoredValue::Integer(integer)),
            (Affinity::Real, SqlValue::Real(real)) => Ok(StoredValue::Real(real)),
            (Affinity::Real, SqlValue::Integer(integer)) => Ok(StoredValue::Real(integer as f64)),
            (affinity, bound) => self.ask(affinity, bound),
        }
    }

    fn ask(&self, affinity: Affinity, bound: SqlValue) -> DbResult<StoredValue> {
        let column = match affinity {
            Affinity::Integer => "i",
            Affinity::Real => "r",
            Affinity::Text => "x",
        };
        self.connection.execute(&format!("INSERT INTO t ({column}) VALUES (?1)"), [bound])?;
        let stored = self.connection.query_row(&format!("SELECT {column} FROM t"), [], |row| {
            Ok(match row.get_ref(0)? {
                ValueRef::Null => StoredValue::Null,
                ValueRef::Integer(integer) => StoredValue::Integer(integer),
                ValueRef::Real(real) => StoredValue::Real(real),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    StoredValue::Text(String::from_utf8_lossy(bytes).into_owned())
                }
            })
        });
        self.connection.execute("DELETE FROM t", [])?;
        Ok(stored?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The values SQLite stores, as SQLite itself answers them, for every affinity.
    #[test]
    fn stored_values_are_sqlites() {
        let values = StoredValues::new().unwrap();
        let cases = [
            (Affinity::Text, json!(5), StoredValue::Text("5".into())),
            (Affinity::Text, json!(1.5), StoredValue::Text("1.5".into())),
            (Affinity::Text, json!(true), StoredValue::Text("1".into())),
            (Affinity::Text, json!({"a": 1}), StoredValue::Text("{\"a\":1}".into())),
            (Affinity::Integer, json!("12"), StoredValue::Integer(12)),
            (Affinity::Integer, json!(" 12 "), StoredValue::Integer(12)),
            (Affinity::Integer, json!("1.5"), StoredValue::Real(1.5)),
            (Affinity::Integer, json!(3.0), StoredValue::Integer(3)),
            (Affinity::Integer, json!(3.5), StoredValue::Real(3.5)),
            (Affinity::Integer, json!("abc"), StoredValue::Text("abc".into())),
            (Affinity::Integer, json!(false), StoredValue::Integer(0)),
            (Affinity::Real, json!(2), StoredValue::Real(2.0)),
            (Affinity::Real, json!("2.5"), StoredValue::Real(2.5)),
            (Affinity::Real, json!("x"), StoredValue::Text("x".into())),
            (Affinity::Real, json!(null), StoredValue::Null),
        ];
        for (affinity, value, expected) in cases {
            assert_eq!(values.stored(affinity, &value).unwrap(), expected, "{value} as {affinity:?}");
        }
    }

    /// Every registry table is described, keyed, with only the three affinities.
    #[test]
    fn every_registry_table_is_described() {
        let tables = &shapes().unwrap().tables;
        assert_eq!(tables.len(), TABLES.len());
        assert_eq!(shapes().unwrap().charges.len(), TABLES.len());
        for table in tables {
            assert!(table.columns.iter().any(|column| column.primary_key > 0), "{}", table.name);
        }
        let sessions = tables.iter().find(|table| table.name == "dream_weaver_sessions").unwrap();
        assert!(sessions.indexes.iter().any(|index| index.unique && index.columns == ["user_id", "session_number"]));
    }
}
