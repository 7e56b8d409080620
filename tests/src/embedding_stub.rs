//! A real OpenAI-compatible embeddings server on 127.0.0.1 for tests: `POST
//! …/embeddings` with `{"model", "input": [...]}` answers `{"data": [{"index",
//! "embedding"}]}` whose vectors are a pure function of each text ([`vector_for`]), so a
//! test can say which floats every row must hold. It can require a key, answer a queue of
//! failures first (status and `Retry-After`), and wait before each answer. Every
//! connection is served on its own thread and closed after one answer; the server stops
//! when dropped.

// A stub that cannot bind its socket is a failed test, said at once.
#![allow(clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

/// What the stub does, and what it has seen.
#[derive(Debug, Default)]
pub struct StubState {
    pub dimensions: usize,
    /// The bearer key requests must carry, if any.
    pub key: Option<String>,
    /// Answered before any success, one per request: status and `Retry-After` seconds.
    pub failures: VecDeque<(u16, Option<u64>)>,
    /// Waited before each answer.
    pub delay: Duration,
    /// Requests answered with vectors, and the texts they held.
    pub embedded_requests: u64,
    pub embedded_texts: u64,
    /// Requests answered with an error.
    pub refused: u64,
    /// The largest number of texts in one request.
    pub largest_batch: usize,
    /// Never answer: hold each request until the client goes away or the stub stops.
    pub hang: bool,
    /// Answer every request with a valid answer of about this many bytes (one vector
    /// that long), instead of the texts' vectors.
    pub huge_answer: Option<usize>,
    /// Every request that reached the stub, and the `Authorization` header and texts of
    /// each (the first 10,000), whatever the answer.
    pub requests: u64,
    pub authorizations: Vec<String>,
    pub texts: Vec<String>,
    /// Requests being served now, and the most at once.
    pub open: usize,
    pub most_open: usize,
}

/// What the stub records of its requests, at most.
const RECORDED: usize = 10_000;

pub struct EmbeddingStub {
    /// The base URL (`http://127.0.0.1:PORT/v1`); requests go to `…/v1/embeddings`.
    pub url: String,
    state: Arc<Mutex<StubState>>,
    stop: Arc<AtomicBool>,
}

/// The vector the stub answers for `text`: numbers k/1000 with k in -1000..=1000, from a
/// hash of the text.
pub fn vector_for(text: &str, dimensions: usize) -> Vec<f32> {
    numbers_for(text, dimensions).into_iter().map(|n| n as f32).collect()
}

fn numbers_for(text: &str, dimensions: usize) -> Vec<f64> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dimensions as u64)
        .map(|i| {
            let mut x = hash.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^= x >> 31;
            ((x % 2001) as f64 - 1000.0) / 1000.0
        })
        .collect()
}

impl EmbeddingStub {
    pub fn start(dimensions: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let url = format!("http://{}/v1", listener.local_addr().expect("stub address"));
        let state = Arc::new(Mutex::new(StubState { dimensions, ..StubState::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (state, stop) = (shared.clone(), stopped.clone());
                        std::thread::spawn(move || serve(stream, &state, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { url, state, stop }
    }

    /// Changes what the stub does.
    pub fn set(&self, change: impl FnOnce(&mut StubState)) {
        change(&mut self.state.lock());
    }

    /// Reads what the stub has seen.
    pub fn seen<T>(&self, read: impl FnOnce(&StubState) -> T) -> T {
        read(&self.state.lock())
    }
}

impl Drop for EmbeddingStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, state: &Mutex<StubState>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let (mut length, mut authorization) = (0usize, String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length.min(64 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (hang, huge) = {
        let mut state = state.lock();
        state.requests += 1;
        state.open += 1;
        state.most_open = state.most_open.max(state.open);
        if state.authorizations.len() < RECORDED {
            state.authorizations.push(authorization.clone());
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        for text in request["input"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if state.texts.len() < RECORDED {
                state.texts.push(text.to_string());
            }
        }
        (state.hang, state.huge_answer)
    };
    let (status, retry_after, answer, delay) = answer(&request_line, &authorization, &body, state);
    let deadline = std::time::Instant::now() + delay;
    while (hang || std::time::Instant::now() < deadline) && !stop.load(Ordering::Relaxed) {
        if hang && client_gone(&stream) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    state.lock().open -= 1;
    if hang {
        return;
    }
    let text = match huge {
        Some(bytes) => {
            let floats = vec!["0.123456789"; bytes / 12].join(",");
            format!(r#"{{"data":[{{"index":0,"embedding":[{floats}]}}]}}"#)
        }
        None => answer.to_string(),
    };
    let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n",
        text.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
}

/// Whether the client closed its end (a read that finds the end, not a timeout).
fn client_gone(stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut byte = [0u8; 1];
    let gone = matches!(stream.peek(&mut byte), Ok(0));
    let _ = stream.set_nonblocking(false);
    gone
}

fn answer(
    request_line: &str,
    authorization: &str,
    body: &[u8],
    state: &Mutex<StubState>,
) -> (u16, Option<u64>, Value, Duration) {
    let mut state = state.lock();
    let delay = state.delay;
    let refuse = |state: &mut StubState, status: u16, retry: Option<u64>, message: &str| {
        state.refused += 1;
        (status, retry, json!({"error": {"message": message}}), delay)
    };
    if !request_line.starts_with("POST ") || !request_line.split(' ').nth(1).is_some_and(|p| p.ends_with("/embeddings"))
    {
        return refuse(&mut state, 404, None, "no such route");
    }
    if let Some(key) = &state.key {
        if authorization != format!("Bearer {key}") {
            return refuse(&mut state, 401, None, "Incorrect API key provided");
        }
    }
    if let Some((status, retry)) = state.failures.pop_front() {
        return refuse(&mut state, status, retry, "slow down");
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let inputs: Vec<String> = match &request["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or_default().to_string()).collect(),
        _ => return refuse(&mut state, 400, None, "input must be a string or a list of strings"),
    };
    let dimensions = request["dimensions"].as_u64().map_or(state.dimensions, |d| d as usize);
    state.embedded_requests += 1;
    state.embedded_texts += inputs.len() as u64;
    state.largest_batch = state.largest_batch.max(inputs.len());
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": numbers_for(text, dimensions)}))
        .collect();
    (200, None, json!({"object": "list", "data": data, "model": request["model"]}), delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_depend_on_the_text_only() {
        assert_eq!(vector_for("a", 8), vector_for("a", 8));
        assert_ne!(vector_for("a", 8), vector_for("b", 8));
        assert!(vector_for("a", 64).iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
