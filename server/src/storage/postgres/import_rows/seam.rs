//! [`ImportRows`] over PostgreSQL: each call that needs the connection first settles a
//! `COPY` left open by the batches before it (`copy.rs`).

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::TableSpec;

use super::PostgresRowApplier;
use crate::memory::MemoryBudget;
use crate::policy::files::FileQuestion;
use crate::policy::preview::{PreviewLedger, RowVerdict};
use crate::policy::quota::Usage;
use crate::policy::rows::AlignedRow;
use crate::storage::backend::import_rows::{ImportRows, RemoveVectors};
use crate::storage::sqlite::DbResult;

impl ImportRows for PostgresRowApplier {
    fn columns_of(&mut self, spec: &'static TableSpec) -> DbResult<Vec<String>> {
        Ok(self.plan(spec)?.rules.names.clone())
    }

    fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts> {
        PostgresRowApplier::apply(self, spec, rows)
    }

    fn preview(
        &mut self,
        spec: &'static TableSpec,
        rows: Vec<AlignedRow>,
        ledger: &mut PreviewLedger,
    ) -> DbResult<Vec<RowVerdict>> {
        self.settle_copy()?;
        self.preview_rows(spec, rows, ledger)
    }

    fn commit(&mut self) -> DbResult<()> {
        PostgresRowApplier::commit(self)
    }

    fn settle(&mut self) -> DbResult<Vec<(&'static str, TableCounts)>> {
        self.settle_copy()?;
        Ok(std::mem::take(&mut self.held_counts))
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn charge(&mut self, bytes: u64, keep: bool) -> DbResult<()> {
        self.settle_copy()?;
        Ok(self.usage.charge(bytes, keep)?)
    }

    fn refund(&mut self, bytes: u64) {
        self.usage.refund(bytes);
    }

    fn local_id(&mut self, id: &str) -> DbResult<String> {
        self.settle_copy()?;
        Ok(self.remapped(None, id)?.unwrap_or_else(|| id.to_string()))
    }

    fn local_json(&mut self, text: String) -> DbResult<String> {
        self.settle_copy()?;
        if !self.remaps.any {
            return Ok(text);
        }
        Ok(self.rewrite_uuids(&text, true)?.unwrap_or(text))
    }

    fn local_file_name(&mut self, name: &str) -> DbResult<String> {
        self.settle_copy()?;
        if !self.remaps.any {
            return Ok(name.to_string());
        }
        Ok(self.rewrite_uuids(name, false)?.unwrap_or_else(|| name.to_string()))
    }

    fn answers(&mut self, question: FileQuestion<'_>) -> DbResult<bool> {
        self.settle_copy()?;
        self.answer(question)
    }

    fn path_of(&mut self, table: &'static str, column: &'static str, id: &str) -> DbResult<Option<String>> {
        self.settle_copy()?;
        PostgresRowApplier::path_of(self, table, column, id)
    }

    fn vector_source_text(&mut self, source_type: &str, source_id: &str) -> DbResult<Option<String>> {
        self.settle_copy()?;
        PostgresRowApplier::vector_source_text(self, source_type, source_id)
    }

    fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool> {
        self.settle_copy()?;
        PostgresRowApplier::vector_source_pending(self, source_type, source_id)
    }

    fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        self.settle_copy()?;
        PostgresRowApplier::embedding_setting(self)
    }

    fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool> {
        self.settle_copy()?;
        PostgresRowApplier::mark_has_api_key(self, table, id)
    }

    fn settle_remapped_references(&mut self) -> DbResult<u64> {
        self.settle_copy()?;
        PostgresRowApplier::settle_remapped_references(self)
    }

    fn scrub_references(&mut self) -> DbResult<u64> {
        self.settle_copy()?;
        PostgresRowApplier::scrub_references(self)
    }

    fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        self.settle_copy()?;
        PostgresRowApplier::mark_inserted_for_revectorization(self)
    }

    fn record_vectors(&mut self, table: &str, dimension: i32, ids: &[String]) -> DbResult<()> {
        self.settle_copy()?;
        PostgresRowApplier::record_vectors(self, table, dimension, ids)
    }

    fn roll_back_import(&mut self) -> DbResult<u64> {
        // Dropped unfinished: everything the import added goes anyway.
        self.open_copy = None;
        PostgresRowApplier::roll_back_import(self)
    }

    fn inserted_keys(&mut self, each: &mut dyn FnMut(&'static str, Option<&str>)) -> DbResult<()> {
        self.settle_copy()?;
        PostgresRowApplier::inserted_keys(self, each)
    }

    fn take_recorded_vectors(&mut self, each: &mut RemoveVectors<'_>) -> DbResult<()> {
        self.settle_copy()?;
        PostgresRowApplier::take_recorded_vectors(self, each)
    }

    fn settle_all_rows(&mut self) -> DbResult<u64> {
        self.settle_copy()?;
        PostgresRowApplier::settle_all_rows(self)
    }

    fn count_caches_in(&mut self, budget: &MemoryBudget) {
        self.owners.count_in(budget);
        self.remaps.cache.count_in(budget);
    }

    fn release_memory(&mut self) {
        PostgresRowApplier::release_memory(self);
    }
}
