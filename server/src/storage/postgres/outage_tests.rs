//! PostgreSQL going away: a store over it reports `database` as its failing part (what
//! `GET /api/v1/health` answers 503 with, so a load balancer takes the node out) once the
//! database is gone, and a store cannot be opened on a database that does not answer.
#![allow(clippy::unwrap_used)]

use crate::storage::{DatabaseUrl, Store};
use crate::test_support::postgres_cluster::test_database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_is_the_failing_part() {
    let database = test_database().await;
    let scratch = std::env::temp_dir().join(format!("lvbak-outage-{}", crate::util::new_id()));
    let url = DatabaseUrl { config: database.config.clone() };
    let store = Store::open_with(&scratch.join("data"), None, Some(&url)).await.unwrap();
    let within = std::time::Duration::from_secs(5);
    assert_eq!(store.failing_part(within).await, None);

    let mut admin = database.config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let name = database.config.get_dbname().unwrap().to_string();
    client.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    assert_eq!(store.failing_part(within).await, Some("database"));

    // Nothing answers on port 1: opening fails, naming the database.
    let nowhere: DatabaseUrl = "postgres://lvbak@127.0.0.1:1/lvbak".parse().unwrap();
    let error = Store::open_with(&scratch.join("other"), None, Some(&nowhere)).await.err().unwrap();
    assert!(format!("{error:#}").contains("PostgreSQL database postgres://lvbak@127.0.0.1:1/lvbak"), "{error:#}");
    let _ = std::fs::remove_dir_all(&scratch);
}
