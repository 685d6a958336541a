//! Delivering one batch: its encoding (gzip past a size), the POST and
//! what the collector's answer means ([`Delivery`], [`Failure`]), and the
//! wait before a retry (backoff with full jitter, or `Retry-After`).

use super::config::PushConfig;
use super::limits::{GZIP_MIN_BYTES, MAX_RETRY_AFTER};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::io::Write;
use std::time::Duration;

/// Most bytes read from a collector's answer (then discarded).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The connector: `http://` only, or both schemes with `push-tls`.
#[cfg(feature = "push-tls")]
pub(super) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "push-tls"))]
pub(super) type Connector = HttpConnector;

/// Why one delivery attempt failed (the `reason` of
/// `vitals_push_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No TCP connection (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake failed, e.g. a certificate not trusted.
    Tls,
    /// No complete answer within the request timeout.
    Timeout,
    /// The collector answered 5xx.
    ServerError,
    /// The collector answered 429 or 408.
    Throttled,
    /// The connection broke mid-exchange or the answer was not HTTP.
    Protocol,
}

impl Failure {
    pub(super) const ALL: [Failure; 6] = [
        Failure::Connect,
        Failure::Tls,
        Failure::Timeout,
        Failure::ServerError,
        Failure::Throttled,
        Failure::Protocol,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::Timeout => "timeout",
            Failure::ServerError => "server_error",
            Failure::Throttled => "throttled",
            Failure::Protocol => "protocol",
        }
    }

    /// Classifies a request the client could not complete.
    fn of(err: &hyper_util::client::legacy::Error) -> Failure {
        #[cfg(feature = "push-tls")]
        if super::tls::is_tls_error(err) {
            return Failure::Tls;
        }
        if err.is_connect() {
            Failure::Connect
        } else {
            Failure::Protocol
        }
    }
}

/// How one delivery attempt ended.
pub(super) enum Delivery {
    Sent,
    Rejected,
    /// Failed; may be retried, after the given wait if the collector said.
    Retry(Failure, Option<Duration>),
}

/// How long to wait before sending a batch again after its `attempts`-th
/// failed attempt: the collector's `Retry-After` when it gave one (already
/// capped at [`MAX_RETRY_AFTER`]), else [`full_jitter`] backoff.
pub(super) fn retry_wait(
    config: &PushConfig,
    attempts: u32,
    retry_after: Option<Duration>,
) -> Duration {
    retry_after.unwrap_or_else(|| {
        let cap = backoff_cap(config.backoff_base, config.backoff_max, attempts);
        full_jitter(cap, rand::random_range(0.0..=1.0))
    })
}

/// The longest wait after the `attempts`-th failed attempt:
/// `min(max, base · 2^(attempts-1))`, so `base` after the first failure,
/// doubling with each further one up to `max` (0 attempts counts as 1).
fn backoff_cap(base: Duration, max: Duration, attempts: u32) -> Duration {
    // 2^30 × even 1 ms is past any sensible `max`; stops overflow.
    let doublings = attempts.saturating_sub(1).min(30) as i32;
    let cap = (base.as_secs_f64() * 2f64.powi(doublings)).min(max.as_secs_f64());
    Duration::from_secs_f64(cap)
}

/// "Full jitter" (AWS architecture blog): the wait is `cap × unit` for a
/// uniform random `unit` in `[0, 1]`, so retries of many clients that
/// failed together spread over the whole window instead of arriving at
/// once. `unit` outside `[0, 1]` is clamped.
fn full_jitter(cap: Duration, unit: f64) -> Duration {
    cap.mul_f64(unit.clamp(0.0, 1.0))
}

