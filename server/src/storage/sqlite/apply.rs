//! Applying imported rows with merge-by-ID semantics, on a connection of the import's own
//! with foreign-key enforcement off (the schema has cycles; FORMAT §4). Every rule that
//! keeps one user's import away from another user's data lives here:
//!
//! - only registry tables are written, only with live columns, `user_id` (and
//!   `installed_by_user_id`) forced to the importer, `has_api_key` forced to 0;
//! - a child row whose parent (chat, world book, pack, vault, session) is not the
//!   importer's — someone else's, or nobody's — is rejected;
//! - a row that refers to another user's row is rejected (or, for the nullable references
//!   of the scrub list, has the reference cleared);
//! - a row whose primary key exists is skipped, whoever owns it; `settings` are deep-merged;
//! - images and avatars whose file name another user's row already uses are rejected, so
//!   an archive cannot claim someone else's file;
//! - afterwards, nullable references of the importer's rows that point nowhere are cleared.

use std::collections::{HashMap, HashSet};

use lvbak_core::registry::{
    is_secret_setting_key, table_spec, Ownership, ReferenceRule, ResetValue, TableSpec, TABLES,
};
use lvbak_core::Row;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{quoted, Database, DbResult};

/// What became of the rows of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableCounts {
    pub imported: u64,
    pub skipped: u64,
    pub merged: u64,
    pub rejected: u64,
}

impl TableCounts {
    pub fn add(&mut self, other: TableCounts) {
        self.imported += other.imported;
        self.skipped += other.skipped;
        self.merged += other.merged;
        self.rejected += other.rejected;
    }
}

/// Who a row belongs to, as seen by the importer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Importer,
    Someone,
    Nobody,
}

#[derive(Clone, Debug)]
struct LiveColumn {
    name: String,
    required: bool,
    primary_key: bool,
}

