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
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
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

/// What the checks of one table need, by column index (worked out once per table).
#[derive(Clone, Debug)]
struct TablePlan {
    columns: Vec<LiveColumn>,
    names: Vec<String>,
    /// `user_id` / `installed_by_user_id`: forced to the importer.
    owner_columns: Vec<usize>,
    forced_zero: Vec<usize>,
    filter: Option<(usize, &'static str)>,
    parent: Option<(usize, &'static str)>,
    references: Vec<(usize, &'static str, ReferenceRule)>,
    /// A column naming a file in a shared folder, which another user's row may already use.
    file_name: Option<usize>,
    id: Option<usize>,
}

/// One row, its values aligned with the live columns of its table (`None`: absent).
pub type AlignedRow = Vec<Option<Value>>;

/// The import's writer.
pub struct RowApplier {
    connection: Connection,
    user_id: String,
    plans: HashMap<&'static str, TablePlan>,
    owners: HashMap<(&'static str, String), Owner>,
    /// Ids inserted by this import, per table that may need re-vectorizing.
    inserted: HashMap<&'static str, Vec<String>>,
    /// The write transaction batches share, and when it began (see [`Self::apply`]).
    open_since: Option<std::time::Instant>,
    rows_in_transaction: usize,
}

/// A transaction spanning several batches is committed after this long or this many rows,
/// so that index pages dirtied by many batches are written once, while other writers wait
/// no longer than this.
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
const COMMIT_AFTER_ROWS: usize = 50_000;

impl Drop for RowApplier {
    /// Whatever batches were applied stay applied, however the import ends.
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

/// A JSON value bound as an SQL parameter the way SQLite stores it (JSON columns stay
/// JSON text); strings are bound without copying.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Bool(flag) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*flag))),
            Value::Number(number) => ToSqlOutput::Owned(match number.as_i64() {
                Some(integer) => SqlValue::Integer(integer),
                None => SqlValue::Real(number.as_f64().unwrap_or(0.0)),
            }),
            Value::String(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            other => ToSqlOutput::Owned(SqlValue::Text(other.to_string())),
        })
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
        // A bulk writer: a page cache that holds a whole batch, and checkpoints (each of
        // which syncs the disk) every 256 MiB of WAL rather than every 4 MiB.
        connection.pragma_update(None, "cache_size", -24576)?;
        connection.pragma_update(None, "wal_autocheckpoint", 65536)?;
        connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        Ok(RowApplier {
            connection,
            user_id: user_id.to_string(),
            plans: HashMap::new(),
            owners: HashMap::new(),
            inserted: HashMap::new(),
            open_since: None,
            rows_in_transaction: 0,
        })
    }
}

impl RowApplier {
    fn plan(&mut self, spec: &'static TableSpec) -> DbResult<TablePlan> {
        if let Some(plan) = self.plans.get(spec.name) {
            return Ok(plan.clone());
        }
        let mut statement = self.connection.prepare(&format!("PRAGMA table_info({})", quoted(spec.name)))?;
        let columns = statement
            .query_map([], |row| {
                let notnull: i64 = row.get(3)?;
                let default: Option<String> = row.get(4)?;
                let pk: i64 = row.get(5)?;
                Ok(LiveColumn { name: row.get(1)?, required: notnull != 0 && default.is_none(), primary_key: pk > 0 })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let position = |name: &str| columns.iter().position(|column| column.name == name);
        let plan = TablePlan {
            names: columns.iter().map(|column| column.name.clone()).collect(),
            owner_columns: ["user_id", "installed_by_user_id"].into_iter().filter_map(position).collect(),
            forced_zero: spec.forced_zero.iter().filter_map(|name| position(name)).collect(),
            filter: spec.row_filter.and_then(|(column, value)| position(column).map(|index| (index, value))),
            parent: match spec.ownership {
                Ownership::Parent { parent_table, column } => position(column).map(|index| (index, parent_table)),
                Ownership::Direct { .. } => None,
            },
            references: spec
                .references
                .iter()
                .filter_map(|r| position(r.column).map(|index| (index, r.table, r.rule)))
                .collect(),
            file_name: match spec.name {
                "images" => position("filename"),
                "characters" | "personas" => position("avatar_path"),
                _ => None,
            },
            id: position("id"),
            columns,
        };
        self.plans.insert(spec.name, plan.clone());
        Ok(plan)
    }

    /// The live columns of a registry table, in order: rows are handed to [`Self::apply`]
    /// aligned with these.
    pub fn columns_of(&mut self, spec: &'static TableSpec) -> DbResult<Vec<String>> {
        Ok(self.plan(spec)?.names)
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

    /// Commits the open transaction, if any.
    pub fn commit(&mut self) -> DbResult<()> {
        if self.open_since.take().is_some() {
            self.rows_in_transaction = 0;
            self.connection.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// Applies a batch of rows of one registry table (aligned with [`Self::columns_of`]):
    /// every row is checked first, then the accepted ones are inserted with one prepared
    /// statement per set of columns. A batch is all or nothing (a savepoint); batches share
    /// a transaction that commits every half second or so.
    pub fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts> {
        let plan = self.plan(spec)?;
        let mut counts = TableCounts::default();
        if self.open_since.is_none() {
            self.connection.execute_batch("BEGIN IMMEDIATE")?;
            self.open_since = Some(std::time::Instant::now());
        }
        self.connection.execute_batch("SAVEPOINT lvbak_batch")?;
        let batch_rows = rows.len();
        let result = (|| -> DbResult<()> {
            if spec.name == "settings" {
                for row in rows {
                    self.apply_setting(&plan, row, &mut counts)?;
                }
                return Ok(());
            }
            let mut accepted = Vec::with_capacity(rows.len());
            for row in rows {
                match self.prepare_row(&plan, row)? {
                    Some(row) => accepted.push(row),
                    None => counts.rejected += 1,
                }
            }
            // In key order, inserts touch neighbouring index pages (ids are random UUIDs).
            if let Some(id) = plan.id {
                accepted.sort_by(|a, b| {
                    a[id].as_ref().and_then(Value::as_str).cmp(&b[id].as_ref().and_then(Value::as_str))
                });
            }
            let inserted = self.insert_all(spec, &plan, &accepted)?;
            counts.imported += inserted;
            counts.skipped += accepted.len() as u64 - inserted;
            Ok(())
        })();
        if let Err(error) = result {
            let _ = self.connection.execute_batch("ROLLBACK TO lvbak_batch; RELEASE lvbak_batch");
            let _ = self.commit();
            return Err(error);
        }
        self.connection.execute_batch("RELEASE lvbak_batch")?;
        self.rows_in_transaction += batch_rows;
        if self.rows_in_transaction >= COMMIT_AFTER_ROWS
            || self.open_since.is_some_and(|at| at.elapsed() >= COMMIT_AFTER)
        {
            self.commit()?;
        }
        Ok(counts)
    }

    /// Cleans a row for its table, or refuses it (`None`).
    fn prepare_row(&mut self, plan: &TablePlan, mut row: AlignedRow) -> DbResult<Option<AlignedRow>> {
        // Forced columns first, so later checks see what will be written.
        for &index in &plan.owner_columns {
            row[index] = Some(Value::String(self.user_id.clone()));
        }
        for &index in &plan.forced_zero {
            row[index] = Some(Value::from(0));
        }
        let text = |row: &AlignedRow, index: usize| row[index].as_ref().and_then(Value::as_str).map(str::to_string);
        if let Some((index, value)) = plan.filter {
            if text(&row, index).as_deref() != Some(value) {
                return Ok(None);
            }
        }
        for (column, value) in plan.columns.iter().zip(&row) {
            if (column.primary_key || column.required) && value.as_ref().is_none_or(Value::is_null) {
                return Ok(None);
            }
        }
        if let Some((index, parent_table)) = plan.parent {
            let Some(parent) = text(&row, index) else { return Ok(None) };
            if self.owner_of(parent_table, &parent)? != Owner::Importer {
                return Ok(None);
            }
        }
        for &(index, table, rule) in &plan.references {
            let Some(target) = text(&row, index) else { continue };
            let Some(target_spec) = table_spec(table) else { continue };
            if self.owner_of(target_spec.name, &target)? == Owner::Someone {
                match rule {
                    ReferenceRule::RejectWhenForeign => return Ok(None),
                    ReferenceRule::ScrubWhenMissing => row[index] = Some(Value::Null),
                }
            }
        }
        // An archive must not claim a file another user's row names.
        if let Some(index) = plan.file_name {
            if let Some(name) = text(&row, index) {
                let taken = match plan.names[index].as_str() {
                    "filename" => self.file_name_taken("images", "filename", &name)?,
                    _ => self.avatar_taken(&name)?,
                };
                if taken {
                    return Ok(None);
                }
            }
        }
        Ok(Some(row))
    }

    /// `INSERT OR IGNORE` of rows aligned with `columns`; returns how many were new.
    fn insert_all(&mut self, spec: &'static TableSpec, plan: &TablePlan, rows: &[AlignedRow]) -> DbResult<u64> {
        let (columns, id_column) = (&plan.columns, plan.id);
        let mut inserted = 0;
        let mut new_ids = Vec::new();
        let mut current: Option<(u128, rusqlite::CachedStatement<'_>)> = None;
        for row in rows {
            // Which columns the row has, as bits (registry tables have well under 128).
            let shape = row
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_some())
                .fold(0u128, |bits, (i, _)| bits | 1u128 << (i % 128));
            if current.as_ref().is_none_or(|(known, _)| *known != shape) {
                let names: Vec<String> = columns
                    .iter()
                    .zip(row)
                    .filter(|(_, value)| value.is_some())
                    .map(|(c, _)| quoted(&c.name))
                    .collect();
                let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
                    quoted(spec.name),
                    names.join(", "),
                    placeholders.join(", ")
                );
                current = Some((shape, self.connection.prepare_cached(&sql)?));
            }
            let Some((_, statement)) = current.as_mut() else { continue };
            if statement.execute(rusqlite::params_from_iter(row.iter().flatten().map(Param)))? == 0 {
                continue;
            }
            inserted += 1;
            if !spec.revectorize.is_empty() {
                if let Some(id) = id_column.and_then(|i| row[i].as_ref()).and_then(Value::as_str) {
                    new_ids.push(id.to_string());
                }
            }
        }
        drop(current);
        if !new_ids.is_empty() {
            self.inserted.entry(spec.name).or_default().extend(new_ids);
        }
        Ok(inserted)
    }

    fn apply_setting(&mut self, plan: &TablePlan, row: AlignedRow, counts: &mut TableCounts) -> DbResult<()> {
        let value_at = |name: &str| plan.names.iter().position(|n| n == name).and_then(|i| row[i].as_ref());
        let (Some(key), Some(value)) = (value_at("key").and_then(Value::as_str), value_at("value")) else {
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
        let updated_at = value_at("updated_at").and_then(Value::as_i64).unwrap_or(0);
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
        self.commit()?;
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
