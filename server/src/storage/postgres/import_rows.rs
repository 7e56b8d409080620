//! PostgreSQL's side of an import (`storage::backend::import_rows::ImportRows`): the same
//! rules as SQLite's (`crate::policy`: which rows are accepted, ownership, merge by id,
//! copies under new ids, numbering, the quota, the settings merge), only the statements
//! differ. A batch's accepted rows go in with one `INSERT … SELECT … FROM unnest(…) ON
//! CONFLICT DO NOTHING RETURNING` per run of rows with the same columns; every row carries
//! the import's number (`lvbak_import`), which is how the import finds the rows it added
//! (to settle and scrub their references, mark them for re-vectorization, or take them all
//! back), where SQLite compares rowids. Values are stored as SQLite would have stored them
//! (`sqlite::schema::StoredValues`, `values`).
//!
//! PostgreSQL keeps every writer's transaction apart, so there is no write gate: batches
//! share a transaction that commits every half second or 50,000 rows, and two imports that
//! insert one id at once are ordered by the key's lock (the second skips it).

mod answers;
mod copy;
mod ending;
mod handed_on;
mod insert;
mod preview;
mod statistics;

use std::collections::{HashMap, HashSet};

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::{id_text_columns, table_spec, Ownership, TableSpec};
use serde_json::Value;

use super::{quotas, BlockingClient, PostgresStores};
use crate::memory::MemoryBudget;
use crate::policy::ids::NEW_ID_BYTES;
use crate::policy::ownership::Owner;
use crate::policy::quota::Usage;
use crate::policy::rows::{check_row, AlignedRow, LiveColumn, RowRules};
use crate::storage::lookup_cache::LookupCache;
use crate::storage::sqlite::charge::RowCharge;
use crate::storage::sqlite::schema::{shapes, Affinity, StoredValues};
use crate::storage::sqlite::{quoted, DbError, DbResult};

/// What one table's rows need: the rules, the charge, the columns' affinities.
#[derive(Clone, Debug)]
struct Plan {
    rules: RowRules,
    charge: RowCharge,
    affinities: Vec<Affinity>,
    /// The columns that may hold ids of other rows as text, by index, with whether only
    /// whole JSON strings count (`registry::id_text_columns`).
    id_text: Vec<(usize, bool)>,
}

impl std::ops::Deref for Plan {
    type Target = RowRules;
    fn deref(&self) -> &RowRules {
        &self.rules
    }
}

impl Plan {
    fn holds_id_text(&self, rows: &[AlignedRow]) -> bool {
        rows.iter().any(|row| {
            self.id_text.iter().any(|&(index, _)| match &row[index] {
                Some(Value::String(text)) => crate::policy::ids::next_uuid(text.as_bytes(), 0, false).is_some(),
                _ => false,
            })
        })
    }
}

/// The importer's remapped ids, looked up on demand and remembered (as SQLite's).
#[derive(Debug, Default)]
struct Remaps {
    any: bool,
    /// Every remapped id is in `cache`: a miss needs no query.
    complete: bool,
    cache: LookupCache<Option<&'static str>, Option<String>>,
}

/// A transaction spanning several batches commits after this long or this many rows.
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
const COMMIT_AFTER_ROWS: usize = 50_000;

