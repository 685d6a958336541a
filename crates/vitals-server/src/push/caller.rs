//! The caller header on both sides: validating what arrives, setting it on
//! what leaves, and the W3C `traceparent` trace id.

use super::error::PushError;
use super::limits::MAX_CALLER_LEN;
use http::{HeaderMap, HeaderValue, Request};
use std::task::{Context, Poll};
use tower::{Layer, Service};
use vitals::wire::CALLER_HEADER;

/// Caller recorded when the `x-vitals-caller` header is malformed.
pub const INVALID_CALLER: &str = "invalid";
/// Caller recorded once the distinct-caller limit is reached.
pub const OVERFLOW_CALLER: &str = "_overflow";

/// True when `name` is a caller name the server accepts: 1 to
/// [`MAX_CALLER_LEN`] ASCII letters, digits, `-`, `_`, `.` or `:`.
#[inline]
pub fn valid_caller(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CALLER_LEN
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Sets `x-vitals-caller: service` on outgoing request headers, so the
/// called service's push client attributes the request to `service`.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// vitals_server::set_caller(&mut headers, "checkout").unwrap();
/// assert_eq!(headers["x-vitals-caller"], "checkout");
/// assert!(vitals_server::set_caller(&mut headers, "no spaces").is_err());
/// ```
pub fn set_caller(headers: &mut HeaderMap, service: &str) -> Result<(), PushError> {
    headers.insert(CALLER_HEADER, caller_value(service)?);
    Ok(())
}

fn caller_value(service: &str) -> Result<HeaderValue, PushError> {
    if !valid_caller(service.as_bytes()) {
        return Err(PushError::InvalidCaller {
            caller: service.to_owned(),
        });
    }
    HeaderValue::from_str(service).map_err(|_| PushError::InvalidCaller {
        caller: service.to_owned(),
    })
}

/// A tower layer for outgoing HTTP clients (hyper-util, tower-based
/// clients) that names this service in `x-vitals-caller` on every request.
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = vitals_server::CallerLayer::new("checkout")?;
/// let client = layer.layer(service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers()["x-vitals-caller"].clone())
/// }));
/// let seen = client.oneshot(http::Request::new(())).await?;
/// assert_eq!(seen, "checkout");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CallerLayer {
    value: HeaderValue,
}

impl CallerLayer {
    /// A layer naming `service` as the caller; fails on a name the server
    /// side would refuse (see [`valid_caller`]).
    pub fn new(service: &str) -> Result<Self, PushError> {
        Ok(CallerLayer {
            value: caller_value(service)?,
        })
    }
}

impl<S> Layer<S> for CallerLayer {
    type Service = CallerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CallerService {
            inner,
            value: self.value.clone(),
        }
    }
}

/// The service [`CallerLayer`] produces.
#[derive(Debug, Clone)]
pub struct CallerService<S> {
    inner: S,
    value: HeaderValue,
}

impl<S, B> Service<Request<B>> for CallerService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.headers_mut().insert(CALLER_HEADER, self.value.clone());
        self.inner.call(req)
    }
}

/// The trace id of a valid W3C `traceparent` header value
/// (`00-<32 hex>-<16 hex>-<2 hex>`), or `None`: wrong length or version
/// `ff`, upper-case or non-hex digits, or an all-zero trace or parent id.
/// Later versions may append fields after a `-`, as the spec allows.
///
/// ```
/// let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// assert_eq!(
///     vitals_server::parse_traceparent(tp).as_deref(),
///     Some("4bf92f3577b34da6a3ce929d0e0e4736")
/// );
/// assert_eq!(vitals_server::parse_traceparent(b"00-xyz"), None);
/// ```
pub fn parse_traceparent(value: &[u8]) -> Option<String> {
    const LEN: usize = 55;
    if value.len() < LEN {
        return None;
    }
    let (head, rest) = value.split_at(LEN);
    let lower_hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let version = &head[0..2];
    if !lower_hex(version) || version == b"ff" {
        return None;
    }
    // Version 00 is exactly 55 bytes; later versions may add `-…` fields.
    if !rest.is_empty() && (version == b"00" || rest[0] != b'-') {
        return None;
    }
    if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
        return None;
    }
    let (trace, parent, flags) = (&head[3..35], &head[36..52], &head[53..55]);
    if !lower_hex(trace) || !lower_hex(parent) || !lower_hex(flags) {
        return None;
    }
    if trace.iter().all(|&b| b == b'0') || parent.iter().all(|&b| b == b'0') {
        return None;
    }
    // All lower-case hex, so ASCII.
    std::str::from_utf8(trace).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_names() {
        assert!(valid_caller(b"checkout"));
        assert!(valid_caller(b"svc-1.prod:eu_west"));
        assert!(valid_caller(&[b'a'; MAX_CALLER_LEN]));
        for bad in [
            &b""[..],
            b"a b",
            b"a/b",
            b"caf\xc3\xa9",
            b"a\0",
            b"a\r\nb",
            &[b'a'; MAX_CALLER_LEN + 1],
        ] {
            assert!(!valid_caller(bad), "{bad:?}");
        }
        let mut h = HeaderMap::new();
        assert!(set_caller(&mut h, "").is_err());
        assert!(h.is_empty());
    }

    #[test]
    fn traceparent() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(ok.as_bytes()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(parse_traceparent(future.as_bytes()).is_some());
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_traceparent(&[0xff; 100]), None);
    }
}
