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
mod remaps;
mod seam;
mod statistics;

use std::collections::{HashMap, HashSet};

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::{id_text_columns, table_spec, Ownership, TableSpec};
use serde_json::Value;

use super::{quotas, BlockingClient, PostgresStores};
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
    /// A `COPY` left open for the next batch (`copy.rs`): nothing else may use the
    /// connection until it is settled.
    open_copy: Option<copy::OpenCopy>,
    /// Whether a `COPY` may stay open after its run (not in a batch guarded by a
    /// savepoint, nor while one that met an existing row is redone).
    copy_stays_open: bool,
    /// Counts of rows whose outcome became known after their batch returned, by table.
    held_counts: Vec<(&'static str, TableCounts)>,
    disposer: crate::storage::row_disposer::RowDisposer,
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
            open_copy: None,
            copy_stays_open: true,
            held_counts: Vec::new(),
            disposer: crate::storage::row_disposer::RowDisposer::new("copy-disposer"),
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
    /// Refuses a statement while a `COPY` is open: the connection would wait for the
    /// `COPY`'s end, which only this import can send (a `settle_copy` is missing).
    fn connection_free(&self) -> DbResult<()> {
        match &self.open_copy {
            Some(_) => Err(DbError::Invalid("a statement was sent while a COPY was open".into())),
            None => Ok(()),
        }
    }

    /// Runs one statement; how many rows it changed.
    fn execute(&self, sql: &str, params: &Params<'_>) -> DbResult<u64> {
        self.connection_free()?;
        Ok(self.db.wait(async {
            let statement = self.db.cached().prepare_cached(sql).await?;
            self.db.client().execute(&statement, params).await
        })?)
    }

    /// Runs one query; its rows.
    fn query(&self, sql: &str, params: &Params<'_>) -> DbResult<Vec<tokio_postgres::Row>> {
        self.connection_free()?;
        Ok(self.db.wait(async {
            let statement = self.db.cached().prepare_cached(sql).await?;
            self.db.client().query(&statement, params).await
        })?)
    }

    /// Runs statements with no parameters (transaction control).
    fn batch(&self, sql: &str) -> DbResult<()> {
        self.connection_free()?;
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
        self.settle_copy()?;
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
        // Dropped unfinished, the `COPY` fails (its rows and counts go with the transaction).
        self.open_copy = None;
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
        if !self.copy_continues(spec, &plan, &rows) {
            self.settle_copy()?;
        }
        let mut counts = TableCounts::default();
        if self.open_since.is_none() {
            self.batch("BEGIN")?;
            self.open_since = Some(std::time::Instant::now());
        }
        let batch_rows = rows.len();
        // A guarded batch taken back leaves the usage and the held counts as they were.
        let mut guarded = None;
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
            let most = accepted.iter().map(|row| plan.charge.bytes(row) + NEW_ID_BYTES).sum::<u64>();
            // The rows of an open `COPY` may count for more once it is settled (a redo
            // copies some under new ids): settled first unless both surely fit.
            if self.usage.quota.is_some() && self.usage.check(most + self.open_copy_headroom()).is_err() {
                self.settle_copy()?;
                if self.usage.check(most).is_err() {
                    guarded = Some((self.usage, self.bytes_in_transaction, self.held_counts.clone()));
                    self.batch("SAVEPOINT lvbak_batch")?;
                }
            }
            self.copy_stays_open = guarded.is_none();
            if !self.texts_with_ids.contains(spec.name) && plan.holds_id_text(&accepted) {
                self.texts_with_ids.insert(spec.name);
            }
            if let Some(index) = plan.numbered {
                self.number_rows(spec, &plan, index, &mut accepted)?;
            }
            if let Some(id) = plan.id {
                insert::sort_by_id(&mut accepted, id);
            }
            let placed = self.insert_all(spec, &plan, &mut accepted)?;
            self.growth.added(spec.name, placed.inserted);
            self.usage.charge(placed.bytes, false)?;
            self.bytes_in_transaction += placed.bytes;
            let rejected = counts.rejected;
            counts = placed.counts(accepted.len());
            counts.rejected += rejected;
            Ok(())
        })();
        self.copy_stays_open = true;
        if let Err(error) = result {
            self.forget_absent();
            match guarded {
                // Unless a `COPY` that failed to settle took the whole transaction back.
                Some((usage, bytes, held)) if self.open_since.is_some() => {
                    let _ = self.batch("ROLLBACK TO SAVEPOINT lvbak_batch; RELEASE SAVEPOINT lvbak_batch");
                    (self.usage, self.bytes_in_transaction, self.held_counts) = (usage, bytes, held);
                    let _ = self.commit();
                }
                _ => self.abandon_transaction(),
            }
            return Err(error);
        }
        if guarded.is_some() {
            self.batch("RELEASE SAVEPOINT lvbak_batch")?;
        }
        self.rows_in_transaction += batch_rows;
        if self.rows_in_transaction >= COMMIT_AFTER_ROWS
            || self.open_since.is_some_and(|at| at.elapsed() >= COMMIT_AFTER)
        {
            self.commit()?;
            crate::faults::committed_rows_of(spec.name);
        }
        counts.add(self.take_held_counts(spec.name));
        Ok(counts)
    }

    /// Whether a batch of `rows` of `spec` may go on while the open `COPY` is open: one of
    /// the same table, and nothing to ask the database before the rows are written (no
    /// copies under new ids to look up, no numbers to give, every parent and reference
    /// known; see `fetch_owners` and `check_row`).
    fn copy_continues(&self, spec: &TableSpec, plan: &Plan, rows: &[AlignedRow]) -> bool {
        let Some(open) = &self.open_copy else { return true };
        let named = plan.parent.iter().copied().chain(plan.references.iter().map(|r| (r.index, r.target)));
        open.table() == spec.name
            && spec.name != "settings"
            && !self.remaps.any
            && plan.numbered.is_none()
            && named.filter(|(_, table)| table_spec(table).is_some()).all(|(index, table)| {
                rows.iter().all(|row| match &row[index] {
                    Some(Value::String(id)) => self.owners.get(table, id).is_some(),
                    _ => true,
                })
            })
    }

    /// Lets go of memory that can be rebuilt.
    fn release_memory(&mut self) {
        self.owners.clear();
        self.remaps.cache.clear();
        self.remaps.complete = false;
    }
}
