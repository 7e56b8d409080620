//! What a row counts for against its account's quota: the bytes it takes in the database,
//! estimated from its values the way SQLite stores them — its record in the table's b-tree
//! and an entry in every index of the table that holds every row (a partial index holds
//! few) — which, with lvbak's 64 KiB pages filled in id order, came to within a few per
//! cent of the pages an import of 30,000 characters added (`hostile::h15`). The same
//! formula in Rust (an import charges each row it adds) and in SQL (the recount of every
//! account's rows: `Database::rows_usage_by_user`).

use rusqlite::Connection;
use serde_json::Value;

use super::{quoted, DbResult};

/// Bytes of a record besides its values: the header's size, the rowid, the payload's
/// size, the cell pointer.
const RECORD_BYTES: u64 = 8;
/// Bytes of an index entry besides its values: likewise, with the rowid as a value.
const INDEX_ENTRY_BYTES: u64 = 9;
/// What an index over an expression (not a column) is counted as, per entry.
const EXPRESSION_BYTES: u64 = 16;

/// How a table's rows are charged: its columns' places in each of its indexes.
#[derive(Clone, Debug, Default)]
pub struct RowCharge {
    /// Per index, the live column of each part (`None`: an expression).
    indexes: Vec<Vec<Option<usize>>>,
}

/// The bytes an integer takes in a record, with its header byte (SQLite stores 0 and 1 in
/// the header alone, others in 1 to 8 bytes by magnitude).
fn integer_bytes(n: i64) -> u64 {
    match n.unsigned_abs() {
        0 | 1 => 1,
        2..=127 => 2,
        128..=32_767 => 3,
        32_768..=8_388_607 => 4,
        8_388_608..=2_147_483_647 => 5,
        _ => 9,
    }
}

/// The bytes a text of `length` bytes takes in a record, with its header bytes.
fn text_bytes(length: u64) -> u64 {
    length + if length > 56 { 2 } else { 1 }
}

/// The bytes one value takes in a record.
fn cell(value: Option<&Value>) -> u64 {
    match value {
        None | Some(Value::Null | Value::Bool(_)) => 1,
        Some(Value::Number(number)) => number.as_i64().map_or(9, integer_bytes),
        Some(Value::String(text)) => text_bytes(text.len() as u64),
        // Stored as its JSON text.
        Some(other) => text_bytes(serde_json::to_string(other).map_or(0, |text| text.len() as u64)),
    }
}

impl RowCharge {
    /// Reads the indexes of `table`, whose live columns are `columns` in order.
    pub fn of(connection: &Connection, table: &str, columns: &[String]) -> DbResult<Self> {
        // Partial indexes (`partial` = 1) hold only the rows their condition picks.
        let names: Vec<String> = connection
            .prepare(&format!("PRAGMA index_list({})", quoted(table)))?
            .query_map([], |row| Ok((row.get::<_, String>(1)?, row.get::<_, i64>(4)?)))?
            .filter_map(|row| row.map(|(name, partial)| (partial == 0).then_some(name)).transpose())
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
        record + entries
    }

    /// The same as [`Self::bytes`], as an SQL expression over the row `alias` of a table
    /// whose live columns are `columns`.
    pub fn sql(&self, alias: &str, columns: &[String]) -> String {
        let cell = |column: &str| {
            let column = format!("{alias}.{}", quoted(column));
            format!(
                "(CASE typeof({column}) WHEN 'null' THEN 1 WHEN 'real' THEN 9 \
                 WHEN 'integer' THEN (CASE WHEN abs({column}) <= 1 THEN 1 WHEN abs({column}) <= 127 THEN 2 \
                 WHEN abs({column}) <= 32767 THEN 3 WHEN abs({column}) <= 8388607 THEN 4 \
                 WHEN abs({column}) <= 2147483647 THEN 5 ELSE 9 END) \
                 ELSE length(CAST({column} AS BLOB)) + (CASE WHEN length(CAST({column} AS BLOB)) > 56 THEN 2 ELSE 1 END) END)"
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
        format!("({})", parts.join(" + "))
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
                 CREATE INDEX t_partial ON t (x) WHERE x > 100;
                 INSERT INTO t VALUES ('ab', 'u1', 7, 1.5, 'héllo');",
            )
            .unwrap();
        let columns: Vec<String> = ["id", "user_id", "n", "x", "body"].iter().map(|c| c.to_string()).collect();
        let charge = RowCharge::of(&connection, "t", &columns).unwrap();
        assert_eq!(charge.indexes.len(), 3, "two indexes and the primary key's, not the partial one");
        let row = vec![Some(json!("ab")), Some(json!("u1")), Some(json!(7)), Some(json!(1.5)), Some(json!("héllo"))];
        assert_eq!(integer_bytes(0) + integer_bytes(-200) + integer_bytes(1 << 40), 1 + 3 + 9);
        let in_sql: i64 = connection
            .query_row(&format!("SELECT {} FROM t AS r", charge.sql("r", &columns)), [], |r| r.get(0))
            .unwrap();
        assert_eq!(charge.bytes(&row), in_sql as u64);
        assert!(charge.bytes(&row) > 40);
    }
}
