//! PostgreSQL's schema migrations (`server/migrations/postgres/`), tracked in
//! `lvbak_schema_version`: each applied in one transaction, under an advisory lock so that
//! nodes starting at once against one database migrate it once.

use super::DbResult;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_accounts.sql"),
    include_str!("../../../migrations/postgres/0002_rows.sql"),
    include_str!("../../../migrations/postgres/0003_open_jobs.sql"),
    include_str!("../../../migrations/postgres/0004_open_runs.sql"),
    include_str!("../../../migrations/postgres/0005_id_map_without_user_check.sql"),
    include_str!("../../../migrations/postgres/0006_nodes.sql"),
];

/// The advisory lock every node takes while it migrates (any number fixed for lvbak).
const MIGRATION_LOCK: i64 = 0x6c76_6261_6b00_0001;

/// Applies every migration the database has not seen yet.
pub(super) async fn migrate(client: &mut tokio_postgres::Client) -> DbResult<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = apply_missing(client).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply_missing(client: &mut tokio_postgres::Client) -> DbResult<()> {
    client.batch_execute("CREATE TABLE IF NOT EXISTS lvbak_schema_version (version BIGINT NOT NULL)").await?;
    let applied: Option<i64> =
        client.query_opt("SELECT max(version) FROM lvbak_schema_version", &[]).await?.and_then(|row| row.get(0));
    let applied = usize::try_from(applied.unwrap_or(0)).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = client.transaction().await?;
        transaction.batch_execute(sql).await?;
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        transaction.execute("INSERT INTO lvbak_schema_version (version) VALUES ($1)", &[&version]).await?;
        transaction.commit().await?;
    }
    super::row_tables::ensure(client).await
}