/// One import's writer over PostgreSQL.
pub(crate) struct PostgresRowApplier {
    db: BlockingClient,
    user_id: String,
    /// This import's number: the `lvbak_import` of every row it adds.
    import_id: i64,
    plans: HashMap<&'static str, Plan>,
    owners: LookupCache<&'static str, Owner>,
    /// When the transaction batches share began, if one is open.
    open_since: Option<std::time::Instant>,
    rows_in_transaction: usize,
    bytes_in_transaction: u64,
    usage: Usage,
    remaps: Remaps,
    /// Scrub-list columns an applied row gave a value whose target was not yet the
    /// importer's (only those are read when scrubbing).
    unsettled: HashSet<(&'static str, &'static str)>,
    /// Tables where an applied row had an id's shape in a column that may hold ids.
    texts_with_ids: HashSet<&'static str>,
    /// Settle every row of the account, not only this import's (after a crash).
    every_row: bool,
    /// Ids of rows that did not exist when the batch being checked was asked about
    /// (`fetch_owners`); emptied before its rows go in.
    absent: HashSet<(&'static str, String)>,
    /// Tables (and whether of copies) where a `COPY` met a row that was there already:
    /// their runs are inserted by `INSERT … ON CONFLICT` from then on.
    copy_met_existing: HashSet<(&'static str, copy::RunKind)>,
    /// What this import added to each table since PostgreSQL's statistics of it were taken.
    growth: statistics::Growth,
    stored_values: StoredValues,
}

impl PostgresStores {
    /// A writer for one import by `user_id`, whose disk quota is `quota` unless the account
    /// has one of its own. Called from the import's own thread.
    pub(crate) fn row_applier(&self, user_id: &str, quota: Option<u64>) -> DbResult<PostgresRowApplier> {
        let db = self.blocking_client()?;
        let (import_id, any_remapped, own_quota, before) = db.wait(async {
            let client = db.client();
            // Every statement planned for its own values: a generic plan made while the id
            // map was empty kept scanning it whole as it grew (a restore by a second account
            // of 100,000 characters spent 15 s in 64 lookups of 1,000 ids).
            client.batch_execute("SET plan_cache_mode = force_custom_plan").await?;
            let import_id: i64 = client.query_one("SELECT nextval('lvbak_import_seq')", &[]).await?.get(0);
            client
                .execute(
                    "INSERT INTO lvbak_imports (id, user_id, started_at) VALUES ($1, $2, $3)",
                    &[&import_id, &user_id, &crate::util::now()],
                )
                .await?;
            handed_on::take_over_handed_on(client, user_id, import_id).await?;
            let any: bool = client
                .query_one("SELECT EXISTS (SELECT 1 FROM lvbak_id_map WHERE user_id = $1)", &[&user_id])
                .await?
                .get(0);
            let own = quotas::quota_of(client, user_id).await?;
            let before = quotas::usage_of(client, user_id).await?;
            Ok::<_, DbError>((import_id, any, own, before))
        })?;
        Ok(PostgresRowApplier {
            db,
            user_id: user_id.to_string(),
            import_id,
            plans: HashMap::new(),
            owners: LookupCache::default(),
            open_since: None,
            rows_in_transaction: 0,
            bytes_in_transaction: 0,
            usage: Usage::new(own_quota.unwrap_or(quota), before.unwrap_or(0)),
            remaps: Remaps { any: any_remapped, complete: !any_remapped, cache: LookupCache::default() },
            unsettled: HashSet::new(),
            texts_with_ids: HashSet::new(),
            every_row: false,
            absent: HashSet::new(),
            copy_met_existing: HashSet::new(),
            growth: statistics::Growth::default(),
            stored_values: StoredValues::new()?,
        })
    }
}

impl Drop for PostgresRowApplier {
    /// Whatever batches were applied stay applied, however the import ends; the import's
    /// record goes (its rows keep their number).
    fn drop(&mut self) {
        let _ = self.commit();
        let _ = self.execute("DELETE FROM lvbak_imports WHERE id = $1", &[&self.import_id]);
        let _ = self.batch("RESET plan_cache_mode");
    }
}

/// The SQL condition "row `alias` belongs to user `$parameter`" for a registry table.
fn owned_condition(spec: &TableSpec, alias: &str, parameter: usize) -> String {
    match spec.ownership {
        Ownership::Direct { column } => format!("{alias}.{} = ${parameter}", quoted(column)),
        Ownership::Parent { parent_table, column } => {
            let owner = match table_spec(parent_table).map(|p| p.ownership) {
                Some(Ownership::Direct { column }) => column,
                _ => "user_id",
            };
            format!(
                "{alias}.{} IN (SELECT id FROM {} WHERE {} = ${parameter})",
                quoted(column),
                quoted(parent_table),
                quoted(owner)
            )
        }
    }
}

type Params<'a> = [&'a (dyn tokio_postgres::types::ToSql + Sync)];

impl PostgresRowApplier {
    /// Runs one statement; how many rows it changed.
    fn execute(&self, sql: &str, params: &Params<'_>) -> DbResult<u64> {
        Ok(self.db.wait(async {
            let statement = self.db.cached().prepare_cached(sql).await?;
            self.db.client().execute(&statement, params).await
        })?)
    }

    /// Runs one query; its rows.
    fn query(&self, sql: &str, params: &Params<'_>) -> DbResult<Vec<tokio_postgres::Row>> {
        Ok(self.db.wait(async {
            let statement = self.db.cached().prepare_cached(sql).await?;
            self.db.client().query(&statement, params).await
        })?)
    }

    /// Runs statements with no parameters (transaction control).
    fn batch(&self, sql: &str) -> DbResult<()> {
        Ok(self.db.wait(self.db.client().batch_execute(sql))?)
    }

