//! Progress of exports and imports in flight, per id, owned by one user: work publishes
//! JSON events (each with a `phase`), and [`events_response`] serves them as Server-Sent
//! Events. A late subscriber first gets the latest event, then the live ones.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::broadcast;

/// Channels are kept this long after their work ends, for late subscribers.
const KEEP_FINISHED: Duration = Duration::from_secs(600);

struct Channel {
    owner: String,
    sender: broadcast::Sender<Value>,
    latest: Option<Value>,
    finished_at: Option<Instant>,
}

/// Every progress channel of the server.
#[derive(Clone, Default)]
pub struct ProgressHub {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

/// The publishing end for one piece of work.
#[derive(Clone)]
pub struct Progress {
    hub: ProgressHub,
    id: String,
}

fn is_final(event: &Value) -> bool {
    matches!(event.get("phase").and_then(Value::as_str), Some("complete" | "failed" | "cancelled"))
}

impl ProgressHub {
    /// Opens the channel of work `id`, owned by `owner`.
    pub fn open(&self, id: &str, owner: &str) -> Progress {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, channel| channel.finished_at.is_none_or(|at| at.elapsed() < KEEP_FINISHED));
        channels.entry(id.to_string()).or_insert_with(|| Channel {
            owner: owner.to_string(),
            sender: broadcast::channel(256).0,
            latest: None,
            finished_at: None,
        });
        Progress { hub: self.clone(), id: id.to_string() }
    }

    /// The latest event and a receiver of the next ones, if `id` exists and is `owner`'s.
    pub fn subscribe(&self, id: &str, owner: &str) -> Option<(Option<Value>, broadcast::Receiver<Value>)> {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = channels.get(id).filter(|channel| channel.owner == owner)?;
        Some((channel.latest.clone(), channel.sender.subscribe()))
    }

    /// The latest event of `id`, if it is `owner`'s.
    pub fn latest(&self, id: &str, owner: &str) -> Option<Value> {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.get(id).filter(|channel| channel.owner == owner).and_then(|channel| channel.latest.clone())
    }
}

impl Progress {
    /// Publishes an event; a final one (`complete`, `failed`, `cancelled`) closes the channel.
    pub fn publish(&self, event: Value) {
        let mut channels = self.hub.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get_mut(&self.id) {
            if is_final(&event) {
                channel.finished_at = Some(Instant::now());
            }
            channel.latest = Some(event.clone());
            let _ = channel.sender.send(event);
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The SSE answer for a subscription: the latest event, then live ones until a final one.
pub fn events_response(latest: Option<Value>, receiver: broadcast::Receiver<Value>) -> Response {
    let already_final = latest.as_ref().is_some_and(is_final);
    let stream =
        futures::stream::unfold((latest, Some(receiver), already_final), |(pending, receiver, done)| async move {
            if let Some(event) = pending {
                return Some((event, (None, receiver, done)));
            }
            if done {
                return None;
            }
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        let last = is_final(&event);
                        return Some((event, (None, Some(receiver), last)));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    let events = futures::StreamExt::map(stream, |event: Value| {
        let phase = event.get("phase").and_then(Value::as_str).unwrap_or("progress").to_string();
        Ok::<Event, Infallible>(Event::default().event(phase).data(event.to_string()))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
