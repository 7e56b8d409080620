//! [`PreparedExports`]: exports prepared (`POST /export/prepare`) and not yet fetched, by
//! archive id, each fetched once by its own user, a few per user and an hour at most — the
//! `PreparedExportStore` of one process's memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::plan::ExportPlan;
use crate::storage::backend::PreparedExportStore;

/// Prepared exports not fetched within this time are forgotten.
const PREPARED_LIFETIME: Duration = Duration::from_secs(3600);

/// Exports prepared and not yet fetched, by archive id; a user holds a few at most (the
/// oldest goes first).
pub struct PreparedExports {
    per_user: usize,
    plans: Mutex<HashMap<String, (ExportPlan, Instant)>>,
}

impl PreparedExports {
    pub fn new(per_user: usize) -> Self {
        Self { per_user: per_user.max(1), plans: Mutex::default() }
    }
}

#[async_trait::async_trait]
impl PreparedExportStore for PreparedExports {
    async fn insert(&self, plan: ExportPlan) {
        let mut plans = self.plans.lock();
        plans.retain(|_, (_, made)| made.elapsed() < PREPARED_LIFETIME);
        let mut mine: Vec<(Instant, String)> = plans
            .iter()
            .filter(|(_, (other, _))| other.user.id == plan.user.id)
            .map(|(id, (_, made))| (*made, id.clone()))
            .collect();
        mine.sort();
        for (_, id) in mine.iter().take((mine.len() + 1).saturating_sub(self.per_user)) {
            plans.remove(id);
        }
        plans.insert(plan.archive_id.clone(), (plan, Instant::now()));
    }

    /// Takes the plan of `archive_id` if it is `user_id`'s: each is fetched once.
    async fn take(&self, archive_id: &str, user_id: &str) -> Option<ExportPlan> {
        let mut plans = self.plans.lock();
        let (plan, made) = plans.get(archive_id)?;
        if plan.user.id != user_id || made.elapsed() >= PREPARED_LIFETIME {
            return None;
        }
        plans.remove(archive_id).map(|(plan, _)| plan)
    }
}
