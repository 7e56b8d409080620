//! The OpenAI-compatible embeddings request: `POST {"model", "input": [...],
//! "dimensions"?}` with a bearer key, answered by `{"data": [{"embedding", "index"}]}`
//! (OpenAI, OpenRouter, llama.cpp, text-embeddings-inference) or `{"embeddings": [...]}`
//! (Ollama). Rate limits and server errors are retried with exponential backoff that
//! honours `Retry-After`; a refused key, a wrong vector length or any other refusal ends
//! with an [`EmbedError`] the run reports in words.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::config::EmbeddingSettings;

/// Attempts per request before giving up on a provider that keeps failing.
const ATTEMPTS: u32 = 8;
/// The longest wait between attempts, whatever `Retry-After` asks.
const LONGEST_WAIT: Duration = Duration::from_secs(120);
/// Answers larger than this are refused (a 200-text batch of 4096 floats is ~16 MB).
const LARGEST_ANSWER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the provider refused the API key: {0}")]
    Unauthorized(String),
    #[error("the provider answered vectors of length {got}; this account expects {expected}")]
    DimensionMismatch { expected: u32, got: usize },
    #[error("the provider refused the request: {0}")]
    Refused(String),
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("this server does not call addresses inside its own network ({0})")]
    PrivateHost(String),
    #[error("cancelled")]
    Cancelled,
}

