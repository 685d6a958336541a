//! One outbound call from start to end ([`Call`]): the headers it adds
//! (caller, `traceparent`), time to first byte, the connection it used,
//! and the record made exactly once when the response body completes,
//! fails or is dropped, or the call fails without a response.

use super::error_kind::ErrorKind;
use super::metrics::ClientMetrics;
use crate::labels::method_label;
use http::{HeaderValue, Request, Response};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use vitals::Event;

/// Header of the W3C trace context.
const TRACEPARENT: &str = "traceparent";

/// Marks a connection an instrumented connector opened: put in each
/// response's extensions by hyper-util's client, so the layer can tell a
/// first request on it from a reused connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMark(pub(crate) Arc<AtomicBool>);

/// The `host` label of a request: the declared peer, else the URI's
/// `host[:port]` (lower case), else `unknown` (a relative URI).
fn host_label(metrics: &ClientMetrics, uri: &http::Uri) -> Box<str> {
    if let Some(peer) = &metrics.peer {
        return (**peer).into();
    }
    match uri.authority() {
        Some(a) => {
            let host = a.host();
            let mut s = String::with_capacity(host.len() + 6);
            s.push_str(host);
            if let Some(port) = a.port_u16() {
                let _ = write!(s, ":{port}");
            }
            s.make_ascii_lowercase();
            s.into()
        }
        None => "unknown".into(),
    }
}

/// A fresh `traceparent` value: version 00, a random trace and parent id,
/// sampled.
fn new_traceparent() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let trace: u128 = rand::random::<u128>() | 1;
    let parent: u64 = rand::random::<u64>() | 1;
    for i in 0..32 {
        out[3 + i] = HEX[((trace >> (124 - 4 * i)) & 0xf) as usize];
    }
    for i in 0..16 {
        out[36 + i] = HEX[((parent >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Everything needed to record one call when it ends; records once.
pub(crate) struct Call {
    metrics: ClientMetrics,
    start: Instant,
    method: &'static str,
    host: Box<str>,
    status: Option<http::StatusCode>,
    done: bool,
}

impl Call {
    /// Opens the record of `req` and adds the caller and `traceparent`
    /// headers (a `traceparent` already there is kept).
    pub(crate) fn start<B>(metrics: &ClientMetrics, req: &mut Request<B>) -> Call {
        let headers = req.headers_mut();
        if let Some(caller) = &metrics.caller {
            headers.insert(vitals::wire::CALLER_HEADER, caller.clone());
        }
        if !headers.contains_key(TRACEPARENT) {
            headers.insert(TRACEPARENT, new_traceparent());
        }
        metrics.shared.active.inc();
        Call {
            metrics: metrics.clone(),
            start: Instant::now(),
            method: method_label(req.method()),
            host: host_label(metrics, req.uri()),
            status: None,
            done: false,
        }
    }

    /// The response headers arrived: time to first byte, and whether the
    /// connection was reused (when an instrumented connector opened it).
    pub(crate) fn headers<B>(&mut self, res: &Response<B>) {
        self.status = Some(res.status());
        let s = &self.metrics.shared;
        s.families
            .first_byte
            .get(&[&*s.name, self.method, &self.host])
            .record(self.start.elapsed().as_secs_f64());
        if let Some(mark) = res.extensions().get::<ConnectionMark>() {
            if mark.0.swap(true, Ordering::Relaxed) {
                s.reused.inc();
            }
        }
    }

    /// The call ended: with its response (`Ok`) or without (`Err`).
    pub(crate) fn finish(&mut self, outcome: Result<(), ErrorKind>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let s = &self.metrics.shared;
        let f = &s.families;
        let (client, method, host) = (&*s.name, self.method, &*self.host);
        // A body that failed after the headers still has its status.
        let status = match (self.status, outcome) {
            (Some(st), Ok(())) => Some(st),
            _ => None,
        };
        let code = match &status {
            Some(st) => st.as_str(),
            None => "error",
        };
        f.requests.get(&[client, method, host, code]).inc();
        f.duration.get(&[client, method, host]).record(elapsed);
        if let Err(kind) = outcome {
            f.errors.get(&[client, method, host, kind.as_str()]).inc();
        }
        s.active.dec();
        if let Some(push) = &s.push {
            let class = status.map_or(0, |st| (st.as_u16() / 100) as u8);
            let error = outcome.is_err() || status.is_some_and(|st| st.is_server_error());
            push.clients
                .record(&s.name, host, method, class, error, elapsed);
        }
        s.registry
            .events()
            .emit_with(|| Event::ClientRequestCompleted {
                client: client.to_owned(),
                method: method.to_owned(),
                host: host.to_owned(),
                status: status.map(|st| st.as_u16()),
                error: outcome.err().map(|k| k.as_str().to_owned()),
                duration_secs: elapsed,
            });
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before an end was recorded: the caller gave up on the
        // response future (a timeout of its own) or dropped the body
        // unread. With headers, the response counts as received.
        if self.status.is_some() {
            self.finish(Ok(()));
        } else {
            self.finish(Err(ErrorKind::Timeout));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_valid_and_distinct() {
        let a = new_traceparent();
        let b = new_traceparent();
        assert_ne!(a, b);
        assert!(
            crate::push::parse_traceparent(a.as_bytes()).is_some(),
            "{a:?}"
        );
    }
}
