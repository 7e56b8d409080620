//! [`PostgresOpenJobs`]: which node of the instance runs each open import job
//! (`lvbak_open_jobs`, migration 0003), one per account across every node, and whether that
//! node is still there. A node holds a session advisory lock per job it runs on a
//! connection of its own (the lock holder, never pooled): PostgreSQL frees the locks of a
//! connection whose process died, so a lock another node can take means the job's node is
//! gone — no clock, no heartbeat.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_postgres::NoTls;

use super::{connection_name, PostgresStores};
use crate::storage::sqlite::DbResult;

/// One open job as recorded.
#[derive(Clone, Debug)]
pub(crate) struct OpenJobRow {
    pub(crate) job_id: String,
    pub(crate) user_id: String,
    pub(crate) lock_key: i64,
    /// The address other nodes reach the job's node at (none: that node does not take
    /// forwarded requests).
    pub(crate) node_url: Option<String>,
    pub(crate) kind: String,
    /// What opened it (a batch job's open request), to open it again elsewhere.
    pub(crate) opened: Option<String>,
    pub(crate) orphaned_at: Option<i64>,
}

/// A re-vectorization run going on some node (`lvbak_open_runs`).
#[derive(Clone, Debug)]
pub(crate) struct OpenRunRow {
    pub(crate) user_id: String,
    pub(crate) lock_key: i64,
    pub(crate) node_url: Option<String>,
}

/// The open jobs and runs of the instance, and this node's lock holder.
pub(crate) struct PostgresOpenJobs {
    stores: PostgresStores,
    /// The lock holder's connection; a new one replaces it once it ended (lock operations
    /// wait for each other here).
    holder: Mutex<Arc<LockHolder>>,
    /// The same connection, for the answers that must not wait.
    current: parking_lot::Mutex<Arc<LockHolder>>,
    /// Told when a lock holder's connection ends.
    ended: Arc<tokio::sync::Notify>,
}

/// Looks (20 ms apart) for a fenced node's connections to be gone, at most.
const FENCE_WAITS: usize = 100;

/// The advisory lock of job `job_id` (its id's SHA-256, first 8 bytes).
pub(crate) fn lock_key(job_id: &str) -> i64 {
    let digest = Sha256::digest(job_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

const COLUMNS: &str = "job_id, user_id, lock_key, node_url, kind, opened, orphaned_at";

fn row_of(row: &tokio_postgres::Row) -> OpenJobRow {
    OpenJobRow {
        job_id: row.get(0),
        user_id: row.get(1),
        lock_key: row.get(2),
        node_url: row.get(3),
        kind: row.get(4),
        opened: row.get(5),
        orphaned_at: row.get(6),
    }
}

/// One connection holding this node's locks, and the locks it holds. PostgreSQL gives a
/// session a lock it holds already again (counting it twice), so a node would find its own
/// job's or run's lock "free" — its node gone — while it is ending it: a lock held here is
/// never taken again, and is held once. When the connection ends, every lock it held is
/// gone with it (another node may take them); the next lock asked for opens a new one.
struct LockHolder {
    client: tokio_postgres::Client,
    /// Set when the connection ended.
    lost: Arc<AtomicBool>,
    /// Bounded by the jobs and runs going on this node.
    held: parking_lot::Mutex<HashSet<i64>>,
}

impl LockHolder {
    /// Whether the connection ended.
    fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

/// The `application_name` of the lock holder's connection of process `node_id` (its other
/// connections go by [`connection_name`]).
pub(crate) fn lock_holder_name(node_id: &str) -> String {
    format!("{} locks", connection_name(node_id))
}

/// Opens a lock holder's connection to `stores`' database.
async fn open_holder(stores: &PostgresStores, told: Arc<tokio::sync::Notify>) -> DbResult<Arc<LockHolder>> {
    let mut config = tokio_postgres::Config::clone(&stores.config);
    config.application_name(lock_holder_name(&stores.node_id));
    let (client, connection) = config.connect(NoTls).await?;
    let lost = Arc::new(AtomicBool::new(false));
    let ended = lost.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::error!("the connection holding this node's job locks ended: {error}");
        }
        ended.store(true, Ordering::Relaxed);
        told.notify_one();
    });
    Ok(Arc::new(LockHolder { client, lost, held: parking_lot::Mutex::default() }))
}

