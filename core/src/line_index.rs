//! Checkpoints into a deflated NDJSON entry (zran-style), so that a line deep in a large
//! table is read without inflating everything before it. A deflate stream cannot be entered
//! in the middle: a decoder needs the 32 KiB of output before the place and its own state
//! (Huffman tables, pending bits). [`LineIndex::build`] inflates the entry once with
//! `miniz_oxide`'s resumable decoder, handing every line to its caller as
//! [`NdjsonLines`] does, and every [`SPAN`] bytes of output keeps a point: a copy of the
//! decoder's state and its 32 KiB window, where the deflated input and the inflated output
//! are, and how many lines came before. [`LineIndex::read_lines`] then starts at the last
//! point before each line asked for. Points are bounded ([`MAX_POINTS`]: past it, every
//! other one is let go and the span doubles), so an index holds at most about 5.5 MiB
//! whatever the entry.
//!
//! The building pass checks the entry as `EntryReader` does (local header, never more than
//! its claimed size, then length, CRC-32, data descriptor) and holds lines to the line cap;
//! a later read is held to the claimed size and the line cap too.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;

use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use crate::archive::Archive;
use crate::container::{Compression, Tracked};
use crate::error::{FormatError, Result};
use crate::ndjson::NdjsonLines;

/// Inflated bytes between two points, at first.
pub const SPAN: u64 = 4 << 20;

/// Points kept at most.
pub const MAX_POINTS: usize = 128;

/// The deflate window: what a back-reference may reach.
const WINDOW: usize = 32 * 1024;

/// Deflated bytes read from the archive at a time.
const INPUT_CHUNK: usize = 64 * 1024;

/// A place in the entry a decoder can start from (besides the entry's start, which needs
/// no copy).
struct Point {
    /// Inflated bytes before it.
    out: u64,
    /// Lines complete before it (`\n` seen).
    lines: u64,
    /// Deflated bytes the decoder had taken before it.
    input: u64,
    state: Box<DecompressorOxide>,
    window: Box<[u8]>,
}

impl Point {
    /// Whether the point is where a line starts.
    fn at_line_start(&self) -> bool {
        self.window[(self.out as usize + WINDOW - 1) % WINDOW] == b'\n'
    }

    /// The number of the first line that starts at or after this point.
    fn first_whole_line(&self) -> u64 {
        self.lines + if self.at_line_start() { 1 } else { 2 }
    }
}

/// Checkpoints into one deflated NDJSON entry (see the module documentation).
pub struct LineIndex {
    entry: usize,
    span: u64,
    points: Vec<Point>,
}

impl std::fmt::Debug for LineIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let points = self.points.len();
        f.debug_struct("LineIndex")
            .field("entry", &self.entry)
            .field("span", &self.span)
            .field("points", &points)
            .finish()
    }
}

/// What a reader of an entry's deflated bytes needs to know of it.
struct EntryData {
    name: String,
    claimed: u64,
    data_start: u64,
    compressed: u64,
}

/// An entry's inflated bytes from a point on, read through the archive's reader; while
/// building ([`Self::points`] is `Some`), keeping points and the CRC-32.
struct Inflater<'a, R> {
    reader: &'a mut Tracked<R>,
    entry: &'a EntryData,
    state: Box<DecompressorOxide>,
    window: Box<[u8]>,
    /// Deflated bytes taken by the decoder, inflated bytes made, lines complete.
    input: u64,
    out: u64,
    lines: u64,
    /// Deflated bytes read ahead of the decoder.
    buffer: Vec<u8>,
    buffered: Range<usize>,
    /// Inflated bytes not handed out yet (in the window).
    pending: Range<usize>,
    /// Bytes to drop before handing any out (the rest of a line a point is inside).
    skip_line: bool,
    done: bool,
    /// While building: the points kept, the span, the CRC-32 of everything.
    building: Option<(Vec<Point>, u64, crc32fast::Hasher)>,
}