/// The import's writer.
pub struct RowApplier {
    connection: Connection,
    user_id: String,
    columns: HashMap<&'static str, Vec<LiveColumn>>,
    owners: HashMap<(&'static str, String), Owner>,
    /// Ids inserted by this import, per table that may need re-vectorizing.
    inserted: HashMap<&'static str, Vec<String>>,
}

/// A JSON value as SQLite stores it (JSON columns stay JSON text).
fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(flag) => SqlValue::Integer(i64::from(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => SqlValue::Integer(integer),
            None => SqlValue::Real(number.as_f64().unwrap_or(0.0)),
        },
        Value::String(text) => SqlValue::Text(text.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// The SQL condition "row `alias` belongs to user ?N" for a registry table.
fn owned_condition(spec: &TableSpec, alias: &str, parameter: usize) -> String {
    match spec.ownership {
        Ownership::Direct { column } => format!("{alias}.{} = ?{parameter}", quoted(column)),
        Ownership::Parent { parent_table, column } => {
            let owner = match table_spec(parent_table).map(|p| p.ownership) {
                Some(Ownership::Direct { column }) => column,
                _ => "user_id",
            };
            format!(
                "{alias}.{} IN (SELECT id FROM {} WHERE {} = ?{parameter})",
                quoted(column),
                quoted(parent_table),
                quoted(owner)
            )
        }
    }
}

/// Settings deep merge (FORMAT §4): the target's top-level fields win unless null or
/// absent; arrays of objects with string ids on the imported side are unioned by id,
/// target items first. Non-object values: the target wins.
pub fn merge_setting(target: &Value, imported: &Value) -> Value {
    let (Value::Object(target_fields), Value::Object(imported_fields)) = (target, imported) else {
        return target.clone();
    };
    let mut merged: Map<String, Value> = target_fields.clone();
    for (key, incoming) in imported_fields {
        match merged.get(key) {
            None | Some(Value::Null) => {
                merged.insert(key.clone(), incoming.clone());
            }
            Some(Value::Array(existing)) => {
                let incoming_items = match incoming {
                    Value::Array(items)
                        if !items.is_empty() && items.iter().all(|i| i.get("id").is_some_and(Value::is_string)) =>
                    {
                        items
                    }
                    _ => continue,
                };
                let known: HashSet<&str> =
                    existing.iter().filter_map(|i| i.get("id").and_then(Value::as_str)).collect();
                let mut union = existing.clone();
                union.extend(
                    incoming_items
                        .iter()
                        .filter(|i| !i.get("id").and_then(Value::as_str).is_some_and(|id| known.contains(id)))
                        .cloned(),
                );
                merged.insert(key.clone(), Value::Array(union));
            }
            Some(_) => {}
        }
    }
    Value::Object(merged)
}

impl Database {
    /// A writer for one import by `user_id`.
    pub fn row_applier(&self, user_id: &str) -> DbResult<RowApplier> {
        let connection = self.connect()?;
        connection.pragma_update(None, "foreign_keys", "OFF")?;
        Ok(RowApplier {
            connection,
            user_id: user_id.to_string(),
            columns: HashMap::new(),
            owners: HashMap::new(),
            inserted: HashMap::new(),
        })
    }
}

impl RowApplier {
    fn live_columns(&mut self, table: &'static str) -> DbResult<Vec<LiveColumn>> {
        if let Some(columns) = self.columns.get(table) {
            return Ok(columns.clone());
        }
        let mut statement = self.connection.prepare(&format!("PRAGMA table_info({})", quoted(table)))?;
        let columns = statement
            .query_map([], |row| {
                let notnull: i64 = row.get(3)?;
                let default: Option<String> = row.get(4)?;
                let pk: i64 = row.get(5)?;
                Ok(LiveColumn { name: row.get(1)?, required: notnull != 0 && default.is_none(), primary_key: pk > 0 })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        self.columns.insert(table, columns.clone());
        Ok(columns)
    }

    /// Whose row `id` of `table` is.
    pub fn owner_of(&mut self, table: &'static str, id: &str) -> DbResult<Owner> {
        if let Some(owner) = self.owners.get(&(table, id.to_string())) {
            return Ok(*owner);
        }
        let Some(spec) = table_spec(table) else { return Ok(Owner::Nobody) };
        let sql = match spec.ownership {
            Ownership::Direct { column } => format!("SELECT {} FROM {} WHERE id = ?1", quoted(column), quoted(table)),
            Ownership::Parent { parent_table, column } => format!(
                "SELECT p.user_id FROM {} t JOIN {} p ON p.id = t.{} WHERE t.id = ?1",
                quoted(table),
                quoted(parent_table),
                quoted(column)
            ),
        };
        let found: Option<Option<String>> =
            self.connection.prepare_cached(&sql)?.query_row([id], |row| row.get(0)).optional()?;
        let owner = match found {
            None => Owner::Nobody,
            Some(Some(user)) if user == self.user_id => Owner::Importer,
            Some(_) => Owner::Someone,
        };
        // A missing row may be inserted later in this import; only settled answers are kept.
        if owner != Owner::Nobody {
            self.owners.insert((table, id.to_string()), owner);
        }
        Ok(owner)
    }

    /// Whether another user's row of `table` already uses `value` in `column` (a file name).
    fn file_name_taken(&mut self, table: &str, column: &str, value: &str) -> DbResult<bool> {
        let owner = match table_spec(table).map(|s| s.ownership) {
            Some(Ownership::Direct { column }) => column,
            _ => "user_id",
        };
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ?1 AND ({} IS NULL OR {} <> ?2))",
            quoted(table),
            quoted(column),
            quoted(owner),
            quoted(owner)
        );
        Ok(self.connection.prepare_cached(&sql)?.query_row([value, self.user_id.as_str()], |row| row.get(0))?)
    }

    /// Whether an avatar file name is used by another user's character or persona.
    fn avatar_taken(&mut self, name: &str) -> DbResult<bool> {
        Ok(self.file_name_taken("characters", "avatar_path", name)?
            || self.file_name_taken("personas", "avatar_path", name)?)
    }

    /// Applies a batch of rows of one registry table, in one transaction.
    pub fn apply(&mut self, spec: &'static TableSpec, rows: Vec<Row>) -> DbResult<TableCounts> {
        let columns = self.live_columns(spec.name)?;
        let mut counts = TableCounts::default();
        self.connection.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| -> DbResult<()> {
            for row in rows {
                if spec.name == "settings" {
                    self.apply_setting(row, &mut counts)?;
                    continue;
                }
                match self.prepare_row(spec, &columns, row)? {
                    Some(row) => {
                        if self.insert(spec, &row)? {
                            counts.imported += 1;
                        } else {
                            counts.skipped += 1;
                        }
                    }
                    None => counts.rejected += 1,
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.connection.execute_batch("COMMIT")?,
            Err(error) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                return Err(error);
            }
        }
        Ok(counts)
    }

    /// Cleans a row for `spec`, or refuses it (`None`).
    fn prepare_row(
        &mut self,
        spec: &'static TableSpec,
        columns: &[LiveColumn],
        mut row: Row,
    ) -> DbResult<Option<Vec<(String, Value)>>> {
        // Forced columns first, so later checks see what will be written.
        for column in columns {
            match column.name.as_str() {
                "user_id" | "installed_by_user_id" => {
                    row.insert(column.name.clone(), Value::String(self.user_id.clone()));
                }
                name if spec.forced_zero.contains(&name) => {
                    row.insert(column.name.clone(), Value::from(0));
                }
                _ => {}
            }
        }
        if let Some((column, value)) = spec.row_filter {
            if row.get(column).and_then(Value::as_str) != Some(value) {
                return Ok(None);
            }
        }
        for column in columns {
            let value = row.get(&column.name).unwrap_or(&Value::Null);
            if (column.primary_key || column.required) && value.is_null() {
                return Ok(None);
            }
        }
        if let Ownership::Parent { parent_table, column } = spec.ownership {
            let Some(parent) = row.get(column).and_then(Value::as_str).map(str::to_string) else { return Ok(None) };
            if self.owner_of(parent_table, &parent)? != Owner::Importer {
                return Ok(None);
            }
        }
        for reference in spec.references {
            let Some(target) = row.get(reference.column).and_then(Value::as_str).map(str::to_string) else { continue };
            let Some(target_spec) = table_spec(reference.table) else { continue };
            if self.owner_of(target_spec.name, &target)? == Owner::Someone {
                match reference.rule {
                    ReferenceRule::RejectWhenForeign => return Ok(None),
                    ReferenceRule::ScrubWhenMissing => {
                        row.insert(reference.column.to_string(), Value::Null);
                    }
                }
            }
        }
        // An archive must not claim a file another user's row names.
        match spec.name {
            "images" => {
                if let Some(name) = row.get("filename").and_then(Value::as_str).map(str::to_string) {
                    if self.file_name_taken("images", "filename", &name)? {
                        return Ok(None);
                    }
                }
            }
            "characters" | "personas" => {
                if let Some(name) = row.get("avatar_path").and_then(Value::as_str).map(str::to_string) {
                    if self.avatar_taken(&name)? {
                        return Ok(None);
                    }
                }
            }
            _ => {}
        }
        let kept = columns
            .iter()
            .filter_map(|column| row.remove(&column.name).map(|value| (column.name.clone(), value)))
            .collect();
        Ok(Some(kept))
    }

    /// `INSERT OR IGNORE`; true when the row was new.
    fn insert(&mut self, spec: &'static TableSpec, row: &[(String, Value)]) -> DbResult<bool> {
        let names: Vec<String> = row.iter().map(|(name, _)| quoted(name)).collect();
        let placeholders: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
            quoted(spec.name),
            names.join(", "),
            placeholders.join(", ")
        );
        let values: Vec<SqlValue> = row.iter().map(|(_, value)| to_sql(value)).collect();
        let changed = self.connection.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(values))?;
        if changed == 0 {
            return Ok(false);
        }
        if let Some(id) = row.iter().find(|(name, _)| name == "id").and_then(|(_, value)| value.as_str()) {
            self.owners.insert((spec.name, id.to_string()), Owner::Importer);
            if !spec.revectorize.is_empty() {
                self.inserted.entry(spec.name).or_default().push(id.to_string());
            }
        }
        Ok(true)
    }

    fn apply_setting(&mut self, row: Row, counts: &mut TableCounts) -> DbResult<()> {
        let (Some(key), Some(value)) = (row.get("key").and_then(Value::as_str), row.get("value")) else {
            counts.rejected += 1;
            return Ok(());
        };
        if is_secret_setting_key(key) {
            counts.rejected += 1;
            return Ok(());
        }
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let updated_at = row.get("updated_at").and_then(Value::as_i64).unwrap_or(0);
        let existing: Option<String> = self
            .connection
            .prepare_cached("SELECT value FROM settings WHERE key = ?1 AND user_id = ?2")?
            .query_row([key, self.user_id.as_str()], |r| r.get(0))
            .optional()?;
        match existing {
            None => {
                self.connection
                    .prepare_cached("INSERT INTO settings (key, value, updated_at, user_id) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(rusqlite::params![key, text, updated_at, self.user_id])?;
                counts.imported += 1;
            }
            Some(current) => {
                let (Ok(target), Ok(imported)) =
                    (serde_json::from_str::<Value>(&current), serde_json::from_str::<Value>(&text))
                else {
                    counts.skipped += 1;
                    return Ok(());
                };
                let merged = merge_setting(&target, &imported);
                if merged == target {
                    counts.skipped += 1;
                } else {
                    self.connection
                        .prepare_cached("UPDATE settings SET value = ?1 WHERE key = ?2 AND user_id = ?3")?
                        .execute(rusqlite::params![merged.to_string(), key, self.user_id])?;
                    counts.merged += 1;
                }
            }
        }
        Ok(())
    }

    /// Clears every nullable reference (FORMAT §4's scrub list) of the importer's rows whose
    /// target is missing or not the importer's; returns how many were cleared.
    pub fn scrub_references(&mut self) -> DbResult<u64> {
        let mut cleared = 0;
        for spec in TABLES {
            for reference in spec.references.iter().filter(|r| r.rule == ReferenceRule::ScrubWhenMissing) {
                let Some(target) = table_spec(reference.table) else { continue };
                let column = quoted(reference.column);
                let sql = format!(
                    "UPDATE {table} AS t SET {column} = NULL WHERE {owned} AND t.{column} IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM {target} x WHERE x.id = t.{column} AND {target_owned})",
                    table = quoted(spec.name),
                    owned = owned_condition(spec, "t", 1),
                    target = quoted(target.name),
                    target_owned = owned_condition(target, "x", 1),
                );
                cleared += self.connection.execute(&sql, [&self.user_id])? as u64;
            }
        }
        Ok(cleared)
    }

    /// Resets the vector state of the rows this import inserted, so they are re-embedded
    /// (FORMAT §3); returns how many rows were marked.
    pub fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        let mut marked = 0;
        let inserted = std::mem::take(&mut self.inserted);
        for (table, ids) in &inserted {
            let Some(spec) = table_spec(table) else { continue };
            let assignments: Vec<String> = spec
                .revectorize
                .iter()
                .map(|(column, value)| {
                    let value = match value {
                        ResetValue::Null => "NULL".to_string(),
                        ResetValue::Integer(number) => number.to_string(),
                        ResetValue::Text(text) => format!("'{}'", text.replace('\'', "''")),
                    };
                    format!("{} = {value}", quoted(column))
                })
                .collect();
            for group in ids.chunks(500) {
                let placeholders: Vec<String> = (1..=group.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "UPDATE {} SET {} WHERE id IN ({})",
                    quoted(table),
                    assignments.join(", "),
                    placeholders.join(", ")
                );
                marked += self.connection.execute(&sql, rusqlite::params_from_iter(group))? as u64;
            }
        }
        Ok(marked)
    }

    /// The text a vector was computed from, by the vector's source: the importer's own row
    /// gives its text; a source that is nobody's (or of a kind without a table) gives an
    /// empty text; someone else's row gives `None`, and the vector must be refused, or its
    /// text would leak.
    pub fn vector_source_text(&mut self, source_type: &str, source_id: &str) -> DbResult<Option<String>> {
        let (table, column): (&'static str, &str) = match source_type {
            "chat_chunk" => ("chat_chunks", "content"),
            "world_book_entry" => ("world_book_entries", "content"),
            "databank" | "databank_chunk" => ("databank_chunks", "content"),
            "memory_consolidation" => ("memory_consolidations", "summary"),
            _ => return Ok(Some(String::new())),
        };
        match self.owner_of(table, source_id)? {
            Owner::Someone => Ok(None),
            Owner::Nobody => Ok(Some(String::new())),
            Owner::Importer => {
                let sql = format!("SELECT {} FROM {} WHERE id = ?1", quoted(column), quoted(table));
                let text = self
                    .connection
                    .prepare_cached(&sql)?
                    .query_row([source_id], |row| row.get::<_, Option<String>>(0))
                    .optional()?;
                Ok(Some(text.flatten().unwrap_or_default()))
            }
        }
    }

    /// Whether one of the importer's rows names this file, so that it may be written into
    /// a folder shared by every user (`images/`, `avatars/`).
    pub fn importer_names_file(&mut self, table: &str, column: &str, name: &str) -> DbResult<bool> {
        let owner = match table_spec(table).map(|s| s.ownership) {
            Some(Ownership::Direct { column }) => column,
            _ => return Ok(false),
        };
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ?1 AND {} = ?2)",
            quoted(table),
            quoted(column),
            quoted(owner)
        );
        Ok(self.connection.prepare_cached(&sql)?.query_row([name, self.user_id.as_str()], |row| row.get(0))?)
    }

