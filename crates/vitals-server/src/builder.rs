//! [`ServerMetricsBuilder`]: the settings, filled from the defaults in
//! `settings.rs`, and the registration of every server metric under the
//! names of the contract in docs/ARCHITECTURE.md ("Server metrics"); a
//! namespace prefixes every one (`pagi` → `pagi_server_connections_total`).
//!
//! The modules that use a setting read it from the built options
//! ([`DebugOptions`], the [`History`] ring, …), never a default of their own.

use crate::client::families::ClientFamilies;
use crate::collect::process::ProcessCollector;
use crate::collect::runtime::RuntimeCollector;
use crate::collect::uptime::Uptime;
use crate::endpoints::auth::Credentials;
use crate::endpoints::history::History;
use crate::push::{Aggregator, PushClient, PushConfig};
use crate::record::lifespan::Lifespan;
use crate::record::task_families::TaskFamilies;
use crate::server_metrics::{Handles, ServerMetrics};
use crate::settings::{
    ConnectionOptions, DEFAULT_EVENTS_BUFFER, DEFAULT_EVENTS_HEARTBEAT, DEFAULT_EVENTS_MAX_CLIENTS,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_INTERVAL,
    DEFAULT_LISTEN_BACKLOG, DEFAULT_WINDOW, DebugOptions,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitals::{Options, Registry, Unit};

/// Session lengths for WebSocket and SSE: seconds to hours.
const SESSION_BUCKETS: &[f64] = &[
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

/// Configures and builds [`ServerMetrics`].
#[derive(Debug, Clone, Default)]
pub struct ServerMetricsBuilder {
    namespace: Option<String>,
    registry: Option<Registry>,
    route_limit: Option<usize>,
    without_process: bool,
    without_runtime: bool,
    events_heartbeat: Option<Duration>,
    events_max_clients: Option<usize>,
    events_buffer: Option<usize>,
    history: Option<(Duration, usize)>,
    credentials: Credentials,
    push: Option<PushConfig>,
    servers: Vec<Option<String>>,
    endpoints_as_application: bool,
    header_read_timeout: Option<Option<Duration>>,
    listen_backlog: Option<u32>,
}

impl ServerMetricsBuilder {
    /// Prefixes every metric name with `namespace_`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Registers into `registry` instead of [`vitals::global()`].
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Most series per per-route family (default 2000); see
    /// [`Options::cardinality_limit`].
    pub fn route_limit(mut self, limit: usize) -> Self {
        self.route_limit = Some(limit);
        self
    }

    /// Leaves out the `process_*` metrics (read from `/proc` at scrape time).
    pub fn without_process_metrics(mut self) -> Self {
        self.without_process = true;
        self
    }

    /// Leaves out the `tokio_runtime_*` metrics, which are otherwise read
    /// from the runtime `build` is called in (if any) at scrape time.
    pub fn without_runtime_metrics(mut self) -> Self {
        self.without_runtime = true;
        self
    }

    /// Interval of the `: heartbeat` comment on `/debug/events` (default
    /// 15 s), which keeps proxies from closing an idle stream.
    pub fn events_heartbeat(mut self, every: Duration) -> Self {
        self.events_heartbeat = Some(every);
        self
    }

    /// Most concurrent `/debug/events` clients (default 16); past it the
    /// endpoint answers 503, counted in
    /// `vitals_rejected_total{reason="debug_events_clients"}`.
    pub fn events_max_clients(mut self, max: usize) -> Self {
        self.events_max_clients = Some(max);
        self
    }

    /// Events buffered per `/debug/events` client (default 1024, at least
    /// 1). A client that falls further behind loses the newer events,
    /// counted in `vitals_events_dropped_total{subscriber="debug_events"}`.
    pub fn events_buffer(mut self, events: usize) -> Self {
        self.events_buffer = Some(events);
        self
    }

    /// Sampling interval and number of points of `/debug/history`
    /// (default one per second, 900 points: 15 minutes). The interval is
    /// at least 10 ms and the capacity at least 1.
    pub fn history(mut self, interval: Duration, capacity: usize) -> Self {
        self.history = Some((interval, capacity));
        self
    }

    /// Requires `Authorization: Bearer <token>` on `/metrics` and every
    /// `/debug/*` route. Compared in constant time; an empty token matches
    /// nothing. With [`auth_basic`](Self::auth_basic) too, either works.
    pub fn auth_bearer(mut self, token: impl Into<String>) -> Self {
        self.credentials.bearer = Some(token.into().into_bytes());
        self
    }

    /// Requires HTTP basic credentials (`user`, `password`) on `/metrics`
    /// and every `/debug/*` route, compared in constant time. A refused
    /// request gets a 401 with `WWW-Authenticate`, counted in
    /// `vitals_rejected_total{reason="debug_auth_missing"|"debug_auth_invalid"}`.
    pub fn auth_basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        let pair = format!("{}:{}", user.into(), password.into());
        self.credentials.basic = Some(pair.into_bytes());
        self
    }

    /// Also aggregates requests per interval and pushes them to a collector
    /// (see [`crate::push`]). The push loop runs on a thread of its own
    /// (with a current-thread runtime), so its timer never sits in the
    /// application runtime's timer wheel.
    pub fn push(mut self, config: PushConfig) -> Self {
        self.push = Some(config);
        self
    }

    /// Counts the requests to the endpoints (`/metrics`, `/debug/*`) as
    /// application traffic: in `http_server_*`, the dashboard's route table,
    /// the events and the push aggregates. Off by default: a scraper or an
    /// open dashboard would otherwise show up as the busiest route; they are
    /// counted on their own in `server_endpoint_requests_total{route,status}`.
    pub fn endpoints_as_application(mut self, yes: bool) -> Self {
        self.endpoints_as_application = yes;
        self
    }

    /// Time a new connection of a [`TrackedListener`](crate::TrackedListener)
    /// or [`TrackedIo::serve`](crate::TrackedIo::serve) has to send its first
    /// request head (default 30 s, [`DEFAULT_HEADER_READ_TIMEOUT`](crate::DEFAULT_HEADER_READ_TIMEOUT));
    /// `None` waits forever. A connection past it is closed and counted in
    /// `server_connections_timed_out_total`. `TrackedIo::serve` also gives
    /// every later request head on the connection this long (hyper's own
    /// header-read timeout). Needs the runtime's timer (`enable_time`, on in
    /// `#[tokio::main]`).
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.header_read_timeout = Some(timeout.into());
        self
    }

    /// Listen backlog of [`TrackedListener::bind`](crate::TrackedListener::bind)
    /// (default 1024, [`DEFAULT_LISTEN_BACKLOG`](crate::DEFAULT_LISTEN_BACKLOG)).
    pub fn listen_backlog(mut self, backlog: u32) -> Self {
        self.listen_backlog = Some(backlog);
        self
    }

    /// Declares a server named `name` (its index is the number of servers
    /// declared before it). Declared servers each get their own `server`
    /// series on the `server_*` and `http_server_*` families; hand
    /// [`ServerMetrics::server`] to each one's listener. Without any
    /// declaration there is one server and no `server` label.
    ///
    /// A name is 1 to 64 ASCII letters, digits, `-`, `_` or `.`, not only
    /// digits (those are indexes), each name once, at most
    /// [`MAX_SERVERS`](crate::MAX_SERVERS) servers; `build` refuses others.
    pub fn server(mut self, name: impl Into<String>) -> Self {
        self.servers.push(Some(name.into()));
        self
    }

    /// Declares `count` more servers without a name: their `server` label
    /// is their index (`"0"`, `"1"`, …).
    pub fn servers(mut self, count: usize) -> Self {
        self.servers.extend(std::iter::repeat_n(None, count));
        self
    }

    /// Registers every metric (build once per registry: the scrape-time
    /// collectors would otherwise be registered twice). Fails only on an invalid namespace or a
    /// clash with differently shaped metrics already in the registry.
    pub fn build(self) -> Result<ServerMetrics, vitals::Error> {
        check_servers(&self.servers)?;
        let registry = self.registry.unwrap_or_else(|| vitals::global().clone());
        let namespace = self.namespace.unwrap_or_default();
        let prefix = namespace.clone();
        let limit = self
            .route_limit
            .unwrap_or(vitals::DEFAULT_CARDINALITY_LIMIT);
        let name = |n: &str| {
            if prefix.is_empty() {
                n.to_owned()
            } else {
                format!("{prefix}_{n}")
            }
        };
        let opts = |n: &str, help: &str| Options::new(name(n), help).cardinality_limit(limit);
        let secs = |n: &str, help: &str| opts(n, help).unit(Unit::Seconds);
        let r = &registry;
        let route = &["route"];
        // With servers declared, the HTTP families lead with `server`.
        let lead: &[&str] = if self.servers.is_empty() {
            &[]
        } else {
            &["server"]
        };
        let http = |rest: &[&'static str]| -> Vec<&'static str> {
            lead.iter().chain(rest).copied().collect()
        };
        let method_route_labels = http(&["method", "route"]);
        let method_route = &method_route_labels[..];
        let handles = Handles {
            servers: crate::servers::register(r, &opts, &self.servers)?,
            lifespan: Lifespan::register(r, &opts)?,
            requests: r.counter_vec(
                opts("http_server_requests_total", "HTTP requests completed"),
                &http(&["method", "route", "status"]),
            )?,
            endpoint_requests: r.counter_vec(
                opts(
                    "server_endpoint_requests_total",
                    "Requests to the server's own endpoints (/metrics, /debug/*), kept out of http_server_*",
                ),
                &["route", "status"],
            )?,
            endpoints_as_application: self.endpoints_as_application,
            duration: r.histogram_vec(
                secs(
                    "http_server_request_duration_seconds",
                    "Time until the response body completed",
                ),
                method_route,
            )?,
            first_byte: r.histogram_vec(
                secs(
                    "http_server_time_to_first_byte_seconds",
                    "Time until the response headers were ready",
                ),
                method_route,
            )?,
            request_errors: r.counter_vec(
                opts(
                    "http_server_request_errors_total",
                    "Requests answered 5xx or failed in the handler",
                ),
                method_route,
            )?,
            requests_abandoned: r.counter_vec(
                opts(
                    "http_server_requests_abandoned_total",
                    "Requests the client left before the response completed",
                ),
                method_route,
            )?,
            ws_connections: r.counter_vec(
                opts("websocket_connections_total", "WebSocket sessions opened"),
                route,
            )?,
            ws_active: r.gauge_vec(
                opts(
                    "websocket_connections_active",
                    "WebSocket sessions open now",
                ),
                route,
            )?,
            ws_messages_received: r.counter_vec(
                opts(
                    "websocket_messages_received_total",
                    "WebSocket messages received",
                ),
                route,
            )?,
            ws_messages_sent: r.counter_vec(
                opts("websocket_messages_sent_total", "WebSocket messages sent"),
                route,
            )?,
            ws_bytes_received: r.counter_vec(
                opts(
                    "websocket_bytes_received_total",
                    "WebSocket payload bytes received",
                ),
                route,
            )?,
            ws_bytes_sent: r.counter_vec(
                opts("websocket_bytes_sent_total", "WebSocket payload bytes sent"),
                route,
            )?,
            ws_duration: r.histogram_vec(
                secs(
                    "websocket_session_duration_seconds",
                    "WebSocket session length",
                )
                .buckets(SESSION_BUCKETS),
                route,
            )?,
            ws_close_codes: r.counter_vec(
                opts(
                    "websocket_close_codes_total",
                    "WebSocket sessions by close code (none: no close frame)",
                ),
                &["route", "code"],
            )?,
            sse_connections: r
                .counter_vec(opts("sse_connections_total", "SSE streams opened"), route)?,
            sse_active: r.gauge_vec(
                opts("sse_connections_active", "SSE streams open now"),
                route,
            )?,
            sse_events: r.counter_vec(opts("sse_events_sent_total", "SSE events sent"), route)?,
            sse_bytes: r.counter_vec(opts("sse_bytes_sent_total", "SSE bytes sent"), route)?,
            sse_duration: r.histogram_vec(
                secs("sse_session_duration_seconds", "SSE stream length").buckets(SESSION_BUCKETS),
                route,
            )?,
            tasks: TaskFamilies::register(r, &opts)?,
            clients: ClientFamilies::register(r, &opts)?,
            debug: DebugOptions {
                events_heartbeat: self.events_heartbeat.unwrap_or(DEFAULT_EVENTS_HEARTBEAT),
                events_max_clients: self
                    .events_max_clients
                    .unwrap_or(DEFAULT_EVENTS_MAX_CLIENTS),
                events_buffer: self.events_buffer.unwrap_or(DEFAULT_EVENTS_BUFFER).max(1),
                window: DEFAULT_WINDOW,
            },
            connection: ConnectionOptions {
                header_read_timeout: self
                    .header_read_timeout
                    .unwrap_or(Some(DEFAULT_HEADER_READ_TIMEOUT)),
                listen_backlog: self.listen_backlog.unwrap_or(DEFAULT_LISTEN_BACKLOG),
            },
            credentials: self.credentials,
            history: {
                let (every, capacity) = self
                    .history
                    .unwrap_or((DEFAULT_HISTORY_INTERVAL, DEFAULT_HISTORY_CAPACITY));
                History::new(every, capacity)
            },
            push: None,
            push_client: None,
            client_caller: self
                .push
                .as_ref()
                .filter(|c| crate::push::valid_caller(c.service.as_bytes()))
                .and_then(|c| http::HeaderValue::from_str(&c.service).ok()),
            registry: registry.clone(),
            namespace,
            started: Instant::now(),
        };
        if !self.without_process {
            registry.register_collector(ProcessCollector::new());
        }
        if !self.without_runtime {
            if let Some(runtime) = RuntimeCollector::current() {
                registry.register_collector(runtime);
            }
        }
        registry.register_collector(Uptime::new(name("server_uptime_seconds"), handles.started));
        let mut handles = handles;
        if let Some(config) = &self.push {
            let aggregator = Arc::new(Aggregator::new(config, &registry)?);
            handles.push_client = Some(PushClient::start(config, aggregator.clone(), &registry)?);
            handles.push = Some(aggregator);
        }
        Ok(ServerMetrics {
            inner: Arc::new(handles),
            server: 0,
        })
    }
}

/// Refuses server declarations `build` cannot label: too many, a name
/// that is not a plain label value or only digits, or a name twice.
fn check_servers(servers: &[Option<String>]) -> Result<(), vitals::Error> {
    let metric = "server_connections_total".to_owned();
    if servers.len() > crate::servers::MAX_SERVERS {
        return Err(vitals::Error::TooManyLabels {
            metric,
            count: servers.len(),
            max: crate::servers::MAX_SERVERS,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for name in servers.iter().flatten() {
        let plain = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.bytes().all(|b| b.is_ascii_digit());
        if !plain {
            return Err(vitals::Error::InvalidLabelName {
                metric,
                label: format!("server={name}"),
                reason: "a server name is 1 to 64 ASCII letters, digits, '-', '_' or '.', \
                         and not only digits",
            });
        }
        if !seen.insert(name.as_str()) {
            return Err(vitals::Error::DuplicateLabel {
                metric,
                label: format!("server={name}"),
            });
        }
    }
    Ok(())
}
