//! Numbered rows (`TableSpec::numbered`, as Lumiverse's `dream_weaver_sessions.session_number`):
//! every imported row gets a number of its own among the user's rows.

use std::collections::HashSet;

/// Numbers the rows of one batch: each row's wanted number (`None`: missing or not a
/// positive integer) is kept when it is free — not taken by another of the user's rows
/// (`taken`) nor by an earlier row of the batch — and otherwise becomes the next after the
/// highest so far (`highest`: the user's highest number before the batch).
pub(crate) struct Numbering {
    highest: i64,
    in_batch: HashSet<i64>,
}

impl Numbering {
    pub(crate) fn new(highest: i64) -> Self {
        Self { highest, in_batch: HashSet::new() }
    }

    /// The number of the next row, which wants `wanted`; `taken` says whether another of
    /// the user's rows has a number (asked only when the answer matters).
    pub(crate) fn next<E>(
        &mut self,
        wanted: Option<i64>,
        taken: impl FnOnce(i64) -> Result<bool, E>,
    ) -> Result<i64, E> {
        let wanted = wanted.filter(|number| *number > 0);
        let free = match wanted {
            Some(number) if !self.in_batch.contains(&number) => !taken(number)?,
            _ => false,
        };
        let number = match wanted {
            Some(number) if free => number,
            _ => self.highest.saturating_add(1),
        };
        self.highest = self.highest.max(number);
        self.in_batch.insert(number);
        Ok(number)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn free_numbers_are_kept_and_taken_ones_move_past_the_highest() {
        let mut numbering = Numbering::new(3);
        let taken = |number: i64| Ok::<_, ()>(number == 2);
        assert_eq!(numbering.next(Some(7), taken).unwrap(), 7);
        assert_eq!(numbering.next(Some(2), taken).unwrap(), 8);
        assert_eq!(numbering.next(Some(7), taken).unwrap(), 9);
        assert_eq!(numbering.next(None, taken).unwrap(), 10);
        assert_eq!(numbering.next(Some(-1), taken).unwrap(), 11);
        assert_eq!(numbering.next(Some(5), taken).unwrap(), 5);
    }
}