    /// The condition on `alias`'s rows that this import added (every row of the account's,
    /// after a crash).
    fn added_condition(&self, alias: &str) -> String {
        if self.every_row {
            "TRUE".to_string()
        } else {
            format!("{alias}.lvbak_import = {}", self.import_id)
        }
    }

    fn plan(&mut self, spec: &'static TableSpec) -> DbResult<Plan> {
        if let Some(plan) = self.plans.get(spec.name) {
            return Ok(plan.clone());
        }
        let shapes = shapes()?;
        let shape = shapes.table(spec.name)?;
        let columns: Vec<LiveColumn> = shape
            .columns
            .iter()
            .map(|column| LiveColumn {
                name: column.name.clone(),
                required: column.not_null && column.default.is_none(),
                nullable: !column.not_null,
                primary_key: column.primary_key > 0,
            })
            .collect();
        let rules = RowRules::new(spec, columns);
        let id_text = (rules.names.iter().enumerate())
            .filter_map(|(index, name)| {
                id_text_columns(spec).find(|(column, _)| column == name).map(|(_, quoted_only)| (index, quoted_only))
            })
            .collect();
        let plan = Plan {
            charge: shapes.charges.get(spec.name).cloned().unwrap_or_default(),
            affinities: shape.columns.iter().map(|column| column.affinity).collect(),
            rules,
            id_text,
        };
        self.plans.insert(spec.name, plan.clone());
        Ok(plan)
    }

    /// Commits the open transaction, if any, with the account's disk use as it now is.
    fn commit(&mut self) -> DbResult<()> {
        let total = self.usage.total();
        if total != self.usage.persisted {
            self.db.wait(quotas::set_usage(self.db.client(), &self.user_id, total))?;
            self.usage.persisted = total;
        }
        if self.open_since.take().is_some() {
            self.rows_in_transaction = 0;
            self.bytes_in_transaction = 0;
            self.batch("COMMIT")?;
        }
        self.analyze_grown_id_map()
    }

    /// Rolls back the open transaction after a database error: its rows are gone, and so is
    /// what they counted for.
    fn abandon_transaction(&mut self) {
        if self.open_since.take().is_some() {
            let _ = self.batch("ROLLBACK");
        }
        self.usage.refund(self.bytes_in_transaction);
        self.rows_in_transaction = 0;
        self.bytes_in_transaction = 0;
        self.owners.clear();
        self.remaps.cache.clear();
        self.remaps.complete = false;
    }

    /// Applies a batch of rows of one registry table (see SQLite's `RowApplier::apply`:
    /// checked first, then inserted; a batch that might not fit the quota runs in a
    /// savepoint, so an over-quota batch leaves nothing and the rows before it stay).
    fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts> {
        let plan = self.plan(spec)?;
        let mut counts = TableCounts::default();
        if self.open_since.is_none() {
            self.batch("BEGIN")?;
            self.open_since = Some(std::time::Instant::now());
        }
        let batch_rows = rows.len();
        let mut guarded = false;
        let result = (|| -> DbResult<()> {
            if spec.name == "settings" {
                for row in rows {
                    self.apply_setting(&plan, row, &mut counts)?;
                }
                return Ok(());
            }
            self.fetch_owners(&plan, &rows)?;
            let mut accepted = Vec::with_capacity(rows.len());
            for row in rows {
                match check_row(&plan.rules, row, self)? {
                    Some(row) => accepted.push(row),
                    None => counts.rejected += 1,
                }
            }
            self.forget_absent();
            let most = || accepted.iter().map(|row| plan.charge.bytes(row) + NEW_ID_BYTES).sum::<u64>();
            if self.usage.quota.is_some() && self.usage.check(most()).is_err() {
                self.batch("SAVEPOINT lvbak_batch")?;
                guarded = true;
            }
            if !self.texts_with_ids.contains(spec.name) && plan.holds_id_text(&accepted) {
                self.texts_with_ids.insert(spec.name);
            }
            if let Some(index) = plan.numbered {
                self.number_rows(spec, &plan, index, &mut accepted)?;
            }
            if let Some(id) = plan.id {
                insert::sort_by_id(&mut accepted, id);
            }
            let (inserted, remapped, bytes, refused) = self.insert_all(spec, &plan, &mut accepted)?;
            self.growth.added(spec.name, inserted);
            self.usage.charge(bytes, false)?;
            counts.imported += inserted;
            counts.remapped += remapped;
            counts.rejected += refused;
            counts.skipped += accepted.len() as u64 - inserted - refused;
            counts.bytes += bytes;
            Ok(())
        })();
        if let Err(error) = result {
            self.forget_absent();
            if guarded {
                let _ = self.batch("ROLLBACK TO SAVEPOINT lvbak_batch; RELEASE SAVEPOINT lvbak_batch");
                let _ = self.commit();
            } else {
                self.abandon_transaction();
            }
            return Err(error);
        }
        if guarded {
            self.batch("RELEASE SAVEPOINT lvbak_batch")?;
        }
        self.rows_in_transaction += batch_rows;
        self.bytes_in_transaction += counts.bytes;
        if self.rows_in_transaction >= COMMIT_AFTER_ROWS
            || self.open_since.is_some_and(|at| at.elapsed() >= COMMIT_AFTER)
        {
            self.commit()?;
            crate::faults::committed_rows_of(spec.name);
        }
        Ok(counts)
    }

