//! Vectors of an import: restored only under the account's own embedding model, keyed to
//! the importer, never for another account's rows (whose text would leak), held to the
//! quota.

use super::*;

impl ImportSession<'_> {
    /// Whether vectors made under `archive` may be restored for the importer, or why not.
    pub fn vector_restore_blocker(&mut self, archive: &EmbeddingConfig) -> Result<Option<String>, ImportError> {
        let mine = self
            .applier
            .embedding_setting()?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|value| EmbeddingConfig::from_setting_value(&value))
            .unwrap_or_default();
        Ok(if archive.dimension.is_none() {
            Some("the archive records no embedding dimension".into())
        } else if !archive.vectors_restore_into(&mine) {
            Some("the embedding provider, model or dimension differs from this account's".into())
        } else {
            None
        })
    }

    /// Restores a batch of vector rows of `table`; `dimension` is the archive's. A row
    /// without a vector, of the wrong length, or whose source row is another user's is
    /// rejected; an id that exists is skipped.
    pub fn apply_vectors(&mut self, table: &str, rows: Vec<Row>, dimension: u32) -> Result<TableCounts, ImportError> {
        self.check_cancelled()?;
        self.settle_references()?;
        let mut counts = TableCounts::default();
        if !is_vector_table(table) {
            self.skip_table(&format!("lancedb:{table}"));
            return Ok(counts);
        }
        let text = |row: &Row, key: &str| row.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let mut accepted = Vec::with_capacity(rows.len());
        for row in rows {
            let source_type = text(&row, "source_type");
            let source_id = self.applier.local_id(&text(&row, "source_id"))?;
            let owner_id = self.applier.local_id(&text(&row, "owner_id"))?;
            let chunk_index = row.get("chunk_index").and_then(Value::as_f64).unwrap_or(0.0);
            let vector = match row_vector(&row).map(|b64| decode_vector(b64, "vector_b64")) {
                Some(Ok(vector)) if vector.len() == dimension as usize => vector,
                _ => {
                    counts.rejected += 1;
                    continue;
                }
            };
            let Some(content) = self.applier.vector_source_text(&source_type, &source_id)? else {
                counts.rejected += 1;
                continue;
            };
            if self.applier.vector_source_pending(&source_type, &source_id)? {
                counts.skipped += 1;
                continue;
            }
            let mut index_text = Vec::new();
            lvbak_core::write_js_number(&mut index_text, chunk_index);
            accepted.push(VectorRow {
                id: format!("{}:{source_type}:{source_id}:{}", self.user_id, String::from_utf8_lossy(&index_text)),
                user_id: self.user_id.clone(),
                source_type,
                source_id,
                owner_id,
                chunk_index,
                content,
                vector,
                metadata_json: self.applier.local_json(text(&row, "metadata_json"))?,
                updated_at: row.get("updated_at").and_then(Value::as_f64).unwrap_or(0.0),
            });
        }
        let dimension = i32::try_from(dimension).unwrap_or(i32::MAX);
        let ids: Vec<String> = accepted.iter().map(|row| row.id.clone()).collect();
        let existing = self.runtime.block_on(self.store.vectors.existing_ids(table, dimension, &ids))?;
        let fresh: Vec<VectorRow> = accepted.into_iter().filter(|row| !existing.contains(&row.id)).collect();
        counts.skipped += existing.len() as u64;
        let bytes: u64 = fresh.iter().map(|row| row.stored_bytes()).sum();
        // Vectors go with the rows if a later step rolls the import back (they count
        // against the quota like anything else).
        let charged = self.applier.charge(bytes, false).map_err(ImportError::from);
        self.roll_back_if_out_of_room(charged)?;
        let ids: Vec<String> = fresh.iter().map(|row| row.id.clone()).collect();
        let recorded = self.applier.record_vectors(table, dimension, &ids).map_err(ImportError::from);
        self.roll_back_if_out_of_room(recorded)?;
        let added = self.runtime.block_on(self.store.vectors.add(table, &fresh, dimension)).map_err(ImportError::from);
        self.roll_back_if_out_of_room(added)?;
        counts.imported += fresh.len() as u64;
        self.summary.vectors.tables.entry(table.to_string()).or_default().add(counts);
        Ok(counts)
    }

    /// Records that vectors were (or were not) restored.
    pub fn set_vector_outcome(&mut self, blocker: Option<String>) {
        self.summary.vectors.restored = blocker.is_none();
        self.summary.vectors.reason = blocker;
    }
}
