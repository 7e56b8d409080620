//! The HTTP application: [`router`] builds every route over an [`AppState`], and [`serve`]
//! runs it on a listener until a shutdown signal, so tests can bind `127.0.0.1:0`.

use lvbak_core::protocol::Health;
use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

use crate::auth;
use crate::export;
use crate::import;
pub use crate::state::AppState;

/// Counts every request, and those to the import routes apart (tests check that the
/// browser's inspection and explorer send nothing).
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.count_request(request.uri().path().starts_with("/api/v1/user-data/import"));
    next.run(request).await
}

/// How long a health check waits for the storage before calling it down.
const HEALTH_CHECK_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// 200 while every part of the storage answers; 503 naming the part that does not, so a
/// load balancer takes the node out.
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let failing = state.store().failing_part(HEALTH_CHECK_WITHIN).await;
    let status = if failing.is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let health = Health {
        ok: failing.is_none(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        failing: failing.map(str::to_string),
    };
    (status, Json(health))
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let web_dir = state.web_dir().clone();
    let page = ServeDir::new(&web_dir).not_found_service(ServeFile::new(web_dir.join("index.html")));
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .merge(export::routes())
        .merge(import::http::routes())
        .merge(import::batches::routes())
        .merge(crate::embeddings::http::routes())
        .fallback_service(page)
        .layer(axum::middleware::from_fn_with_state(state.clone(), import::forward::to_the_job_node))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::embeddings::forward::to_the_run_node))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves. Handlers see the peer's
/// address (`ConnectInfo`), which sign-in limits by.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // No Nagle delay: the browser's batch upload is many small request/answer exchanges.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // A node that stops serving stops looking after the instance's work (its sweep) too.
    let nodes = state.nodes().cloned();
    let shutdown = async move {
        shutdown.await;
        if let Some(nodes) = nodes {
            nodes.stop();
        }
    };
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
