//! The `/v1/live` hub: one bounded broadcast channel per tenant with open
//! streams, the client places, and the hub's series on the collector's
//! `/metrics`. Publishing never waits; a stream that falls `buffer`
//! events behind misses the oldest (its receiver reports how many). The
//! handler over it is `live.rs`.

use crate::model::UnixMs;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;
use vitals::{Counter, Gauge, Registry};

/// What a `batch` event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveBatch {
    /// The service the stored batch was about.
    pub service: String,
    /// When the store acknowledged it, ms since the epoch.
    pub at_ms: UnixMs,
}

/// The open streams and their channels, one per tenant with streams.
pub(crate) struct LiveHub {
    channels: Mutex<HashMap<String, broadcast::Sender<LiveBatch>>>,
    clients: AtomicUsize,
    closed: AtomicBool,
    max_clients: usize,
    buffer: usize,
    clients_gauge: Gauge,
    events: Counter,
    lagged: Counter,
}

impl LiveHub {
    /// A hub allowing `max_clients` streams, each `buffer` events behind
    /// at most, with its series in `registry`.
    pub(crate) fn new(
        registry: &Registry,
        max_clients: usize,
        buffer: usize,
    ) -> Result<Self, vitals::Error> {
        Ok(LiveHub {
            channels: Mutex::new(HashMap::new()),
            clients: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            max_clients,
            buffer: buffer.max(1),
            clients_gauge: registry
                .gauge(("vitals_collector_live_clients", "Open GET /v1/live streams"))?,
            events: registry.counter((
                "vitals_collector_live_events_total",
                "Batch events sent to GET /v1/live streams (one per stream)",
            ))?,
            lagged: registry.counter((
                "vitals_collector_live_lagged_total",
                "Batch events GET /v1/live streams missed because they fell too far behind",
            ))?,
        })
    }

    /// Tells `tenant`'s open streams that a batch of `service` was stored.
    /// Never waits: a slow stream lags instead.
    pub(crate) fn publish(&self, tenant: &str, service: &str, at_ms: UnixMs) {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = channels.get(tenant) else {
            return;
        };
        let event = LiveBatch {
            service: service.to_string(),
            at_ms,
        };
        match tx.send(event) {
            Ok(n) => self.events.add(n as u64),
            // No stream left: forget the channel.
            Err(_) => {
                channels.remove(tenant);
            }
        }
    }

    /// A new stream of `tenant`'s events, or `None` past the client cap
    /// (or after shutdown began).
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        tenant: &str,
    ) -> Option<(broadcast::Receiver<LiveBatch>, Slot)> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_clients).then_some(n + 1)
            })
            .ok()?;
        let slot = Slot(self.clone());
        self.clients_gauge.inc();
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = channels
            .entry(tenant.to_string())
            .or_insert_with(|| broadcast::channel(self.buffer).0)
            .subscribe();
        Some((rx, slot))
    }

    /// Ends every stream (after the events each holds) and refuses new
    /// ones: shutdown has begun.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// One taken client place, given back when the stream ends.
pub(crate) struct Slot(Arc<LiveHub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
        self.0.clients_gauge.dec();
    }
}

impl Slot {
    /// Counts `n` events this stream missed.
    pub(crate) fn lagged(&self, n: u64) {
        self.0.lagged.add(n);
    }
}

impl LiveHub {
    /// The client cap.
    pub(crate) fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Streams open now.
    #[cfg(test)]
    pub(crate) fn open_clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Events missed by slow streams so far.
    #[cfg(test)]
    pub(crate) fn lagged_total(&self) -> u64 {
        self.lagged.get()
    }
}
