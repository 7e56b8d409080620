//! What the crate's unit tests share: a real data directory (SQLite and the file tree;
//! LanceDB opens lazily) in a scratch folder removed afterwards, the app's state over it,
//! and accounts in it; the same with the account-side traits on PostgreSQL
//! ([`test_state_on_postgres`], over `postgres_cluster`'s server).
#![allow(clippy::unwrap_used)]

pub(crate) mod postgres_cluster;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lvbak_core::Limits;

use crate::config::HostingLimits;
use crate::state::{AppState, SharedAcrossNodes};
use crate::storage::postgres::{PostgresPreparedExports, PostgresSignInLimits, PostgresStores};
use crate::storage::{AccountBackend, Store, UserRecord};
use crate::util::{new_id, now};
use postgres_cluster::{test_database, TestDatabase};

/// A fresh prefix of the tests' S3 server (`lvbak_tests::s3_server`), as the server names it.
pub(crate) async fn test_object_store() -> crate::storage::ObjectStoreUrl {
    let place = tokio::task::spawn_blocking(lvbak_tests::s3_server::test_prefix).await.unwrap();
    let url: crate::storage::ObjectStoreUrl = place.url().parse().unwrap();
    url.with_variables(place.env().iter().map(|(name, value)| (name.as_str(), value.as_str())))
}

/// The app's state over a data directory of its own, removed when this is dropped.
pub(crate) struct TestState {
    pub(crate) state: AppState,
    scratch: PathBuf,
    /// The PostgreSQL database the account-side traits answer from, if they do.
    pub(crate) postgres: Option<PostgresTestDatabase>,
}

/// A test's PostgreSQL database and the stores over it.
pub(crate) struct PostgresTestDatabase {
    pub(crate) stores: PostgresStores,
    _database: TestDatabase,
}

impl TestState {
    /// Which backend answers the account-side traits (for a failing test's output).
    pub(crate) fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

impl Drop for TestState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A fresh data directory and the state of a server over it, with these hosting limits.
/// Call it on a multi-threaded runtime, as the server has: job threads wait on it.
pub(crate) async fn test_state(label: &str, hosting: HostingLimits) -> TestState {
    let scratch = scratch_folder(label);
    let store = Arc::new(Store::open(&scratch.join("data")).await.unwrap());
    let state = AppState::new(store, scratch.join("web"), Limits::STANDARD, hosting).await;
    TestState { state, scratch, postgres: None }
}

/// The same as [`test_state`], with accounts, the job log, secrets, settings, sign-in
/// limits and prepared exports in a fresh PostgreSQL database (rows, files, vectors and
/// the embeddings queue stay in the data directory).
pub(crate) async fn test_state_on_postgres(label: &str, hosting: HostingLimits) -> TestState {
    let scratch = scratch_folder(label);
    let database = test_database().await;
    let stores = PostgresStores::connect(database.config.clone()).await.unwrap();
    let store = Store::open(&scratch.join("data")).await.unwrap().with_account_backend(AccountBackend {
        accounts: Arc::new(stores.clone()),
        jobs: Arc::new(stores.clone()),
        secrets: Arc::new(stores.clone()),
        settings: Arc::new(stores.clone()),
    });
    let shared = SharedAcrossNodes {
        sign_in_limits: Arc::new(PostgresSignInLimits::new(
            stores.clone(),
            hosting.login_burst,
            hosting.login_interval,
        )),
        prepared_exports: Arc::new(PostgresPreparedExports::new(stores.clone(), hosting.prepared_exports_per_user)),
    };
    let state = AppState::with_shared(Arc::new(store), scratch.join("web"), Limits::STANDARD, hosting, shared).await;
    TestState { state, scratch, postgres: Some(PostgresTestDatabase { stores, _database: database }) }
}

/// A scratch folder of its own for one test state (removed with it).
fn scratch_folder(label: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let unique = format!("lvbak-unit-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let scratch = std::env::temp_dir().join(unique);
    let _ = std::fs::remove_dir_all(&scratch);
    scratch
}

/// A new account named `name`.
pub(crate) async fn account(state: &AppState, name: &str) -> UserRecord {
    state.store().accounts().create_user(&new_id(), name, "no password", now()).await.unwrap()
}
