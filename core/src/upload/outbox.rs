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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::entry_name::FileBucket;

    /// A file chunk of `bytes` bytes, named by `n` (so every batch is told apart).
    fn chunk(n: usize, bytes: usize) -> Batch {
        let name = format!("t/{n}.bin");
        Batch::FileChunk {
            bucket: FileBucket::ThemeAssets,
            name,
            offset: 0,
            size: bytes as u64,
            bytes: vec![n as u8; bytes],
        }
    }

    /// The parts of an encoded batch (a bundle's, or itself), re-encoded.
    fn parts(frame: &[u8]) -> Vec<Vec<u8>> {
        Batch::decode(frame).unwrap().into_parts().iter().map(|part| part.encode().unwrap()).collect()
    }

    /// Takes every batch waiting, oldest first: (number, frame).
    fn take_all(out: &mut Outbox) -> Vec<(u64, Vec<u8>)> {
        let mut taken = Vec::new();
        while let Some((number, frame)) = out.waiting() {
            let frame = frame.to_vec();
            assert_eq!(out.sent(), Some(frame.len() as u64));
            taken.push((number, frame));
        }
        taken
    }

    /// Small batches wait; a flush numbers them as one bundle, in the order they were cut;
    /// a small batch alone goes as itself, not as a bundle of one.
    #[test]
    fn small_batches_wait_and_go_as_one_bundle() {
        let mut out = Outbox::new(0);
        let small: Vec<Batch> = (0..3).map(|n| chunk(n, 100)).collect();
        for batch in &small {
            out.emit(batch).unwrap();
            assert_eq!(out.waiting(), None, "a small batch waits");
        }
        out.flush().unwrap();
        let taken = take_all(&mut out);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, 0);
        assert!(matches!(Batch::decode(&taken[0].1).unwrap(), Batch::Bundle(_)));
        let expected: Vec<Vec<u8>> = small.iter().map(|batch| batch.encode().unwrap()).collect();
        assert_eq!(parts(&taken[0].1), expected);
        out.emit(&chunk(9, 100)).unwrap();
        out.flush().unwrap();
        assert_eq!(take_all(&mut out), [(1, chunk(9, 100).encode().unwrap())], "one alone goes as itself");
        // A flush with nothing waiting numbers nothing.
        out.flush().unwrap();
        assert_eq!((out.waiting(), out.numbered(), out.done()), (None, 2, 2));
    }

    /// A batch of a bundle frame or more goes alone, after the small ones cut before it (two
    /// wait then, in order); secrets go alone however small.
    #[test]
    fn a_large_batch_or_secrets_send_the_waiting_bundle_first() {
        let mut out = Outbox::new(0);
        out.emit(&chunk(0, 100)).unwrap();
        let large = chunk(1, BUNDLE_FRAME_BYTES);
        out.emit(&large).unwrap();
        assert_eq!((out.numbered(), out.done()), (2, 0));
        assert_eq!(take_all(&mut out), [(0, chunk(0, 100).encode().unwrap()), (1, large.encode().unwrap())]);
        assert_eq!(out.done(), 2);

        out.emit(&chunk(2, 100)).unwrap();
        let secrets = Batch::Secrets { enc: [3; 32], sealed: vec![4; 40] };
        out.emit(&secrets).unwrap();
        assert_eq!(take_all(&mut out), [(2, chunk(2, 100).encode().unwrap()), (3, secrets.encode().unwrap())]);
    }

    /// A bundle holds at most [`BUNDLE_BYTES`] of frames and [`MAX_BUNDLE_FRAMES`] of them:
    /// the frame that would pass either starts the next bundle, and nothing is lost or
    /// reordered on the way.
    #[test]
    fn bundles_are_held_to_their_bytes_and_frames() {
        for (count, bytes) in [(40, 60_000), (MAX_BUNDLE_FRAMES + 3, 10)] {
            let mut out = Outbox::new(0);
            let batches: Vec<Batch> = (0..count).map(|n| chunk(n, bytes)).collect();
            for batch in &batches {
                out.emit(batch).unwrap();
            }
            out.flush().unwrap();
            let bundles: Vec<Vec<Vec<u8>>> = take_all(&mut out).iter().map(|(_, frame)| parts(frame)).collect();
            assert!(bundles.len() >= 2, "{count} batches of {bytes} bytes: {} bundles", bundles.len());
            for (n, bundle) in bundles.iter().enumerate() {
                let held: usize = bundle.iter().map(Vec::len).sum();
                assert!(held <= BUNDLE_BYTES && bundle.len() <= MAX_BUNDLE_FRAMES, "bundle {n}");
                // Full: the next bundle's first frame would not have fitted.
                if let Some(next) = bundles.get(n + 1) {
                    assert!(held + next[0].len() > BUNDLE_BYTES || bundle.len() == MAX_BUNDLE_FRAMES, "bundle {n}");
                }
            }
            let all: Vec<Vec<u8>> = bundles.concat();
            assert_eq!(all, batches.iter().map(|batch| batch.encode().unwrap()).collect::<Vec<_>>());
        }
    }

    /// A resumed upload's outbox numbers every batch as the first upload did and drops those
    /// below its start; they count as done.
    #[test]
    fn batches_an_earlier_upload_sent_are_numbered_and_dropped() {
        let mut out = Outbox::new(2);
        for n in 0..4 {
            out.emit(&chunk(n, BUNDLE_FRAME_BYTES)).unwrap();
        }
        assert_eq!((out.numbered(), out.done()), (4, 2));
        let numbers: Vec<u64> = take_all(&mut out).iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, [2, 3]);
        assert_eq!((out.sent(), out.done()), (None, 4));
    }
}
