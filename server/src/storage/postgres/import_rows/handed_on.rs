//! An import that takes over what an earlier import of the account left open on a node
//! that is gone (its job taken over elsewhere: `nodes::Nodes::adopt` marks those imports
//! `handed_on`): their rows and recorded vectors become the new import's, so its end
//! settles, marks and — if it fails — keeps them as one import's.

use lvbak_core::registry::TABLES;

use crate::storage::sqlite::{quoted, DbError, DbResult};

/// Makes the rows and vectors of `user_id`'s imports handed on (their job taken over from a
/// node that is gone: `PostgresOpenJobs::hand_on_imports`) import `import_id`'s, in one
/// transaction.
pub(super) async fn take_over_handed_on(
    client: &tokio_postgres::Client,
    user_id: &str,
    import_id: i64,
) -> DbResult<()> {
    let handed: Vec<i64> = client
        .query("SELECT id FROM lvbak_imports WHERE user_id = $1 AND handed_on", &[&user_id])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if handed.is_empty() {
        return Ok(());
    }
    client.batch_execute("BEGIN").await?;
    let moved = async {
        for spec in TABLES {
            let sql = format!("UPDATE {} SET lvbak_import = $1 WHERE lvbak_import = ANY($2)", quoted(spec.name));
            client.execute(&sql, &[&import_id, &handed]).await?;
        }
        client
            .execute("UPDATE lvbak_import_vectors SET import_id = $1 WHERE import_id = ANY($2)", &[&import_id, &handed])
            .await?;
        client.execute("DELETE FROM lvbak_imports WHERE id = ANY($1)", &[&handed]).await?;
        Ok::<_, DbError>(())
    }
    .await;
    match moved {
        Ok(()) => Ok(client.batch_execute("COMMIT").await?),
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}
