//! What the importer's rows say, as PostgreSQL answers it (SQLite's `apply/owners.rs`,
//! `files.rs` and `settings.rs`): whose an id is, whether a row names a file, a databank
//! document's path, a vector's source text and state, a restored key's connection, and
//! the `settings` table's merge (the rule is `policy::settings`); and the row rules'
//! questions (`policy::rows::RowLookups`), a batch's asked at once (`fetch_owners`).

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::{table_spec, Ownership};
use serde_json::Value;

use super::{quoted, DbResult, Plan, PostgresRowApplier};
use crate::policy::files::FileQuestion;
use crate::policy::ownership::Owner;
use crate::policy::rows::AlignedRow;
use crate::policy::settings::{decide_setting, stored_text, SettingAction, EMBEDDING_SETTING};
use crate::storage::postgres::row_tables::last_segment_expression;
use crate::storage::SourceKind;

impl PostgresRowApplier {
    /// Asks, a statement per table and 1,000 ids (`existing_among`), whose every row the batch's rows name as
    /// parent or reference is (the ids `check_row` will ask about, brought to the copies'
    /// where an import remapped them): found ones go to the owner cache, the others are
    /// nobody's until the batch is checked ([`Self::forget_absent`]). Without it every
    /// message asked for its parent message alone: 82,000 round trips for 160,000
    /// messages, 40 s against SQLite's 3 s.
    pub(super) fn fetch_owners(&mut self, plan: &Plan, rows: &[AlignedRow]) -> DbResult<()> {
        let named: Vec<(usize, &'static str)> =
            plan.parent.iter().copied().chain(plan.references.iter().map(|r| (r.index, r.target))).collect();
        if self.remaps.any {
            for &(index, table) in &named {
                let ids = rows.iter().filter_map(|row| row[index].as_ref().and_then(Value::as_str).map(str::to_string));
                self.fetch_remaps(Some(table), ids.collect())?;
            }
        }
        let mut wanted: Vec<(&'static str, Vec<String>)> = Vec::new();
        for (index, table) in named {
            if table_spec(table).is_none() {
                continue;
            }
            let mut ids = Vec::new();
            for row in rows {
                let Some(Value::String(id)) = &row[index] else { continue };
                let id = match self.remapped(Some(table), id)? {
                    Some(new_id) => new_id,
                    None => id.clone(),
                };
                if self.owners.get(table, &id).is_none() {
                    ids.push(id);
                }
            }
            match wanted.iter_mut().find(|(named, _)| *named == table) {
                Some((_, all)) => all.extend(ids),
                None => wanted.push((table, ids)),
            }
        }
        for (table, mut ids) in wanted {
            ids.sort_unstable();
            ids.dedup();
            let Some(spec) = table_spec(table) else { continue };
            let asked: Vec<Option<&str>> = ids.iter().map(|id| Some(id.as_str())).collect();
            let owners = self.existing_among(spec, &asked)?;
            for (id, owner) in ids.into_iter().zip(owners) {
                match owner {
                    Some(owner) => {
                        self.owners.insert(table, &id, owner);
                    }
                    None => {
                        self.absent.insert((table, id));
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets which ids [`Self::fetch_owners`] found nobody's: the batch's rows go in next.
    pub(super) fn forget_absent(&mut self) {
        self.absent.clear();
    }

    /// Whose row `id` of `table` is.
    pub(super) fn owner_of(&mut self, table: &'static str, id: &str) -> DbResult<Owner> {
        if let Some(owner) = self.owners.get(table, id) {
            return Ok(*owner);
        }
        if self.absent.contains(&(table, id.to_string())) {
            return Ok(Owner::Nobody);
        }
        let Some(spec) = table_spec(table) else { return Ok(Owner::Nobody) };
        let sql = match spec.ownership {
            Ownership::Direct { column } => format!("SELECT {} FROM {} WHERE id = $1", quoted(column), quoted(table)),
            Ownership::Parent { parent_table, column } => format!(
                "SELECT p.user_id FROM {} t LEFT JOIN {} p ON p.id = t.{} WHERE t.id = $1",
                quoted(table),
                quoted(parent_table),
                quoted(column)
            ),
        };
        let found: Option<Option<String>> = self.query(&sql, &[&id])?.first().map(|row| row.get(0));
        let owner = match found {
            None => Owner::Nobody,
            Some(Some(user)) if user == self.user_id => Owner::Importer,
            Some(_) => Owner::Someone,
        };
        if owner != Owner::Nobody {
            self.owners.insert(table, id, owner);
        }
        Ok(owner)
    }

    /// Whether the importer's row behind a vector waits for re-vectorization.
    pub(super) fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool> {
        let Some(kind) = SourceKind::from_source_type(source_type) else { return Ok(false) };
        let sql = crate::storage::sqlite::embeddings::pending_row_sql(kind).replace("?1", "$1");
        Ok(self.query(&sql, &[&source_id])?.first().is_some_and(|row| row.get(0)))
    }

    /// The text a vector was computed from (see SQLite's `vector_source_text`): the
    /// importer's own row's, empty for nobody's, `None` for someone else's.
    pub(super) fn vector_source_text(&mut self, source_type: &str, source_id: &str) -> DbResult<Option<String>> {
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
                let sql = format!("SELECT {} FROM {} WHERE id = $1", quoted(column), quoted(table));
                let text: Option<Option<String>> = self.query(&sql, &[&source_id])?.first().map(|row| row.get(0));
                Ok(Some(text.flatten().unwrap_or_default()))
            }
        }
    }

    /// The answer to a question of `policy::files` about the importer's rows (tables and
    /// columns from the registry, never from an archive).
    pub(super) fn answer(&mut self, question: FileQuestion<'_>) -> DbResult<bool> {
        let owner = |table: &str| match table_spec(table).map(|spec| spec.ownership) {
            Some(Ownership::Direct { column }) => Some(column),
            _ => None,
        };
        let user = self.user_id.clone();
        let (sql, parameters): (String, Vec<&str>) = match question {
            FileQuestion::Equals { table, column, name } => {
                let Some(owner) = owner(table) else { return Ok(false) };
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = $1 AND {} = $2)",
                    quoted(table),
                    quoted(column),
                    quoted(owner)
                );
                (sql, vec![name, &user])
            }
            FileQuestion::LastSegment { table, column, name } => {
                let sql = if name.contains(['/', '\\']) {
                    format!(
                        "SELECT EXISTS (SELECT 1 FROM {table} WHERE user_id = $2 AND ({column} = $1 OR \
                         (right({column}, length($1)) = $1 \
                          AND substr({column}, length({column}) - length($1), 1) IN ('/', '\\'))))",
                        table = quoted(table),
                    )
                } else {
                    format!(
                        "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = $2 AND {column} IS NOT NULL AND {} = $1)",
                        quoted(table),
                        last_segment_expression(column)
                    )
                };
                (sql, vec![name, &user])
            }
            FileQuestion::Stem { table, column, stem } => {
                let column = quoted(column);
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = $2 AND ({column} = $1 OR \
                     ({column} >= $1 || '.' AND {column} < $1 || '/')))",
                    quoted(table)
                );
                (sql, vec![stem, &user])
            }
            FileQuestion::InBundle { table, column, bundle, file } => {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = $1 AND bundle_id = $2 AND {} = $3)",
                    quoted(table),
                    quoted(column)
                );
                (sql, vec![&user, bundle, file])
            }
        };
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            parameters.iter().map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        Ok(self.query(&sql, &params)?.first().is_some_and(|row| row.get(0)))
    }

    /// The `column` of the importer's row `id` of `table` (a databank document's path).
    pub(super) fn path_of(&mut self, table: &str, column: &str, id: &str) -> DbResult<Option<String>> {
        let sql = format!("SELECT {} FROM {} WHERE id = $1 AND user_id = $2", quoted(column), quoted(table));
        Ok(self.query(&sql, &[&id, &self.user_id])?.first().and_then(|row| row.get::<_, Option<String>>(0)))
    }

    /// Turns on `has_api_key` of one of the importer's connections (a restored secret).
    pub(super) fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool> {
        let sql = format!("UPDATE {} SET has_api_key = 1 WHERE id = $1 AND user_id = $2", quoted(table));
        Ok(self.execute(&sql, &[&id, &self.user_id])? > 0)
    }

    /// The importer's embedding configuration setting, as JSON text.
    pub(super) fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        Ok(self
            .query("SELECT value FROM settings WHERE key = $1 AND user_id = $2", &[&EMBEDDING_SETTING, &self.user_id])?
            .first()
            .map(|row| row.get(0)))
    }

    /// One archive setting merged into the importer's (`policy::settings`).
    pub(super) fn apply_setting(&mut self, plan: &Plan, row: AlignedRow, counts: &mut TableCounts) -> DbResult<()> {
        let value_at = |name: &str| plan.names.iter().position(|n| n == name).and_then(|i| row[i].as_ref());
        let (Some(key), Some(value)) = (value_at("key").and_then(Value::as_str), value_at("value")) else {
            counts.rejected += 1;
            return Ok(());
        };
        let text = stored_text(value);
        let updated_at = value_at("updated_at").and_then(Value::as_i64).unwrap_or(0);
        if text.contains('\0') || key.contains('\0') {
            counts.rejected += 1;
            return Ok(());
        }
        let existing: Option<String> = self
            .query("SELECT value FROM settings WHERE key = $1 AND user_id = $2", &[&key, &self.user_id])?
            .first()
            .map(|row| row.get(0));
        match decide_setting(key, &text, existing.as_deref()) {
            SettingAction::Refuse => counts.rejected += 1,
            SettingAction::Insert { unconfirmed } => {
                self.execute(
                    "INSERT INTO settings (key, value, updated_at, user_id, lvbak_import) VALUES ($1, $2, $3, $4, $5)",
                    &[&key, &text, &updated_at, &self.user_id, &self.import_id],
                )?;
                if unconfirmed {
                    self.execute(
                        "INSERT INTO lvbak_embedding_unconfirmed (user_id, restored_at) VALUES ($1, $2) \
                         ON CONFLICT (user_id) DO UPDATE SET restored_at = excluded.restored_at",
                        &[&self.user_id, &crate::util::now()],
                    )?;
                }
                counts.imported += 1;
            }
            SettingAction::Keep => counts.skipped += 1,
            SettingAction::Update(merged) => {
                self.execute(
                    "UPDATE settings SET value = $1 WHERE key = $2 AND user_id = $3",
                    &[&merged.to_string(), &key, &self.user_id],
                )?;
                counts.merged += 1;
            }
        }
        Ok(())
    }
}

/// The backend's answers to the row rules' questions (`policy::rows::check_row`).
impl crate::policy::rows::RowLookups for PostgresRowApplier {
    type Error = crate::storage::sqlite::DbError;

    fn importer(&self) -> &str {
        &self.user_id
    }

    fn remapped(&mut self, table: &'static str, original: &str) -> DbResult<Option<String>> {
        PostgresRowApplier::remapped(self, Some(table), original)
    }

    fn any_remapped(&self) -> bool {
        self.remaps.any
    }

    fn owner_of(&mut self, table: &'static str, id: &str) -> DbResult<Owner> {
        PostgresRowApplier::owner_of(self, table, id)
    }

    fn note_unsettled(&mut self, table: &'static str, column: &'static str) {
        self.unsettled.insert((table, column));
    }
}
