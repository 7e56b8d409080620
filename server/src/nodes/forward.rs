//! A request passed on to another node of the instance, as it came, its answer streamed
//! back: what `import::forward` (a job's requests) and `embeddings::forward` (a
//! re-vectorization run's) do with a request for work another node runs.
//!
//! A forwarded request carries [`FORWARDED`] and is never forwarded again (a client sending
//! it only gets this node's own answer). Nothing of the request decides where it goes: the
//! address is the one the working node recorded. The node it reaches signs the user in
//! again; forwarding grants nothing. At most [`FORWARDING`] requests are forwarded at once,
//! each until its answer's body has passed whole.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
use axum::http::HeaderName;
use axum::response::Response;
use futures::StreamExt as _;
use tokio::sync::Semaphore;

use crate::error::AppError;

/// Marks a request one node forwarded to another.
pub(crate) const FORWARDED: &str = "x-lvbak-forwarded";

/// Requests one node forwards at once, at most.
const FORWARDING: usize = 256;

/// How long a node waits to connect to another before calling it unreachable.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// How long a client should wait when the working node does not answer but still holds
/// the work.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(2);

static PLACES: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(FORWARDING));

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_WITHIN)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_default()
});

/// Whether `request` was forwarded to this node by another.
pub(crate) fn was_forwarded(request: &Request) -> bool {
    request.headers().contains_key(FORWARDED)
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || matches!(name.as_str(), "keep-alive" | "proxy-connection" | "te" | "trailer")
}

/// Whether the node at `url` takes connections.
pub(crate) async fn reachable(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str() else { return false };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
    matches!(tokio::time::timeout(CONNECT_WITHIN, connect).await, Ok(Ok(_)))
}

/// Sends `request` to the node at `url`; its answer, streamed.
pub(crate) async fn forward(url: &str, request: Request) -> Result<Response, AppError> {
    // Held until the answer's body has been passed on whole (an event stream's too).
    let place =
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
    let body = answer.bytes_stream().map(move |chunk| {
        let _held = &place;
        chunk
    });
    response.body(Body::from_stream(body)).map_err(AppError::internal)
}
