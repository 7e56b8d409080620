//! The demo account's rows as they are built: each column named with the storage class it
//! gets (integer, real, text or null), JSON that a column holds as text serialized from
//! typed values, and the rows collected per table until they are inserted.

use serde::Serialize;
use serde_json::{Map, Value};

/// One row of a Lumiverse table, column by column.
#[derive(Default)]
pub(super) struct SeedRow {
    columns: Map<String, Value>,
}

impl SeedRow {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn text(self, column: &str, value: impl Into<String>) -> Self {
        self.with(column, Value::String(value.into()))
    }

    /// Text, or null where there is none.
    pub(super) fn text_or_null(self, column: &str, value: Option<impl Into<String>>) -> Self {
        self.with(column, value.map_or(Value::Null, |text| Value::String(text.into())))
    }

    pub(super) fn int(self, column: &str, value: i64) -> Self {
        self.with(column, Value::from(value))
    }

    pub(super) fn real(self, column: &str, value: f64) -> Self {
        self.with(column, Value::from(value))
    }

    pub(super) fn null(self, column: &str) -> Self {
        self.with(column, Value::Null)
    }

    /// `value` as compact JSON text, keys in the order its type serializes them.
    pub(super) fn json_text(self, column: &str, value: &(impl Serialize + ?Sized)) -> Self {
        self.with(column, Value::String(json_text(value)))
    }

    fn with(mut self, column: &str, value: Value) -> Self {
        self.columns.insert(column.to_string(), value);
        self
    }

    /// The columns as the database's row insertion takes them.
    pub(super) fn into_columns(self) -> Map<String, Value> {
        self.columns
    }
}

/// `value` as compact JSON text. The seed serializes only its own structs, sequences and
/// strings, for which serde_json cannot fail (it fails on maps with non-string keys and on
/// `Serialize` implementations that fail).
pub(super) fn json_text(value: &(impl Serialize + ?Sized)) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Rows collected per table, inserted table by table (in the order each table was first
/// given a row) at the end.
#[derive(Default)]
pub(super) struct Rows {
    tables: Vec<(&'static str, Vec<Map<String, Value>>)>,
}

impl Rows {
    pub(super) fn add(&mut self, table: &'static str, row: SeedRow) {
        let row = row.into_columns();
        match self.tables.iter_mut().find(|(name, _)| *name == table) {
            Some((_, rows)) => rows.push(row),
            None => self.tables.push((table, vec![row])),
        }
    }

    /// Inserts every table's rows; how many there were.
    pub(super) async fn insert(&self, store: &crate::storage::Store) -> anyhow::Result<u64> {
        let mut inserted = 0;
        for (table, rows) in &self.tables {
            inserted += store.insert_rows(table, rows).await?;
        }
        Ok(inserted)
    }
}