impl<'a, R: Read + Seek> Inflater<'a, R> {
    /// A decoder at `point`, or at the entry's start.
    fn at(reader: &'a mut Tracked<R>, entry: &'a EntryData, point: Option<&Point>) -> Self {
        let (state, window) = match point {
            Some(point) => (point.state.clone(), point.window.clone()),
            None => (Box::default(), vec![0; WINDOW].into_boxed_slice()),
        };
        Self {
            reader,
            entry,
            state,
            window,
            input: point.map_or(0, |p| p.input),
            out: point.map_or(0, |p| p.out),
            lines: point.map_or(0, |p| p.lines),
            buffer: vec![0; INPUT_CHUNK],
            buffered: 0..0,
            pending: 0..0,
            skip_line: point.is_some_and(|p| !p.at_line_start()),
            done: false,
            building: None,
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> FormatError {
        FormatError::CorruptEntry { name: self.entry.name.clone(), detail: detail.into() }
    }

    /// Inflates the next bytes into the window, as [`Self::pending`] (empty at the end).
    fn step(&mut self) -> Result<()> {
        // Each pass reads input, takes it, or makes output; a decoder that does none of
        // these in a row is damaged, so the loop is bounded.
        for _ in 0..4 {
            if self.done {
                return Ok(());
            }
            let read_so_far = self.input + self.buffered.len() as u64;
            if self.buffered.is_empty() && read_so_far < self.entry.compressed {
                let want = (self.entry.compressed - read_so_far).min(INPUT_CHUNK as u64) as usize;
                self.reader.seek(SeekFrom::Start(self.entry.data_start + read_so_far))?;
                self.reader.read_exact(&mut self.buffer[..want]).map_err(FormatError::from_io)?;
                self.buffered = 0..want;
            }
            let more = self.input + (self.buffered.len() as u64) < self.entry.compressed;
            let flags = if more { TINFL_FLAG_HAS_MORE_INPUT } else { 0 };
            let at = (self.out % WINDOW as u64) as usize;
            let (status, taken, made) =
                decompress(&mut self.state, &self.buffer[self.buffered.clone()], &mut self.window, at, flags);
            self.buffered.start += taken;
            self.input += taken as u64;
            self.out += made as u64;
            if self.out > self.entry.claimed {
                let (name, claimed) = (self.entry.name.clone(), self.entry.claimed);
                return Err(FormatError::SizeMismatch { name, claimed, actual: self.out });
            }
            let made_bytes = &self.window[at..at + made];
            self.lines += memchr::memchr_iter(b'\n', made_bytes).count() as u64;
            if let Some((points, span, crc)) = &mut self.building {
                crc.update(made_bytes);
                let last = points.last().map_or(0, |p| p.out);
                if self.out - last >= *span {
                    let point = Point {
                        out: self.out,
                        lines: self.lines,
                        input: self.input,
                        state: self.state.clone(),
                        window: self.window.clone(),
                    };
                    keep(points, span, point);
                }
            }
            match status {
                TINFLStatus::Done => self.done = true,
                TINFLStatus::NeedsMoreInput if !more && self.buffered.is_empty() => {
                    return Err(self.corrupt("the deflated data ends early"));
                }
                TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput => {}
                failed => return Err(self.corrupt(format!("inflating failed ({failed:?})"))),
            }
            if made > 0 {
                self.pending = at..at + made;
                return Ok(());
            }
        }
        Err(self.corrupt("the decoder makes no progress"))
    }

    fn read_checked(&mut self, buffer: &mut [u8]) -> Result<usize> {
        // Bounded: every step makes output or ends.
        while self.pending.is_empty() && !self.done {
            self.step()?;
            if self.skip_line {
                let made = &self.window[self.pending.clone()];
                match memchr::memchr(b'\n', made) {
                    Some(at) => {
                        self.pending.start += at + 1;
                        self.skip_line = false;
                    }
                    None => self.pending.start = self.pending.end,
                }
            }
        }
        let count = self.pending.len().min(buffer.len());
        buffer[..count].copy_from_slice(&self.window[self.pending.start..self.pending.start + count]);
        self.pending.start += count;
        Ok(count)
    }
}

impl<R: Read + Seek> Read for Inflater<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.read_checked(buffer).map_err(FormatError::into_io)
    }
}

/// Keeps a point; past [`MAX_POINTS`], every other one is let go and the span doubles.
fn keep(points: &mut Vec<Point>, span: &mut u64, point: Point) {
    points.push(point);
    if points.len() > MAX_POINTS {
        let mut at = 0;
        points.retain(|_| {
            at += 1;
            at % 2 == 1
        });
        *span *= 2;
    }
}

fn entry_data<R: Read + Seek>(archive: &mut Archive<R>, entry: usize) -> Result<Option<EntryData>> {
    let zip = archive.container();
    let Some(found) = zip.entries().get(entry) else { return Ok(None) };
    if found.compression != Compression::Deflated {
        return Ok(None);
    }
    let (name, claimed, compressed) = (found.name.clone(), found.uncompressed_size, found.compressed_size);
    let data_start = zip.data_start(entry)?;
    Ok(Some(EntryData { name, claimed, data_start, compressed }))
}

