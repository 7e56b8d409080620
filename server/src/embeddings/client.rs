//! The OpenAI-compatible embeddings request: `POST {"model", "input": [...],
//! "dimensions"?}` with a bearer key, answered by `{"data": [{"embedding", "index"}]}`
//! (OpenAI, OpenRouter, llama.cpp, text-embeddings-inference) or `{"embeddings": [...]}`
//! (Ollama). Rate limits and server errors are retried with exponential backoff that
//! honours `Retry-After`; a refused key, a wrong vector length or any other refusal ends
//! with an [`EmbedError`] the run reports in words.

use crate::embeddings::config::EmbeddingRules as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::EmbeddingSettings;

mod answer;
mod guard;

use answer::{answer_limit, provider_message, vectors_of, Answer};
pub use guard::is_public;
use guard::PublicOnly;

/// Attempts per request of a run before giving up on a provider that keeps failing (a
/// connection test makes one: it reports what the provider answered).
pub const RUN_ATTEMPTS: u32 = 8;
/// Attempts for a name that does not resolve (a typo does not get better with retries).
const UNRESOLVED_ATTEMPTS: u32 = 2;
/// The longest wait between attempts, whatever `Retry-After` asks.
const LONGEST_WAIT: Duration = Duration::from_secs(120);
/// A request (sending it and reading its answer) gets at least this long, whatever the
/// setting says; at most the instance's `embedding_timeout`.
pub use crate::config::SHORTEST_EMBEDDING_TIMEOUT as SHORTEST_TIMEOUT;

/// Requests to providers in flight: at most a number across the instance and one per
/// account, taken per attempt (never across a backoff) in the order asked (tokio's
/// semaphores are fair), so a provider that never answers holds one place for one request
/// timeout at most and every other account's request gets the next free place.
struct ProviderPermits {
    instance: Arc<tokio::sync::Semaphore>,
    /// One place per account that has a request waiting or in flight (entries go when no
    /// request of theirs is).
    accounts: parking_lot::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// A request's places, given back when it ends.
struct ProviderPermit {
    _account: tokio::sync::OwnedSemaphorePermit,
    _instance: tokio::sync::OwnedSemaphorePermit,
}

impl ProviderPermits {
    fn new(instance: usize) -> Self {
        Self { instance: Arc::new(tokio::sync::Semaphore::new(instance.max(1))), accounts: Default::default() }
    }

    fn account(&self, user_id: &str) -> Arc<tokio::sync::Semaphore> {
        let mut accounts = self.accounts.lock();
        // Forget accounts nobody waits on (each place is only ever held through a clone).
        if accounts.len() >= 1024 {
            accounts.retain(|_, place| Arc::strong_count(place) > 1);
        }
        accounts.entry(user_id.to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1))).clone()
    }

    /// The places of one request (`None` only if a semaphore were closed, which none is).
    async fn acquire(&self, user_id: &str) -> Option<ProviderPermit> {
        let account = self.account(user_id).acquire_owned().await.ok()?;
        let instance = self.instance.clone().acquire_owned().await.ok()?;
        Some(ProviderPermit { _account: account, _instance: instance })
    }
}

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
    permits: Arc<ProviderPermits>,
    /// The longest a request may take (see [`SHORTEST_TIMEOUT`]).
    longest_timeout: Duration,
}

