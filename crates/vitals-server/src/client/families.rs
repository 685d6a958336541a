//! The `http_client_*` families every outbound HTTP client records into,
//! and the clients declared so far (their index is their order).
//!
//! Labels are bounded: `client` is a declared name (at most
//! [`MAX_CLIENTS`]), `host` the target's host or a declared peer name,
//! never the URL, and every family has the builder's cardinality limit.

use std::sync::{Arc, Mutex, PoisonError};
use vitals::{CounterVec, GaugeVec, HistogramVec, Options, Registry, Unit};

/// Most clients one [`ServerMetrics`](crate::ServerMetrics) declares; a
/// client declared past it records under the name `_overflow`.
pub const MAX_CLIENTS: usize = 64;

/// The `client` label of clients declared past [`MAX_CLIENTS`].
pub const OVERFLOW_CLIENT: &str = "_overflow";

/// Registered `http_client_*` families, shared by every client.
#[derive(Debug)]
pub(crate) struct ClientFamilies {
    pub(crate) requests: CounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) first_byte: HistogramVec,
    pub(crate) errors: CounterVec,
    pub(crate) active: GaugeVec,
    pub(crate) opened: CounterVec,
    pub(crate) reused: CounterVec,
    /// Declared client names, by index.
    names: Mutex<Vec<Arc<str>>>,
}

impl ClientFamilies {
    /// Registers the families with the builder's options (namespace,
    /// cardinality limit).
    pub(crate) fn register(
        r: &Registry,
        opts: &dyn Fn(&str, &str) -> Options,
    ) -> Result<Arc<ClientFamilies>, vitals::Error> {
        let secs = |n: &str, help: &str| opts(n, help).unit(Unit::Seconds);
        let cmh = &["client", "method", "host"];
        Ok(Arc::new(ClientFamilies {
            requests: r.counter_vec(
                opts(
                    "http_client_requests_total",
                    "Outbound HTTP requests finished, by response status (error: none came)",
                ),
                &["client", "method", "host", "status"],
            )?,
            duration: r.histogram_vec(
                secs(
                    "http_client_request_duration_seconds",
                    "Outbound request time until the response body completed (or the call failed)",
                ),
                cmh,
            )?,
            first_byte: r.histogram_vec(
                secs(
                    "http_client_time_to_first_byte_seconds",
                    "Outbound request time until the response headers arrived",
                ),
                cmh,
            )?,
            errors: r.counter_vec(
                opts(
                    "http_client_errors_total",
                    "Outbound requests that failed without a full response, by kind",
                ),
                &["client", "method", "host", "kind"],
            )?,
            active: r.gauge_vec(
                opts(
                    "http_client_active_requests",
                    "Outbound HTTP requests in flight",
                ),
                &["client"],
            )?,
            opened: r.counter_vec(
                opts(
                    "http_client_connections_opened_total",
                    "Connections an instrumented connector opened",
                ),
                &["client"],
            )?,
            reused: r.counter_vec(
                opts(
                    "http_client_connections_reused_total",
                    "Outbound requests sent on a connection that had carried one before",
                ),
                &["client"],
            )?,
            names: Mutex::new(Vec::new()),
        }))
    }

    /// Declares `name` (or finds it): its index and the label it records
    /// under (`_overflow` past [`MAX_CLIENTS`]).
    pub(crate) fn declare(&self, name: &str) -> (usize, Arc<str>) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = names.iter().position(|n| &**n == name) {
            return (i, names[i].clone());
        }
        if names.len() >= MAX_CLIENTS {
            let overflow = Arc::<str>::from(OVERFLOW_CLIENT);
            return (MAX_CLIENTS, overflow);
        }
        let label: Arc<str> = name.into();
        names.push(label.clone());
        (names.len() - 1, label)
    }

    /// The declared names, by index.
    pub(crate) fn names(&self) -> Vec<Arc<str>> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Which declared client a `?client=` value names: index or name.
    pub(crate) fn find(&self, key: &str) -> Option<usize> {
        let names = self.names();
        if let Ok(i) = key.parse::<usize>() {
            if i < names.len() {
                return Some(i);
            }
        }
        names.iter().position(|n| &**n == key)
    }
}
