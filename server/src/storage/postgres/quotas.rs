//! Disk quotas and use per account over PostgreSQL (`lvbak_quotas`, `lvbak_usage`), for
//! `accounts`'s `AccountStore`: what an account may keep (its own quota, else the
//! instance's) and what it keeps, and the charge that checks and adds in one step.

use tokio_postgres::{Client, GenericClient};

use super::{signed, unsigned};
use crate::failure::QuotaExceeded;
use crate::storage::sqlite::{DbError, DbResult};

/// The account's own quota: `None` if it has none, `Some(None)` for no limit.
pub(super) async fn quota_of(client: &(impl GenericClient + Sync), user_id: &str) -> DbResult<Option<Option<u64>>> {
    let row = client.query_opt("SELECT quota_bytes FROM lvbak_quotas WHERE user_id = $1", &[&user_id]).await?;
    Ok(row.map(|row| row.get::<_, Option<i64>>(0).map(unsigned)))
}

/// Gives the account a quota of its own (`Some(None)`: no limit), or takes it away.
pub(super) async fn set_quota(
    client: &(impl GenericClient + Sync),
    user_id: &str,
    quota: Option<Option<u64>>,
) -> DbResult<()> {
    match quota {
        None => client.execute("DELETE FROM lvbak_quotas WHERE user_id = $1", &[&user_id]).await?,
        Some(bytes) => {
            client
                .execute(
                    "INSERT INTO lvbak_quotas (user_id, quota_bytes) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET quota_bytes = excluded.quota_bytes",
                    &[&user_id, &bytes.map(signed)],
                )
                .await?
        }
    };
    Ok(())
}

/// What the account keeps, as recorded.
pub(super) async fn usage_of(client: &(impl GenericClient + Sync), user_id: &str) -> DbResult<Option<u64>> {
    let row = client.query_opt("SELECT bytes FROM lvbak_usage WHERE user_id = $1", &[&user_id]).await?;
    Ok(row.map(|row| unsigned(row.get(0))))
}

/// Records what the account keeps.
pub(super) async fn set_usage(client: &(impl GenericClient + Sync), user_id: &str, bytes: u64) -> DbResult<()> {
    client
        .execute(
            "INSERT INTO lvbak_usage (user_id, bytes) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes",
            &[&user_id, &signed(bytes)],
        )
        .await?;
    Ok(())
}

/// Adds `bytes` to what the account keeps if they fit in its quota (its own, else
/// `instance_quota`); refuses them with `DbError::QuotaExceeded` otherwise. The check and
/// the addition are one statement: `ON CONFLICT … DO UPDATE … WHERE` tests the fit against
/// the use row it has locked, so two nodes' charges never both fit where one would.
pub(super) async fn charge_usage(
    client: &mut Client,
    user_id: &str,
    bytes: u64,
    instance_quota: Option<u64>,
) -> DbResult<()> {
    let transaction = client.transaction().await?;
    let quota = quota_of(&transaction, user_id).await?.unwrap_or(instance_quota);
    let charged = transaction
        .query_opt(
            "INSERT INTO lvbak_usage AS u (user_id, bytes) SELECT $1, $2 WHERE $3::bigint IS NULL OR $2 <= $3
             ON CONFLICT (user_id) DO UPDATE SET bytes = u.bytes + excluded.bytes
             WHERE $3::bigint IS NULL OR u.bytes + excluded.bytes <= $3
             RETURNING bytes",
            &[&user_id, &signed(bytes), &quota.map(signed)],
        )
        .await?;
    if charged.is_none() {
        if let Some(quota) = quota {
            let used = usage_of(&transaction, user_id).await?.unwrap_or(0);
            return Err(DbError::QuotaExceeded(QuotaExceeded { quota, used, needed: bytes }));
        }
    }
    transaction.commit().await?;
    Ok(())
}