impl EmbeddingClient {
    /// A client making at most `concurrent_requests` requests at once across the instance
    /// (one per account), each given at most `longest_timeout`.
    pub fn new(private_hosts: bool, concurrent_requests: usize, longest_timeout: Duration) -> Self {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("lvbak/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            // A provider answers; it never sends the request (and the key) somewhere else.
            .redirect(reqwest::redirect::Policy::none());
        if !private_hosts {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Self {
            http: builder.build().unwrap_or_default(),
            private_hosts,
            permits: Arc::new(ProviderPermits::new(concurrent_requests)),
            longest_timeout: longest_timeout.max(SHORTEST_TIMEOUT),
        }
    }

    /// How long one request under `settings` may take.
    fn timeout(&self, settings: &EmbeddingSettings) -> Duration {
        match settings.request_timeout {
            0 => self.longest_timeout,
            seconds => Duration::from_secs(seconds).clamp(SHORTEST_TIMEOUT, self.longest_timeout),
        }
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

    /// Embeds `texts` (in order) under `settings` for `user_id`'s account, making up to
    /// `attempts` attempts of what can be retried; each attempt waits for a place among the
    /// instance's requests (and its account's one); stops early when `cancel` fires.
    pub async fn embed(
        &self,
        user_id: &str,
        settings: &EmbeddingSettings,
        key: Option<&str>,
        texts: &[String],
        attempts: u32,
        cancel: &CancellationToken,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.check_endpoint(&settings.endpoint())?;
        let body = EmbedRequest {
            model: &settings.model,
            input: texts,
            dimensions: settings.dimensions.filter(|_| settings.send_dimensions),
        };
        let limit = answer_limit(texts.len(), settings.dimensions);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = tokio::select! {
                _ = cancel.cancelled() => return Err(EmbedError::Cancelled),
                permit = self.permits.acquire(user_id) => permit.ok_or(EmbedError::Cancelled)?,
            };
            let answered = self.attempt(settings, key, &body, limit, cancel).await;
            drop(permit);
            let wait = match answered {
                Ok(answer) => return vectors_of(&answer, texts.len(), settings.dimensions),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Unresolved(error)) if attempt >= UNRESOLVED_ATTEMPTS.min(attempts) => return Err(error),
                Err(Attempt::Unresolved(_)) => Duration::from_secs(1),
                Err(Attempt::Again { error, retry_after }) if attempt < attempts => {
                    let backoff = Duration::from_millis(500 << attempt.min(8));
                    let wait = retry_after.unwrap_or(backoff).min(LONGEST_WAIT);
                    tracing::info!("embeddings: {error}; attempt {attempt} of {attempts}, next in {wait:?}");
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
        body: &EmbedRequest<'_>,
        limit: usize,
        cancel: &CancellationToken,
    ) -> Result<Answer, Attempt> {
        let mut request = self.http.post(settings.endpoint()).json(body).timeout(self.timeout(settings));
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            request = request.bearer_auth(key);
        }
        let exchange = async {
            let response = request.send().await.map_err(|error| {
                let text = describe(&error);
                if text.contains("resolves to no public address") {
                    return Attempt::Final(EmbedError::PrivateHost(text));
                }
                if text.contains("failed to lookup address") || text.contains("dns error") {
                    return Attempt::Unresolved(EmbedError::Unreachable(text));
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
            let bytes = read_limited(response, limit).await?;
            let message = || provider_message(&bytes, status);
            if status.is_success() {
                return serde_json::from_slice::<Answer>(&bytes).map_err(|error| {
                    Attempt::Final(EmbedError::Refused(format!("the answer is not embeddings JSON: {error}")))
                });
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

/// The OpenAI-compatible request: `{"model", "input": [...], "dimensions"?}`.
#[derive(serde::Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

enum Attempt {
    Again {
        error: EmbedError,
        retry_after: Option<Duration>,
    },
    /// The provider's name did not resolve: tried again once.
    Unresolved(EmbedError),
    Final(EmbedError),
}

/// Reads an answer of at most `limit` bytes; a larger one is refused (not retried: the
/// provider would answer the same).
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Attempt> {
    let mut bytes = Vec::new();
    let unreachable =
        |error: &reqwest::Error| Attempt::Again { error: EmbedError::Unreachable(describe(error)), retry_after: None };
    while let Some(chunk) = response.chunk().await.map_err(|error| unreachable(&error))? {
        if bytes.len() + chunk.len() > limit {
            return Err(Attempt::Final(EmbedError::Refused(format!(
                "the answer is larger than the {limit} bytes its vectors can take"
            ))));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::answer::LARGEST_ANSWER;
    use super::*;
    use serde_json::json;
    use serde_json::Value;

    #[test]
    fn answers_are_read_in_input_order_and_checked() {
        let read = |value: Value| serde_json::from_value::<Answer>(value).unwrap();
        let openai = read(
            json!({"data": [{"index": 1, "embedding": [3.0, 4.0]}, {"index": 0, "embedding": [1.0, 2.0]}], "model": "m"}),
        );
        assert_eq!(vectors_of(&openai, 2, Some(2)).unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let ollama = read(json!({"embeddings": [[0.5, 0.25]]}));
        assert_eq!(vectors_of(&ollama, 1, None).unwrap(), vec![vec![0.5, 0.25]]);
        assert_eq!(vectors_of(&openai, 2, Some(3)).unwrap_err().code(), "dimension_mismatch");
        assert_eq!(vectors_of(&openai, 3, Some(2)).unwrap_err().code(), "provider_error");
        let envelope = read(json!({"error": {"message": "no route"}}));
        assert!(vectors_of(&envelope, 1, None).unwrap_err().to_string().contains("no route"));
        assert!(serde_json::from_value::<Answer>(json!({"data": [{"embedding": ["x"]}]})).is_err());
    }

    #[test]
    fn answers_are_held_to_what_their_vectors_can_take() {
        // The connection test: one vector of any length Lumiverse takes, about 1.7 MB.
        assert!(answer_limit(1, None) < 2 << 20 && answer_limit(1, None) > 65_536 * 20);
        assert_eq!(answer_limit(200, Some(4096)), 4096 + 200 * (4096 * 26 + 256));
        assert_eq!(answer_limit(200, None), LARGEST_ANSWER);
    }

    #[test]
    fn request_timeouts_are_clamped() {
        let client = EmbeddingClient::new(true, 4, Duration::from_secs(60));
        let with = |seconds: u64| {
            client
                .timeout(&EmbeddingSettings { request_timeout: seconds, ..EmbeddingSettings::from_value(&Value::Null) })
        };
        assert_eq!(with(0), Duration::from_secs(60), "0 is Lumiverse's no limit: the longest");
        assert_eq!(with(1), SHORTEST_TIMEOUT);
        assert_eq!(with(30), Duration::from_secs(30));
        assert_eq!(with(300), Duration::from_secs(60));
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
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "::0.0.0.1",
            "fec0::1",
            "2001:db8::1",
            "100::1",
            "2001::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "104.18.6.192", "2606:4700::1111", "64:ff9b::1.1.1.1", "2002:101:101::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let closed = EmbeddingClient::new(false, 1, SHORTEST_TIMEOUT);
        assert_eq!(closed.check_endpoint("http://169.254.169.254/v1/embeddings").unwrap_err().code(), "private_host");
        assert_eq!(closed.check_endpoint("http://[::1]:8080/v1/embeddings").unwrap_err().code(), "private_host");
        for literal in ["[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::127.0.0.1]"] {
            let url = format!("http://{literal}:8080/v1/embeddings");
            assert_eq!(closed.check_endpoint(&url).unwrap_err().code(), "private_host", "{literal}");
        }
        assert!(closed.check_endpoint("https://api.openai.com/v1/embeddings").is_ok());
        assert!(EmbeddingClient::new(true, 1, SHORTEST_TIMEOUT)
            .check_endpoint("http://127.0.0.1:1/v1/embeddings")
            .is_ok());
    }
}