fn run_row_of(row: &tokio_postgres::Row) -> OpenRunRow {
    OpenRunRow { user_id: row.get(0), lock_key: row.get(1), node_url: row.get(2) }
}

impl PostgresOpenJobs {
    /// Opens this node's lock holder (a connection of its own to `stores`' database).
    pub(crate) async fn connect(stores: &PostgresStores) -> DbResult<Self> {
        let ended = Arc::new(tokio::sync::Notify::new());
        let holder = open_holder(stores, ended.clone()).await?;
        let current = parking_lot::Mutex::new(holder.clone());
        Ok(Self { stores: stores.clone(), current, holder: Mutex::new(holder), ended })
    }

    /// What is told when a lock holder's connection ends (remembered until awaited).
    pub(crate) fn connection_ended(&self) -> Arc<tokio::sync::Notify> {
        self.ended.clone()
    }

    /// Whether this node's locks are gone (its lock holder's connection ended, and no lock
    /// was asked for since).
    pub(crate) fn lost(&self) -> bool {
        self.current.lock().lost()
    }

    /// Whether this node holds the lock `key` (on a connection that has not ended).
    pub(crate) fn holds(&self, key: i64) -> bool {
        let holder = self.current.lock().clone();
        !holder.lost() && holder.held.lock().contains(&key)
    }

