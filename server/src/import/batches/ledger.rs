//! Which batches a job has taken: the number expected next, the digests of the last few
//! (so a replay of one of those answers the same, and other contents under its number is a
//! conflict), and the bytes received. Bounded whatever the number of batches.

use std::collections::VecDeque;

use lvbak_core::protocol::BatchAccepted;

use crate::error::AppError;

/// Batches whose digest is remembered for replays.
pub const REMEMBERED: usize = 16;

#[derive(Default)]
pub struct Ledger {
    next: u64,
    recent: VecDeque<(u64, [u8; 32])>,
    wire_bytes: u64,
}

/// The answer to an accepted batch (and to its replays).
pub fn answer(number: u64) -> BatchAccepted {
    BatchAccepted { batch: number, accepted: true, next_batch: number + 1 }
}

impl Ledger {
    /// The batch number expected next.
    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// What batch `number` with this digest is: a replay of a recent one (its answer), a
    /// conflict, a gap (an older batch than the ones remembered answers as a gap too), or
    /// the next one (`None`).
    pub fn check(&self, number: u64, digest: &[u8; 32]) -> Result<Option<BatchAccepted>, AppError> {
        if let Some((_, seen)) = self.recent.iter().find(|(n, _)| *n == number) {
            return if seen == digest {
                Ok(Some(answer(number)))
            } else {
                Err(AppError::BatchConflict { batch: number })
            };
        }
        if number != self.next {
            return Err(AppError::BatchGap { next: self.next });
        }
        Ok(None)
    }

    /// Records the next batch as taken; its answer.
    pub fn accept(&mut self, digest: [u8; 32], bytes: u64) -> BatchAccepted {
        let number = self.next;
        if self.recent.len() == REMEMBERED {
            self.recent.pop_front();
        }
        self.recent.push_back((number, digest));
        self.wire_bytes += bytes;
        self.next += 1;
        answer(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_conflicts_and_gaps() {
        let mut ledger = Ledger::default();
        assert!(matches!(ledger.check(0, &[1; 32]), Ok(None)));
        ledger.accept([1; 32], 10);
        assert_eq!(ledger.check(0, &[1; 32]).ok().flatten(), Some(answer(0)));
        assert!(matches!(ledger.check(0, &[2; 32]), Err(AppError::BatchConflict { batch: 0 })));
        assert!(matches!(ledger.check(5, &[1; 32]), Err(AppError::BatchGap { next: 1 })));
        for n in 1..100u8 {
            ledger.accept([n; 32], 10);
        }
        assert_eq!(ledger.recent.len(), REMEMBERED);
        assert!(matches!(ledger.check(0, &[1; 32]), Err(AppError::BatchGap { next: 100 })));
        assert_eq!(ledger.wire_bytes(), 1000);
    }
}