impl LineIndex {
    /// Inflates `entry` (an NDJSON table) once, handing `each` every line that is not blank
    /// with its number (as [`NdjsonLines`] numbers them), and keeps points every
    /// `span` bytes. `None` when the entry is not deflated (the caller reads it as usual).
    pub(crate) fn build<R: Read + Seek>(
        archive: &mut Archive<R>,
        entry: usize,
        span: u64,
        mut each: impl FnMut(&str, u64, &[u8]) -> Result<()>,
    ) -> Result<Option<Self>> {
        let cap = archive.line_cap();
        let Some(data) = entry_data(archive, entry)? else { return Ok(None) };
        let mut inflater = Inflater::at(archive.container().raw_reader(), &data, None);
        inflater.building = Some((Vec::new(), span, crc32fast::Hasher::new()));
        let mut lines = NdjsonLines::new(BufReader::with_capacity(WINDOW, inflater), data.name.clone(), cap);
        while let Some((number, line)) = lines.next_line()? {
            each(&data.name, number, line)?;
        }
        let inflater = lines.get_mut().get_mut();
        let produced = inflater.out;
        let built = inflater.building.take();
        drop(lines);
        let Some((points, span, crc)) = built else { return Ok(None) };
        archive.container().check_end(entry, crc.finalize(), produced)?;
        Ok(Some(Self { entry, span, points }))
    }

    /// The archive entry the points are in.
    pub(crate) fn entry(&self) -> usize {
        self.entry
    }

    /// The memory the points hold.
    pub(crate) fn held_bytes(&self) -> u64 {
        let point = std::mem::size_of::<Point>() + std::mem::size_of::<DecompressorOxide>() + WINDOW;
        (self.points.len() * point) as u64
    }

    /// The last point from which line `number` is whole (`None`: the entry's start).
    fn point_for(&self, number: u64) -> Option<&Point> {
        let after = self.points.partition_point(|p| p.first_whole_line() <= number);
        after.checked_sub(1).map(|at| &self.points[at])
    }

