//! A PostgreSQL database for the crate's unit tests: a fresh one per test on the test
//! process's private cluster (`lvbak_tests::postgres_server`, which starts it on first use,
//! makes sure it never outlives the process and fails with how to install PostgreSQL when
//! it is missing), dropped with its [`TestDatabase`].

pub(crate) use lvbak_tests::postgres_server::TestDatabase;

/// A fresh, empty database on the test process's server (started on first use).
pub(crate) async fn test_database() -> TestDatabase {
    #[allow(clippy::unwrap_used)]
    tokio::task::spawn_blocking(lvbak_tests::postgres_server::test_database).await.unwrap()
}
