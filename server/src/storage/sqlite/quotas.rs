//! Disk quotas and use per account (`lvbak_quotas`, `lvbak_usage`): what an account may
//! keep on disk (its own quota, else the instance's), and what it keeps — the files in its
//! folders and the rows and vectors its imports added, kept current by every import.

use rusqlite::{params, OptionalExtension};

use super::{Database, DbResult};

impl Database {
    /// The account's own quota: `None` if it has none (the instance's applies),
    /// `Some(None)` for no limit.
    pub fn quota_of(&self, user_id: &str) -> DbResult<Option<Option<u64>>> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT quota_bytes FROM lvbak_quotas WHERE user_id = ?1", [user_id], |row| {
                    row.get::<_, Option<i64>>(0)
                })
                .optional()?
                .map(|quota| quota.map(|bytes| bytes.max(0) as u64)))
        })
    }

    /// Gives the account a quota of its own (`Some(None)`: no limit), or takes it away
    /// (`None`: the instance's applies).
    pub fn set_quota(&self, user_id: &str, quota: Option<Option<u64>>) -> DbResult<()> {
        self.write(|connection| {
            match quota {
                None => connection.execute("DELETE FROM lvbak_quotas WHERE user_id = ?1", [user_id])?,
                Some(bytes) => connection.execute(
                    "INSERT INTO lvbak_quotas (user_id, quota_bytes) VALUES (?1, ?2)
                     ON CONFLICT (user_id) DO UPDATE SET quota_bytes = excluded.quota_bytes",
                    params![user_id, bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX))],
                )?,
            };
            Ok(())
        })
    }

    /// What the account keeps on disk, as recorded (`None` until first measured).
    pub fn usage_of(&self, user_id: &str) -> DbResult<Option<u64>> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT bytes FROM lvbak_usage WHERE user_id = ?1", [user_id], |row| row.get::<_, i64>(0))
                .optional()?
                .map(|bytes| bytes.max(0) as u64))
        })
    }

    /// Records what the account keeps on disk.
    pub fn set_usage(&self, user_id: &str, bytes: u64) -> DbResult<()> {
        self.write(|connection| {
            connection.execute(
                "INSERT INTO lvbak_usage (user_id, bytes) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes",
                params![user_id, i64::try_from(bytes).unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })
    }

    /// Adds `bytes` to what the account keeps if they fit in its quota (its own, else
    /// `instance_quota`), in one transaction; refuses them otherwise.
    pub fn charge_usage(&self, user_id: &str, bytes: u64, instance_quota: Option<u64>) -> DbResult<()> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let own: Option<Option<i64>> = transaction
                .query_row("SELECT quota_bytes FROM lvbak_quotas WHERE user_id = ?1", [user_id], |row| row.get(0))
                .optional()?;
            let quota = own.map_or(instance_quota, |q| q.map(|b| b.max(0) as u64));
            let used: u64 = transaction
                .query_row("SELECT bytes FROM lvbak_usage WHERE user_id = ?1", [user_id], |row| row.get::<_, i64>(0))
                .optional()?
                .map_or(0, |b| b.max(0) as u64);
            if let Some(quota) = quota.filter(|q| used + bytes > *q) {
                return Err(super::DbError::QuotaExceeded { quota, used, needed: bytes });
            }
            transaction.execute(
                "INSERT INTO lvbak_usage (user_id, bytes) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET bytes = excluded.bytes",
                params![user_id, i64::try_from(used + bytes).unwrap_or(i64::MAX)],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }
}