impl EmbedError {
    /// The stable code a run stops with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::Refused(_) => "provider_error",
            Self::Unreachable(_) => "unreachable",
            Self::PrivateHost(_) => "private_host",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One HTTP client for every user's requests (connection reuse, one TLS setup).
#[derive(Clone)]
pub struct EmbeddingClient {
    http: reqwest::Client,
    /// Whether URLs may reach loopback, private and link-local addresses (a local Ollama);
    /// a shared instance turns this off so no account can make the server call inside its
    /// own network.
    private_hosts: bool,
}

impl Default for EmbeddingClient {
    fn default() -> Self {
        Self::new(true)
    }
}

/// Whether an address is on the public internet (not this machine, its network, or
/// addresses that are never a server's).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// A resolver that answers public addresses only (names that resolve inside are refused
/// at connection time, whatever their DNS says later).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl EmbeddingClient {
    pub fn new(private_hosts: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("lvbak/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            // A provider answers; it never sends the request (and the key) somewhere else.
            .redirect(reqwest::redirect::Policy::none());
        if !private_hosts {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Self { http: builder.build().unwrap_or_default(), private_hosts }
    }

    /// Refuses an endpoint this instance may not call: a literal private address when
    /// private hosts are off (names are checked by the resolver).
    fn check_endpoint(&self, endpoint: &str) -> Result<(), EmbedError> {
        if self.private_hosts {
            return Ok(());
        }
        let url = reqwest::Url::parse(endpoint).map_err(|_| EmbedError::Refused("the URL cannot be read".into()))?;
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        match literal {
            Some(ip) if !is_public(ip) => Err(EmbedError::PrivateHost(ip.to_string())),
            _ => Ok(()),
        }
    }

    /// Embeds `texts` (in order) under `settings`, retrying what can be retried; stops
    /// early when `cancel` fires.
    pub async fn embed(
        &self,
        settings: &EmbeddingSettings,
        key: Option<&str>,
        texts: &[String],
        cancel: &CancellationToken,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.check_endpoint(&settings.endpoint())?;
        let mut body = json!({"model": settings.model, "input": texts});
        if let (true, Some(dimensions)) = (settings.send_dimensions, settings.dimensions) {
            body["dimensions"] = json!(dimensions);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = match self.attempt(settings, key, &body, cancel).await {
                Ok(answer) => return vectors_of(&answer, texts.len(), settings.dimensions),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Again { error, retry_after }) if attempt < ATTEMPTS => {
                    let backoff = Duration::from_millis(500 << attempt.min(8));
                    let wait = retry_after.unwrap_or(backoff).min(LONGEST_WAIT);
                    tracing::info!("embeddings: {error}; attempt {attempt} of {ATTEMPTS}, next in {wait:?}");
                    wait
                }
                Err(Attempt::Again { error, .. }) => return Err(error),
            };
            tokio::select! {
                _ = cancel.cancelled() => return Err(EmbedError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn attempt(
        &self,
        settings: &EmbeddingSettings,
        key: Option<&str>,
        body: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Attempt> {
        let mut request = self.http.post(settings.endpoint()).json(body);
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            request = request.bearer_auth(key);
        }
        if settings.request_timeout > 0 {
            request = request.timeout(Duration::from_secs(settings.request_timeout));
        }
        let exchange = async {
            let response = request.send().await.map_err(|error| {
                let text = describe(&error);
                if text.contains("resolves to no public address") {
                    return Attempt::Final(EmbedError::PrivateHost(text));
                }
                Attempt::Again { error: EmbedError::Unreachable(text), retry_after: None }
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = read_limited(response)
                .await
                .map_err(|error| Attempt::Again { error: EmbedError::Unreachable(error), retry_after: None })?;
            let message = || provider_message(&bytes, status);
            if status.is_success() {
                return serde_json::from_slice::<Value>(&bytes)
                    .map_err(|_| Attempt::Final(EmbedError::Refused("the answer is not JSON".into())));
            }
            Err(match status.as_u16() {
                401 | 403 => Attempt::Final(EmbedError::Unauthorized(message())),
                408 | 409 | 425 | 429 | 500..=599 => {
                    Attempt::Again { error: EmbedError::Refused(message()), retry_after }
                }
                _ => Attempt::Final(EmbedError::Refused(message())),
            })
        };
        tokio::select! {
            _ = cancel.cancelled() => Err(Attempt::Final(EmbedError::Cancelled)),
            answer = exchange => answer,
        }
    }
}

enum Attempt {
    Again { error: EmbedError, retry_after: Option<Duration> },
    Final(EmbedError),
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if bytes.len() + chunk.len() > LARGEST_ANSWER {
            return Err(format!("the answer is larger than {} MiB", LARGEST_ANSWER >> 20));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A transport error in words (reqwest's Display omits the cause).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "the request timed out".to_string() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The provider's own error message (`{"error": {"message"}}`, `{"error": "…"}`), or the
/// HTTP status; at most 300 characters.
fn provider_message(body: &[u8], status: reqwest::StatusCode) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        let error = v.get("error")?;
        error.as_str().map(str::to_string).or_else(|| error.get("message").and_then(Value::as_str).map(str::to_string))
    });
    let text = message.unwrap_or_else(|| format!("HTTP {status}"));
    text.chars().take(300).collect()
}

/// The vectors of an answer in input order, checked for count and length.
fn vectors_of(answer: &Value, expected: usize, dimensions: Option<u32>) -> Result<Vec<Vec<f32>>, EmbedError> {
    if let Some(error) = answer.get("error") {
        let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("an error");
        return Err(EmbedError::Refused(message.chars().take(300).collect()));
    }
    let floats = |value: &Value| -> Option<Vec<f32>> {
        value.as_array()?.iter().map(|n| n.as_f64().map(|f| f as f32)).collect()
    };
    let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(expected);
    if let Some(data) = answer.get("data").and_then(Value::as_array) {
        for (position, item) in data.iter().enumerate() {
            let vector = item.get("embedding").and_then(floats);
            let index = item.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            vectors.push((
                index,
                vector.ok_or_else(|| EmbedError::Refused("an embedding is not a list of numbers".into()))?,
            ));
        }
        vectors.sort_by_key(|(index, _)| *index);
    } else if let Some(list) = answer.get("embeddings").and_then(Value::as_array) {
        for (index, item) in list.iter().enumerate() {
            let vector =
                floats(item).ok_or_else(|| EmbedError::Refused("an embedding is not a list of numbers".into()))?;
            vectors.push((index as u64, vector));
        }
    } else {
        return Err(EmbedError::Refused("the answer has neither `data` nor `embeddings`".into()));
    }
    if vectors.len() != expected {
        return Err(EmbedError::Refused(format!("{} vectors for {expected} texts", vectors.len())));
    }
    let first = vectors.first().map_or(0, |(_, v)| v.len());
    for (_, vector) in &vectors {
        let expected = dimensions.unwrap_or(first as u32);
        if vector.is_empty() || vector.len() != expected as usize {
            return Err(EmbedError::DimensionMismatch { expected, got: vector.len() });
        }
    }
    Ok(vectors.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_input_order_and_checked() {
        let openai = json!({"data": [{"index": 1, "embedding": [3.0, 4.0]}, {"index": 0, "embedding": [1.0, 2.0]}]});
        assert_eq!(vectors_of(&openai, 2, Some(2)).unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let ollama = json!({"embeddings": [[0.5, 0.25]]});
        assert_eq!(vectors_of(&ollama, 1, None).unwrap(), vec![vec![0.5, 0.25]]);
        assert_eq!(vectors_of(&openai, 2, Some(3)).unwrap_err().code(), "dimension_mismatch");
        assert_eq!(vectors_of(&openai, 3, Some(2)).unwrap_err().code(), "provider_error");
        let envelope = json!({"error": {"message": "no route"}});
        assert!(vectors_of(&envelope, 1, None).unwrap_err().to_string().contains("no route"));
    }

    #[test]
    fn only_public_addresses_count_as_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "104.18.6.192", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let closed = EmbeddingClient::new(false);
        assert_eq!(closed.check_endpoint("http://169.254.169.254/v1/embeddings").unwrap_err().code(), "private_host");
        assert_eq!(closed.check_endpoint("http://[::1]:8080/v1/embeddings").unwrap_err().code(), "private_host");
        assert!(closed.check_endpoint("https://api.openai.com/v1/embeddings").is_ok());
        assert!(EmbeddingClient::new(true).check_endpoint("http://127.0.0.1:1/v1/embeddings").is_ok());
    }
}