    /// Calls `each` with the lines whose numbers are in `wanted` (ascending), starting at
    /// the point before each, or reading on when no point lies between. `each` answers
    /// whether to go on.
    pub(crate) fn read_lines<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        wanted: &[u64],
        mut each: impl FnMut(&str, u64, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let cap = archive.line_cap();
        let Some(data) = entry_data(archive, self.entry)? else { return Ok(()) };
        let mut next = 0;
        // Each pass starts at the point before the next line wanted and hands over at least
        // that line (or ends at the entry's end), so there are at most `wanted.len()`.
        while let Some(&target) = wanted.get(next) {
            let point = self.point_for(target);
            let first = point.map_or(1, Point::first_whole_line);
            let inflater = Inflater::at(archive.container().raw_reader(), &data, point);
            let mut lines = NdjsonLines::new(BufReader::with_capacity(WINDOW, inflater), data.name.clone(), cap);
            let mut jump = false;
            while let Some((counted, line)) = lines.next_line()? {
                let number = counted + first - 1;
                while wanted.get(next).is_some_and(|&w| w < number) {
                    next += 1;
                }
                if wanted.get(next) == Some(&number) {
                    next += 1;
                    if !each(&data.name, number, line)? {
                        return Ok(());
                    }
                }
                match wanted.get(next) {
                    None => return Ok(()),
                    // The next line wanted is past a point ahead: start there instead.
                    Some(&w) if self.point_for(w).is_some_and(|p| p.lines >= number) => {
                        jump = true;
                        break;
                    }
                    Some(_) => {}
                }
            }
            if !jump {
                // The entry ended: it has none of the lines still wanted.
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Cursor;

    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};

    use super::*;
    use crate::Limits;

    /// About 6 MB of lines of varied length (some longer than a 4 KiB span), blank ones
    /// and `\r\n` ends: more points than are kept (a point can come after every step of
    /// the decoder, at most 32 KiB).
    fn table() -> Vec<u8> {
        let mut text = Vec::new();
        for n in 0..40_000u64 {
            match n % 97 {
                5 => text.extend_from_slice(b"\n"),
                6 => text.extend_from_slice(b"   \r\n"),
                7 => text.extend_from_slice(format!("{{\"n\":{n},\"long\":\"{}\"}}\r\n", "x".repeat(9000)).as_bytes()),
                _ => text.extend_from_slice(
                    format!("{{\"n\":{n},\"text\":\"{}\"}}\n", "lantern ".repeat((n % 13) as usize)).as_bytes(),
                ),
            }
        }
        text.extend_from_slice(b"{\"last\":\"no newline\"}");
        text
    }

    fn archive(entry: RawEntry) -> Archive<Cursor<Vec<u8>>> {
        let entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])), entry];
        Archive::open(Cursor::new(RawZip::new(entries).build()), Limits::STANDARD).unwrap()
    }

    /// Every line `NdjsonLines` hands out: (number, text).
    fn plain_lines(archive: &mut Archive<Cursor<Vec<u8>>>) -> Vec<(u64, Vec<u8>)> {
        let mut lines = archive.ndjson_lines(1).unwrap();
        let mut all = Vec::new();
        while let Some((number, line)) = lines.next_line().unwrap() {
            all.push((number, line.to_vec()));
        }
        all
    }

    #[test]
    fn any_lines_read_through_the_points_equal_a_plain_reading() {
        let mut archive = archive(RawEntry::deflated("database/messages.ndjson", &table()));
        let plain = plain_lines(&mut archive);
        let mut built = Vec::new();
        let index = LineIndex::build(&mut archive, 1, 4096, |_, number, line| {
            built.push((number, line.to_vec()));
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(built, plain, "building hands out every line as NdjsonLines does");
        assert!(index.points.len() > MAX_POINTS / 2 && index.points.len() <= MAX_POINTS, "{index:?}");
        assert!(index.span > 4096, "points were thinned: {index:?}");
        let last = plain.last().unwrap().0;
        let mut seed = 7u64;
        for round in 0..40 {
            // Sets of lines of every kind: one, a few scattered, runs, past the end.
            let mut wanted: Vec<u64> = (0..round % 9 + 1)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    1 + (seed >> 33) % (last + 3)
                })
                .collect();
            if round % 5 == 0 {
                wanted.extend(wanted[0]..wanted[0] + 50);
            }
            wanted.sort_unstable();
            wanted.dedup();
            let mut got = Vec::new();
            index
                .read_lines(&mut archive, &wanted, |_, number, line| {
                    got.push((number, line.to_vec()));
                    Ok(true)
                })
                .unwrap();
            let expected: Vec<(u64, Vec<u8>)> = plain.iter().filter(|(n, _)| wanted.contains(n)).cloned().collect();
            assert_eq!(got, expected, "round {round}: {wanted:?}");
        }
        // `each` stopping ends the reading.
        let mut handed = 0;
        index
            .read_lines(&mut archive, &[10, 20, 30], |_, _, _| {
                Ok({
                    handed += 1;
                    false
                })
            })
            .unwrap();
        assert_eq!(handed, 1);
    }

    #[test]
    fn a_damaged_entry_is_refused_while_building() {
        let text = table();
        let mut crc = RawEntry::deflated("database/messages.ndjson", &text);
        crc.claimed_crc = Some(1);
        let mut short = RawEntry::deflated("database/messages.ndjson", &text);
        short.claimed_size = Some(1000);
        for (entry, code) in [(crc, "crc_mismatch"), (short, "size_mismatch")] {
            let mut archive = archive(entry);
            let error = LineIndex::build(&mut archive, 1, 4096, |_, _, _| Ok(())).unwrap_err();
            assert_eq!(error.code(), code);
        }
        // A stored entry needs no points.
        let mut stored = archive(RawEntry::stored("database/messages.ndjson", b"{\"a\":1}\n"));
        assert!(LineIndex::build(&mut stored, 1, 4096, |_, _, _| Ok(())).unwrap().is_none());
    }

    /// The explorer reads the characters table through a line index: a damaged one is
    /// refused with the code the plain reader gives.
    #[test]
    fn the_explorer_refuses_a_damaged_table_as_the_plain_reader_does() {
        let text = table();
        let build = |bytes: Vec<u8>, limits: Limits| {
            let archive = Archive::open(Cursor::new(bytes.clone()), limits).unwrap();
            let plain = archive.check_lines(1).map_err(|e| e.code());
            let mut archive = Archive::open(Cursor::new(bytes), limits).unwrap();
            let explored = crate::explore::ExploreIndex::build(&mut archive, |_| {}).map(|_| ()).map_err(|e| e.code());
            (plain, explored)
        };
        let zip = |entry: RawEntry| {
            RawZip::new(vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[])), entry]).build()
        };
        let mut crc = RawEntry::deflated("database/characters.ndjson", &text);
        crc.claimed_crc = Some(1);
        let mut short = RawEntry::deflated("database/characters.ndjson", &text);
        short.claimed_size = Some(100_000);
        let mut flipped = zip(RawEntry::deflated("database/characters.ndjson", &text));
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x5a;
        let cases = [
            (zip(crc), Limits::STANDARD, "crc_mismatch"),
            (zip(short), Limits::STANDARD, "size_mismatch"),
            (
                zip(RawEntry::deflated("database/characters.ndjson", &text)),
                Limits { max_line_bytes: 4096, ..Limits::STANDARD },
                "line_too_long",
            ),
        ];
        for (bytes, limits, code) in cases {
            assert_eq!(build(bytes, limits), (Err(code), Err(code)));
        }
        let (plain, explored) = build(flipped, Limits::STANDARD);
        assert!(plain.is_err(), "the flipped byte is noticed");
        assert_eq!(plain, explored);
    }
}