    /// Whether the importer has an image whose file is `<stem>` or `<stem>.<extension>`
    /// (thumbnails are named after their original).
    pub fn importer_has_image_stem(&mut self, stem: &str) -> DbResult<bool> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM images WHERE user_id = ?2 AND (filename = ?1 OR substr(filename, 1, length(?1) + 1) = ?1 || '.'))",
            )?
            .query_row([stem, self.user_id.as_str()], |row| row.get(0))?)
    }

    /// The stored path of one of the importer's databank documents.
    pub fn databank_file_path(&mut self, document_id: &str) -> DbResult<Option<String>> {
        Ok(self
            .connection
            .prepare_cached("SELECT file_path FROM databank_documents WHERE id = ?1 AND user_id = ?2")?
            .query_row([document_id, self.user_id.as_str()], |row| row.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Turns on `has_api_key` of one of the importer's connections (a restored secret).
    pub fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool> {
        let sql = format!("UPDATE {} SET has_api_key = 1 WHERE id = ?1 AND user_id = ?2", quoted(table));
        Ok(self.connection.execute(&sql, [id, self.user_id.as_str()])? > 0)
    }

    /// The importer's embedding configuration setting, as JSON text.
    pub fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        Ok(self
            .connection
            .query_row(
                "SELECT value FROM settings WHERE key = 'embeddingConfig' AND user_id = ?1",
                [&self.user_id],
                |row| row.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_merge_keeps_the_targets_choices_and_unions_lists() {
        let target = json!({"mode": "dark", "accent": null, "presets": [{"id": "a", "v": 1}]});
        let imported =
            json!({"mode": "light", "accent": "#fff", "font": 14, "presets": [{"id": "a", "v": 2}, {"id": "b"}]});
        assert_eq!(
            merge_setting(&target, &imported),
            json!({"mode": "dark", "accent": "#fff", "font": 14, "presets": [{"id": "a", "v": 1}, {"id": "b"}]})
        );
        assert_eq!(merge_setting(&json!("en"), &json!("fr")), json!("en"));
    }
}
