//! What a row counts for against its account's quota: the pages it takes, estimated from
//! its values the way SQLite stores them — the record in its table's b-tree and one entry
//! in every index of the table — divided by how full pages are after inserts in random id
//! order. The same formula in Rust (an import charges each row it adds) and in SQL (the
//! recount of every account's rows: `Database::recount_usage`).

use rusqlite::Connection;
use serde_json::Value;

use super::{quoted, DbResult};

/// Bytes of a record besides its values: the header, the rowid, the cell pointer.
const RECORD_BYTES: u64 = 14;
/// Bytes of an index entry besides its values: the header, the rowid, the cell pointer.
const INDEX_ENTRY_BYTES: u64 = 14;
/// Pages of b-trees filled by inserts in random key order are about this full (a leaf
/// splits in half when it overflows, so the fill settles near ln 2), as a fraction.
const FILL_NUMERATOR: u64 = 7;
const FILL_DENOMINATOR: u64 = 10;
/// What an index over an expression (not a column) is counted as, per entry.
const EXPRESSION_BYTES: u64 = 24;

/// How a table's rows are charged: its columns' places in each of its indexes.
#[derive(Clone, Debug, Default)]
pub struct RowCharge {
    /// Per index, the live column of each part (`None`: an expression).
    indexes: Vec<Vec<Option<usize>>>,
}

/// The bytes one value takes in a record.
fn cell(value: Option<&Value>) -> u64 {
    match value {
        None | Some(Value::Null) => 1,
        Some(Value::Bool(_) | Value::Number(_)) => 9,
        Some(Value::String(text)) => text.len() as u64 + 2,
        // Stored as its JSON text.
        Some(other) => serde_json::to_string(other).map_or(0, |text| text.len() as u64) + 2,
    }
}

impl RowCharge {
    /// Reads the indexes of `table`, whose live columns are `columns` in order.
    pub fn of(connection: &Connection, table: &str, columns: &[String]) -> DbResult<Self> {
        let names: Vec<String> = connection
            .prepare(&format!("PRAGMA index_list({})", quoted(table)))?
            .query_map([], |row| row.get(1))?
            .collect::<Result<_, _>>()?;
        let mut indexes = Vec::with_capacity(names.len());
        for name in names {
            let parts: Vec<Option<usize>> = connection
                .prepare(&format!("PRAGMA index_info({})", quoted(&name)))?
                .query_map([], |row| row.get::<_, Option<String>>(2))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|column| column.and_then(|column| columns.iter().position(|c| *c == column)))
                .collect();
            indexes.push(parts);
        }
        Ok(Self { indexes })
    }

    /// The bytes a row (aligned with the table's live columns) counts for.
    pub fn bytes(&self, row: &[Option<Value>]) -> u64 {
        let record: u64 = row.iter().map(|value| cell(value.as_ref())).sum::<u64>() + RECORD_BYTES;
        let entries: u64 = self
            .indexes
            .iter()
            .map(|parts| {
                let values: u64 = parts
                    .iter()
                    .map(|part| match part {
                        Some(index) => cell(row.get(*index).and_then(Option::as_ref)),
                        None => EXPRESSION_BYTES,
                    })
                    .sum();
                values + INDEX_ENTRY_BYTES
            })
            .sum();
        (record + entries) * FILL_DENOMINATOR / FILL_NUMERATOR
    }

    /// The same as [`Self::bytes`], as an SQL expression over the row `alias` of a table
    /// whose live columns are `columns`.
    pub fn sql(&self, alias: &str, columns: &[String]) -> String {
        let cell = |column: &str| {
            let column = format!("{alias}.{}", quoted(column));
            format!(
                "(CASE typeof({column}) WHEN 'null' THEN 1 WHEN 'integer' THEN 9 WHEN 'real' THEN 9 \
                 ELSE length(CAST({column} AS BLOB)) + 2 END)"
            )
        };
        let mut parts: Vec<String> = columns.iter().map(|column| cell(column)).collect();
        parts.push(RECORD_BYTES.to_string());
        for index in &self.indexes {
            for part in index {
                parts.push(match part {
                    Some(position) => cell(&columns[*position]),
                    None => EXPRESSION_BYTES.to_string(),
                });
            }
            parts.push(INDEX_ENTRY_BYTES.to_string());
        }
        format!("(({}) * {FILL_DENOMINATOR} / {FILL_NUMERATOR})", parts.join(" + "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Rust formula and the SQL one give the same bytes for the same stored row.
    #[test]
    fn rust_and_sql_charge_a_row_alike() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE t (id TEXT PRIMARY KEY, user_id TEXT, n INTEGER, x REAL, body TEXT);
                 CREATE INDEX t_user ON t (user_id, n);
                 CREATE INDEX t_expr ON t (lower(body));
                 INSERT INTO t VALUES ('ab', 'u1', 7, 1.5, 'héllo');",
            )
            .unwrap();
        let columns: Vec<String> = ["id", "user_id", "n", "x", "body"].iter().map(|c| c.to_string()).collect();
        let charge = RowCharge::of(&connection, "t", &columns).unwrap();
        assert_eq!(charge.indexes.len(), 3, "two indexes and the primary key's");
        let row = vec![Some(json!("ab")), Some(json!("u1")), Some(json!(7)), Some(json!(1.5)), Some(json!("héllo"))];
        let in_sql: i64 =
            connection.query_row(&format!("SELECT {} FROM t AS r", charge.sql("r", &columns)), [], |r| r.get(0)).unwrap();
        assert_eq!(charge.bytes(&row), in_sql as u64);
        assert!(charge.bytes(&row) > 60);
    }
}
