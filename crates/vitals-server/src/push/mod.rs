//! The push client: per-interval request aggregates sent to a collector.
//!
//! When [`ServerMetricsBuilder::push`](crate::ServerMetricsBuilder::push) is
//! given a [`PushConfig`], the HTTP layer also aggregates every request per
//! (method, route, status class, caller): counts, errors, Apdex counts and a
//! duration sketch in milliseconds, plus a bounded random sample of
//! individual requests. A background task closes an interval every
//! [`PushConfig::interval`], turns it into a [`vitals::wire::IngestBatch`]
//! and POSTs it to `<collector>/v1/ingest`.
//!
//! ```no_run
//! use std::time::Duration;
//! use vitals_server::{PushConfig, ServerMetrics};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = ServerMetrics::builder()
//!     .push(
//!         PushConfig::new("http://127.0.0.1:7070", "ingest-key")?
//!             .service("checkout")
//!             .instance("checkout-1")
//!             .interval(Duration::from_secs(10))
//!             .apdex_t(Duration::from_millis(300)),
//!     )
//!     .build()?;
//! // … serve the app with `metrics.layer()` …
//! // After `serve` returns: deliver the last interval, then stop.
//! metrics.finish_push(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! An interval without requests is still pushed (with no routes), so the
//! collector can tell an idle instance from one that is gone.
//!
//! The application's own metrics can ride along as the batch's custom
//! metrics: choose families of the server's registry by name or prefix
//! with [`PushConfig::push_metrics`] / [`PushConfig::push_metrics_prefix`]
//! (counters and gauges per series with their labels; histograms as
//! `<name>_count` and `<name>_sum` counters). They are read once per
//! interval by the push task; see [`custom`] for the rules.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use vitals_server::{PushConfig, ServerMetrics};
//!
//! let registry = vitals::Registry::new();
//! let orders = registry.counter_vec(("orders_total", "Orders placed"), &["shop"])?;
//! let metrics = ServerMetrics::builder()
//!     .registry(registry.clone())
//!     .push(
//!         PushConfig::new("http://127.0.0.1:7070", "ingest-key")?
//!             .service("checkout")
//!             .push_metrics(["orders_total", "queue_depth"])
//!             .push_metrics_prefix("checkout_"),
//!     )
//!     .build()?;
//! orders.get(&["eu"]).inc();
//! # Ok(()) }
//! ```
//!
//! Delivery: batches wait in a bounded queue (oldest dropped first when it
//! is full, counted in `vitals_push_dropped_total{reason="queue_full"}`).
//! Connection errors, timeouts, `5xx` and `429` are retried with
//! exponential backoff and full jitter (`Retry-After` is honoured, capped);
//! a retry sends the same bytes, so the same `batch_id`. Any other `4xx` is
//! not retried and counts as `vitals_push_batches_total{result="rejected"}`.
//! Requests never wait for any of it: the layer only touches atomics and,
//! when a request is sampled, one short mutex.
//!
//! Every failed attempt is also counted by why it failed in
//! `vitals_push_failures_total{reason}`: `connect`, `tls` (handshake or
//! certificate refused), `timeout`, `server_error` (5xx), `throttled`
//! (429 or 408) or `protocol`. A batch is attempted at most
//! [`PushConfig::max_attempts`] times, then dropped and counted in
//! `vitals_push_dropped_total{reason="retries_exhausted"}`.
//!
//! Transport: hyper-util's client (the one HTTP stack of the workspace),
//! `http://` always; `https://` with the default feature `push-tls`, through
//! rustls (ring provider, HTTP/1.1). The server certificate is checked
//! against Mozilla's root certificates (from the `webpki-roots` crate, so
//! nothing is read from the operating system) plus any private CA given to
//! [`PushConfig::root_certificate_pem`]. A certificate that is not trusted
//! fails the attempt (`reason="tls"`) and is retried like a connection
//! error, since a collector's certificate can be fixed while batches wait.

mod aggregate;
mod caller;
mod client;
pub mod custom;
mod ended;
mod sample;
#[cfg(feature = "push-tls")]
mod tls;

