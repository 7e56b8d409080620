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
//! - a row keyed by another table's id (a message's breakdown, a session's bible) is
//!   accepted only when that row exists and is the importer's, so nobody can squat a key;
//! - a row whose primary key exists is skipped, whoever owns it; `settings` are deep-merged;
//! - afterwards, nullable references of the importer's rows that point nowhere are cleared.
//!
//! Files rows name live in per-user folders (`storage::files`), so a row can only ever name
//! its own user's files. Memory stays bounded: the ids of inserted rows that may need
//! re-vectorizing go to a table (`lvbak_import_inserted`), not to a list, and the caches of
//! looked-up owners and remapped ids are bounded in bytes (`cache`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lvbak_core::protocol::TableCounts;
use lvbak_core::registry::{
    is_secret_setting_key, table_spec, Ownership, ReferenceRule, ResetValue, TableSpec, OWNER_COLUMNS, TABLES,
};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::gate::{WriteGate, WriteKind, WriteTurn};
use super::{quoted, Database, DbResult};

mod cache;
mod remap;

/// An account's disk use during an import: what it used before, what the import added,
/// and its quota (`None`: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub quota: Option<u64>,
    pub before: u64,
    pub added: u64,
    /// Of `added`, what stays even if the import is rolled back (vectors).
    pub kept: u64,
    persisted: u64,
}

impl Usage {
    pub fn new(quota: Option<u64>, before: u64) -> Self {
        Self { quota, before, added: 0, kept: 0, persisted: before }
    }

    /// Refuses `bytes` more if they do not fit.
    pub fn check(&self, bytes: u64) -> DbResult<()> {
        match self.quota {
            Some(quota) if self.before + self.added + bytes > quota => {
                Err(super::DbError::QuotaExceeded(crate::failure::QuotaExceeded {
                    quota,
                    used: self.before + self.added,
                    needed: bytes,
                }))
            }
            _ => Ok(()),
        }
    }

