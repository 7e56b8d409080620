//! The open batch job of a user, or the answer saying why there is none: another user's
//! job and an unknown one are both missing; an ended one answers its final status (while
//! its end is being recorded, from the job itself; after, as recorded).

use std::sync::Arc;
use std::time::Duration;

use super::BatchUpload;
use crate::error::{AppError, AppResult};
use crate::import::http::recorded_status;
use crate::import::jobs::Job;
use crate::state::AppState;
use lvbak_core::protocol::JobStatus;

/// How long a request waits for a job whose worker stopped to record its end.
const END_WAIT: Duration = Duration::from_secs(120);

/// The answer for a job that has ended: its final status and error, as recorded.
pub(super) async fn ended(state: &AppState, id: &str, user_id: &str) -> AppError {
    // A job whose worker stopped may still be recording its end (a preview is never
    // recorded): its own final status is the answer.
    if let Some(job) = state.jobs().get(id, user_id) {
        let status = wait_until_ended(&job).await;
        if status.is_final() {
            return AppError::ImportEnded { status, error: job.lock().error.clone() };
        }
    }
    match recorded_status(state, id, user_id).await {
        Ok(report) => AppError::ImportEnded { status: report.status, error: report.error },
        Err(error) => error,
    }
}

/// The status of `job` once it has ended, or as it is after [`END_WAIT`].
pub(super) async fn wait_until_ended(job: &Job) -> JobStatus {
    let deadline = tokio::time::Instant::now() + END_WAIT;
    while !job.status().is_final() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    job.status()
}

/// The open batch job `id` of `user_id`, or the answer saying why there is none.
pub(super) async fn batches_of(state: &AppState, id: &str, user_id: &str) -> AppResult<(Arc<Job>, Arc<BatchUpload>)> {
    let Some(job) = state.jobs().get(id, user_id) else {
        return Err(ended(state, id, user_id).await);
    };
    let batches = job.batches().ok_or(AppError::NotABatchImport)?;
    Ok((job, batches))
}