pub use caller::{
    CallerLayer, CallerService, INVALID_CALLER, MAX_CALLER_LEN, OVERFLOW_CALLER, parse_traceparent,
    set_caller, valid_caller,
};
pub use client::{FlushReport, PushClient};

pub(crate) use aggregate::{Aggregator, PushRequest, Series};
pub(crate) use ended::Ended;

use std::time::Duration;

/// Default time between two pushed batches.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default number of requests sampled per interval.
pub const DEFAULT_SAMPLE_SIZE: usize = 100;
/// Default number of batches kept while the collector cannot be reached.
pub const DEFAULT_QUEUE_CAPACITY: usize = 30;
/// Default most (method, route, status class, caller) series aggregated;
/// more fall into one `route="overflow"` series per status class.
pub const DEFAULT_MAX_SERIES: usize = 2000;
/// Default most distinct callers; more are aggregated as [`OVERFLOW_CALLER`].
pub const DEFAULT_MAX_CALLERS: usize = 100;
/// Default most custom series per batch (the collector's default limit).
pub const DEFAULT_MAX_CUSTOM: usize = 1000;
/// Longest sampled path kept, in bytes (longer ones are cut at a character
/// boundary).
pub const MAX_SAMPLED_PATH_LEN: usize = 256;
/// Bodies at least this large are sent gzip-compressed.
pub const GZIP_MIN_BYTES: usize = 1024;
/// Longest wait a `Retry-After` answer can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest service or instance name kept, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest route template pushed, in bytes (longer ones are cut at a
/// character boundary); the collector refuses batches with longer ones.
pub const MAX_ROUTE_LEN: usize = 256;
/// Longest duration pushed, in milliseconds (one hour): longer requests are
/// recorded as this long, since the collector refuses batches holding longer
/// ones. WebSocket sessions and SSE streams are not timed at all.
pub const MAX_DURATION_MS: f64 = 3_600_000.0;
/// Longest push interval (one hour), as the collector accepts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Why a push configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The collector address is not an `http://` or `https://`
    /// `host[:port][/prefix]` URL (`https://` needs the `push-tls` feature).
    #[error("invalid collector URL {url:?}: {reason} (expected e.g. \"http://127.0.0.1:7070\")")]
    InvalidCollectorUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key cannot be sent in an `Authorization` header.
    #[error(
        "invalid push key: it must be visible ASCII (it is sent as `Authorization: Bearer <key>`)"
    )]
    InvalidKey,
    /// A caller name is empty, too long or has characters other than
    /// ASCII letters, digits and `-_.:`.
    #[error(
        "invalid caller name {caller:?}: use 1 to {MAX_CALLER_LEN} ASCII letters, digits or -_.:"
    )]
    InvalidCaller {
        /// The name given.
        caller: String,
    },
    /// A root certificate given to [`PushConfig::root_certificate_pem`]
    /// cannot be used.
    #[error("invalid root certificate: {reason} (expected one or more PEM \"CERTIFICATE\" blocks)")]
    InvalidRootCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client could not be set up (the crypto provider refused the
    /// protocol versions); not expected with the built-in ring provider.
    #[error("cannot set up TLS for the push client: {reason}")]
    Tls {
        /// What rustls said.
        reason: String,
    },
}

/// Where and how to push request aggregates; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub(crate) ingest_uri: http::Uri,
    pub(crate) authorization: http::HeaderValue,
    pub(crate) service: String,
    pub(crate) instance: String,
    pub(crate) interval: Duration,
    pub(crate) apdex_t_ms: f64,
    pub(crate) sample_size: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_series: usize,
    pub(crate) max_callers: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) max_attempts: u32,
    /// TLS settings for `https://` (also built for `http://`, so a bad
    /// root certificate is refused at configuration time either way).
    #[cfg(feature = "push-tls")]
    pub(crate) tls: tls::TlsSettings,
    pub(crate) custom: custom::CustomSelection,
}

