//! A table's rows sent as the archive's own deflate stream: when the server holds none of a
//! table's rows, the browser sends the entry's deflated bytes as they are, cut into
//! segments ([`crate::batch::Batch::RowStream`]), instead of inflating, checking and
//! deflating them again (the deflating was half of the Worker's work). The server keeps
//! one [`RowStream`] per table being received: an inflater that carries over from one
//! segment to the next, and the part of a line a segment ends in. A segment reads as whole
//! lines only ([`RowStream::segment`]); the last one must end the deflate stream.
//!
//! Nothing about a segment is taken on trust: segments must come in order (each starts
//! where the last ended), every inflated byte is reported to the caller (a job's
//! decompressed cap) and counted against [`MAX_BATCH_PAYLOAD_BYTES`] per segment, a line
//! is held to the line cap even across segments, and the lines are checked and parsed by
//! whoever reads them, as for any batch.

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};

use crate::batch::MAX_BATCH_PAYLOAD_BYTES;
use crate::entry_name::table_entry_name;
use crate::error::{FormatError, Result};

/// Inflated bytes produced per step.
const STEP: usize = 256 * 1024;

fn bad(detail: impl Into<String>) -> FormatError {
    FormatError::BadBatch { detail: detail.into() }
}

/// One table's deflate stream as its segments arrive.
pub struct RowStream {
    table: String,
    inflater: Decompress,
    /// Deflated bytes taken so far (where the next segment starts).
    taken: u64,
    /// Lines handed out so far (the next segment's lines are numbered after them).
    lines: u64,
    /// The start of a line the last segment ended in.
    carry: Vec<u8>,
    ended: bool,
}

impl RowStream {
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_string(),
            inflater: Decompress::new(false),
            taken: 0,
            lines: 0,
            carry: Vec::new(),
            ended: false,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Where the next segment must start, in deflated bytes.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Lines handed out so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes held between segments: the start of a line the last segment ended in.
    pub fn carried(&self) -> usize {
        self.carry.capacity()
    }

    /// Whether the deflate stream has ended (after a segment marked as the last).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The lines of the next segment, `deflated` (which must start at `offset`), as a
    /// reader of whole lines; `last` says the stream ends with it. `produced` hears of every
    /// inflated byte and may refuse it; `line_cap` holds a line split across segments too.
    pub fn segment<'s, F: FnMut(u64) -> Result<()>>(
        &'s mut self,
        offset: u64,
        deflated: &'s [u8],
        last: bool,
        line_cap: u64,
        produced: F,
    ) -> Result<Segment<'s, F>> {
        if self.ended {
            return Err(bad(format!("the rows of {} came after their stream ended", self.table)));
        }
        if offset != self.taken {
            return Err(bad(format!(
                "a segment of the rows of {} starts at {offset}, not at {} where the last ended",
                self.table, self.taken
            )));
        }
        let out = std::mem::take(&mut self.carry);
        Ok(Segment {
            stream: self,
            input: deflated,
            last,
            line_cap,
            produced,
            out,
            start: 0,
            ready: 0,
            inflated: 0,
            full: false,
        })
    }
}

/// The whole lines of one segment (see [`RowStream::segment`]); reading it to its end
/// updates its stream.
pub struct Segment<'s, F> {
    stream: &'s mut RowStream,
    input: &'s [u8],
    last: bool,
    line_cap: u64,
    produced: F,
    /// Inflated bytes: handed out up to `start`, whole lines up to `ready`.
    out: Vec<u8>,
    start: usize,
    ready: usize,
    inflated: u64,
    /// Whether the last step filled all the room it had (the inflater may hold more).
    full: bool,
}

