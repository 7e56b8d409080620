//! [`SignInGuard`]: what limits sign-in for every request — attempts per client address
//! and failures per user name (a `SignInLimits` backend; [`SignInBuckets`], token buckets
//! in memory, today), password hashes computed at once (per node) — and how a request's
//! client address and cookie security are told.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use tokio::sync::Semaphore;

use crate::config::HostingLimits;
use crate::storage::backend::SignInLimits;
use crate::throttle::RateLimiter;

/// The sign-in buckets in the process's memory: one token bucket per client address and
/// one per user name's failures, each `RateLimiter` bounded in keys.
pub(crate) struct SignInBuckets {
    by_address: RateLimiter,
    failures_by_name: RateLimiter,
}

#[async_trait::async_trait]
impl SignInLimits for SignInBuckets {
    async fn take_attempt(&self, address: &str) -> Result<(), std::time::Duration> {
        self.by_address.take(address)
    }

    async fn take_failure(&self, name: &str) -> Result<(), std::time::Duration> {
        self.failures_by_name.take(name)
    }

    async fn give_back_failure(&self, name: &str) {
        self.failures_by_name.give_back(name);
    }
}

/// Limits on sign-in, shared by every request.
pub struct SignInGuard {
    pub(crate) limits: Arc<dyn SignInLimits>,
    pub(crate) hashes: Arc<Semaphore>,
    trust_forwarded: bool,
    secure_cookies: bool,
}

impl SignInBuckets {
    /// Buckets of `login_burst` tokens, one more per `login_interval`.
    pub(crate) fn new(hosting: &HostingLimits) -> Self {
        Self {
            by_address: RateLimiter::new(hosting.login_burst, hosting.login_interval),
            failures_by_name: RateLimiter::new(hosting.login_burst, hosting.login_interval),
        }
    }
}

impl SignInGuard {
    /// The guard over `limits` (the instance's sign-in buckets, wherever they are kept).
    pub(crate) fn new(hosting: &HostingLimits, limits: Arc<dyn SignInLimits>) -> Self {
        Self {
            limits,
            hashes: Arc::new(Semaphore::new(hosting.password_hashes.max(1))),
            trust_forwarded: hosting.trust_forwarded,
            secure_cookies: hosting.secure_cookies,
        }
    }

    /// Where a request comes from: the peer address, or the proxy's `X-Forwarded-For` when
    /// the operator said to trust it.
    pub(crate) fn client_address(&self, parts: &Parts) -> String {
        if self.trust_forwarded {
            let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            if let Some(first) = forwarded.and_then(|v| v.split(',').next()).map(str::trim).filter(|v| !v.is_empty()) {
                return first.chars().take(64).collect();
            }
        }
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |ConnectInfo(address)| address.ip().to_string())
    }

    /// Whether the session cookie must carry `Secure`.
    pub(crate) fn secure(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
    }
}
