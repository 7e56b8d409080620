//! The two shapes every limit of a shared instance takes: [`RateLimiter`] (token buckets
//! per key, for sign-in attempts) and [`Slots`] (work running at once, per user and in the
//! instance, held by a guard that gives the slot back however the work ends). Both keep
//! bounded state whatever the number of keys an attacker invents.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Keys a rate limiter remembers at most; when full, buckets that are full again (their
/// key has been quiet long enough) are forgotten, then the stalest.
const REMEMBERED_KEYS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets: each key may act `burst` times at once, then once per `interval`.
pub struct RateLimiter {
    burst: f64,
    interval: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self { burst: f64::from(burst.max(1)), interval, buckets: Mutex::default() }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        if self.interval.is_zero() {
            return self.burst;
        }
        let earned = now.duration_since(bucket.updated).as_secs_f64() / self.interval.as_secs_f64();
        (bucket.tokens + earned).min(self.burst)
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= REMEMBERED_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if buckets.len() >= REMEMBERED_KEYS {
                if let Some(stalest) = buckets.iter().min_by_key(|(_, b)| b.updated).map(|(k, _)| k.clone()) {
                    buckets.remove(&stalest);
                }
            }
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.burst, updated: now });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, updated: now };
            Ok(())
        } else {
            *bucket = Bucket { tokens, updated: now };
            Err(self.interval.mul_f64(1.0 - tokens))
        }
    }

    /// Returns a token taken for `key` (an attempt that turned out not to count).
    pub fn give_back(&self, key: &str) {
        let mut buckets = self.buckets.lock();
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_user: HashMap<String, usize>,
}

/// Work running at once: at most `per_user` for one user and `total` in the instance.
#[derive(Clone)]
pub struct Slots {
    per_user: usize,
    total: usize,
    counts: Arc<Mutex<Counts>>,
}

/// Why a slot was not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRefusal {
    /// The user already runs this many.
    User(usize),
    /// The instance is full.
    Instance,
}

/// A taken slot; dropping it gives the slot back.
pub struct Slot {
    slots: Slots,
    user: String,
}

impl Slots {
    pub fn new(per_user: usize, total: usize) -> Self {
        Self { per_user: per_user.max(1), total: total.max(1), counts: Arc::default() }
    }

    pub fn try_take(&self, user: &str) -> Result<Slot, SlotRefusal> {
        let mut counts = self.counts.lock();
        let mine = counts.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(SlotRefusal::User(mine));
        }
        if counts.total >= self.total {
            return Err(SlotRefusal::Instance);
        }
        counts.total += 1;
        *counts.per_user.entry(user.to_string()).or_default() += 1;
        Ok(Slot { slots: self.clone(), user: user.to_string() })
    }

    /// Slots taken now, in the instance.
    pub fn in_use(&self) -> usize {
        self.counts.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.per_user.get_mut(&self.user) {
            *mine -= 1;
            if *mine == 0 {
                counts.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_a_steady_rate() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        assert!((0..3).all(|_| limiter.take("10.0.0.1").is_ok()));
        let wait = limiter.take("10.0.0.1").err().unwrap_or_default();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(limiter.take("10.0.0.2").is_ok(), "another key has its own bucket");
    }

    #[test]
    fn slots_are_bounded_per_user_and_in_total_and_come_back() {
        let slots = Slots::new(1, 2);
        let first = slots.try_take("alice");
        assert!(first.is_ok());
        assert_eq!(slots.try_take("alice").err(), Some(SlotRefusal::User(1)));
        let second = slots.try_take("bob");
        assert!(second.is_ok());
        assert_eq!(slots.try_take("carol").err(), Some(SlotRefusal::Instance));
        drop(first);
        assert!(slots.try_take("carol").is_ok());
        drop(second);
        assert_eq!(slots.in_use(), 0);
    }
}
