//! The record of import jobs (`lvbak_import_jobs`), so that their outcome outlives the
//! process and a restart can mark unfinished ones failed.

use rusqlite::{params, OptionalExtension};

use super::{Database, DbResult};
use crate::storage::backend::JobRecord;

impl Database {
    pub fn record_job(&self, id: &str, user_id: &str, status: &str, archive_id: &str, started_at: i64) -> DbResult<()> {
        self.write(|connection| {
            connection.execute(
                "INSERT INTO lvbak_import_jobs (id, user_id, status, archive_id, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, user_id, status, archive_id, started_at],
            )?;
            Ok(())
        })
    }

    pub fn finish_job(
        &self,
        id: &str,
        status: &str,
        finished_at: i64,
        error_code: Option<&str>,
        error_message: Option<&str>,
        report: &str,
    ) -> DbResult<()> {
        self.write(|connection| {
            connection.execute(
                "UPDATE lvbak_import_jobs SET status = ?2, finished_at = ?3, error_code = ?4, error_message = ?5, summary = ?6
                 WHERE id = ?1",
                params![id, status, finished_at, error_code, error_message, report],
            )?;
            Ok(())
        })
    }

    /// Marks every job that was not finished as failed; returns the accounts whose jobs
    /// these were, each once.
    pub fn fail_unfinished_jobs(&self, now: i64, code: &str, message: &str) -> DbResult<Vec<String>> {
        self.write(|connection| {
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let users = transaction
                .prepare(
                    "SELECT DISTINCT user_id FROM lvbak_import_jobs WHERE status IN ('queued', 'awaiting_ticket', 'running')",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            transaction.execute(
                "UPDATE lvbak_import_jobs SET status = 'failed', finished_at = ?1, error_code = ?2, error_message = ?3
                 WHERE status IN ('queued', 'awaiting_ticket', 'running')",
                params![now, code, message],
            )?;
            transaction.commit()?;
            Ok(users)
        })
    }

    /// A recorded job of `user_id`.
    pub fn job_record(&self, id: &str, user_id: &str) -> DbResult<Option<JobRecord>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT status, archive_id, started_at, finished_at, error_code, error_message, summary
                     FROM lvbak_import_jobs WHERE id = ?1 AND user_id = ?2",
                    [id, user_id],
                    |row| {
                        Ok(JobRecord {
                            status: row.get(0)?,
                            archive_id: row.get(1)?,
                            started_at: row.get(2)?,
                            finished_at: row.get(3)?,
                            error_code: row.get(4)?,
                            error_message: row.get(5)?,
                            report: row.get(6)?,
                        })
                    },
                )
                .optional()?)
        })
    }
}
