//! SQLite's [`ImportRows`]: the trait's operations are the applier's own.

use super::*;
use crate::memory::MemoryBudget;
use crate::policy::files::FileQuestion;
use crate::storage::backend::import_rows::{ImportRows, RemoveVectors};

impl ImportRows for RowApplier {
    fn columns_of(&mut self, spec: &'static TableSpec) -> DbResult<Vec<String>> {
        RowApplier::columns_of(self, spec)
    }

    fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts> {
        RowApplier::apply(self, spec, rows)
    }

    fn preview(
        &mut self,
        spec: &'static TableSpec,
        rows: Vec<AlignedRow>,
        ledger: &mut crate::policy::preview::PreviewLedger,
    ) -> DbResult<Vec<crate::policy::preview::RowVerdict>> {
        self.preview_rows(spec, rows, ledger)
    }

    fn commit(&mut self) -> DbResult<()> {
        RowApplier::commit(self)
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn charge(&mut self, bytes: u64, keep: bool) -> DbResult<()> {
        RowApplier::charge(self, bytes, keep)
    }

    fn refund(&mut self, bytes: u64) {
        RowApplier::refund(self, bytes);
    }

    fn local_id(&mut self, id: &str) -> DbResult<String> {
        RowApplier::local_id(self, id)
    }

    fn local_json(&mut self, text: String) -> DbResult<String> {
        RowApplier::local_json(self, text)
    }

    fn local_file_name(&mut self, name: &str) -> DbResult<String> {
        RowApplier::local_file_name(self, name)
    }

    fn answers(&mut self, question: FileQuestion<'_>) -> DbResult<bool> {
        self.answer(question)
    }

    fn path_of(&mut self, table: &'static str, column: &'static str, id: &str) -> DbResult<Option<String>> {
        RowApplier::path_of(self, table, column, id)
    }

    fn vector_source_text(&mut self, source_type: &str, source_id: &str) -> DbResult<Option<String>> {
        RowApplier::vector_source_text(self, source_type, source_id)
    }

    fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool> {
        RowApplier::vector_source_pending(self, source_type, source_id)
    }

    fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        RowApplier::embedding_setting(self)
    }

    fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool> {
        RowApplier::mark_has_api_key(self, table, id)
    }

    fn settle_remapped_references(&mut self) -> DbResult<u64> {
        RowApplier::settle_remapped_references(self)
    }

    fn scrub_references(&mut self) -> DbResult<u64> {
        RowApplier::scrub_references(self)
    }

    fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        RowApplier::mark_inserted_for_revectorization(self)
    }

    fn record_vectors(&mut self, table: &str, dimension: i32, ids: &[String]) -> DbResult<()> {
        RowApplier::record_vectors(self, table, dimension, ids)
    }

    fn roll_back_import(&mut self) -> DbResult<u64> {
        RowApplier::roll_back_import(self)
    }

    fn inserted_keys(&mut self, each: &mut dyn FnMut(&'static str, Option<&str>)) -> DbResult<()> {
        RowApplier::inserted_keys(self, each)
    }

    fn take_recorded_vectors(&mut self, each: &mut RemoveVectors<'_>) -> DbResult<()> {
        RowApplier::take_recorded_vectors(self, each)
    }

    fn settle_all_rows(&mut self) -> DbResult<u64> {
        RowApplier::settle_all_rows(self)
    }

    fn count_caches_in(&mut self, budget: &MemoryBudget) {
        RowApplier::count_caches_in(self, budget);
    }

    fn release_memory(&mut self) {
        RowApplier::release_memory(self);
    }
}