/// The JSON body, gzip-compressed when at least [`GZIP_MIN_BYTES`].
pub(super) fn encode(json: Vec<u8>) -> (Bytes, bool) {
    if json.len() < GZIP_MIN_BYTES {
        return (json.into(), false);
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    match gz.write_all(&json).and_then(|()| gz.finish()) {
        Ok(compressed) => (compressed.into(), true),
        Err(_) => (json.into(), false),
    }
}

/// POSTs one batch and says what its answer means (within `timeout`).
pub(super) async fn send(
    client: &Client<Connector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Delivery {
    let exchange = async {
        let response = client.request(request).await.map_err(|e| Failure::of(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(parse_retry_after);
        // Read (a bounded part of) the answer so the connection can be reused.
        let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await;
        Ok::<_, Failure>((status, retry_after))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, _))) if status.is_success() => Delivery::Sent,
        Ok(Ok((status, after))) if status.is_server_error() => {
            Delivery::Retry(Failure::ServerError, after)
        }
        Ok(Ok((status, after)))
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT =>
        {
            Delivery::Retry(Failure::Throttled, after)
        }
        // Other 4xx (and 1xx/3xx, which a collector never sends): retrying
        // the same bytes cannot succeed.
        Ok(Ok(_)) => Delivery::Rejected,
        Ok(Err(failure)) => Delivery::Retry(failure, None),
        Err(_) => Delivery::Retry(Failure::Timeout, None),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, capped at
/// [`MAX_RETRY_AFTER`]; `None` when unreadable.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = if let Ok(secs) = text.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(text).ok()?;
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let v = |s: &str| parse_retry_after(&HeaderValue::from_str(s).unwrap());
        assert_eq!(v("3"), Some(Duration::from_secs(3)));
        assert_eq!(v("999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(v("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(v("-1"), None);
        assert_eq!(v("soon"), None);
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_cap_doubles_per_attempt_up_to_the_maximum() {
        let caps: Vec<Duration> = (1..=10)
            .map(|n| backoff_cap(MS(250), MS(30_000), n))
            .collect();
        assert_eq!(
            caps,
            [
                250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000
            ]
            .map(MS)
        );
        assert_eq!(backoff_cap(MS(250), MS(30_000), 0), MS(250));
        // Far past the doubling limit: the maximum, no overflow or panic.
        assert_eq!(backoff_cap(MS(250), MS(30_000), u32::MAX), MS(30_000));
        assert_eq!(backoff_cap(MS(1), MS(3_600_000), 200), MS(3_600_000));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_cap() {
        let cap = MS(8000);
        assert_eq!(full_jitter(cap, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(cap, 1.0), cap);
        assert_eq!(full_jitter(cap, 0.25), MS(2000));
        assert_eq!(full_jitter(cap, -3.0), Duration::ZERO);
        assert_eq!(full_jitter(cap, 7.0), cap);
    }

    /// Many real draws stay inside `[0, cap]` for every attempt, differ
    /// from each other, and fill both halves of the window: a constant or
    /// "equal jitter" (`cap/2 + …`) backoff fails this.
    #[test]
    fn retry_waits_are_random_within_the_cap() {
        let config = PushConfig::new("http://127.0.0.1:1", "k")
            .unwrap()
            .backoff(MS(100), MS(1600));
        for attempts in 1..=8 {
            let cap = backoff_cap(MS(100), MS(1600), attempts);
            let waits: Vec<Duration> = (0..200)
                .map(|_| retry_wait(&config, attempts, None))
                .collect();
            assert!(waits.iter().all(|w| *w <= cap), "{attempts}: {waits:?}");
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(distinct.len() > 150, "{attempts}: {distinct:?}");
            let low = waits.iter().filter(|w| **w < cap / 2).count();
            // 200 fair coin flips: outside 40..=160 has odds below 1e-15.
            assert!(
                (40..=160).contains(&low),
                "{attempts}: {low} of 200 below cap/2"
            );
        }
        // The mean grows with the cap (about cap/2).
        let mean = |attempts| {
            (0..400)
                .map(|_| retry_wait(&config, attempts, None).as_secs_f64())
                .sum::<f64>()
                / 400.0
        };
        let (first, fifth) = (mean(1), mean(5));
        assert!(first < 0.1 && fifth > 0.5, "means {first} s, {fifth} s");
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let config = PushConfig::new("http://127.0.0.1:1", "k")
            .unwrap()
            .backoff(MS(100), MS(200));
        for attempts in [1, 5, 50] {
            for after in [
                Duration::ZERO,
                MS(150),
                Duration::from_secs(120),
                MAX_RETRY_AFTER,
            ] {
                assert_eq!(retry_wait(&config, attempts, Some(after)), after);
            }
        }
    }

    #[test]
    fn large_bodies_are_gzipped() {
        let (small, gz) = encode(b"{}".to_vec());
        assert!(!gz);
        assert_eq!(&small[..], b"{}");
        let json = format!("[{}]", vec!["1"; 2000].join(","));
        let (body, gz) = encode(json.clone().into_bytes());
        assert!(gz && body.len() < json.len());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
            .unwrap();
        assert_eq!(out, json);
    }
}
