//! PostgreSQL, the only module that touches tokio-postgres: a pool of connections to one
//! database ([`PostgresStores`]), its migrations, and the account-side storage traits over
//! it, one submodule per concern — `accounts` (accounts, credentials, sessions), `quotas`
//! (quota, use and the charge), `jobs`, `secrets` (stored keys, endpoint bindings, ticket
//! uses), `settings`, `sign_in` ([`PostgresSignInLimits`]) and `prepared`
//! ([`PostgresPreparedExports`]). Rows, files and vectors are not here yet (issue 22's next
//! slices), so no option of the server or the CLI opens this backend: the trait tests
//! (`backend::tests`) are its only users for now.
//!
//! Every statement answers as SQLite's does for the same calls — same records, same
//! errors, text ordered bytewise (`COLLATE "C"`, SQLite's `BINARY`) — and where SQLite
//! serialises a read-then-write by its one writer, a statement here does it atomically
//! (`INSERT … ON CONFLICT`, row locks), since several nodes share one database.
#![cfg_attr(not(test), allow(dead_code))]

mod accounts;
mod copy_in;
mod embeddings;
mod import_rows;
mod jobs;
mod json_text;
mod migrations;
mod open_jobs;
#[cfg(test)]
mod outage_tests;
#[cfg(test)]
mod parity_tests;
mod plain_rows;
mod prepared;
mod quotas;
mod row_tables;
mod secrets;
mod settings;
mod sign_in;
mod snapshot;
mod url;
mod values;
mod vector_writes;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::sqlite::{DbError, DbResult};

pub(crate) use open_jobs::{lock_key, OpenJobRow, OpenRunRow, PostgresOpenJobs};
#[cfg_attr(not(test), allow(unused_imports))]
pub(crate) use prepared::PostgresPreparedExports;
#[cfg_attr(not(test), allow(unused_imports))]
pub(crate) use sign_in::PostgresSignInLimits;
pub use url::DatabaseUrl;
pub(crate) use vector_writes::ClusterVectorWrites;

/// Connections one process keeps to the database at most.
const POOL_SIZE: usize = 8;

/// How long a new connection may take (a database that does not answer is an error, not
/// a request that hangs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement may wait for one of the pool's connections.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The account-side storage traits over one PostgreSQL database.
#[derive(Clone)]
pub(crate) struct PostgresStores {
    pool: Pool,
    /// What the pool connects with, for a connection of a node's own
    /// ([`open_jobs::PostgresOpenJobs`]' lock holder).
    config: std::sync::Arc<tokio_postgres::Config>,
    /// The runtime the pool's connections are driven on, for callers on threads of their
    /// own (an import's, an export's) to wait on (see [`BlockingClient`]).
    handle: tokio::runtime::Handle,
    /// This process among the instance's: every connection it opens goes by
    /// [`connection_name`] of it, so a node that fences this one ends them all.
    pub(crate) node_id: std::sync::Arc<str>,
}

/// The `application_name` of the connections of process `node_id`.
pub(crate) fn connection_name(node_id: &str) -> String {
    format!("lvbak {node_id}")
}

/// One of the pool's connections for a caller on a thread of its own, which waits for each
/// statement on the runtime the connection is driven by (never call it from async code).
pub(crate) struct BlockingClient {
    client: deadpool_postgres::Object,
    handle: tokio::runtime::Handle,
}

impl BlockingClient {
    /// Waits for `work` (a statement on [`Self::client`]) on the connection's runtime.
    pub(crate) fn wait<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.handle.block_on(work)
    }

    pub(crate) fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// The same connection with its cache of prepared statements.
    pub(crate) fn cached(&self) -> &deadpool_postgres::ClientWrapper {
        &self.client
    }
}

impl PostgresStores {
    /// Connects to the database `config` names and brings its schema up to date.
    pub(crate) async fn connect(mut config: tokio_postgres::Config) -> DbResult<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let node_id: std::sync::Arc<str> = crate::util::new_id().into();
        config.application_name(connection_name(&node_id));
        let shared_config = std::sync::Arc::new(config.clone());
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|error| DbError::Invalid(format!("cannot make a PostgreSQL pool: {error}")))?;
        let stores = Self { pool, config: shared_config, handle: tokio::runtime::Handle::current(), node_id };
        migrations::migrate(&mut *stores.client().await?).await?;
        Ok(stores)
    }

    /// A pooled connection.
    async fn client(&self) -> DbResult<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> DbResult<()> {
        self.client().await?.batch_execute("SELECT 1").await?;
        Ok(())
    }

    /// A fact about the instance as a whole (`lvbak_meta`).
    pub(crate) async fn meta(&self, key: &str) -> DbResult<Option<String>> {
        let client = self.client().await?;
        Ok(client.query_opt("SELECT value FROM lvbak_meta WHERE key = $1", &[&key]).await?.map(|row| row.get(0)))
    }

    /// Records a fact about the instance; the first writer's value stays if `keep_first`.
    pub(crate) async fn set_meta(&self, key: &str, value: &str, keep_first: bool) -> DbResult<String> {
        let client = self.client().await?;
        let sql = if keep_first {
            "INSERT INTO lvbak_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        } else {
            "INSERT INTO lvbak_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        };
        client.execute(sql, &[&key, &value]).await?;
        let row = client.query_one("SELECT value FROM lvbak_meta WHERE key = $1", &[&key]).await?;
        Ok(row.get(0))
    }

    /// A connection for a caller on a thread of its own (see [`BlockingClient`]).
    pub(crate) fn blocking_client(&self) -> DbResult<BlockingClient> {
        let client = self.handle.block_on(self.pool.get())?;
        Ok(BlockingClient { client, handle: self.handle.clone() })
    }

    /// Rows written as a test's setup, not through the traits under test: each JSON
    /// object's keys are columns of `table` (the columns it leaves out take their defaults).
    #[cfg(test)]
    pub(crate) async fn insert_json_rows(&self, table: &str, rows: &[serde_json::Value]) -> DbResult<()> {
        let client = self.client().await?;
        for row in rows {
            let columns: Vec<String> = row
                .as_object()
                .map(|object| object.keys().map(|column| super::sqlite::quoted(column)).collect())
                .unwrap_or_default();
            let columns = columns.join(", ");
            let table = super::sqlite::quoted(table);
            let sql = format!(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_record(NULL::{table}, $1::text::json)"
            );
            client.execute(&sql, &[&row.to_string()]).await?;
        }
        Ok(())
    }
}

/// A count PostgreSQL answers as `BIGINT`, as SQLite's reads do: never negative.
fn unsigned(value: i64) -> u64 {
    value.max(0) as u64
}

/// A count written as `BIGINT` (SQLite's writes clamp the same way).
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
