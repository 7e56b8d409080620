//! What the importer's rows say about files and vectors: whether one of its rows names a
//! file (so it may be written), a databank document's path, a vector's source text and
//! state, and a restored key's connection.

use super::*;

/// The last segment of a character's or persona's `avatar_path` ('\\' taken as '/'), as SQL:
/// the expression of migration 0007's indexes, character for character.
pub(super) const AVATAR_NAME: &str = "replace(replace(avatar_path, '\\', '/'), rtrim(replace(avatar_path, '\\', '/'), \
    replace(replace(avatar_path, '\\', '/'), '/', '')), '')";

/// "Does a row of user ?2 in `table` (characters or personas) have the avatar file ?1?",
/// answered by the index of the paths' last segments (migration 0007) for a name that is
/// one segment, as every archive's is.
pub(super) fn avatar_named_sql(table: &str, name: &str) -> String {
    if name.contains(['/', '\\']) {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = ?2 AND (avatar_path = ?1 OR \
             (substr(avatar_path, -length(?1)) = ?1 AND substr(avatar_path, -length(?1) - 1, 1) IN ('/', '\\'))))",
            quoted(table)
        )
    } else {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE user_id = ?2 AND avatar_path IS NOT NULL AND {AVATAR_NAME} = ?1)",
            quoted(table)
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

    /// Whether one of the importer's characters or personas (`table`) has this avatar file
    /// (exports name an avatar by the last segment of its path).
    pub fn importer_names_avatar(&mut self, table: &str, name: &str) -> DbResult<bool> {
        if name.is_empty() {
            return Ok(false);
        }
        let sql = avatar_named_sql(table, name);
        Ok(self.connection.prepare_cached(&sql)?.query_row([name, self.user_id.as_str()], |row| row.get(0))?)
    }

    /// Whether one of the importer's theme assets is `file` of `bundle`.
    pub fn importer_names_theme_asset(&mut self, bundle: &str, file: &str) -> DbResult<bool> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM theme_assets WHERE user_id = ?1 AND bundle_id = ?2 AND file_name = ?3)",
            )?
            .query_row([self.user_id.as_str(), bundle, file], |row| row.get(0))?)
    }

    /// Whether the importer has an image whose file is `<stem>` or `<stem>.<extension>`
    /// (thumbnails are named after their original).
    pub fn importer_has_image_stem(&mut self, stem: &str) -> DbResult<bool> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM images WHERE user_id = ?2 AND (filename = ?1 OR (filename >= ?1 || '.' AND filename < ?1 || '/')))",
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
            connection.query_row(&avatar_named_sql(table, name), [name, user], |row| row.get(0)).unwrap()
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
            .prepare(&format!("EXPLAIN QUERY PLAN {}", avatar_named_sql("characters", "a.png")))
            .unwrap()
            .query_map(["a.png", "u1"], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plans.iter().any(|p| p.contains("lvbak_characters_user_avatar_name")), "{plans:?}");
    }
}
