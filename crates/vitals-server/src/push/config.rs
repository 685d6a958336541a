//! [`PushConfig`]: where and how to push, with every push default.

use super::error::PushError;
use super::limits::{MAX_INTERVAL, MAX_NAME_LEN};
#[cfg(feature = "push-tls")]
use super::tls;
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
/// Default most distinct callers; more are aggregated as
/// [`OVERFLOW_CALLER`](super::OVERFLOW_CALLER).
pub const DEFAULT_MAX_CALLERS: usize = 100;
/// Default most custom series per batch (the collector's default limit).
pub const DEFAULT_MAX_CUSTOM: usize = 1000;
/// Where and how to push request aggregates; see the [module docs](super).
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
    pub(crate) custom: CustomSelection,
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
            custom: CustomSelection {
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
    /// calls. See [`custom`](super::custom) for what is sent.
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

/// Which families of the server's registry to push: exact names and name
/// prefixes (applied by [`custom`](super::custom)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CustomSelection {
    pub(crate) names: Vec<String>,
    pub(crate) prefixes: Vec<String>,
    pub(crate) max: usize,
}

impl CustomSelection {
    /// Nothing chosen: the registry is not read at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty() && self.prefixes.is_empty()
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
