//! Disk quotas and use per account (`lvbak_quotas`, `lvbak_usage`): what an account may
//! keep on disk (its own quota, else the instance's), and what it keeps — the files in its
//! folders and the rows and vectors its imports added, kept current by every import.

use std::collections::HashMap;

use lvbak_core::registry::{table_spec, Ownership, TABLES};
use rusqlite::{params, OptionalExtension};

use super::charge::RowCharge;
use super::{quoted, Database, DbResult};

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
                return Err(super::DbError::QuotaExceeded(crate::failure::QuotaExceeded {
                    quota,
                    used,
                    needed: bytes,
                }));
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

    /// A fact about the data directory (`lvbak_meta`).
    pub fn meta(&self, key: &str) -> DbResult<Option<String>> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT value FROM lvbak_meta WHERE key = ?1", [key], |row| row.get(0))
                .optional()?)
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> DbResult<()> {
        self.write(|connection| {
            connection.execute(
                "INSERT INTO lvbak_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }

    /// Every account's id.
    pub fn user_ids(&self) -> DbResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare(r#"SELECT id FROM "user" ORDER BY id"#)?;
            let ids = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    /// What every account's rows and secrets count for against its quota, by the formula
    /// an import charges them with (`charge`): one pass over every registry table, once
    /// (see `Store::recount_usage_once`), on a connection of its own.
    pub fn rows_usage_by_user(&self) -> DbResult<HashMap<String, u64>> {
        let connection = &self.connect_for_maintenance()?;
        {
            let mut usage: HashMap<String, u64> = HashMap::new();
            for spec in TABLES {
                let columns: Vec<String> = connection
                    .prepare(&format!("PRAGMA table_info({})", quoted(spec.name)))?
                    .query_map([], |row| row.get(1))?
                    .collect::<Result<_, _>>()?;
                let charge = RowCharge::of(connection, spec.name, &columns)?.sql("r", &columns);
                let (owner, join) = match spec.ownership {
                    Ownership::Direct { column } => (format!("r.{}", quoted(column)), String::new()),
                    Ownership::Parent { parent_table, column } => {
                        let parent_owner = match table_spec(parent_table).map(|p| p.ownership) {
                            Some(Ownership::Direct { column }) => column,
                            _ => "user_id",
                        };
                        (
                            format!("p.{}", quoted(parent_owner)),
                            format!("JOIN {} p ON p.id = r.{}", quoted(parent_table), quoted(column)),
                        )
                    }
                };
                let sql = format!(
                    "SELECT {owner}, SUM({charge}) FROM {table} AS r {join} WHERE {owner} IS NOT NULL GROUP BY {owner}",
                    table = quoted(spec.name)
                );
                let mut statement = connection.prepare(&sql)?;
                let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
                for row in rows {
                    let (user, bytes) = row?;
                    *usage.entry(user).or_default() += bytes.max(0) as u64;
                }
            }
            let mut statement = connection.prepare(
                "SELECT user_id, SUM(length(key) + length(encrypted_value) + length(iv) + length(tag) + 64)
                 FROM secrets GROUP BY user_id",
            )?;
            let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
            for row in rows {
                let (user, bytes) = row?;
                *usage.entry(user).or_default() += bytes.max(0) as u64;
            }
            Ok(usage)
        }
    }
}
