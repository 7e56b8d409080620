//! The write gate: every write transaction of this process takes a turn. SQLite lets one
//! writer in at a time but its busy handler is not fair: a sign-in waiting for the lock
//! could lose it again and again to importers that commit and begin at once. Here short
//! writes (a session, a job's status, a quota) go before bulk ones (an import's
//! transaction), and bulk turns go first come first served; an importer that sees a short
//! write waiting commits after its current batch ([`WriteGate::short_waiting`]), so a
//! sign-in waits for about one batch, whatever runs.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct Turns {
    /// Whether a turn is being taken now.
    held: bool,
    /// The thread whose turn it is (a thread waiting behind its own turn never wakes).
    holder: Option<std::thread::ThreadId>,
    short_waiting: usize,
    /// Tickets of bulk turns: the next one handed out, and the next one to go.
    next_bulk: u64,
    serving_bulk: u64,
    /// Whether the turn held is a bulk one, and when the last bulk turn ended.
    bulk_held: bool,
    bulk_ended: Option<std::time::Instant>,
}

/// What kind of write wants a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// A few statements: goes before any bulk write that waits.
    Short,
    /// An import's transaction, which may last a while and yields to short writes.
    Bulk,
}

/// A lock with priorities and no data of its own; see the module comment.
#[derive(Default)]
pub struct WriteGate {
    turns: Mutex<Turns>,
    changed: Condvar,
}

/// A turn at the gate; the next in line goes when this is dropped.
pub struct WriteTurn {
    gate: Arc<WriteGate>,
}

impl WriteGate {
    /// Waits for a turn (on a blocking thread).
    pub fn enter(self: &Arc<Self>, kind: WriteKind) -> WriteTurn {
        let me = std::thread::current().id();
        let mut turns = self.turns.lock();
        assert!(turns.holder != Some(me), "a thread asked for a second write turn while holding one");
        match kind {
            WriteKind::Short => {
                turns.short_waiting += 1;
                while turns.held {
                    self.changed.wait(&mut turns);
                }
                turns.short_waiting -= 1;
            }
            WriteKind::Bulk => {
                let ticket = turns.next_bulk;
                turns.next_bulk += 1;
                while turns.held || turns.short_waiting > 0 || turns.serving_bulk != ticket {
                    self.changed.wait(&mut turns);
                }
                turns.serving_bulk += 1;
            }
        }
        turns.bulk_held = kind == WriteKind::Bulk;
        turns.held = true;
        turns.holder = Some(me);
        WriteTurn { gate: Arc::clone(self) }
    }

    /// Whether a short write waits for the current turn to end.
    pub fn short_waiting(&self) -> bool {
        self.turns.lock().short_waiting > 0
    }

    /// Whether a bulk write holds the turn now or ended within `within` (an import is
    /// writing: see `checkpoint`).
    pub fn bulk_within(&self, within: std::time::Duration) -> bool {
        let turns = self.turns.lock();
        (turns.held && turns.bulk_held) || turns.bulk_ended.is_some_and(|at| at.elapsed() < within)
    }

    /// Whether a bulk write (another import) waits for the current turn to end.
    pub fn bulk_waiting(&self) -> bool {
        let turns = self.turns.lock();
        turns.next_bulk > turns.serving_bulk
    }
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        let mut turns = self.gate.turns.lock();
        if turns.bulk_held {
            turns.bulk_ended = Some(std::time::Instant::now());
            turns.bulk_held = false;
        }
        turns.held = false;
        turns.holder = None;
        drop(turns);
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wait_until(gate: &WriteGate, done: impl Fn(&Turns) -> bool) {
        for _ in 0..5000 {
            if done(&gate.turns.lock()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the waiters never queued");
    }

    #[test]
    fn bulk_turns_go_in_arrival_order_and_short_ones_first() {
        let gate = Arc::new(WriteGate::default());
        let first = gate.enter(WriteKind::Bulk);
        assert!(!gate.short_waiting() && !gate.bulk_waiting());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        let mut spawn = |name: &'static str, kind: WriteKind| {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            waiters.push(std::thread::spawn(move || {
                let _turn = gate.enter(kind);
                order.lock().push(name);
            }));
        };
        spawn("bulk 1", WriteKind::Bulk);
        wait_until(&gate, |turns| turns.next_bulk == 2);
        spawn("bulk 2", WriteKind::Bulk);
        wait_until(&gate, |turns| turns.next_bulk == 3);
        assert!(gate.bulk_waiting() && !gate.short_waiting());
        spawn("short", WriteKind::Short);
        wait_until(&gate, |turns| turns.short_waiting == 1);
        assert!(gate.short_waiting());
        assert!(order.lock().is_empty());
        drop(first);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*order.lock(), vec!["short", "bulk 1", "bulk 2"]);
        assert!(!gate.short_waiting() && !gate.bulk_waiting());
    }

    #[test]
    fn a_bulk_turn_counts_as_writing_while_held_and_for_a_while_after() {
        let gate = Arc::new(WriteGate::default());
        assert!(!gate.bulk_within(Duration::from_secs(60)));
        drop(gate.enter(WriteKind::Short));
        assert!(!gate.bulk_within(Duration::from_secs(60)), "a short write is not an import");
        let turn = gate.enter(WriteKind::Bulk);
        assert!(gate.bulk_within(Duration::ZERO));
        drop(turn);
        assert!(gate.bulk_within(Duration::from_secs(60)));
        assert!(!gate.bulk_within(Duration::ZERO));
        // A short write after it does not make it recent again, nor end its quiet time.
        let short = gate.enter(WriteKind::Short);
        assert!(!gate.bulk_within(Duration::ZERO));
        assert!(gate.bulk_within(Duration::from_secs(60)));
        drop(short);
    }
}
