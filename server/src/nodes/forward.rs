//! A request passed on to another node of the instance, as it came, its answer streamed
//! back: what `import::forward` (a job's requests) and `embeddings::forward` (a
//! re-vectorization run's) do with a request for work another node runs.
//!
//! A forwarded request carries [`FORWARDED`] and is never forwarded again (a client sending
//! it only gets this node's own answer). Nothing of the request decides where it goes: the
//! address is the one the working node recorded. The node it reaches signs the user in
//! again; forwarding grants nothing. At most [`FORWARDING`] requests are forwarded at once,
//! each until its answer's body has passed whole or the node it went to was silent for
//! [`SILENT_WITHIN`] (a hung node holds no place for long).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
use axum::http::HeaderName;
use axum::response::Response;
use futures::StreamExt as _;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::error::AppError;
use crate::nodes::Nodes;

/// Marks a request one node forwarded to another.
pub(crate) const FORWARDED: &str = "x-lvbak-forwarded";

/// Requests one node forwards at once, at most.
const FORWARDING: usize = 256;

/// How long a node waits to connect to another before calling it unreachable.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// How long a node waits for another that stops answering (taking no more of a request,
/// answering nothing, stopping mid-answer) before giving up on it: longer than an event
/// stream's keep-alive (15 s) and than applying one batch.
const SILENT_WITHIN: Duration = Duration::from_secs(120);

/// How often a node waiting for another's answer looks whether that one still beats.
const BEATS_LOOKED_AT_EVERY: Duration = Duration::from_secs(2);

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

/// Sends `request` to the node at `url`; its answer, streamed. Given up on when that node
/// stops answering, or stops beating while this one waits for its answer
/// ([`Nodes::answers`]: it is fenced then, and its work goes on elsewhere).
pub(crate) async fn forward(url: &str, request: Request, nodes: &Nodes) -> Result<Response, AppError> {
    forward_within(url, request, SILENT_WITHIN, Some(nodes)).await
}

/// As [`forward`], giving up on a node silent for `silent_within`: one that takes no more
/// of the request's body, answers nothing after it, or stops in its answer's body; and,
/// with `nodes`, on one that stopped beating.
async fn forward_within(
    url: &str,
    request: Request,
    silent_within: Duration,
    nodes: Option<&Nodes>,
) -> Result<Response, AppError> {
    // Held until the answer's body has been passed on whole (an event stream's too).
    let place =
        PLACES.try_acquire().map_err(|_| AppError::Busy { what: "forwarded requests", retry_after: RETRY_AFTER })?;
    let unavailable = |error: &dyn std::fmt::Display| {
        tracing::warn!("forwarding to {url} failed: {error}");
        AppError::NodeUnavailable { retry_after: RETRY_AFTER }
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut outgoing = CLIENT.request(parts.method.clone(), format!("{url}{path}"));
    for (name, value) in parts.headers.iter().filter(|(name, _)| !hop_by_hop(name)) {
        outgoing = outgoing.header(name, value);
    }
    // The request's body moving on (the node reads it) or ended: the node is not silent.
    let moved = Arc::new(Mutex::new(Instant::now()));
    let sent = body.into_data_stream().map({
        let moved = moved.clone();
        move |chunk| {
            *moved.lock() = Instant::now();
            chunk
        }
    });
    let outgoing = outgoing.header(FORWARDED, "1").body(reqwest::Body::wrap_stream(sent));
    let sending = outgoing.send();
    tokio::pin!(sending);
    let answer = loop {
        let deadline = *moved.lock() + silent_within;
        tokio::select! {
            answer = &mut sending => break answer.map_err(|error| unavailable(&error))?,
            () = tokio::time::sleep_until(deadline.into()) => {
                if moved.lock().elapsed() >= silent_within {
                    return Err(unavailable(&"the node stopped answering"));
                }
            }
            () = tokio::time::sleep(BEATS_LOOKED_AT_EVERY), if nodes.is_some() => {
                if let Some(nodes) = nodes {
                    if !nodes.answers(url).await {
                        return Err(unavailable(&"the node stopped beating"));
                    }
                }
            }
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers().iter().filter(|(name, _)| !hop_by_hop(name)) {
        response = response.header(name, value);
    }
    // Ends with an error when the node stops mid-answer (never waits for it again).
    let chunks = Some(answer.bytes_stream());
    let body = futures::stream::unfold((chunks, place), move |(chunks, place)| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout(silent_within, chunks.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), (Some(chunks), place))),
            Ok(Some(Err(error))) => Some((Err(std::io::Error::other(error)), (None, place))),
            Ok(None) => None,
            Err(_) => Some((Err(std::io::Error::other("the node stopped answering")), (None, place))),
        }
    });
    response.body(Body::from_stream(body)).map_err(AppError::internal)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Request;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::forward_within;
    use crate::error::AppError;

    const SILENT: Duration = Duration::from_millis(400);

    /// Far longer than `SILENT`, far shorter than the node's silence.
    const WITHIN: Duration = Duration::from_secs(5);

    /// A node on loopback that reads the request's head, waits `then_wait`, writes `answer`
    /// (if any), then keeps the connection open, saying nothing more.
    async fn node(answer: Option<&'static str>, then_wait: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let _ = socket.read(&mut head).await;
            tokio::time::sleep(then_wait).await;
            if let Some(answer) = answer {
                let _ = socket.write_all(answer.as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        url
    }

    fn request() -> Request {
        Request::builder().uri("/api/v1/embeddings/status").body(Body::from("{}")).unwrap()
    }

    #[tokio::test]
    async fn a_node_that_never_answers_is_given_up_on() {
        let url = node(None, Duration::ZERO).await;
        let answer = tokio::time::timeout(WITHIN, forward_within(&url, request(), SILENT, None)).await;
        let answer = answer.expect("given up on within the bound");
        assert!(matches!(answer, Err(AppError::NodeUnavailable { .. })), "{:?}", answer.map(|a| a.status()));
    }

    #[tokio::test]
    async fn a_node_that_stops_mid_answer_ends_the_answer_with_an_error() {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
        let url = node(Some(head), Duration::ZERO).await;
        let answer = forward_within(&url, request(), SILENT, None).await.unwrap();
        assert_eq!(answer.status(), 200);
        let read = tokio::time::timeout(WITHIN, axum::body::to_bytes(answer.into_body(), 1 << 20)).await;
        let read = read.expect("ended within the bound");
        assert!(read.is_err(), "{read:?}");
    }

    #[tokio::test]
    async fn a_node_slow_but_answering_within_the_bound_is_passed_on() {
        let whole = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let url = node(Some(whole), SILENT / 2).await;
        let answer = forward_within(&url, request(), SILENT, None).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap(), "ok");
    }
}