impl<F: FnMut(u64) -> Result<()>> Segment<'_, F> {
    /// Inflates the next step into `out`; `false` once the segment's input is used up.
    fn inflate_step(&mut self) -> Result<bool> {
        if self.stream.ended || (self.input.is_empty() && !self.full) {
            if !self.stream.ended && self.last {
                return Err(bad(format!("the rows of {} end before their deflate stream does", self.stream.table)));
            }
            return Ok(false);
        }
        self.out.drain(..self.start);
        self.ready -= self.start;
        self.start = 0;
        let before = (self.stream.inflater.total_in(), self.stream.inflater.total_out());
        self.out.reserve(STEP);
        let room = self.out.capacity() - self.out.len();
        let status = self
            .stream
            .inflater
            .decompress_vec(self.input, &mut self.out, FlushDecompress::None)
            .map_err(|error| bad(format!("the rows of {} do not inflate: {error}", self.stream.table)))?;
        let read = (self.stream.inflater.total_in() - before.0) as usize;
        let made = self.stream.inflater.total_out() - before.1;
        self.full = made as usize == room;
        self.input = &self.input[read..];
        self.stream.taken += read as u64;
        self.inflated += made;
        if self.inflated > MAX_BATCH_PAYLOAD_BYTES {
            return Err(FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES });
        }
        (self.produced)(made)?;
        if status == Status::StreamEnd {
            self.stream.ended = true;
            if !self.input.is_empty() || !self.last {
                return Err(bad(format!("the deflate stream of {} ends inside a segment", self.stream.table)));
            }
        } else if read == 0 && made == 0 && !self.input.is_empty() {
            return Err(bad(format!("the rows of {} do not inflate", self.stream.table)));
        }
        Ok(true)
    }

    /// Makes whole lines ready to hand out; `false` when there are none left.
    fn fill(&mut self) -> Result<bool> {
        while self.ready == self.start {
            let more = self.inflate_step()?;
            if let Some(at) = memchr::memrchr(b'\n', &self.out[self.start..]) {
                self.ready = self.start + at + 1;
            }
            let partial = self.out.len() - self.ready;
            if partial as u64 > self.line_cap + 2 {
                return Err(FormatError::LineTooLong {
                    entry: table_entry_name(&self.stream.table),
                    line: self.stream.lines + 1,
                    limit: self.line_cap,
                });
            }
            if !more {
                if self.last {
                    // The last line needs no newline.
                    self.ready = self.out.len();
                } else {
                    self.stream.carry = self.out.split_off(self.ready);
                }
                return Ok(self.ready > self.start);
            }
        }
        Ok(true)
    }
}