    /// The lock holder, opened again first if its connection ended.
    async fn live_holder(&self) -> DbResult<tokio::sync::MutexGuard<'_, Arc<LockHolder>>> {
        let mut holder = self.holder.lock().await;
        if holder.lost() {
            *holder = open_holder(&self.stores, self.ended.clone()).await?;
            *self.current.lock() = holder.clone();
            tracing::warn!("this node's lock holder connected again; the locks it held are gone");
        }
        Ok(holder)
    }

    /// Takes the lock `key` if nobody holds it; whether it was taken. A lock this node
    /// holds already is not free. A lock holder whose connection ended is replaced first.
    pub(crate) async fn try_hold(&self, key: i64) -> DbResult<bool> {
        let holder = self.live_holder().await?;
        if holder.held.lock().contains(&key) {
            return Ok(false);
        }
        let row = holder.client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await?;
        let taken: bool = row.get(0);
        if taken {
            holder.held.lock().insert(key);
        }
        Ok(taken)
    }

    /// Gives the lock `key` back (nothing when it is not held: its connection ended).
    pub(crate) async fn let_go(&self, key: i64) -> DbResult<()> {
        let holder = self.holder.lock().await;
        if holder.held.lock().remove(&key) && !holder.lost() {
            holder.client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await?;
        }
        Ok(())
    }

    /// Says this node is there, reachable at `node_url` (on the lock holder's connection:
    /// a node whose locks cannot be asked for does not beat).
    pub(crate) async fn beat(&self, node_url: Option<&str>) -> DbResult<()> {
        let holder = self.live_holder().await?;
        let node_id: &str = &self.stores.node_id;
        holder
            .client
            .execute(
                "INSERT INTO lvbak_nodes (node_id, node_url, beat_at) VALUES ($1, $2, now())
                 ON CONFLICT (node_id) DO UPDATE SET node_url = excluded.node_url, beat_at = excluded.beat_at",
                &[&node_id, &node_url],
            )
            .await?;
        Ok(())
    }

    /// Whether the node at `node_url` is silent: it beat, and not within `silent`.
    pub(crate) async fn is_silent(&self, node_url: &str, silent: Duration) -> DbResult<bool> {
        let client = self.stores.client().await?;
        let row = client
            .query_one(
                "SELECT bool_and(beat_at < now() - make_interval(secs => $2)) FROM lvbak_nodes WHERE node_url = $1",
                &[&node_url, &silent.as_secs_f64()],
            )
            .await?;
        Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
    }

    /// Fences every other node silent for longer than `silent`: ends each connection it
    /// opened (its locks freed, its unfinished transactions rolled back) and waits (a
    /// little) for them to be gone; how many connections were ended. A fenced node's record
    /// stays (it reads silent until it beats again); one silent for a day is forgotten.
    pub(crate) async fn fence_silent(&self, silent: Duration) -> DbResult<u64> {
        let client = self.stores.client().await?;
        let node_id: &str = &self.stores.node_id;
        client
            .execute("DELETE FROM lvbak_nodes WHERE beat_at < now() - interval '1 day' AND node_id <> $1", &[&node_id])
            .await?;
        let silent_nodes = client
            .query(
                "SELECT node_id FROM lvbak_nodes WHERE node_id <> $1 AND beat_at < now() - make_interval(secs => $2)",
                &[&node_id, &silent.as_secs_f64()],
            )
            .await?;
        let mut ended = 0;
        for row in silent_nodes {
            let silent_id: String = row.get(0);
            let names = [connection_name(&silent_id), lock_holder_name(&silent_id)];
            let in_use = "FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1)";
            let sql = format!("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) {in_use}");
            let terminated: i64 = client.query_one(&sql, &[&names.as_slice()]).await?.get(0);
            if terminated == 0 {
                continue;
            }
            tracing::warn!("node {silent_id} was silent for over {silent:?}: its {terminated} connections were ended");
            ended += terminated as u64;
            // Its locks are free once its connections' processes are gone.
            let sql = format!("SELECT count(*) {in_use}");
            for _ in 0..FENCE_WAITS {
                let left: i64 = client.query_one(&sql, &[&names.as_slice()]).await?.get(0);
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(ended)
    }

    /// Records a new open job (its lock held by the caller); `false` when the account has
    /// an open job already.
    pub(crate) async fn insert(&self, row: &OpenJobRow, now: i64) -> DbResult<bool> {
        let client = self.stores.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO lvbak_open_jobs (job_id, user_id, lock_key, node_url, kind, opened, opened_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[&row.job_id, &row.user_id, &row.lock_key, &row.node_url, &row.kind, &row.opened, &now],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// The open job `job_id`, if one is recorded.
    pub(crate) async fn get(&self, job_id: &str) -> DbResult<Option<OpenJobRow>> {
        let client = self.stores.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM lvbak_open_jobs WHERE job_id = $1");
        Ok(client.query_opt(&sql, &[&job_id]).await?.as_ref().map(row_of))
    }

    /// The open job of `user_id`, if one is recorded.
    pub(crate) async fn of_user(&self, user_id: &str) -> DbResult<Option<OpenJobRow>> {
        let client = self.stores.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM lvbak_open_jobs WHERE user_id = $1");
        Ok(client.query_opt(&sql, &[&user_id]).await?.as_ref().map(row_of))
    }

    /// Open jobs run by any node but `node_url` (all of them with none), at most `limit`.
    pub(crate) async fn others(&self, node_url: Option<&str>, limit: i64) -> DbResult<Vec<OpenJobRow>> {
        let client = self.stores.client().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM lvbak_open_jobs WHERE node_url IS DISTINCT FROM $1 OR $1 IS NULL
             ORDER BY opened_at LIMIT $2"
        );
        Ok(client.query(&sql, &[&node_url, &limit]).await?.iter().map(row_of).collect())
    }

    /// Moves job `job_id` to the node at `node_url` (which holds its lock now).
    pub(crate) async fn move_to(&self, job_id: &str, node_url: Option<&str>) -> DbResult<()> {
        let client = self.stores.client().await?;
        client
            .execute(
                "UPDATE lvbak_open_jobs SET node_url = $2, orphaned_at = NULL WHERE job_id = $1",
                &[&job_id, &node_url],
            )
            .await?;
        Ok(())
    }

    /// Notes that job `job_id`'s node was found gone at `now` (kept if noted before).
    pub(crate) async fn mark_orphaned(&self, job_id: &str, now: i64) -> DbResult<()> {
        let client = self.stores.client().await?;
        client
            .execute(
                "UPDATE lvbak_open_jobs SET orphaned_at = coalesce(orphaned_at, $2) WHERE job_id = $1",
                &[&job_id, &now],
            )
            .await?;
        Ok(())
    }

    /// Forgets job `job_id` (it ended).
    pub(crate) async fn remove(&self, job_id: &str) -> DbResult<()> {
        let client = self.stores.client().await?;
        client.execute("DELETE FROM lvbak_open_jobs WHERE job_id = $1", &[&job_id]).await?;
        Ok(())
    }

    /// Forgets the imports `user_id` left open (their rows, hidden from exports while an
    /// import is open, show again). Only while the account has no job running anywhere.
    pub(crate) async fn forget_imports_of(&self, user_id: &str) -> DbResult<u64> {
        let client = self.stores.client().await?;
        Ok(client.execute("DELETE FROM lvbak_imports WHERE user_id = $1", &[&user_id]).await?)
    }

    /// Hands `user_id`'s open imports (their job's node is gone) on to the account's next
    /// import, which takes their rows as its own (`import_rows::take_over_handed_on`).
    pub(crate) async fn hand_on_imports(&self, user_id: &str) -> DbResult<u64> {
        let client = self.stores.client().await?;
        Ok(client.execute("UPDATE lvbak_imports SET handed_on = TRUE WHERE user_id = $1", &[&user_id]).await?)
    }

    /// Import jobs recorded unfinished whose open job is gone (a node died between the
    /// two writes): failed with `code`; their accounts.
    pub(crate) async fn fail_unowned_jobs(&self, now: i64, code: &str, message: &str) -> DbResult<Vec<String>> {
        let client = self.stores.client().await?;
        let rows = client
            .query(
                "WITH failed AS (UPDATE lvbak_import_jobs j SET status = 'failed', finished_at = $1, error_code = $2,
                 error_message = $3 WHERE status IN ('queued', 'awaiting_ticket', 'running')
                 AND NOT EXISTS (SELECT 1 FROM lvbak_open_jobs o WHERE o.job_id = j.id) RETURNING user_id)
                 SELECT DISTINCT user_id FROM failed",
                &[&now, &code, &message],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Records `row`'s run (its lock held by the caller); `false` when the account has one.
    pub(crate) async fn insert_run(&self, row: &OpenRunRow, now: i64) -> DbResult<bool> {
        let client = self.stores.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO lvbak_open_runs (user_id, lock_key, node_url, started_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&row.user_id, &row.lock_key, &row.node_url, &now],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// The run of `user_id`, if one is going anywhere.
    pub(crate) async fn run_of(&self, user_id: &str) -> DbResult<Option<OpenRunRow>> {
        let client = self.stores.client().await?;
        let row = client
            .query_opt("SELECT user_id, lock_key, node_url FROM lvbak_open_runs WHERE user_id = $1", &[&user_id])
            .await?;
        Ok(row.as_ref().map(run_row_of))
    }

    /// Runs going on any node but `node_url`, at most `limit`.
    pub(crate) async fn other_runs(&self, node_url: Option<&str>, limit: i64) -> DbResult<Vec<OpenRunRow>> {
        let client = self.stores.client().await?;
        let rows = client
            .query(
                "SELECT user_id, lock_key, node_url FROM lvbak_open_runs
                 WHERE node_url IS DISTINCT FROM $1 OR $1 IS NULL ORDER BY started_at LIMIT $2",
                &[&node_url, &limit],
            )
            .await?;
        Ok(rows.iter().map(run_row_of).collect())
    }

    /// Forgets `user_id`'s run.
    pub(crate) async fn remove_run(&self, user_id: &str) -> DbResult<()> {
        let client = self.stores.client().await?;
        client.execute("DELETE FROM lvbak_open_runs WHERE user_id = $1", &[&user_id]).await?;
        Ok(())
    }

    /// Records how `user_id`'s last run ended (its status, JSON).
    pub(crate) async fn record_run_end(&self, user_id: &str, status: &str) -> DbResult<()> {
        let client = self.stores.client().await?;
        client
            .execute(
                "INSERT INTO lvbak_run_ends (user_id, status) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET status = excluded.status",
                &[&user_id, &status],
            )
            .await?;
        Ok(())
    }

    /// How `user_id`'s last run ended, if one did.
    pub(crate) async fn run_end(&self, user_id: &str) -> DbResult<Option<String>> {
        let client = self.stores.client().await?;
        let row = client.query_opt("SELECT status FROM lvbak_run_ends WHERE user_id = $1", &[&user_id]).await?;
        Ok(row.map(|row| row.get(0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{lock_key, PostgresOpenJobs};
    use crate::storage::postgres::PostgresStores;
    use crate::test_support::postgres_cluster::{test_database, TestDatabase};

    /// Two nodes' lock holders over a database of their own.
    async fn two_nodes() -> (TestDatabase, PostgresStores, PostgresOpenJobs, PostgresOpenJobs) {
        let database = test_database().await;
        let stores = PostgresStores::connect(database.config.clone()).await.unwrap();
        let here = PostgresOpenJobs::connect(&stores).await.unwrap();
        let there = PostgresOpenJobs::connect(&stores).await.unwrap();
        (database, stores, here, there)
    }

    /// A node's own lock never reads as free to it (PostgreSQL would give it again, so a
    /// node ending its run found the run's node "gone" and started it again), and one
    /// let-go frees it for the other nodes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_held_here_is_not_free_here_and_one_let_go_frees_it() {
        let (_database, _stores, here, there) = two_nodes().await;
        let key = lock_key("run:someone");
        assert!(here.try_hold(key).await.unwrap());
        assert!(!here.try_hold(key).await.unwrap(), "held here: not free here");
        assert!(!there.try_hold(key).await.unwrap());
        here.let_go(key).await.unwrap();
        here.let_go(key).await.unwrap();
        assert!(there.try_hold(key).await.unwrap(), "one let-go frees it");
        assert!(!here.try_hold(key).await.unwrap());
        there.let_go(key).await.unwrap();
        assert!(here.try_hold(key).await.unwrap());
    }

    /// When the lock holder's connection ends, its locks are gone (another node takes
    /// them) and the next lock asked for connects again: the node is not stuck without locks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_holder_whose_connection_ended_connects_again() {
        let (_database, stores, here, there) = two_nodes().await;
        let (held, next) = (lock_key("job:held"), lock_key("job:next"));
        assert!(here.try_hold(held).await.unwrap());
        assert!(here.holds(held));

        let here_pid: i32 = {
            let holder = here.holder.lock().await;
            holder.client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
        };
        let admin = stores.client().await.unwrap();
        admin.execute("SELECT pg_terminate_backend($1)", &[&here_pid]).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !here.lost() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(here.lost(), "the holder saw its connection end");
        assert!(!here.holds(held), "its locks went with it");
        assert!(there.try_hold(held).await.unwrap(), "another node takes them");

        assert!(here.try_hold(next).await.unwrap(), "a new lock is taken on a new connection");
        assert!(!here.lost());
        assert!(here.holds(next) && !here.holds(held));
        assert!(!here.try_hold(held).await.unwrap(), "held there");
        here.let_go(held).await.unwrap();
        assert!(!here.try_hold(held).await.unwrap(), "letting go of a lock not held here frees nothing");
        let named: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                &[&super::lock_holder_name(&stores.node_id)],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(named, 2, "the holders go by their name");
    }
}
