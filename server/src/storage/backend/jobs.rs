//! [`JobLog`]: the record of import jobs, so that a job's outcome outlives the process that
//! ran it and a restart can mark the jobs it left unfinished failed.
//!
//! A backend must guarantee: a job's record is read back only by the account that ran it
//! (`job_record` with another account's id answers `None`, as for an unknown job); a
//! finished job keeps its final status, error and report as written.

use async_trait::async_trait;

use crate::storage::sqlite::DbResult;

/// An import job as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub status: String,
    pub archive_id: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The job's last status answer, as JSON text.
    pub report: Option<String>,
}

#[async_trait]
pub(crate) trait JobLog: Send + Sync {
    /// Records a new job of `user_id` with its first status.
    async fn record_job(
        &self,
        id: &str,
        user_id: &str,
        status: &str,
        archive_id: &str,
        started_at: i64,
    ) -> DbResult<()>;

    /// The recorded job `id` of `user_id` (`None` for another account's job).
    async fn job_record(&self, id: &str, user_id: &str) -> DbResult<Option<JobRecord>>;

    /// Records how a job ended: its final status, error and last status answer (`report`,
    /// JSON text).
    async fn finish_job(
        &self,
        id: &str,
        status: &str,
        finished_at: i64,
        error_code: Option<&str>,
        error_message: Option<&str>,
        report: &str,
    ) -> DbResult<()>;

    /// Marks every job that was not finished (queued, awaiting a ticket, running) as failed
    /// with `code` and `message`, at once; returns the accounts whose jobs these were, each
    /// once.
    async fn fail_unfinished_jobs(&self, now: i64, code: &str, message: &str) -> DbResult<Vec<String>>;
}
