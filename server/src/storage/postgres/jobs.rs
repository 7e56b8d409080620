//! [`JobLog`] over PostgreSQL (`lvbak_import_jobs`): a job's record read back only by its
//! own account, and the unfinished ones failed at start.

use async_trait::async_trait;

use super::PostgresStores;
use crate::storage::backend::{JobLog, JobRecord};
use crate::storage::sqlite::DbResult;

/// The statuses of a job not finished yet.
const UNFINISHED: &str = "('queued', 'awaiting_ticket', 'running')";

#[async_trait]
impl JobLog for PostgresStores {
    async fn record_job(
        &self,
        id: &str,
        user_id: &str,
        status: &str,
        archive_id: &str,
        started_at: i64,
    ) -> DbResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO lvbak_import_jobs (id, user_id, status, archive_id, started_at) VALUES ($1, $2, $3, $4, $5)",
                &[&id, &user_id, &status, &archive_id, &started_at],
            )
            .await?;
        Ok(())
    }

    async fn job_record(&self, id: &str, user_id: &str) -> DbResult<Option<JobRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT status, archive_id, started_at, finished_at, error_code, error_message, summary
                 FROM lvbak_import_jobs WHERE id = $1 AND user_id = $2",
                &[&id, &user_id],
            )
            .await?;
        Ok(row.map(|row| JobRecord {
            status: row.get(0),
            archive_id: row.get(1),
            started_at: row.get(2),
            finished_at: row.get(3),
            error_code: row.get(4),
            error_message: row.get(5),
            report: row.get(6),
        }))
    }

    async fn finish_job(
        &self,
        id: &str,
        status: &str,
        finished_at: i64,
        error_code: Option<&str>,
        error_message: Option<&str>,
        report: &str,
    ) -> DbResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE lvbak_import_jobs SET status = $2, finished_at = $3, error_code = $4, error_message = $5,
                 summary = $6 WHERE id = $1",
                &[&id, &status, &finished_at, &error_code, &error_message, &report],
            )
            .await?;
        Ok(())
    }

    async fn fail_unfinished_jobs(&self, now: i64, code: &str, message: &str) -> DbResult<Vec<String>> {
        let client = self.client().await?;
        let sql = format!(
            "WITH failed AS (UPDATE lvbak_import_jobs SET status = 'failed', finished_at = $1, error_code = $2,
             error_message = $3 WHERE status IN {UNFINISHED} RETURNING user_id)
             SELECT DISTINCT user_id FROM failed"
        );
        let rows = client.query(&sql, &[&now, &code, &message]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
