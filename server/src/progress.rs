//! Progress of exports and imports in flight, per id, owned by one user: work publishes
//! [`Event`]s, and [`events_response`] serves them as Server-Sent Events (the event name
//! is the phase). A late subscriber first gets the latest event, then the live ones.
//!
//! Channels are bounded: a few per user (the oldest goes first), a cap for the instance,
//! and each is forgotten some minutes after its final event or hours after its last one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use tokio::sync::broadcast;

/// Channels are kept this long after their work ends, for late subscribers.
const KEEP_FINISHED: Duration = Duration::from_secs(600);
/// A channel with no event for this long is forgotten (its work is gone).
const KEEP_SILENT: Duration = Duration::from_secs(2 * 3600);
/// Channels one user may hold; opening another drops their oldest.
pub const CHANNELS_PER_OWNER: usize = 16;
/// Channels the instance holds at most.
const CHANNELS: usize = 10_000;
/// Events buffered per subscriber; a slow one skips ahead (the latest is what matters).
const BUFFERED: usize = 16;

/// The latest event of a channel and a receiver of the next ones.
pub type Subscription = (Option<Arc<Published>>, broadcast::Receiver<Arc<Published>>);

pub use lvbak_core::protocol::{Event, ExportOutcome};

/// An event as sent: its phase and its JSON.
#[derive(Debug)]
pub struct Published {
    pub phase: String,
    pub json: Value,
    pub is_final: bool,
}

impl Published {
    fn of(event: &Event) -> Self {
        let json = serde_json::to_value(event).unwrap_or(Value::Null);
        let phase = json.get("phase").and_then(Value::as_str).unwrap_or("progress").to_string();
        Self { phase, json, is_final: event.is_final() }
    }
}

struct Channel {
    owner: String,
    sender: broadcast::Sender<Arc<Published>>,
    latest: Option<Arc<Published>>,
    opened_at: Instant,
    last_event_at: Instant,
    finished_at: Option<Instant>,
}

impl Channel {
    fn expired(&self) -> bool {
        match self.finished_at {
            Some(at) => at.elapsed() >= KEEP_FINISHED,
            None => self.last_event_at.elapsed() >= KEEP_SILENT,
        }
    }
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

impl ProgressHub {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock()
    }

    /// Opens (or reopens) the channel of work `id`, owned by `owner`.
    pub fn open(&self, id: &str, owner: &str) -> Progress {
        let mut channels = self.lock();
        if channels.get(id).is_none_or(|channel| channel.owner != owner) {
            channels.retain(|_, channel| !channel.expired());
            let mut mine: Vec<(Instant, String)> = channels
                .iter()
                .filter(|(_, channel)| channel.owner == owner)
                .map(|(key, channel)| (channel.opened_at, key.clone()))
                .collect();
            mine.sort();
            for (_, key) in mine.iter().take((mine.len() + 1).saturating_sub(CHANNELS_PER_OWNER)) {
                channels.remove(key);
            }
            if channels.len() >= CHANNELS {
                if let Some(oldest) = channels.iter().min_by_key(|(_, c)| c.last_event_at).map(|(k, _)| k.clone()) {
                    channels.remove(&oldest);
                }
            }
            let now = Instant::now();
            channels.insert(
                id.to_string(),
                Channel {
                    owner: owner.to_string(),
                    sender: broadcast::channel(BUFFERED).0,
                    latest: None,
                    opened_at: now,
                    last_event_at: now,
                    finished_at: None,
                },
            );
        }
        Progress { hub: self.clone(), id: id.to_string() }
    }

    /// The latest event and a receiver of the next ones, if `id` exists and is `owner`'s.
    pub fn subscribe(&self, id: &str, owner: &str) -> Option<Subscription> {
        let channels = self.lock();
        let channel = channels.get(id).filter(|channel| channel.owner == owner)?;
        Some((channel.latest.clone(), channel.sender.subscribe()))
    }

    /// How many channels the hub holds (for tests of its bounds).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Progress {
    /// Publishes an event; a final one (`complete`, `failed`, `cancelled`) closes the channel.
    pub fn publish(&self, event: Event) {
        let published = Arc::new(Published::of(&event));
        let mut channels = self.hub.lock();
        if let Some(channel) = channels.get_mut(&self.id) {
            if published.is_final {
                channel.finished_at = Some(Instant::now());
            }
            channel.last_event_at = Instant::now();
            channel.latest = Some(published.clone());
            let _ = channel.sender.send(published);
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The SSE answer for a subscription: the latest event, then live ones until a final one.
pub fn events_response(latest: Option<Arc<Published>>, receiver: broadcast::Receiver<Arc<Published>>) -> Response {
    let already_final = latest.as_ref().is_some_and(|event| event.is_final);
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
                        let last = event.is_final;
                        return Some((event, (None, Some(receiver), last)));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    let events = futures::StreamExt::map(stream, |event: Arc<Published>| {
        Ok::<SseEvent, Infallible>(SseEvent::default().event(event.phase.clone()).data(event.json.to_string()))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_phase() {
        let event = Event::AwaitingTicket { secrets_count: 3 };
        assert_eq!(
            serde_json::to_value(&event).ok(),
            Some(serde_json::json!({"phase": "awaiting_ticket", "secretsCount": 3}))
        );
        let done = Event::Cancelled { reason: None };
        assert_eq!(serde_json::to_value(&done).ok(), Some(serde_json::json!({"phase": "cancelled"})));
        assert!(done.is_final() && !Event::Running.is_final());
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_channels() {
        let hub = ProgressHub::default();
        for n in 0..(CHANNELS_PER_OWNER * 3) {
            hub.open(&format!("work-{n}"), "mallory");
        }
        hub.open("mine", "alice");
        assert_eq!(hub.len(), CHANNELS_PER_OWNER + 1);
        // The newest of mallory's survive; alice's is untouched.
        assert!(hub.subscribe(&format!("work-{}", CHANNELS_PER_OWNER * 3 - 1), "mallory").is_some());
        assert!(hub.subscribe("work-0", "mallory").is_none());
        assert!(hub.subscribe("mine", "alice").is_some() && hub.subscribe("mine", "mallory").is_none());
    }
}
