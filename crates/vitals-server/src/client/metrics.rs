//! [`ClientMetrics`]: one declared outbound HTTP client, its settings
//! (peer name, timeout, caller header) and the handles it records into.
//! Hand it to the tower layer ([`ClientMetricsLayer`](super::ClientMetricsLayer),
//! from `layer.rs`),
//! the connector ([`TrackedConnector`](super::TrackedConnector)) or the
//! `reqwest` wrapper.

use super::families::ClientFamilies;
use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;
use vitals::{Counter, Gauge, Registry};

/// One declared outbound HTTP client: what every call through it records
/// into (`http_client_*{client="<name>"}`), and how it labels them.
///
/// Get one from [`ServerMetrics::client`](crate::ServerMetrics::client);
/// cheap to clone. The `host` label is the target's `host[:port]`, or
/// the name given to [`peer`](Self::peer); never the URL.
#[derive(Clone)]
pub struct ClientMetrics {
    pub(crate) shared: Arc<ClientShared>,
    /// Declared peer name: replaces the target host in the `host` label.
    pub(crate) peer: Option<Arc<str>>,
    pub(crate) timeout: Option<Duration>,
    /// `x-vitals-caller` value set on every request, if any.
    pub(crate) caller: Option<HeaderValue>,
}

impl std::fmt::Debug for ClientMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetrics")
            .field("client", &self.shared.name)
            .field("index", &self.shared.index)
            .field("peer", &self.peer)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What every clone of one client shares.
pub(crate) struct ClientShared {
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) families: Arc<ClientFamilies>,
    pub(crate) registry: Registry,
    pub(crate) active: Gauge,
    pub(crate) opened: Counter,
    pub(crate) reused: Counter,
    /// The push aggregator's client side, when push is configured.
    pub(crate) push: Option<Arc<crate::push::Aggregator>>,
}

impl ClientMetrics {
    /// Declares (or finds) the client `name` in `families`.
    pub(crate) fn declare(
        families: &Arc<ClientFamilies>,
        registry: &Registry,
        name: &str,
        push: Option<Arc<crate::push::Aggregator>>,
        caller: Option<HeaderValue>,
    ) -> ClientMetrics {
        let (index, name) = families.declare(name);
        let label = [&*name];
        ClientMetrics {
            shared: Arc::new(ClientShared {
                index,
                active: families.active.get(&label).clone(),
                opened: families.opened.get(&label).clone(),
                reused: families.reused.get(&label).clone(),
                name,
                families: families.clone(),
                registry: registry.clone(),
                push,
            }),
            peer: None,
            timeout: None,
            caller,
        }
    }

    /// Labels every call `host="<name>"` instead of the target's host: the
    /// callee's service name, so the caller's figures and the callee's
    /// meet on one edge in the collector. `name` follows the caller-name
    /// rules ([`valid_caller`](crate::push::valid_caller)); another is
    /// refused and the host stays the label.
    pub fn peer(mut self, name: &str) -> Result<Self, crate::PushError> {
        if !crate::push::valid_caller(name.as_bytes()) {
            return Err(crate::PushError::InvalidCaller {
                caller: name.to_owned(),
            });
        }
        self.peer = Some(name.into());
        Ok(self)
    }

    /// Fails a call whose response headers have not arrived within
    /// `timeout` (counted as `kind="timeout"`); no timeout by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Names this service as the caller (`x-vitals-caller`) on every
    /// request; by default the push config's service, when push is on.
    pub fn caller(mut self, service: &str) -> Result<Self, crate::PushError> {
        if !crate::push::valid_caller(service.as_bytes()) {
            return Err(crate::PushError::InvalidCaller {
                caller: service.to_owned(),
            });
        }
        self.caller = HeaderValue::from_str(service).ok();
        Ok(self)
    }

    /// The client's declared name (its `client` label).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The client's index: the order it was declared in.
    pub fn index(&self) -> usize {
        self.shared.index
    }
}