impl PushConfig {
    /// Pushes to the collector at `collector` (`http://host:port` or, with
    /// the `push-tls` feature, `https://host:port`, with an optional path
    /// prefix) with `key` as the bearer token.
    pub fn new(collector: &str, key: &str) -> Result<Self, PushError> {
        let bad = |reason| PushError::InvalidCollectorUrl {
            url: collector.to_owned(),
            reason,
        };
        let base: http::Uri = collector.parse().map_err(|_| bad("not a URL"))?;
        let scheme = match base.scheme_str() {
            Some("http") => "http",
            #[cfg(feature = "push-tls")]
            Some("https") => "https",
            #[cfg(not(feature = "push-tls"))]
            Some("https") => {
                return Err(bad(
                    "https:// needs the vitals-server feature \"push-tls\" (on by default)",
                ));
            }
            Some(_) => return Err(bad("only http:// and https:// are supported")),
            None => return Err(bad("no scheme")),
        };
        let authority = base.authority().ok_or_else(|| bad("no host"))?.clone();
        if base.query().is_some() {
            return Err(bad("a query string is not allowed"));
        }
        let prefix = base.path().trim_end_matches('/');
        let ingest_uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(format!("{prefix}{}", vitals::wire::INGEST_PATH))
            .build()
            .map_err(|_| bad("not a URL"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PushError::InvalidKey);
        }
        let mut authorization = http::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| PushError::InvalidKey)?;
        authorization.set_sensitive(true);
        Ok(PushConfig {
            ingest_uri,
            authorization,
            service: "unknown".to_owned(),
            instance: default_instance(),
            interval: DEFAULT_INTERVAL,
            apdex_t_ms: vitals::wire::DEFAULT_APDEX_T_MS,
            sample_size: DEFAULT_SAMPLE_SIZE,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_series: DEFAULT_MAX_SERIES,
            max_callers: DEFAULT_MAX_CALLERS,
            request_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            max_attempts: 10,
            #[cfg(feature = "push-tls")]
            tls: tls::TlsSettings::new()?,
            custom: custom::CustomSelection {
                max: DEFAULT_MAX_CUSTOM,
                ..Default::default()
            },
        })
    }

    /// Also trusts the CA certificates in `pem` (one or more PEM
    /// `CERTIFICATE` blocks) for an `https://` collector, besides Mozilla's
    /// roots: for a collector whose certificate a private CA signed. Can be
    /// called more than once; each call adds. Errors when `pem` holds no
    /// certificate or one that cannot be parsed.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pem = std::fs::read("/etc/vitals/collector-ca.pem")?;
    /// let push = vitals_server::PushConfig::new("https://collector.internal:7443", "key")?
    ///     .root_certificate_pem(&pem)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "push-tls")]
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Result<Self, PushError> {
        self.tls.add_root_pem(pem)?;
        Ok(self)
    }

    /// The service name the batches carry (default `"unknown"`); cut to
    /// [`MAX_NAME_LEN`] bytes.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = cap_name(service.into());
        self
    }

    /// The instance name (default: `$HOSTNAME`, else the host name, plus the
    /// process id); cut to [`MAX_NAME_LEN`] bytes.
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = cap_name(instance.into());
        self
    }

    /// Time between batches (default 10 s, at least 10 ms, at most
    /// [`MAX_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.clamp(Duration::from_millis(10), MAX_INTERVAL);
        self
    }

    /// Apdex threshold T (default 500 ms): requests up to T are satisfied,
    /// up to 4T tolerating. A zero T is ignored.
    pub fn apdex_t(mut self, t: Duration) -> Self {
        if !t.is_zero() {
            self.apdex_t_ms = t.as_secs_f64() * 1000.0;
        }
        self
    }

    /// Requests sampled per interval (default 100; 0 turns sampling off).
    pub fn sample_size(mut self, n: usize) -> Self {
        self.sample_size = n;
        self
    }

    /// Batches kept while the collector cannot be reached (default 30, at
    /// least 1); the oldest is dropped when a new one does not fit.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Most (method, route, status class, caller) series (default 2000).
    pub fn max_series(mut self, n: usize) -> Self {
        self.max_series = n.max(1);
        self
    }

    /// Most distinct callers (default 100).
    pub fn max_callers(mut self, n: usize) -> Self {
        self.max_callers = n;
        self
    }

    /// Longest wait for one POST, connection included (default 5 s).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t.max(Duration::from_millis(1));
        self
    }

    /// Backoff between retries ("full jitter"): the wait before the n-th
    /// retry (n from 1) is a uniform random time from 0 to
    /// `min(max, base · 2^(n-1))` (defaults 250 ms and 30 s), unless the
    /// collector's `Retry-After` says how long.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_base);
        self
    }

    /// Attempts per batch before it is dropped (default 10, at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Pushes these families of the server's registry with every batch, by
    /// name: a counter by its exposed name (`orders_total`) or its family
    /// name (`orders`), a gauge or histogram by its name. Adds to earlier
    /// calls. See [`custom`] for what is sent.
    pub fn push_metrics<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.custom.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Pushes every family of the server's registry whose name starts with
    /// `prefix` (e.g. `"checkout_"`). Adds to earlier calls.
    pub fn push_metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.custom.prefixes.push(prefix.into());
        self
    }

    /// Most custom series per batch (default 1000, the collector's default
    /// `max_custom_per_batch`); further series are left out and counted in
    /// `vitals_push_custom_dropped_total{reason="batch_limit"}`.
    pub fn max_custom(mut self, n: usize) -> Self {
        self.custom.max = n;
        self
    }

    /// The full ingest URL batches are posted to.
    pub fn ingest_url(&self) -> String {
        self.ingest_uri.to_string()
    }
}

