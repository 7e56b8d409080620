//! The instance's memory budget for what users can make the server hold: batch request
//! bodies (taken as their bytes arrive), the part of a line a row stream carries from one
//! batch to the next, and imports' lookup caches. One semaphore of MiB permits
//! (`HostingLimits::batch_memory`); each holder takes MiB as it grows and gives them back
//! when it shrinks or ends, so the sum of what every user holds never passes the budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const MIB: u64 = 1 << 20;

/// The instance's budget (cloning it shares it).
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    mebibytes: Arc<Semaphore>,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 16 MiB).
    pub fn new(bytes: u64) -> Self {
        let mebibytes = usize::try_from(bytes / MIB).unwrap_or(usize::MAX).max(16);
        Self { mebibytes: Arc::new(Semaphore::new(mebibytes)) }
    }

    /// A holding of nothing yet, to grow as its owner needs.
    pub fn hold(&self) -> Held {
        Held { budget: self.mebibytes.clone(), permit: None }
    }

    /// MiB free now.
    pub fn available_mib(&self) -> usize {
        self.mebibytes.available_permits()
    }
}

/// A share of the budget; dropping it gives it back.
#[derive(Debug)]
pub struct Held {
    budget: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

/// The whole MiB that cover `bytes`.
fn mib_for(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(MIB)).unwrap_or(u32::MAX)
}

impl Held {
    /// MiB held.
    pub fn mebibytes(&self) -> u32 {
        self.permit.as_ref().map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX))
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
    }

    /// Grows to cover `bytes` if the budget has room now; whether it covers them.
    pub fn try_cover(&mut self, bytes: u64) -> bool {
        let wanted = mib_for(bytes).saturating_sub(self.mebibytes());
        if wanted == 0 {
            return true;
        }
        match self.budget.clone().try_acquire_many_owned(wanted) {
            Ok(permit) => {
                self.add(permit);
                true
            }
            Err(_) => false,
        }
    }

    /// Grows to cover `bytes`, waiting up to `wait` for room; whether it covers them.
    pub async fn cover(&mut self, bytes: u64, wait: Duration) -> bool {
        let wanted = mib_for(bytes).saturating_sub(self.mebibytes());
        if wanted == 0 {
            return true;
        }
        match tokio::time::timeout(wait, self.budget.clone().acquire_many_owned(wanted)).await {
            Ok(Ok(permit)) => {
                self.add(permit);
                true
            }
            _ => false,
        }
    }

    /// Gives back what is not needed to cover `bytes`.
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = mib_for(bytes);
        if keep == 0 {
            self.permit = None;
            return;
        }
        if let Some(held) = &mut self.permit {
            let extra = held.num_permits().saturating_sub(keep as usize);
            if extra > 0 {
                drop(held.split(extra));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holdings_grow_and_shrink_within_the_budget() {
        let budget = MemoryBudget::new(16 * MIB);
        let mut first = budget.hold();
        assert!(first.try_cover(10 * MIB + 1));
        assert_eq!((first.mebibytes(), budget.available_mib()), (11, 5));
        let mut second = budget.hold();
        assert!(!second.try_cover(6 * MIB), "past the budget");
        assert!(!second.cover(6 * MIB, Duration::from_millis(20)).await);
        assert_eq!(second.mebibytes(), 0);
        first.shrink_to(MIB);
        assert_eq!((first.mebibytes(), budget.available_mib()), (1, 15));
        assert!(second.cover(6 * MIB, Duration::from_millis(20)).await);
        drop((first, second));
        assert_eq!(budget.available_mib(), 16);
    }
}
