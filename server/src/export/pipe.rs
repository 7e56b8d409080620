//! The bounded pipe between the blocking thread that writes a ZIP and the HTTP response
//! that streams it: at most `CHUNKS × CHUNK_BYTES` are in flight, so memory stays flat
//! whatever the archive's size, and when the client goes away the next write fails, which
//! stops the export.

use std::io::{self, Write};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

const CHUNK_BYTES: usize = 256 * 1024;
const CHUNKS: usize = 8;

/// The writing end, used on a blocking thread.
pub struct PipeWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: BytesMut,
    written: u64,
    /// Set once the reader is gone: the failure is reported once, and later writes (such
    /// as the ZIP writer finalizing itself on drop) go nowhere quietly.
    broken: bool,
}

/// Ends a pipe's response with an error.
pub struct PipeFailer {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl PipeFailer {
    /// Breaks the response off, so the client sees a failed download rather than a short
    /// archive that looks complete.
    pub fn fail(self, message: String) {
        let _ = self.sender.blocking_send(Err(io::Error::other(message)));
    }
}

/// A pipe: the writer for the export thread, its failer, and the body for the response.
pub fn pipe() -> (PipeWriter, PipeFailer, Body) {
    let (sender, receiver) = mpsc::channel(CHUNKS);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let failer = PipeFailer { sender: sender.clone() };
    (
        PipeWriter { sender, buffer: BytesMut::with_capacity(CHUNK_BYTES), written: 0, broken: false },
        failer,
        Body::from_stream(stream),
    )
}

impl PipeWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        if self.sender.blocking_send(Ok(chunk)).is_err() {
            return Err(self.gone());
        }
        self.buffer.reserve(CHUNK_BYTES);
        Ok(())
    }

    /// Bytes handed to the pipe so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl PipeWriter {
    fn gone(&mut self) -> io::Error {
        self.broken = true;
        self.buffer.clear();
        io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Ok(data.len());
        }
        if self.sender.is_closed() {
            return Err(self.gone());
        }
        let room = CHUNK_BYTES.saturating_sub(self.buffer.len()).max(1);
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        self.written += taken as u64;
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.broken {
            return Ok(());
        }
        self.send_buffer()
    }
}
