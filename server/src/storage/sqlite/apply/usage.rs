//! [`Usage`]: an account's disk use during an import, against its quota.

use super::*;

/// An account's disk use during an import: what it used before, what the import added,
/// and its quota (`None`: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub quota: Option<u64>,
    pub before: u64,
    pub added: u64,
    /// Of `added`, what stays even if the import is rolled back (vectors).
    pub kept: u64,
    pub(super) persisted: u64,
}

impl Usage {
    pub fn new(quota: Option<u64>, before: u64) -> Self {
        Self { quota, before, added: 0, kept: 0, persisted: before }
    }

    /// Refuses `bytes` more if they do not fit.
    pub fn check(&self, bytes: u64) -> DbResult<()> {
        match self.quota {
            Some(quota) if self.before + self.added + bytes > quota => {
                Err(crate::storage::sqlite::DbError::QuotaExceeded(crate::failure::QuotaExceeded {
                    quota,
                    used: self.before + self.added,
                    needed: bytes,
                }))
            }
            _ => Ok(()),
        }
    }

    pub fn total(&self) -> u64 {
        self.before + self.added
    }
}
