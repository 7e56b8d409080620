//! Rows written in raw, as another database stored them: `lvbak migrate` copying a
//! single-node instance's accounts out of SQLite (`sqlite::copy_out`'s chunks). Each value
//! goes where PostgreSQL keeps what SQLite would have stored (`values::place`: the typed
//! column, or the row's `lvbak_odd`), so the rows read back — and export — as they did from
//! SQLite. A chunk is one `INSERT … SELECT … FROM unnest(typed arrays) ON CONFLICT DO
//! NOTHING`: a row whose key (or unique index) is there already is kept as it is, so a run
//! cut short and run again completes the copy, and a run after a complete one writes
//! nothing. Rows are no import's (`lvbak_import` NULL): visible at once.

use serde_json::Map;
use tokio_postgres::types::ToSql;

use super::values::{odd_object, place, TypedColumn};
use super::PostgresStores;
use crate::storage::sqlite::copy_out::MovedTable;
use crate::storage::sqlite::schema::StoredValue;
use crate::storage::sqlite::{quoted, DbError, DbResult};

/// The statement that writes a chunk of `table`'s rows.
fn insert_sql(table: &MovedTable, columns: &[TypedColumn]) -> String {
    let mut names: Vec<String> = table.columns.iter().map(|(name, _)| quoted(name)).collect();
    let mut selected: Vec<String> = (0..columns.len()).map(|number| format!("u.a{number}")).collect();
    let mut aliases: Vec<String> = (0..columns.len()).map(|number| format!("a{number}")).collect();
    let mut arrays: Vec<String> =
        columns.iter().enumerate().map(|(number, column)| format!("${}::{}", number + 1, column.sql_type())).collect();
    if table.registry {
        names.push("lvbak_odd".into());
        selected.push("u.odd::jsonb".into());
        aliases.push("odd".into());
        arrays.push(format!("${}::text[]", columns.len() + 1));
    }
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({}) ON CONFLICT DO NOTHING",
        quoted(table.name),
        names.join(", "),
        selected.join(", "),
        arrays.join(", "),
        aliases.join(", "),
    )
}

impl PostgresStores {
    /// Writes `rows` of `table` (values as SQLite stores them, aligned with its columns),
    /// keeping every row whose key is there already; how many were written. A value the
    /// row's table cannot keep — one not of its column's type in lvbak's own tables, a key
    /// PostgreSQL cannot hold in a registry table (text with a NUL character) — is an error
    /// naming the table and column.
    pub(crate) async fn copy_in(&self, table: &MovedTable, rows: Vec<Vec<StoredValue>>) -> DbResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut columns: Vec<TypedColumn> =
            table.columns.iter().map(|(_, affinity)| TypedColumn::new(*affinity, rows.len())).collect();
        let mut odds: Vec<Option<String>> = Vec::with_capacity(rows.len());
        for row in rows {
            let mut odd = Map::new();
            for ((value, column), (name, affinity)) in row.into_iter().zip(&mut columns).zip(&table.columns) {
                let (typed, entry) = place(*affinity, value);
                if let Some(entry) = entry {
                    if !table.registry || table.key.contains(name) {
                        return Err(DbError::Invalid(format!(
                            "{}.{name}: a value PostgreSQL's column cannot hold (another type than the column's, or \
                             text with a NUL character)",
                            table.name
                        )));
                    }
                    odd.insert(name.clone(), entry);
                }
                column.push(typed);
            }
            odds.push(odd_object(odd));
        }
        let sql = insert_sql(table, &columns);
        let mut params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(TypedColumn::as_param).collect();
        if table.registry {
            params.push(&odds);
        }
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        Ok(client.execute(&statement, &params).await?)
    }

    /// Takes `id` (the data directory's instance id, which its object store may be claimed
    /// with) as the instance's, unless the database has one already: the one it keeps.
    pub(crate) async fn adopt_instance_id(&self, id: &str) -> DbResult<String> {
        self.set_meta(crate::storage::INSTANCE_ID_KEY, id, true).await
    }
}
