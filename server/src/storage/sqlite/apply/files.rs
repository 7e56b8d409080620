//! What the importer's rows say about files and vectors: whether one of its rows names a
//! file (so it may be written), a databank document's path, a vector's source text and
//! state, and a restored key's connection.

use super::*;
use crate::policy::files::FileQuestion;

/// The last segment of a path column ('\\' taken as '/'), as SQL: for `avatar_path`, the
/// expression of migration 0007's indexes, character for character.
pub(super) fn last_segment_sql(column: &str) -> String {
    let slashed = format!("replace({column}, '\\', '/')");
    format!("replace({slashed}, rtrim({slashed}, replace({slashed}, '/', '')), '')")
}

/// "Does a row of user ?2 in `table` have a path in `column` whose last segment is ?1?",
/// answered by the index of the paths' last segments (migration 0007, for characters' and
/// personas' avatars) for a name that is one segment, as every archive's is.
pub(super) fn last_segment_named_sql(table: &str, column: &str, name: &str) -> String {
    // The column unquoted, as the index's expression has it (a registry name, plain).
    let table = quoted(table);
    if name.contains(['/', '\\']) {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE user_id = ?2 AND ({column} = ?1 OR \
             (substr({column}, -length(?1)) = ?1 AND substr({column}, -length(?1) - 1, 1) IN ('/', '\\'))))"
        )
    } else {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE user_id = ?2 AND {column} IS NOT NULL AND {} = ?1)",
            last_segment_sql(column)
        )
    }
}

impl RowApplier {
    /// Whether the importer's row behind a vector waits for re-vectorization: its vector
    /// then comes from the run, and the archive's is skipped (two writers would leave two).
    pub fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool> {
        let Some(kind) = crate::storage::sqlite::embeddings::SourceKind::from_source_type(source_type) else {
            return Ok(false);
        };
        let sql = crate::storage::sqlite::embeddings::pending_row_sql(kind);
        Ok(self.connection.prepare_cached(&sql)?.query_row([source_id], |row| row.get(0))?)
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

    /// The answer to a question of `policy::files` about the importer's rows. Tables and
    /// columns come from the registry, never from an archive.
    pub(super) fn answer(&mut self, question: FileQuestion<'_>) -> DbResult<bool> {
        let owner = |table: &str| match table_spec(table).map(|spec| spec.ownership) {
            Some(Ownership::Direct { column }) => Some(column),
            _ => None,
        };
        let (sql, parameters): (String, Vec<&str>) = match question {
            FileQuestion::Equals { table, column, name } => {
                let Some(owner) = owner(table) else { return Ok(false) };
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ?1 AND {} = ?2)",
                    quoted(table),
                    quoted(column),
                    quoted(owner)
                );
                (sql, vec![name, &self.user_id])
            }
            FileQuestion::LastSegment { table, column, name } => {
                (last_segment_named_sql(table, column, name), vec![name, &self.user_id])
            }
            FileQuestion::Stem { table, column, stem } => {
                let column = quoted(column);
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = ?2 AND ({column} = ?1 OR \
                     ({column} >= ?1 || '.' AND {column} < ?1 || '/')))",
                    quoted(table)
                );
                (sql, vec![stem, &self.user_id])
            }
            FileQuestion::InBundle { table, column, bundle, file } => {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = ?1 AND bundle_id = ?2 AND {} = ?3)",
                    quoted(table),
                    quoted(column)
                );
                (sql, vec![&self.user_id, bundle, file])
            }
        };
        Ok(self.connection.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(parameters), |row| row.get(0))?)
    }

    /// The `column` of the importer's row `id` of `table` (a databank document's path).
    pub(super) fn path_of(&mut self, table: &str, column: &str, id: &str) -> DbResult<Option<String>> {
        let sql = format!("SELECT {} FROM {} WHERE id = ?1 AND user_id = ?2", quoted(column), quoted(table));
        Ok(self
            .connection
            .prepare_cached(&sql)?
            .query_row([id, self.user_id.as_str()], |row| row.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Turns on `has_api_key` of one of the importer's connections (a restored secret).
    pub fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool> {
        let sql = format!("UPDATE {} SET has_api_key = 1 WHERE id = ?1 AND user_id = ?2", quoted(table));
        Ok(self.in_turn(WriteKind::Short, |connection, user_id| Ok(connection.execute(&sql, [id, user_id])?))? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An avatar is found by its path's last segment, whichever separator the path uses,
    /// for its owner only, and through the index (not by reading the user's rows).
    #[test]
    #[allow(clippy::unwrap_used)]
    fn avatar_files_are_found_by_the_index_of_last_segments() {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::storage::sqlite::migrations::migrate(&mut connection).unwrap();
        connection
            .execute_batch(
                r"PRAGMA foreign_keys = OFF;
                  INSERT INTO characters (id, name, user_id, avatar_path) VALUES
                    ('c1', 'A', 'u1', 'avatars/a.png'), ('c2', 'B', 'u1', 'C:\x\b.png'), ('c3', 'C', 'u1', 'c.png'),
                    ('c4', 'D', 'u2', 'd.png'), ('c5', 'E', 'u1', NULL), ('c6', 'F', 'u1', 'x/y/'),
                    ('c7', 'G', 'u1', 'deep/er/path/e.png');
                  INSERT INTO personas (id, name, user_id, avatar_path) VALUES ('p1', 'P', 'u1', 'p.png');",
            )
            .unwrap();
        let named = |table: &str, name: &str, user: &str| -> bool {
            connection
                .query_row(&last_segment_named_sql(table, "avatar_path", name), [name, user], |row| row.get(0))
                .unwrap()
        };
        for name in ["a.png", "b.png", "c.png", "e.png"] {
            assert!(named("characters", name, "u1"), "{name}");
        }
        for name in ["d.png", "xa.png", ".png", "png", "avatars", "y", "p.png"] {
            assert!(!named("characters", name, "u1"), "{name}");
        }
        assert!(named("characters", "d.png", "u2"));
        assert!(named("personas", "p.png", "u1"));
        // A name of two segments is matched against the path's end.
        assert!(named("characters", "path/e.png", "u1"));
        assert!(!named("characters", "th/e.png", "u1"));
        let plans: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {}", last_segment_named_sql("characters", "avatar_path", "a.png")))
            .unwrap()
            .query_map(["a.png", "u1"], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plans.iter().any(|p| p.contains("lvbak_characters_user_avatar_name")), "{plans:?}");
    }
}
