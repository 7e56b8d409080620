//! Requests for an import job another node of the instance runs (PostgreSQL's
//! `lvbak_open_jobs` says which): forwarded there as they came, answer streamed back, so a
//! load balancer may send a user's requests to any node. When that node is gone, this node
//! ends the job (`nodes::Nodes::end_abandoned`) or — a batch import, asked by its own user —
//! opens it again here under the same id and answers the request itself.
//!
//! The forwarding itself is `nodes::forward`'s.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::nodes::forward::{forward, reachable, was_forwarded, RETRY_AFTER};
use crate::nodes::Nodes;
use crate::state::AppState;
use crate::storage::postgres::OpenJobRow;

/// How long a request waits for this node to end or take over a gone node's job.
const HELD_HERE_WAIT: Duration = Duration::from_secs(5);

/// The job a request's path names (`/api/v1/user-data/import/{job}/…`).
fn job_of(uri: &Uri) -> Option<&str> {
    let rest = uri.path().strip_prefix("/api/v1/user-data/import/")?;
    let (job, after) = rest.split_once('/')?;
    (!job.is_empty() && !after.is_empty()).then_some(job)
}

/// The middleware: a request for a job this node does not run goes to the node that does.
pub(crate) async fn to_the_job_node(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(nodes) = state.nodes().cloned() else { return next.run(request).await };
    let Some(job_id) = job_of(request.uri()).map(str::to_string) else { return next.run(request).await };
    if was_forwarded(&request) || nodes.still_runs(&job_id).await {
        return next.run(request).await;
    }
    let job = match nodes.open_job(&job_id).await {
        Ok(Some(job)) => job,
        // Not open anywhere: its record answers.
        Ok(None) => return next.run(request).await,
        Err(error) => return AppError::from(error).into_response(),
    };
    let elsewhere = job.node_url.clone().filter(|url| Some(url.as_str()) != nodes.url());
    if let Some(url) = elsewhere {
        if nodes.answers(&url).await && reachable(&url).await {
            return forward(&url, request, &nodes).await.unwrap_or_else(IntoResponse::into_response);
        }
    }
    match take_over(&state, &nodes, &job, request).await {
        Ok(request) => next.run(request).await,
        Err(answer) => answer,
    }
}

/// The job's node does not answer: when it is gone, the job ends (a batch import asked by
/// its own user opens again here instead) and the request is answered here; while it holds
/// the job still, `node_unavailable`.
async fn take_over(state: &AppState, nodes: &Nodes, job: &OpenJobRow, request: Request) -> Result<Request, Response> {
    let unavailable = || AppError::NodeUnavailable { retry_after: RETRY_AFTER }.into_response();
    // This node is ending or taking over the job this moment (its sweep, another request):
    // the request waits for that, then goes where the job is (here, or nowhere: its
    // record answers).
    let (since, mut waited) = (Instant::now(), false);
    while nodes.holds_lock_of(job) {
        if nodes.runs(&job.job_id) {
            return Ok(request);
        }
        if since.elapsed() > HELD_HERE_WAIT {
            return Err(unavailable());
        }
        waited = true;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if waited && !matches!(nodes.open_job(&job.job_id).await, Ok(Some(_))) {
        return Ok(request);
    }
    match nodes.is_gone(job).await {
        Ok(true) => {}
        Ok(false) => return Err(unavailable()),
        Err(error) => return Err(AppError::from(error).into_response()),
    }
    if job.kind != "batch" {
        nodes.end_abandoned(job).await;
        return Ok(request);
    }
    // Only its own user brings a batch import back; anyone else's request is answered as
    // for a job that is not theirs.
    let (request, user) = CurrentUser::sign_in(request, state).await;
    let (Some(user), Some(opened)) = (user.filter(|user| user.id == job.user_id), job.opened.as_deref()) else {
        nodes.let_go(job).await;
        return Ok(request);
    };
    if let Err(error) = nodes.adopt(job).await {
        nodes.let_go(job).await;
        return Err(AppError::from(error).into_response());
    }
    if let Err(error) = crate::import::batches::reopen(state, &user, &job.job_id, opened).await {
        tracing::error!("cannot open batch import {} again here: {error}", job.job_id);
        nodes.release(&job.job_id, &job.user_id).await;
        return Err(error.into_response());
    }
    Ok(request)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_a_job_name_one() {
        let job = |path: &str| job_of(&path.parse::<Uri>().unwrap()).map(str::to_string);
        assert_eq!(job("/api/v1/user-data/import/abc/status"), Some("abc".into()));
        assert_eq!(job("/api/v1/user-data/import/abc/batches/3?x=1"), Some("abc".into()));
        assert_eq!(job("/api/v1/user-data/import/batches"), None);
        assert_eq!(job("/api/v1/user-data/import"), None);
        assert_eq!(job("/api/v1/user-data/import//status"), None);
        assert_eq!(job("/api/v1/user-data/export/abc/status"), None);
    }
}
