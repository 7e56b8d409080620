//! A browser `File` as `Read + Seek`, for lvbak-core: bytes come from `file.slice()` ranges
//! read with `FileReaderSync` (Web Workers only), through a read-ahead buffer, so a
//! multi-GB archive never has to fit in Wasm memory.

use std::io::{self, Read, Seek, SeekFrom};

use js_sys::Uint8Array;
use web_sys::{File, FileReaderSync};

/// Bytes fetched from the file per trip, at least.
const READ_AHEAD: usize = 1024 * 1024;

pub struct BlobReader {
    file: File,
    reader: FileReaderSync,
    size: u64,
    position: u64,
    buffer: Vec<u8>,
    buffer_start: u64,
}

fn js_error(error: wasm_bindgen::JsValue) -> io::Error {
    io::Error::other(format!("reading the file failed: {error:?}"))
}

impl BlobReader {
    pub fn new(file: File) -> io::Result<Self> {
        let reader = FileReaderSync::new().map_err(js_error)?;
        let size = file.size() as u64;
        Ok(Self { file, reader, size, position: 0, buffer: Vec::new(), buffer_start: 0 })
    }

    /// Reads `start..end` of the file into `into` (resized to fit).
    fn fetch(&self, start: u64, end: u64, into: &mut Vec<u8>) -> io::Result<()> {
        let blob = self.file.slice_with_f64_and_f64(start as f64, end as f64).map_err(js_error)?;
        let bytes = Uint8Array::new(&self.reader.read_as_array_buffer(&blob).map_err(js_error)?.into());
        into.resize(bytes.length() as usize, 0);
        bytes.copy_to(into);
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.size || out.is_empty() {
            return Ok(0);
        }
        let buffered_end = self.buffer_start + self.buffer.len() as u64;
        if self.position < self.buffer_start || self.position >= buffered_end {
            let end = self.size.min(self.position + READ_AHEAD.max(out.len()) as u64);
            let mut buffer = std::mem::take(&mut self.buffer);
            self.fetch(self.position, end, &mut buffer)?;
            self.buffer = buffer;
            self.buffer_start = self.position;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let from = (self.position - self.buffer_start) as usize;
        let count = out.len().min(self.buffer.len() - from);
        out[..count].copy_from_slice(&self.buffer[from..from + count]);
        self.position += count as u64;
        Ok(count)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}
