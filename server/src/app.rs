//! The HTTP application: [`router`] builds every route over an [`AppState`], and [`serve`]
//! runs it on a listener until a shutdown signal, so tests can bind `127.0.0.1:0`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    web_dir: PathBuf,
}

impl AppState {
    pub fn new(web_dir: PathBuf) -> Self {
        Self {
            inner: Arc::new(Shared { web_dir }),
        }
    }
}

async fn health() -> Json<Value> {
    Json(json!({"ok": true, "version": env!("CARGO_PKG_VERSION")}))
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let web_dir = state.inner.web_dir.clone();
    let page =
        ServeDir::new(&web_dir).not_found_service(ServeFile::new(web_dir.join("index.html")));
    Router::new()
        .route("/api/v1/health", get(health))
        .fallback_service(page)
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