    /// Lets go of memory that can be rebuilt.
    fn release_memory(&mut self) {
        self.owners.clear();
        self.remaps.cache.clear();
        self.remaps.complete = false;
    }
}

impl crate::storage::backend::ImportRows for PostgresRowApplier {
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
        ledger: &mut crate::policy::preview::PreviewLedger,
    ) -> DbResult<Vec<crate::policy::preview::RowVerdict>> {
        self.preview_rows(spec, rows, ledger)
    }

    fn commit(&mut self) -> DbResult<()> {
        PostgresRowApplier::commit(self)
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn charge(&mut self, bytes: u64, keep: bool) -> DbResult<()> {
        Ok(self.usage.charge(bytes, keep)?)
    }

    fn refund(&mut self, bytes: u64) {
        self.usage.refund(bytes);
    }

    fn local_id(&mut self, id: &str) -> DbResult<String> {
        Ok(self.remapped(None, id)?.unwrap_or_else(|| id.to_string()))
    }

    fn local_json(&mut self, text: String) -> DbResult<String> {
        if !self.remaps.any {
            return Ok(text);
        }
        Ok(self.rewrite_uuids(&text, true)?.unwrap_or(text))
    }

    fn local_file_name(&mut self, name: &str) -> DbResult<String> {
        if !self.remaps.any {
            return Ok(name.to_string());
        }
        Ok(self.rewrite_uuids(name, false)?.unwrap_or_else(|| name.to_string()))
    }

    fn answers(&mut self, question: crate::policy::files::FileQuestion<'_>) -> DbResult<bool> {
        self.answer(question)
    }

    fn path_of(&mut self, table: &'static str, column: &'static str, id: &str) -> DbResult<Option<String>> {
        PostgresRowApplier::path_of(self, table, column, id)
    }

    fn vector_source_text(&mut self, source_type: &str, source_id: &str) -> DbResult<Option<String>> {
        PostgresRowApplier::vector_source_text(self, source_type, source_id)
    }

    fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool> {
        PostgresRowApplier::vector_source_pending(self, source_type, source_id)
    }

    fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        PostgresRowApplier::embedding_setting(self)
    }

    fn mark_has_api_key(&mut self, table: &str, id: &str) -> DbResult<bool> {
        PostgresRowApplier::mark_has_api_key(self, table, id)
    }

    fn settle_remapped_references(&mut self) -> DbResult<u64> {
        PostgresRowApplier::settle_remapped_references(self)
    }

    fn scrub_references(&mut self) -> DbResult<u64> {
        PostgresRowApplier::scrub_references(self)
    }

    fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        PostgresRowApplier::mark_inserted_for_revectorization(self)
    }

    fn record_vectors(&mut self, table: &str, dimension: i32, ids: &[String]) -> DbResult<()> {
        PostgresRowApplier::record_vectors(self, table, dimension, ids)
    }

    fn roll_back_import(&mut self) -> DbResult<u64> {
        PostgresRowApplier::roll_back_import(self)
    }

    fn inserted_keys(&mut self, each: &mut dyn FnMut(&'static str, Option<&str>)) -> DbResult<()> {
        PostgresRowApplier::inserted_keys(self, each)
    }

    fn take_recorded_vectors(
        &mut self,
        each: &mut crate::storage::backend::import_rows::RemoveVectors<'_>,
    ) -> DbResult<()> {
        PostgresRowApplier::take_recorded_vectors(self, each)
    }

    fn settle_all_rows(&mut self) -> DbResult<u64> {
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
