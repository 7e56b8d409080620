//! Requests for an import job another node of the instance runs (PostgreSQL's
//! `lvbak_open_jobs` says which): forwarded there as they came, answer streamed back, so a
//! load balancer may send a user's requests to any node. When that node is gone, this node
//! ends the job (`nodes::Nodes::end_abandoned`) or — a batch import, asked by its own user —
//! opens it again here under the same id and answers the request itself.
//!
//! A forwarded request carries [`FORWARDED`] and is never forwarded again (a client sending
//! it only gets this node's own answer). Nothing of the request decides where it goes: the
//! address is the one the job's node recorded. The node it reaches signs the user in
//! again; forwarding grants nothing. At most [`FORWARDING`] requests are forwarded at once.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
use axum::http::{HeaderName, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::nodes::Nodes;
use crate::state::AppState;
use crate::storage::postgres::OpenJobRow;

/// Marks a request one node forwarded to another.
pub(crate) const FORWARDED: &str = "x-lvbak-forwarded";

/// Requests one node forwards at once, at most.
const FORWARDING: usize = 256;

/// How long a node waits to connect to another before calling it unreachable.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// How long a client should wait when a job's node does not answer but still holds it.
const RETRY_AFTER: Duration = Duration::from_secs(2);

static PLACES: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(FORWARDING));

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_WITHIN)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_default()
});

/// The job a request's path names (`/api/v1/user-data/import/{job}/…`).
fn job_of(uri: &Uri) -> Option<&str> {
    let rest = uri.path().strip_prefix("/api/v1/user-data/import/")?;
    let (job, after) = rest.split_once('/')?;
    (!job.is_empty() && !after.is_empty()).then_some(job)
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || matches!(name.as_str(), "keep-alive" | "proxy-connection" | "te" | "trailer")
}

/// The middleware: a request for a job this node does not run goes to the node that does.
pub(crate) async fn to_the_job_node(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(nodes) = state.nodes().cloned() else { return next.run(request).await };
    let Some(job_id) = job_of(request.uri()).map(str::to_string) else { return next.run(request).await };
    if request.headers().contains_key(FORWARDED) || nodes.runs(&job_id) {
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
        if reachable(&url).await {
            return forward(&url, request).await.unwrap_or_else(IntoResponse::into_response);
        }
    }
    match take_over(&state, &nodes, &job, request).await {
        Ok(request) => next.run(request).await,
        Err(answer) => answer,
    }
}

/// Whether the node at `url` takes connections.
async fn reachable(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str() else { return false };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
    matches!(tokio::time::timeout(CONNECT_WITHIN, connect).await, Ok(Ok(_)))
}

/// Sends `request` to the node at `url`; its answer, streamed.
async fn forward(url: &str, request: Request) -> Result<Response, AppError> {
    let _place =
        PLACES.try_acquire().map_err(|_| AppError::Busy { what: "forwarded requests", retry_after: RETRY_AFTER })?;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut outgoing = CLIENT.request(parts.method.clone(), format!("{url}{path}"));
    for (name, value) in parts.headers.iter().filter(|(name, _)| !hop_by_hop(name)) {
        outgoing = outgoing.header(name, value);
    }
    let outgoing = outgoing.header(FORWARDED, "1").body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let answer = outgoing.send().await.map_err(|error| {
        tracing::warn!("forwarding to {url} failed: {error}");
        AppError::NodeUnavailable { retry_after: RETRY_AFTER }
    })?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers().iter().filter(|(name, _)| !hop_by_hop(name)) {
        response = response.header(name, value);
    }
    response.body(Body::from_stream(answer.bytes_stream())).map_err(AppError::internal)
}

/// The job's node does not answer: when it is gone, the job ends (a batch import asked by
/// its own user opens again here instead) and the request is answered here; while it holds
/// the job still, `node_unavailable`.
async fn take_over(state: &AppState, nodes: &Nodes, job: &OpenJobRow, request: Request) -> Result<Request, Response> {
    let unavailable = || AppError::NodeUnavailable { retry_after: RETRY_AFTER }.into_response();
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
    let (mut parts, body) = request.into_parts();
    let user = CurrentUser::from_request_parts(&mut parts, state).await.ok().map(|CurrentUser(user)| user);
    let request = Request::from_parts(parts, body);
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
