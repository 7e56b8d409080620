//! Rows written as they are, outside an import's rules: the demo account's (`lvbak seed`)
//! and tests' setup, as SQLite's `Database::insert_json_rows` writes them — each value as
//! SQLite would store it (`values`), any conflict failing the whole call.

use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use super::values::{odd_object, place, Typed};
use super::PostgresStores;
use crate::storage::sqlite::schema::{shapes, StoredValues};
use crate::storage::sqlite::{quoted, DbError, DbResult};

impl PostgresStores {
    /// Inserts rows given as JSON objects (keys are columns) into the registry table
    /// `table`, in one transaction; how many.
    pub(crate) async fn insert_rows(&self, table: &str, rows: &[Map<String, Value>]) -> DbResult<u64> {
        let shape = shapes()?.table(table)?;
        let stored_values = StoredValues::new()?;
        let mut statements = Vec::with_capacity(rows.len());
        for row in rows {
            let mut names = Vec::new();
            let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            let mut odd = Map::new();
            for (column, value) in row {
                let Some(shape) = shape.columns.iter().find(|c| c.name == *column) else {
                    return Err(DbError::Invalid(format!("{table} has no column {column}")));
                };
                let (typed, entry) = place(shape.affinity, stored_values.stored(shape.affinity, value)?);
                if let Some(entry) = entry {
                    odd.insert(column.clone(), entry);
                }
                names.push(quoted(column));
                values.push(match typed {
                    Typed::Integer(value) => Box::new(value),
                    Typed::Real(value) => Box::new(value),
                    Typed::Text(value) => Box::new(value),
                });
            }
            names.push("lvbak_odd".into());
            values.push(Box::new(odd_object(odd)));
            let placeholders: Vec<String> = (1..=names.len())
                .map(|i| if i == names.len() { format!("${i}::text::jsonb") } else { format!("${i}") })
                .collect();
            let sql =
                format!("INSERT INTO {} ({}) VALUES ({})", quoted(table), names.join(", "), placeholders.join(", "));
            statements.push((sql, values));
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        for (sql, values) in &statements {
            let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| &**value as &(dyn ToSql + Sync)).collect();
            let statement = transaction.prepare_cached(sql).await?;
            transaction.execute(&statement, &params).await?;
        }
        transaction.commit().await?;
        Ok(rows.len() as u64)
    }
}
