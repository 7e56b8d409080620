//! The bounded pipe between the thread that writes a ZIP and the HTTP response that
//! streams it: at most `CHUNKS` chunks are in flight, each `CHUNK_BYTES` plus at most the
//! one write that filled it, so memory stays flat whatever the archive's size. When the client goes away the next write fails, and when it stays
//! connected but stops reading, a write that waits longer than the stall limit fails too;
//! either stops the export and frees its thread.

use std::io::{self, Write};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

const CHUNK_BYTES: usize = 256 * 1024;
const CHUNKS: usize = 8;

/// The writing end, used on a thread outside the runtime.
pub struct PipeWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    runtime: Handle,
    stall: Duration,
    buffer: BytesMut,
    written: u64,
    /// Set once the reader is gone: the failure is reported once, and later writes (such
    /// as the ZIP writer finalizing itself on drop) go nowhere quietly.
    broken: bool,
}

/// Ends a pipe's response with an error.
pub struct PipeFailer {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    runtime: Handle,
    stall: Duration,
}

impl PipeFailer {
    /// Breaks the response off, so the client sees a failed download rather than a short
    /// archive that looks complete.
    pub fn fail(self, message: String) {
        let send = self.sender.send_timeout(Err(io::Error::other(message)), self.stall);
        let _ = self.runtime.block_on(send);
    }
}

/// A pipe: the writer for the export thread, its failer, and the body for the response.
/// A write that cannot hand its chunk over within `stall` fails with `TimedOut`.
pub fn pipe(runtime: Handle, stall: Duration) -> (PipeWriter, PipeFailer, Body) {
    let (sender, receiver) = mpsc::channel(CHUNKS);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let failer = PipeFailer { sender: sender.clone(), runtime: runtime.clone(), stall };
    (
        PipeWriter { sender, runtime, stall, buffer: BytesMut::with_capacity(CHUNK_BYTES), written: 0, broken: false },
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
        match self.runtime.block_on(self.sender.send_timeout(Ok(chunk), self.stall)) {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(self.gone()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.gone();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"));
            }
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
        // All of `data` is taken: a writer that takes part of a write breaks callers such as
        // base64's encoder, whose next write then answers Ok(0), which `write_all` takes for
        // a failure (a held-rows answer past one chunk was cut off so). The buffer holds at
        // most a chunk plus one write.
        self.buffer.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.broken {
            return Ok(());
        }
        self.send_buffer()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::write::EncoderWriter;
    use base64::Engine as _;

    /// base64's encoder over the pipe, past several chunks: every byte arrives (a pipe that
    /// took part of a write made the encoder's next write answer Ok(0), and `write_all` fail).
    #[test]
    fn an_encoder_writes_through_the_pipe_past_a_chunk() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (mut writer, failer, body) = pipe(runtime.handle().clone(), Duration::from_secs(5));
        drop(failer);
        let input: Vec<u8> = (0..3 * CHUNK_BYTES as u32 / 2).map(|n| (n % 251) as u8).collect();
        let reader = runtime.spawn(async move { axum::body::to_bytes(body, usize::MAX).await.unwrap() });
        let sent = input.clone();
        std::thread::spawn(move || {
            // Written past the encoder (as a held-rows answer's table names are), so that the
            // encoder's output straddles a chunk's end.
            writer.write_all(b"{\"t\":\"").unwrap();
            let mut encoder = EncoderWriter::new(&mut writer, &STANDARD);
            for piece in sent.chunks(8) {
                encoder.write_all(piece).unwrap();
            }
            encoder.finish().unwrap();
            drop(encoder);
            writer.flush().unwrap();
        })
        .join()
        .unwrap();
        let received = runtime.block_on(reader).unwrap();
        assert_eq!(received, format!("{{\"t\":\"{}", STANDARD.encode(&input)).as_bytes());
    }
}
