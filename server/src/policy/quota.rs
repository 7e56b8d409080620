//! [`Usage`]: an account's disk use during an import, against its quota — the one place
//! that decides whether more bytes fit.

use crate::failure::QuotaExceeded;

/// An account's disk use during an import: what it used before, what the import added,
/// and its quota (`None`: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub quota: Option<u64>,
    pub before: u64,
    pub added: u64,
    /// Of `added`, what stays even if the import is rolled back (vectors).
    pub kept: u64,
    /// What the backend last recorded as the account's use.
    pub(crate) persisted: u64,
}

impl Usage {
    pub fn new(quota: Option<u64>, before: u64) -> Self {
        Self { quota, before, added: 0, kept: 0, persisted: before }
    }

    /// Refuses `bytes` more if they do not fit.
    pub fn check(&self, bytes: u64) -> Result<(), QuotaExceeded> {
        match self.quota {
            Some(quota) if self.before + self.added + bytes > quota => {
                Err(QuotaExceeded { quota, used: self.before + self.added, needed: bytes })
            }
            _ => Ok(()),
        }
    }

    /// Whether `bytes` more fit.
    pub fn fits(&self, bytes: u64) -> bool {
        self.check(bytes).is_ok()
    }

    pub fn total(&self) -> u64 {
        self.before + self.added
    }

    /// Counts `bytes` written (a row, a file; a vector, which `keep` marks as staying if the
    /// import is rolled back), or refuses them if they do not fit.
    pub fn charge(&mut self, bytes: u64, keep: bool) -> Result<(), QuotaExceeded> {
        self.check(bytes)?;
        self.added += bytes;
        if keep {
            self.kept += bytes;
        }
        Ok(())
    }

    /// Gives back bytes charged for what turned out smaller, was there already, or was
    /// rolled back.
    pub fn refund(&mut self, bytes: u64) {
        self.added = self.added.saturating_sub(bytes);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_fit_up_to_the_quota_and_refunds_free_room() {
        let mut usage = Usage::new(Some(100), 60);
        assert!(usage.fits(40));
        assert!(!usage.fits(41));
        usage.charge(30, false).unwrap();
        assert_eq!(usage.check(11), Err(QuotaExceeded { quota: 100, used: 90, needed: 11 }));
        usage.charge(10, true).unwrap();
        assert_eq!((usage.total(), usage.kept), (100, 10));
        usage.refund(500);
        assert_eq!(usage.total(), 60);
        assert!(Usage::new(None, u64::MAX / 2).fits(u64::MAX / 4));
    }
}