    pub fn total(&self) -> u64 {
        self.before + self.added
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
    nullable: bool,
    primary_key: bool,
}

/// What the checks of one table need, by column index (worked out once per table).
#[derive(Clone, Debug)]
struct TablePlan {
    table: &'static str,
    columns: Vec<LiveColumn>,
    names: Vec<String>,
    /// `user_id` / `installed_by_user_id`: forced to the importer.
    owner_columns: Vec<usize>,
    forced_zero: Vec<usize>,
    filter: Option<(usize, &'static str)>,
    parent: Option<(usize, &'static str)>,
    references: Vec<PlannedReference>,
    id: Option<usize>,
    /// The column numbering the user's rows (`TableSpec::numbered`).
    numbered: Option<usize>,
    /// What a row counts for against the quota.
    charge: super::charge::RowCharge,
}

/// A reference column of a table, as its rows are checked.
#[derive(Clone, Copy, Debug)]
struct PlannedReference {
    /// The column's place among the live columns, and its name.
    index: usize,
    column: &'static str,
    /// The table it points into.
    target: &'static str,
    rule: ReferenceRule,
    /// Whether the target is applied later than this table (or is this table): such a
    /// reference is settled after every table is in.
    forward: bool,
    /// Whether the column may be empty (a reference to nothing is then cleared).
    nullable: bool,
}

/// One row, its values aligned with the live columns of its table (`None`: absent).
pub type AlignedRow = Vec<Option<Value>>;

/// The import's writer.
pub struct RowApplier {
    connection: Connection,
    user_id: String,
    plans: HashMap<&'static str, TablePlan>,
    owners: cache::LookupCache<&'static str, Owner>,

    /// The write transaction batches share, and when it began (see [`Self::apply`]).
    open_since: Option<std::time::Instant>,
    /// This import's turn at the write gate, held while its transaction is open.
    turn: Option<WriteTurn>,
    gate: Arc<WriteGate>,
    rows_in_transaction: usize,
    /// What the rows of the open transaction count for against the quota.
    bytes_in_transaction: u64,
    /// The largest rowid of every registry table when the import began: rowids only grow
    /// and imports never choose them, so the importer's rows above are the ones it added.
    rowids_before: HashMap<&'static str, i64>,
    usage: Usage,
    /// The importer's rows copied under new ids (see `remap`).
    remaps: remap::Remaps,
    /// Frees applied rows on another thread.
    disposer: Disposer,
    /// Scrub-list columns (table, column) to which an applied row gave a value whose target
    /// was not yet the importer's: [`Self::scrub_references`] reads those only.
    unsettled: HashSet<(&'static str, &'static str)>,
}

/// Frees applied rows on a thread of its own: a batch's rows are thousands of small
/// allocations, and freeing them took 5% of the applier's time, which is an import's
/// critical path. At most two batches wait; past that the applier frees them itself.
struct Disposer {
    sender: Option<std::sync::mpsc::SyncSender<Vec<AlignedRow>>>,
}

impl Disposer {
    fn new() -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<AlignedRow>>(2);
        let spawned =
            std::thread::Builder::new().name("rows-disposer".into()).spawn(move || receiver.into_iter().for_each(drop));
        Self { sender: spawned.ok().map(|_| sender) }
    }

    fn dispose(&self, rows: Vec<AlignedRow>) {
        if let Some(sender) = &self.sender {
            // A full queue hands the rows back, to be freed here.
            let _ = sender.try_send(rows);
        }
    }
}

/// The last segment of a character's or persona's `avatar_path` ('\\' taken as '/'), as SQL:
/// the expression of migration 0007's indexes, character for character.
const AVATAR_NAME: &str = "replace(replace(avatar_path, '\\', '/'), rtrim(replace(avatar_path, '\\', '/'), \
    replace(replace(avatar_path, '\\', '/'), '/', '')), '')";

/// "Does a row of user ?2 in `table` (characters or personas) have the avatar file ?1?",
/// answered by the index of the paths' last segments (migration 0007) for a name that is
/// one segment, as every archive's is.
fn avatar_named_sql(table: &str, name: &str) -> String {
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

/// The setting that says where an account's texts and keys go to be embedded.
const EMBEDDING_SETTING: &str = "embeddingConfig";

/// A transaction spanning several batches is committed after this long or this many rows,
/// so that index pages dirtied by many batches are written once, while other imports wait
/// no longer than this (short writes wait for one batch: see [`Self::apply`]).
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
const COMMIT_AFTER_ROWS: usize = 50_000;

impl Drop for RowApplier {
    /// Whatever batches were applied stay applied, however the import ends.
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

/// Which columns a row has, as bits (registry tables have well under 128).
fn row_shape(row: &AlignedRow) -> u128 {
    row.iter().enumerate().filter(|(_, v)| v.is_some()).fold(0u128, |bits, (i, _)| bits | 1u128 << (i % 128))
}

/// Rows in id order: inserted so, they touch neighbouring index pages (ids are random
/// UUIDs, the archive's and the copies' new ones alike).
fn sort_by_id(rows: &mut [AlignedRow], id: usize) {
    rows.sort_by(|a, b| a[id].as_ref().and_then(Value::as_str).cmp(&b[id].as_ref().and_then(Value::as_str)));
}

/// `INSERT OR IGNORE` of the columns `row` has.
fn insert_sql(spec: &TableSpec, plan: &TablePlan, row: &AlignedRow) -> String {
    let names: Vec<String> =
        plan.columns.iter().zip(row).filter(|(_, value)| value.is_some()).map(|(c, _)| quoted(&c.name)).collect();
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
    format!("INSERT OR IGNORE INTO {} ({}) VALUES ({})", quoted(spec.name), names.join(", "), placeholders.join(", "))
}

/// `INSERT OR IGNORE` of each row, with one prepared statement per run of rows that have
/// the same columns: the positions of the rows not inserted (their key exists), how many
/// were, and the bytes those count for.
fn insert_rows(
    connection: &Connection,
    spec: &TableSpec,
    plan: &TablePlan,
    rows: &[AlignedRow],
) -> DbResult<(Vec<usize>, u64, u64)> {
    let (mut ignored, mut inserted, mut bytes) = (Vec::new(), 0, 0);
    let mut current: Option<(u128, rusqlite::CachedStatement<'_>)> = None;
    for (position, row) in rows.iter().enumerate() {
        let shape = row_shape(row);
        if current.as_ref().is_none_or(|(known, _)| *known != shape) {
            current = Some((shape, connection.prepare_cached(&insert_sql(spec, plan, row))?));
        }
        let Some((_, statement)) = current.as_mut() else { continue };
        if statement.execute(rusqlite::params_from_iter(row.iter().flatten().map(Param)))? == 0 {
            ignored.push(position);
        } else {
            inserted += 1;
            bytes += plan.charge.bytes(row);
        }
    }
    Ok((ignored, inserted, bytes))
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
    /// A writer for one import by `user_id`, whose disk quota is `quota` unless the account
    /// has one of its own.
    pub fn row_applier(&self, user_id: &str, quota: Option<u64>) -> DbResult<RowApplier> {
        let connection = self.connect()?;
        connection.pragma_update(None, "foreign_keys", "OFF")?;
        // A bulk writer: a page cache that holds a whole batch.
        connection.pragma_update(None, "cache_size", -24576)?;
        let mut rowids_before = HashMap::new();
        for spec in TABLES {
            let sql = format!("SELECT coalesce(max(rowid), 0) FROM {}", quoted(spec.name));
            rowids_before.insert(spec.name, connection.query_row(&sql, [], |row| row.get(0))?);
        }
        let remaps = remap::Remaps::load(&connection, user_id)?;
        let quota = self.quota_of(user_id)?.unwrap_or(quota);
        let before = self.usage_of(user_id)?.unwrap_or(0);
        Ok(RowApplier {
            connection,
            user_id: user_id.to_string(),
            plans: HashMap::new(),
            owners: cache::LookupCache::default(),
            open_since: None,
            turn: None,
            gate: Arc::clone(&self.gate),
            rows_in_transaction: 0,
            bytes_in_transaction: 0,
            rowids_before,
            usage: Usage::new(quota, before),
            remaps,
            disposer: Disposer::new(),
            unsettled: HashSet::new(),
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
                Ok(LiveColumn {
                    name: row.get(1)?,
                    required: notnull != 0 && default.is_none(),
                    nullable: notnull == 0,
                    primary_key: pk > 0,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let position = |name: &str| columns.iter().position(|column| column.name == name);
        let plan = TablePlan {
            table: spec.name,
            names: columns.iter().map(|column| column.name.clone()).collect(),
            owner_columns: OWNER_COLUMNS.iter().filter_map(|name| position(name)).collect(),
            forced_zero: spec.forced_zero.iter().filter_map(|name| position(name)).collect(),
            filter: spec.row_filter.and_then(|(column, value)| position(column).map(|index| (index, value))),
            parent: match spec.ownership {
                Ownership::Parent { parent_table, column } => position(column).map(|index| (index, parent_table)),
                Ownership::Direct { .. } => None,
            },
            references: spec
                .references
                .iter()
                .filter_map(|r| {
                    let order = |name: &str| TABLES.iter().position(|t| t.name == name);
                    let forward = order(r.table) >= order(spec.name);
                    position(r.column).map(|index| PlannedReference {
                        index,
                        column: r.column,
                        target: r.table,
                        rule: r.rule,
                        forward,
                        nullable: columns[index].nullable,
                    })
                })
                .collect(),
            id: position("id"),
            numbered: spec.numbered.and_then(position),
            charge: super::charge::RowCharge::of(
                &self.connection,
                spec.name,
                &columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            )?,
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
        if let Some(owner) = self.owners.get(table, id) {
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
            self.owners.insert(table, id, owner);
        }
        Ok(owner)
    }

    /// Counts the import's lookup caches in the instance's memory budget.
    pub fn count_caches_in(&mut self, budget: &crate::memory::MemoryBudget) {
        self.owners.count_in(budget);
        self.remaps.cache.count_in(budget);
    }

    /// Lets go of memory that can be rebuilt: the lookup caches and SQLite's page cache.
    pub fn release_memory(&mut self) {
        self.owners.clear();
        self.remaps.forget();
        let _ = self.connection.execute_batch("PRAGMA shrink_memory");
    }

    /// Commits the open transaction, if any, with the account's disk use as it now is.
    pub fn commit(&mut self) -> DbResult<()> {
        let total = self.usage.total();
        if total != self.usage.persisted {
            self.in_turn(WriteKind::Short, |connection, user_id| {
                connection.execute(
                    "INSERT INTO lvbak_usage (user_id, bytes) VALUES (?1, ?2) ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes",
                    rusqlite::params![user_id, total as i64],
                )?;
                Ok(())
            })?;
            self.usage.persisted = total;
        }
        if self.open_since.take().is_some() {
            self.rows_in_transaction = 0;
            self.bytes_in_transaction = 0;
            let committed = self.connection.execute_batch("COMMIT");
            self.turn = None;
            committed?;
        }
        Ok(())
    }

    /// Runs a write (given the connection and the importer's id) outside the batches'
    /// transaction in a turn of its own, or inside the open transaction's turn.
    fn in_turn<T>(&mut self, kind: WriteKind, work: impl FnOnce(&mut Connection, &str) -> DbResult<T>) -> DbResult<T> {
        let own = self.turn.is_none().then(|| self.gate.enter(kind));
        let result = work(&mut self.connection, &self.user_id);
        drop(own);
        result
    }

    /// The account's disk use during this import.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Counts `bytes` written outside the rows (a file; a vector, which `keep` marks as
    /// staying if the import is rolled back), or refuses them if they do not fit.
    pub fn charge(&mut self, bytes: u64, keep: bool) -> DbResult<()> {
        self.usage.check(bytes)?;
        self.usage.added += bytes;
        if keep {
            self.usage.kept += bytes;
        }
        Ok(())
    }

    /// Gives back bytes charged for a file that turned out smaller, or was already there.
    pub fn refund(&mut self, bytes: u64) {
        self.usage.added = self.usage.added.saturating_sub(bytes);
    }

    /// Whether `bytes` more would fit in the quota.
    pub fn fits(&self, bytes: u64) -> bool {
        self.usage.check(bytes).is_ok()
    }

    /// Takes back every row this import added (children first) and what they counted for;
    /// used when the import fails over its quota, so that nothing it wrote stays.
    pub fn roll_back_import(&mut self) -> DbResult<u64> {
        if self.open_since.take().is_some() {
            let rolled_back = self.connection.execute_batch("ROLLBACK");
            self.turn = None;
            rolled_back?;
        }
        self.rows_in_transaction = 0;
        self.bytes_in_transaction = 0;
        let deletes: Vec<(String, i64)> = TABLES
            .iter()
            .rev()
            .map(|spec| {
                let sql = format!(
                    "DELETE FROM {} AS t WHERE t.rowid > ?2 AND {}",
                    quoted(spec.name),
                    owned_condition(spec, "t", 1)
                );
                (sql, self.rowids_before.get(spec.name).copied().unwrap_or(i64::MAX))
            })
            .collect();
        let removed = self.in_turn(WriteKind::Bulk, |connection, user_id| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut removed = 0;
            for (sql, before) in &deletes {
                removed += transaction.execute(sql, rusqlite::params![user_id, before])? as u64;
            }
            transaction.commit()?;
            Ok(removed)
        })?;
        self.usage.added = self.usage.kept;
        self.commit()?;
        Ok(removed)
    }

    /// Applies a batch of rows of one registry table (aligned with [`Self::columns_of`]):
    /// every row is checked first, then the accepted ones are inserted with one prepared
    /// statement per set of columns. Batches share a transaction that commits every half
    /// second or so.
    ///
    /// An error ends the import. A batch that might not fit the quota runs in a savepoint, so
    /// an over-quota batch leaves nothing and the rows before it stay (the import is then
    /// rolled back as a whole: see `ImportSession`). Any other batch runs without one: a
    /// savepoint copies every page a batch changes that existed before it (a statement
    /// journal) — for rows keyed by random ids that is most of the id index, again for every
    /// batch, several times the rows' own bytes — and on a database error the open
    /// transaction is rolled back whole, as a crash at that moment would leave it.
    pub fn apply(&mut self, spec: &'static TableSpec, rows: Vec<AlignedRow>) -> DbResult<TableCounts> {
        let plan = self.plan(spec)?;
        let mut counts = TableCounts::default();
        if self.open_since.is_none() {
            let turn = self.gate.enter(WriteKind::Bulk);
            self.connection.execute_batch("BEGIN IMMEDIATE")?;
            self.turn = Some(turn);
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
            let mut accepted = Vec::with_capacity(rows.len());
            for row in rows {
                match self.prepare_row(&plan, row)? {
                    Some(row) => accepted.push(row),
                    None => counts.rejected += 1,
                }
            }
            // The most these rows can count for: each as it is, or as a copy under a new id
            // (worked out only when there is a quota to exceed).
            let most = || accepted.iter().map(|row| plan.charge.bytes(row) + remap::NEW_ID_BYTES).sum::<u64>();
            if self.usage.quota.is_some() && self.usage.check(most()).is_err() {
                self.connection.execute_batch("SAVEPOINT lvbak_batch")?;
                guarded = true;
            }
            if let Some(index) = plan.numbered {
                self.number_rows(spec, &plan, index, &mut accepted)?;
            }
            if let Some(id) = plan.id {
                sort_by_id(&mut accepted, id);
            }
            let (inserted, remapped, bytes) = self.insert_all(spec, &plan, &accepted)?;
            self.usage.check(bytes)?;
            self.usage.added += bytes;
            counts.imported += inserted;
            counts.remapped += remapped;
            counts.skipped += accepted.len() as u64 - inserted;
            counts.bytes += bytes;
            self.disposer.dispose(accepted);
            Ok(())
        })();
        if let Err(error) = result {
            if guarded {
                let _ = self.connection.execute_batch("ROLLBACK TO lvbak_batch; RELEASE lvbak_batch");
                let _ = self.commit();
            } else {
                self.abandon_transaction();
            }
            return Err(error);
        }
        if guarded {
            self.connection.execute_batch("RELEASE lvbak_batch")?;
        }
        self.rows_in_transaction += batch_rows;
        self.bytes_in_transaction += counts.bytes;
        // A short write (a sign-in) waiting goes next, after this batch.
        if self.rows_in_transaction >= COMMIT_AFTER_ROWS
            || self.open_since.is_some_and(|at| at.elapsed() >= COMMIT_AFTER)
            || self.gate.short_waiting()
        {
            self.commit()?;
            crate::faults::committed_rows_of(spec.name);
        }
        Ok(counts)
    }

    /// Rolls back the open transaction after a database error: the rows it held are gone,
    /// and so is what they counted for (the import ends with the error).
    fn abandon_transaction(&mut self) {
        if self.open_since.take().is_some() {
            let _ = self.connection.execute_batch("ROLLBACK");
            self.turn = None;
        }
        self.usage.added = self.usage.added.saturating_sub(self.bytes_in_transaction);
        self.rows_in_transaction = 0;
        self.bytes_in_transaction = 0;
        // Answers read inside the transaction may name rows that are no longer there.
        self.owners.clear();
        self.remaps.forget();
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
        for (index, (column, value)) in plan.columns.iter().zip(&row).enumerate() {
            // A missing number is given one (see `number_rows`).
            if plan.numbered == Some(index) {
                continue;
            }
            if (column.primary_key || column.required) && value.as_ref().is_none_or(Value::is_null) {
                return Ok(None);
            }
        }
        // Parents and references the importer's copies stand in for (see `remap`).
        if self.remaps.any {
            let references = plan.references.iter().map(|r| (r.index, r.target));
            for (index, table) in plan.parent.iter().copied().chain(references) {
                if let Some(original) = text(&row, index) {
                    if let Some(new_id) = self.remapped(Some(table), &original)? {
                        row[index] = Some(Value::String(new_id));
                    }
                }
            }
        }
        if let Some((index, parent_table)) = plan.parent {
            let Some(parent) = text(&row, index) else { return Ok(None) };
            if self.owner_of(parent_table, &parent)? != Owner::Importer {
                return Ok(None);
            }
        }
        for &PlannedReference { index, column, target: table, rule, forward, nullable } in &plan.references {
            let target = match &row[index] {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(id.clone()),
                // Ids are text: any other value names none of the importer's rows, and
                // SQLite would store it as text that a row imported later could match.
                Some(_) if nullable && rule != ReferenceRule::RequireOwn => {
                    row[index] = Some(Value::Null);
                    continue;
                }
                Some(_) => return Ok(None),
            };
            let Some(target_spec) = table_spec(table) else { continue };
            let owner = match &target {
                Some(target) => self.owner_of(target_spec.name, target)?,
                None => Owner::Nobody,
            };
            match (rule, owner) {
                (ReferenceRule::RequireOwn, Owner::Importer) => {}
                (ReferenceRule::RequireOwn, _) => return Ok(None),
                (ReferenceRule::RejectWhenForeign, Owner::Someone) => return Ok(None),
                // A reference to a row that is not there is cleared, or its row refused
                // where it may not be empty: left dangling, it would point at whichever
                // account imports that id next (and be deleted with that account's row).
                (ReferenceRule::RejectWhenForeign, Owner::Nobody) if target.is_some() => {
                    if !nullable {
                        return Ok(None);
                    }
                    row[index] = Some(Value::Null);
                }
                // A target applied later may yet become the importer's copy: settled (and
                // scrubbed if still someone else's) once every table is in.
                (ReferenceRule::ScrubWhenMissing, Owner::Someone) if !forward => row[index] = Some(Value::Null),
                (ReferenceRule::ScrubWhenMissing, Owner::Someone | Owner::Nobody) if target.is_some() => {
                    self.unsettled.insert((plan.table, column));
                }
                _ => {}
            }
        }
        Ok(Some(row))
    }

    /// Gives every row of a numbered table a number of its own among the user's rows: one
    /// that is missing, not an integer, or taken (by another of the user's rows, or by an
    /// earlier row of this batch) becomes the next after the highest. A row whose id exists
    /// keeps its number; it will be skipped.
    fn number_rows(
        &mut self,
        spec: &'static TableSpec,
        plan: &TablePlan,
        index: usize,
        rows: &mut [AlignedRow],
    ) -> DbResult<()> {
        let (table, column) = (quoted(spec.name), quoted(&plan.names[index]));
        let taken_sql = format!("SELECT 1 FROM {table} WHERE user_id = ?1 AND {column} = ?2 AND id IS NOT ?3");
        let highest_sql = format!("SELECT COALESCE(MAX({column}), 0) FROM {table} WHERE user_id = ?1");
        let mut highest: i64 = self.connection.query_row(&highest_sql, [&self.user_id], |row| row.get(0))?;
        let mut in_batch = HashSet::new();
        for row in rows {
            let id = plan.id.and_then(|i| row[i].as_ref()).and_then(Value::as_str).map(str::to_string);
            let wanted = row[index].as_ref().and_then(Value::as_i64).filter(|n| *n > 0);
            let free = match wanted {
                Some(number) if !in_batch.contains(&number) => {
                    !self.connection.prepare_cached(&taken_sql)?.exists(rusqlite::params![self.user_id, number, id])?
                }
                _ => false,
            };
            let number = match wanted {
                Some(number) if free => number,
                _ => highest.saturating_add(1),
            };
            highest = highest.max(number);
            in_batch.insert(number);
            row[index] = Some(Value::from(number));
        }
        Ok(())
    }

    /// `INSERT OR IGNORE` of rows aligned with `columns`; returns how many were new, how
    /// many of those are copies under new ids, and the bytes they count for. A row whose id
    /// exists is skipped when the importer owns that id, and otherwise imported as a copy
    /// under an id of the importer's own (see `remap`).
    fn insert_all(
        &mut self,
        spec: &'static TableSpec,
        plan: &TablePlan,
        rows: &[AlignedRow],
    ) -> DbResult<(u64, u64, u64)> {
        let (ignored, mut inserted, mut bytes) = insert_rows(&self.connection, spec, plan, rows)?;
        let Some(id_index) = plan.id else { return Ok((inserted, 0, bytes)) };
        let mut copies = Vec::new();
        for position in ignored {
            let mut row = rows[position].clone();
            let Some(original) = row[id_index].as_ref().and_then(Value::as_str).map(str::to_string) else { continue };
            if self.owner_of(spec.name, &original)? == Owner::Importer {
                continue;
            }
            row[id_index] = Some(Value::String(self.remap_id(spec.name, &original)?));
            copies.push(row);
        }
        sort_by_id(&mut copies, id_index);
        // A copy not inserted was made by an earlier import of this archive: skipped.
        let (_, remapped, copy_bytes) = insert_rows(&self.connection, spec, plan, &copies)?;
        inserted += remapped;
        bytes += copy_bytes;
        Ok((inserted, remapped, bytes))
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
                if key == EMBEDDING_SETTING {
                    // Kept as the archive has it, but switched off until the user confirms it.
                    super::embedding_trust::mark_unconfirmed(&self.connection, &self.user_id, crate::util::now())?;
                }
                counts.imported += 1;
            }
            // The account's own connection stays exactly as it is: an archive never decides
            // where its keys or texts are sent, not even by filling a field it lacks.
            Some(_) if key == EMBEDDING_SETTING => counts.skipped += 1,
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
    /// target is missing or not the importer's; returns how many were cleared. Only the rows
    /// this import added can hold one (imports never delete, and other writes keep foreign
    /// keys), and only the columns [`Self::prepare_row`] left unsettled are read: a
    /// 500,000-character import spent half a second reading every character again for an
    /// `image_id` none of them had.
    pub fn scrub_references(&mut self) -> DbResult<u64> {
        self.commit()?;
        let unsettled = std::mem::take(&mut self.unsettled);
        let rowids_before = self.rowids_before.clone();
        self.in_turn(WriteKind::Bulk, |connection, user_id| {
            let mut cleared = 0;
            for spec in TABLES {
                for reference in spec.references.iter().filter(|r| r.rule == ReferenceRule::ScrubWhenMissing) {
                    let Some(target) = table_spec(reference.table) else { continue };
                    if !unsettled.contains(&(spec.name, reference.column)) {
                        continue;
                    }
                    let column = quoted(reference.column);
                    let sql = format!(
                        "UPDATE {table} AS t SET {column} = NULL WHERE t.rowid > ?2 AND {owned} AND t.{column} IS NOT NULL \
                         AND NOT EXISTS (SELECT 1 FROM {target} x WHERE x.id = t.{column} AND {target_owned})",
                        table = quoted(spec.name),
                        owned = owned_condition(spec, "t", 1),
                        target = quoted(target.name),
                        target_owned = owned_condition(target, "x", 1),
                    );
                    let before = rowids_before.get(spec.name).copied().unwrap_or(0);
                    cleared += connection.execute(&sql, rusqlite::params![user_id, before])? as u64;
                }
            }
            Ok(cleared)
        })
    }

    /// Settles every row of the account as an import's end settles the rows it added: for
    /// an import that was killed before its end (which rows it added is not known then).
    /// How many values changed.
    pub fn settle_all_rows(&mut self) -> DbResult<u64> {
        self.rowids_before.values_mut().for_each(|rowid| *rowid = 0);
        self.unsettled = TABLES
            .iter()
            .flat_map(|spec| {
                spec.references
                    .iter()
                    .filter(|r| r.rule == ReferenceRule::ScrubWhenMissing)
                    .map(move |r| (spec.name, r.column))
            })
            .collect();
        let settled = self.settle_remapped_references()?;
        Ok(settled + self.scrub_references()?)
    }

    /// Resets the vector state of the rows this import inserted, so they are re-embedded
    /// (FORMAT §3); returns how many rows were marked.
    pub fn mark_inserted_for_revectorization(&mut self) -> DbResult<u64> {
        self.commit()?;
        let mut marked = 0;
        for spec in TABLES.iter().filter(|spec| !spec.revectorize.is_empty()) {
            let assignments: Vec<String> = spec
                .revectorize
                .iter()
                .map(|(column, value)| {
                    let value = match value {
                        ResetValue::Null => "NULL".to_string(),
                        ResetValue::Integer(number) => number.to_string(),
                        ResetValue::Text(text) => format!("'{}'", text.replace('\'', "''")),
                        ResetValue::WorldBookDesiredStatus => super::embeddings::WORLD_BOOK_DESIRED_STATUS.to_string(),
                    };
                    format!("{} = {value}", quoted(column))
                })
                .collect();
            let before = self.rowids_before.get(spec.name).copied().unwrap_or(i64::MAX);
            let sql = format!(
                "UPDATE {} AS t SET {} WHERE t.rowid > ?2 AND {}",
                quoted(spec.name),
                assignments.join(", "),
                owned_condition(spec, "t", 1),
            );
            marked += self.in_turn(WriteKind::Bulk, |connection, user_id| {
                Ok(connection.execute(&sql, rusqlite::params![user_id, before])?)
            })? as u64;
        }
        Ok(marked)
    }

    /// Whether the importer's row behind a vector waits for re-vectorization: its vector
    /// then comes from the run, and the archive's is skipped (two writers would leave two).
    pub fn vector_source_pending(&mut self, source_type: &str, source_id: &str) -> DbResult<bool> {
        let Some(kind) = super::embeddings::SourceKind::from_source_type(source_type) else { return Ok(false) };
        let sql = super::embeddings::pending_row_sql(kind);
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

    /// The importer's embedding configuration setting, as JSON text.
    pub fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        Ok(self
            .connection
            .query_row(
                "SELECT value FROM settings WHERE key = ?1 AND user_id = ?2",
                [EMBEDDING_SETTING, &self.user_id],
                |row| row.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An avatar is found by its path's last segment, whichever separator the path uses,
    /// for its owner only, and through the index (not by reading the user's rows).
    #[test]
    #[allow(clippy::unwrap_used)]
    fn avatar_files_are_found_by_the_index_of_last_segments() {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut connection).unwrap();
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