impl<F: FnMut(u64) -> Result<()>> Read for Segment<'_, F> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if !self.fill().map_err(FormatError::into_io)? {
            return Ok(0);
        }
        let n = buffer.len().min(self.ready - self.start);
        let handed = &self.out[self.start..self.start + n];
        buffer[..n].copy_from_slice(handed);
        self.stream.lines += memchr::memchr_iter(b'\n', handed).count() as u64;
        self.start += n;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ndjson::NdjsonLines;
    use flate2::write::DeflateEncoder;
    use std::io::{BufReader, Write};

    fn deflate(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn ndjson(rows: usize) -> Vec<u8> {
        let mut text = Vec::new();
        for n in 0..rows {
            writeln!(text, "{{\"id\":\"row-{n}\",\"name\":\"{}\"}}", "x".repeat(n % 300)).unwrap();
        }
        text
    }

    /// Every line of `deflated` read through segments cut at `cuts`, with their numbers.
    fn read_in_segments(deflated: &[u8], cuts: &[usize], cap: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut stream = RowStream::new("chats");
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().copied().filter(|&c| c < deflated.len()));
        bounds.push(deflated.len());
        let mut lines = Vec::new();
        for (i, pair) in bounds.windows(2).enumerate() {
            let last = i == bounds.len() - 2;
            let first = stream.lines();
            let segment = stream.segment(pair[0] as u64, &deflated[pair[0]..pair[1]], last, cap, |_| Ok(()))?;
            let mut reader = NdjsonLines::new(BufReader::with_capacity(1000, segment), "database/chats.ndjson", cap);
            while let Some((number, line)) = reader.next_line()? {
                lines.push((first + number, line.to_vec()));
            }
        }
        assert!(stream.ended());
        Ok(lines)
    }

    #[test]
    fn segments_cut_anywhere_give_back_every_line_with_its_number() {
        let text = ndjson(3000);
        let deflated = deflate(&text);
        let expected: Vec<(u64, Vec<u8>)> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, l.to_vec()))
            .collect();
        for cuts in [vec![], vec![1], vec![7, 8, 9, 4000], vec![deflated.len() / 2], (1..40).map(|i| i * 997).collect()]
        {
            assert_eq!(read_in_segments(&deflated, &cuts, 4096).unwrap(), expected, "cuts {cuts:?}");
        }
    }

    #[test]
    fn the_last_line_needs_no_newline_and_a_split_line_keeps_the_cap() {
        let deflated = deflate(b"{\"id\":\"a\"}\n{\"id\":\"b\"}");
        let lines = read_in_segments(&deflated, &[3], 64).unwrap();
        assert_eq!(lines, vec![(1, b"{\"id\":\"a\"}".to_vec()), (2, b"{\"id\":\"b\"}".to_vec())]);
        let long = deflate(&[b'x'; 5000]);
        let cuts: Vec<usize> = (1..long.len()).collect();
        let error = read_in_segments(&long, &cuts, 100).unwrap_err();
        assert_eq!(error.code(), "line_too_long", "{error}");
    }

    #[test]
    fn a_stream_that_ends_early_late_or_out_of_order_is_refused() {
        let deflated = deflate(&ndjson(50));
        // The segment marked last does not end the stream.
        let mut stream = RowStream::new("chats");
        let mut segment = stream.segment(0, &deflated[..deflated.len() - 5], true, 4096, |_| Ok(())).unwrap();
        let error = std::io::copy(&mut segment, &mut std::io::sink()).unwrap_err();
        assert!(error.to_string().contains("end before"), "{error}");
        // Bytes after the end of the stream.
        let mut padded = deflated.clone();
        padded.extend_from_slice(b"more");
        let mut stream = RowStream::new("chats");
        let mut segment = stream.segment(0, &padded, true, 4096, |_| Ok(())).unwrap();
        assert!(std::io::copy(&mut segment, &mut std::io::sink()).is_err());
        // The stream ends in a segment not marked last.
        let mut stream = RowStream::new("chats");
        let mut segment = stream.segment(0, &deflated, false, 4096, |_| Ok(())).unwrap();
        assert!(std::io::copy(&mut segment, &mut std::io::sink()).is_err());
        // A gap, and a segment after the end.
        let mut stream = RowStream::new("chats");
        std::io::copy(&mut stream.segment(0, &deflated[..10], false, 4096, |_| Ok(())).unwrap(), &mut std::io::sink())
            .unwrap();
        assert_eq!(stream.segment(11, &deflated[11..], true, 4096, |_| Ok(())).err().unwrap().code(), "bad_batch");
        std::io::copy(&mut stream.segment(10, &deflated[10..], true, 4096, |_| Ok(())).unwrap(), &mut std::io::sink())
            .unwrap();
        assert_eq!(
            stream.segment(deflated.len() as u64, b"", true, 4096, |_| Ok(())).err().unwrap().code(),
            "bad_batch"
        );
        // Damaged bytes.
        let mut stream = RowStream::new("chats");
        let mut segment = stream.segment(0, &[0xff; 64], true, 4096, |_| Ok(())).unwrap();
        assert!(std::io::copy(&mut segment, &mut std::io::sink()).is_err());
    }

    #[test]
    fn every_inflated_byte_is_reported_and_may_be_refused() {
        let text = ndjson(2000);
        let deflated = deflate(&text);
        let mut total = 0;
        let mut stream = RowStream::new("chats");
        let segment = stream.segment(0, &deflated, true, 4096, |n| {
            total += n;
            Ok(())
        });
        std::io::copy(&mut segment.unwrap(), &mut std::io::sink()).unwrap();
        assert_eq!(total, text.len() as u64);
        // A bomb: a small segment that inflates past what the caller allows.
        let bomb = deflate(&vec![b'\n'; 4 << 20]);
        let mut allowed = 1 << 20;
        let mut stream = RowStream::new("chats");
        let mut segment = stream
            .segment(0, &bomb, true, 4096, |n| {
                allowed = u64::checked_sub(allowed, n).ok_or(FormatError::DecompressedCap { limit: 1 << 20 })?;
                Ok(())
            })
            .unwrap();
        let error = std::io::copy(&mut segment, &mut std::io::sink()).unwrap_err();
        assert!(error.to_string().contains("decompress") || error.to_string().contains("cap"), "{error}");
    }
}
