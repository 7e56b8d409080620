//! Schema migrations, tracked by `PRAGMA user_version`: the Lumiverse tables, then lvbak's.

use rusqlite::Connection;

use super::DbResult;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_lumiverse_tables.sql"),
    include_str!("../../../migrations/0002_lvbak.sql"),
    include_str!("../../../migrations/0003_hosting.sql"),
];

/// Applies every migration the database has not seen yet, each in one transaction.
pub fn migrate(connection: &mut Connection) -> DbResult<()> {
    let applied: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", index + 1)?;
        transaction.commit()?;
    }
    Ok(())
}
