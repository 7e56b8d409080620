//! Requests about an account's re-vectorization run (status, events, start, cancel) that
//! reach a node other than the one running it (PostgreSQL's `lvbak_open_runs` says which)
//! are forwarded there (`nodes::forward`), so the Embeddings page sees one run whichever
//! node a balancer sends it to. When that node is gone, the run goes on here (from the
//! account's queue, which is in PostgreSQL) and the request is answered here.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::nodes::forward::{forward, reachable, was_forwarded, RETRY_AFTER};
use crate::state::AppState;

/// The paths about an account's run.
const RUN_PATHS: [&str; 4] =
    ["/api/v1/embeddings/status", "/api/v1/embeddings/events", "/api/v1/embeddings/start", "/api/v1/embeddings/cancel"];

/// The middleware: a request about a run another node runs goes to that node.
pub(crate) async fn to_the_run_node(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(nodes) = state.nodes().cloned() else { return next.run(request).await };
    if !RUN_PATHS.contains(&request.uri().path()) || was_forwarded(&request) {
        return next.run(request).await;
    }
    // Whose run: a request that does not sign in is the handler's to refuse.
    let (request, user) = CurrentUser::sign_in(request, &state).await;
    let Some(user) = user else { return next.run(request).await };
    if nodes.still_runs_run(&user.id).await {
        return next.run(request).await;
    }
    let run = match nodes.run_of(&user.id).await {
        Ok(Some(run)) => run,
        Ok(None) => return next.run(request).await,
        Err(error) => return AppError::from(error).into_response(),
    };
    if run.node_url.is_some() && run.node_url.as_deref() == nodes.url() {
        // Recorded as this node's and not going here: it is ending here (or this node
        // restarted, and resumed what it had queued).
        return next.run(request).await;
    }
    if let Some(url) = run.node_url.as_deref() {
        if nodes.answers(url).await && reachable(url).await {
            return forward(url, request, &nodes).await.unwrap_or_else(IntoResponse::into_response);
        }
    }
    match nodes.run_is_gone(&run).await {
        Ok(true) => {
            // The run goes on here, where the request is answered.
            if let Err(error) = state.embeddings().start(&user.id).await {
                tracing::warn!("the run of {} did not go on here: {error}", user.id);
            }
            next.run(request).await
        }
        Ok(false) => AppError::NodeUnavailable { retry_after: RETRY_AFTER }.into_response(),
        Err(error) => AppError::from(error).into_response(),
    }
}