fn cap_name(mut s: String) -> String {
    if s.len() > MAX_NAME_LEN {
        let mut end = MAX_NAME_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    cap_name(format!("{host}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults the docs and README promise.
    #[test]
    fn defaults() {
        assert_eq!(DEFAULT_INTERVAL, Duration::from_secs(10));
        let c = PushConfig::new("http://127.0.0.1:7070", "k").unwrap();
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(
            (c.backoff_base, c.backoff_max, c.max_attempts),
            (Duration::from_millis(250), Duration::from_secs(30), 10)
        );
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(
            (c.sample_size, c.queue_capacity, c.service.as_str()),
            (100, 30, "unknown")
        );
        // The bounds `interval` clamps to.
        assert_eq!(
            c.clone().interval(Duration::ZERO).interval,
            Duration::from_millis(10)
        );
        assert_eq!(
            c.interval(Duration::from_secs(86_400)).interval,
            MAX_INTERVAL
        );
    }

    #[test]
    fn config_validates_url_and_key() {
        let c = PushConfig::new("http://127.0.0.1:7070", "k").unwrap();
        assert_eq!(c.ingest_url(), "http://127.0.0.1:7070/v1/ingest");
        let c = PushConfig::new("http://collector:80/base/", "k").unwrap();
        assert_eq!(c.ingest_url(), "http://collector:80/base/v1/ingest");
        for bad in [
            "ftp://x",
            "127.0.0.1:7070",
            "http://",
            "not a url",
            "http://x/?a=1",
        ] {
            assert!(
                matches!(
                    PushConfig::new(bad, "k"),
                    Err(PushError::InvalidCollectorUrl { .. })
                ),
                "{bad}"
            );
        }
        let msg = PushConfig::new("ftp://c:1", "k").unwrap_err().to_string();
        assert!(
            msg.contains("\"ftp://c:1\"") && msg.contains("only http:// and https://"),
            "{msg}"
        );
        #[cfg(feature = "push-tls")]
        assert_eq!(
            PushConfig::new("https://c/base", "k").unwrap().ingest_url(),
            "https://c/base/v1/ingest"
        );
        #[cfg(not(feature = "push-tls"))]
        {
            let msg = PushConfig::new("https://c:1", "k").unwrap_err().to_string();
            assert!(msg.contains("push-tls"), "{msg}");
        }
        for bad in ["", "a b", "é", "a\nb"] {
            assert_eq!(
                PushConfig::new("http://x", bad).unwrap_err(),
                PushError::InvalidKey
            );
        }
        let long = "x".repeat(300);
        assert_eq!(
            PushConfig::new("http://x", "k")
                .unwrap()
                .service(long)
                .service
                .len(),
            MAX_NAME_LEN
        );
    }
}
