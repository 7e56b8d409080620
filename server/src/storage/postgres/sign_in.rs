//! [`PostgresSignInLimits`]: the sign-in token buckets (`SignInLimits`) in PostgreSQL
//! (`lvbak_sign_in_buckets`), so that every node of an instance takes from the same ones.
//! The buckets follow `throttle::RateLimiter`'s rule — `burst` tokens, one more per
//! `interval`, a refusal saying how long until the next — timed by the database's clock so
//! that nodes' clocks do not matter.
//!
//! A bucket is refilled and taken from in one statement (`INSERT … ON CONFLICT … DO
//! UPDATE` on its locked row): two nodes never both take the last token. The table stays
//! bounded: a bucket untouched long enough to be full again (`burst` × `interval`) is the
//! same as none and is swept, and past [`REMEMBERED_KEYS`] the stalest go, as the
//! in-memory limiter forgets them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::PostgresStores;
use crate::storage::backend::SignInLimits;
use crate::storage::sqlite::DbResult;

/// Buckets kept at most (as `throttle::RateLimiter`'s keys).
const REMEMBERED_KEYS: i64 = 100_000;

/// Every this many takes of a process, the table's size is checked against
/// [`REMEMBERED_KEYS`] (the sweep of full buckets runs on every take).
const SIZE_CHECK_EVERY: u64 = 256;

/// The scope of a client address's attempts and of a user name's failures.
const ATTEMPTS: &str = "address";
const FAILURES: &str = "failure";

/// Sign-in buckets every node shares (see the module documentation).
pub(crate) struct PostgresSignInLimits {
    stores: PostgresStores,
    burst: f64,
    interval: Duration,
    takes: AtomicU64,
}

impl PostgresSignInLimits {
    /// Buckets of `burst` tokens, one more per `interval`, in `stores`' database.
    pub(crate) fn new(stores: PostgresStores, burst: u32, interval: Duration) -> Self {
        Self { stores, burst: f64::from(burst.max(1)), interval, takes: AtomicU64::new(0) }
    }

    /// Takes a token from a bucket, or says how long until one is there.
    async fn take(&self, scope: &str, key: &str) -> DbResult<Result<(), Duration>> {
        let client = self.stores.client().await?;
        let interval = self.interval.as_secs_f64();
        // The bucket's tokens now: what it had plus what it earned since, at most `burst`
        // (a zero interval refills at once).
        let refilled = "(CASE WHEN $4::float8 <= 0 THEN $3::float8 ELSE LEAST($3::float8, b.tokens
                        + extract(epoch FROM clock_timestamp() - b.updated_at)::float8 / $4::float8) END)";
        let sql = format!(
            "INSERT INTO lvbak_sign_in_buckets AS b (scope, key, tokens, updated_at, taken)
             VALUES ($1, $2, $3::float8 - 1, clock_timestamp(), true)
             ON CONFLICT (scope, key) DO UPDATE SET
                 tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END,
                 taken = {refilled} >= 1,
                 updated_at = clock_timestamp()
             RETURNING taken, tokens"
        );
        let row = client.query_one(&sql, &[&scope, &key, &self.burst, &interval]).await?;
        let (taken, tokens): (bool, f64) = (row.get(0), row.get(1));
        if let Err(error) = self.sweep(&client, interval).await {
            tracing::warn!("sign-in buckets not swept: {error}");
        }
        Ok(if taken { Ok(()) } else { Err(self.interval.mul_f64((1.0 - tokens).clamp(0.0, 1.0))) })
    }

    /// Forgets buckets full again, and the stalest past [`REMEMBERED_KEYS`].
    async fn sweep(&self, client: &tokio_postgres::Client, interval: f64) -> DbResult<()> {
        let full_after = interval * self.burst;
        client
            .execute(
                "DELETE FROM lvbak_sign_in_buckets WHERE updated_at < clock_timestamp() - make_interval(secs => $1::float8)",
                &[&full_after],
            )
            .await?;
        if self.takes.fetch_add(1, Ordering::Relaxed).is_multiple_of(SIZE_CHECK_EVERY) {
            client
                .execute(
                    "DELETE FROM lvbak_sign_in_buckets WHERE (scope, key) IN (SELECT scope, key FROM lvbak_sign_in_buckets
                     ORDER BY updated_at DESC OFFSET $1)",
                    &[&REMEMBERED_KEYS],
                )
                .await?;
        }
        Ok(())
    }

    /// Gives back a token taken from a bucket.
    async fn give_back(&self, scope: &str, key: &str) -> DbResult<()> {
        let client = self.stores.client().await?;
        client
            .execute(
                "UPDATE lvbak_sign_in_buckets SET tokens = LEAST($3::float8, tokens + 1) WHERE scope = $1 AND key = $2",
                &[&scope, &key, &self.burst],
            )
            .await?;
        Ok(())
    }
}

/// A bucket the database could not answer for refuses: sign-in fails closed (a guesser
/// gains nothing from an unreachable database), and the failure is logged.
fn closed_on_error(result: DbResult<Result<(), Duration>>, interval: Duration) -> Result<(), Duration> {
    result.unwrap_or_else(|error| {
        tracing::warn!("sign-in limits unavailable, refusing: {error}");
        Err(interval.max(Duration::from_secs(1)))
    })
}

#[async_trait::async_trait]
impl SignInLimits for PostgresSignInLimits {
    async fn take_attempt(&self, address: &str) -> Result<(), Duration> {
        closed_on_error(self.take(ATTEMPTS, address).await, self.interval)
    }

    async fn take_failure(&self, name: &str) -> Result<(), Duration> {
        closed_on_error(self.take(FAILURES, name).await, self.interval)
    }

    async fn give_back_failure(&self, name: &str) {
        if let Err(error) = self.give_back(FAILURES, name).await {
            tracing::warn!("a sign-in failure could not be given back: {error}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::postgres_cluster::test_database;

    /// Two nodes starting at once over one new database (both migrate it: the advisory
    /// lock lets one make the tables) take from the same buckets: of twenty attempts at
    /// once, spread over both, only the bucket's three go through. (PostgreSQL only:
    /// SQLite's instance is one node, whose buckets are in its memory.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_share_one_bucket() {
        let database = test_database().await;
        let node = || async {
            let stores = PostgresStores::connect(database.config.clone()).await.unwrap();
            std::sync::Arc::new(PostgresSignInLimits::new(stores, 3, Duration::from_secs(3600)))
        };
        let (first, second) = tokio::join!(node(), node());
        let attempts = (0..20).map(|n| {
            let limits = if n % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move { limits.take_attempt("10.0.0.1").await.is_ok() })
        });
        let results = futures::future::join_all(attempts).await;
        assert_eq!(results.into_iter().filter(|taken| *taken.as_ref().unwrap()).count(), 3);
        let wait = second.take_attempt("10.0.0.1").await.unwrap_err();
        assert!(wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600), "{wait:?}");
        assert!(first.take_attempt("10.0.0.2").await.is_ok(), "another address");
    }
}
