//! Where cut batches go on their way out: numbered in the order they are cut (the numbers
//! depend only on the archive), small ones held back to go together as a bundle, those an
//! earlier upload sent dropped, and the rest waiting, in order, until the server took them.

use std::collections::VecDeque;

use crate::batch::{encode_bundle, Batch, BUNDLE_BYTES, BUNDLE_FRAME_BYTES, MAX_BUNDLE_FRAMES};
use crate::error::Result;

pub(super) struct Outbox {
    /// Batches below this number were sent by an earlier upload: dropped as they are cut.
    start: u64,
    /// The number of the next batch.
    next: u64,
    /// Small batches, encoded, waiting to go together.
    bundle: Vec<Vec<u8>>,
    /// Numbered batches not yet taken by the server, oldest first (two at most: a bundle
    /// sent ahead of a large batch).
    waiting: VecDeque<(u64, Vec<u8>)>,
}

impl Outbox {
    pub(super) fn new(start: u64) -> Self {
        Self { start, next: 0, bundle: Vec::new(), waiting: VecDeque::new() }
    }

    /// Takes a cut batch. One under [`BUNDLE_FRAME_BYTES`] (a small table, a small file)
    /// waits to go with the next ones in a bundle; any other (and secrets, always alone)
    /// sends the bundle first.
    pub(super) fn emit(&mut self, batch: &Batch) -> Result<()> {
        let frame = batch.encode()?;
        let small = frame.len() < BUNDLE_FRAME_BYTES && !matches!(batch, Batch::Secrets { .. });
        let held: usize = self.bundle.iter().map(Vec::len).sum();
        if !small || held + frame.len() > BUNDLE_BYTES || self.bundle.len() == MAX_BUNDLE_FRAMES {
            self.flush()?;
        }
        if small {
            self.bundle.push(frame);
        } else {
            self.number(frame);
        }
        Ok(())
    }

    /// Sends the small batches held back (one alone goes as itself).
    pub(super) fn flush(&mut self) -> Result<()> {
        match self.bundle.len() {
            0 => {}
            1 => {
                let frame = self.bundle.pop().unwrap_or_default();
                self.number(frame);
            }
            _ => {
                let frame = encode_bundle(&self.bundle)?;
                self.bundle.clear();
                self.number(frame);
            }
        }
        Ok(())
    }

    /// Gives a batch the next number; it waits to be sent unless an earlier upload sent it.
    fn number(&mut self, frame: Vec<u8>) {
        let number = self.next;
        self.next += 1;
        if number >= self.start {
            self.waiting.push_back((number, frame));
        }
    }

    /// The oldest batch waiting for the server, if any.
    pub(super) fn waiting(&self) -> Option<(u64, &[u8])> {
        self.waiting.front().map(|(number, frame)| (*number, frame.as_slice()))
    }

    /// The server took the oldest batch waiting: its size.
    pub(super) fn sent(&mut self) -> Option<u64> {
        self.waiting.pop_front().map(|(_, frame)| frame.len() as u64)
    }

    /// Batches numbered so far.
    pub(super) fn numbered(&self) -> u64 {
        self.next
    }

    /// Batches numbered and no longer waiting (sent now, or by an earlier upload).
    pub(super) fn done(&self) -> u64 {
        self.next - self.waiting.len() as u64
    }
}
