//! The HTTP application: [`router`] builds every route over an [`AppState`], and [`serve`]
//! runs it on a listener until a shutdown signal, so tests can bind `127.0.0.1:0`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use lvbak_core::Limits;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_http::services::{ServeDir, ServeFile};

use crate::auth;
use crate::export::{self, PreparedExports};
use crate::import::{self, jobs::Jobs};
use crate::progress::ProgressHub;
use crate::storage::Store;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<Store>,
    web_dir: PathBuf,
    limits: Limits,
    progress: ProgressHub,
    prepared_exports: PreparedExports,
    jobs: Jobs,
    /// Requests that reached the import routes (for tests: a refused file sends none).
    import_requests: AtomicU64,
}

impl AppState {
    /// The state of a server over `store`; import jobs a previous process left unfinished
    /// are marked failed.
    pub fn new(store: Arc<Store>, web_dir: PathBuf, limits: Limits) -> Self {
        import::jobs::recover(&store);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Shared {
                store,
                web_dir,
                limits,
                progress: ProgressHub::default(),
                prepared_exports: PreparedExports::default(),
                jobs: Jobs::new(workers),
                import_requests: AtomicU64::new(0),
            }),
        }
    }

    pub fn store(&self) -> Arc<Store> {
        self.inner.store.clone()
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub fn progress(&self) -> &ProgressHub {
        &self.inner.progress
    }

    pub fn prepared_exports(&self) -> &PreparedExports {
        &self.inner.prepared_exports
    }

    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// How many requests reached the import routes since start.
    pub fn import_requests(&self) -> u64 {
        self.inner.import_requests.load(Ordering::Relaxed)
    }
}

async fn count_import_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/v1/user-data/import") {
        state.inner.import_requests.fetch_add(1, Ordering::Relaxed);
    }
    next.run(request).await
}

async fn health() -> Json<Value> {
    Json(json!({"ok": true, "version": env!("CARGO_PKG_VERSION")}))
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let web_dir = state.inner.web_dir.clone();
    let page = ServeDir::new(&web_dir).not_found_service(ServeFile::new(web_dir.join("index.html")));
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .merge(export::routes())
        .merge(import::http::routes())
        .merge(import::batches::routes())
        .fallback_service(page)
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_import_requests))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // No Nagle delay: the browser's batch upload is many small request/answer exchanges.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
