//! One outbound call from start to end ([`Call`]): the headers it adds
//! (caller, `traceparent`), time to first byte, the connection it used,
//! and the record made exactly once when the response body completes,
//! fails or is dropped, or the call fails without a response.

use super::cache::CachedCall;
use super::error_kind::ErrorKind;
use super::metrics::{ClientMetrics, ClientShared};
use crate::labels::method_label;
use http::{HeaderName, HeaderValue, Request, Response};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use vitals::Event;

/// Header of the W3C trace context.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `x-vitals-caller` ([`vitals::wire::CALLER_HEADER`]), parsed once.
const CALLER: HeaderName = HeaderName::from_static("x-vitals-caller");

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

/// Two lower-case hex digits per byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    pairs
};

thread_local! {
    /// Per-thread wyrand state, seeded once from the OS-seeded thread RNG:
    /// trace ids need to be unique, not secret, and this costs a few
    /// instructions per id instead of a ChaCha block.
    static TRACE_RNG: std::cell::Cell<u64> = std::cell::Cell::new(rand::random::<u64>() | 1);
}

/// The next 64 random bits of this thread's wyrand.
fn next_u64() -> u64 {
    TRACE_RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    })
}

/// Writes `value`'s bytes as hex into `out`.
fn hex_into(out: &mut [u8], value: &[u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(value) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// A fresh `traceparent` value: version 00, a random trace and parent id
/// (never all zeros), sampled.
fn new_traceparent() -> HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let (hi, lo, parent) = (next_u64(), next_u64() | 1, next_u64() | 1);
    hex_into(&mut out[3..19], &hi.to_be_bytes());
    hex_into(&mut out[19..35], &lo.to_be_bytes());
    hex_into(&mut out[36..52], &parent.to_be_bytes());
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Everything needed to record one call when it ends; records once.
pub(crate) struct Call {
    shared: Arc<ClientShared>,
    start: Instant,
    method: &'static str,
    /// The `host` label and the URI authority it came from, unless the
    /// cache holds this call's.
    host: Option<(Box<str>, Box<str>)>,
    /// The cache holds this call's method and host.
    hit: bool,
    status: Option<http::StatusCode>,
    done: bool,
}

impl Call {
    /// Opens the record of `req` and adds the caller and `traceparent`
    /// headers (a `traceparent` already there is kept).
    pub(crate) fn start<B>(metrics: &ClientMetrics, req: &mut Request<B>) -> Call {
        let start = Instant::now();
        let method = method_label(req.method());
        let authority = match &metrics.peer {
            Some(_) => "",
            None => req.uri().authority().map_or("", |a| a.as_str()),
        };
        let shared = &metrics.shared;
        let hit = shared
            .cache
            .get()
            .is_some_and(|c| c.method == method && *c.authority == *authority);
        let host = (!hit).then(|| (host_label(metrics, req.uri()), authority.into()));
        let headers = req.headers_mut();
        if let Some(caller) = &metrics.caller {
            headers.insert(CALLER, caller.clone());
        }
        if let http::header::Entry::Vacant(slot) = headers.entry(TRACEPARENT) {
            slot.insert(new_traceparent());
        }
        shared.active.inc();
        Call {
            shared: shared.clone(),
            start,
            method,
            host,
            hit,
            status: None,
            done: false,
        }
    }

    /// The `host` label of this call.
    fn host(&self) -> &str {
        match (&self.host, self.shared.cache.get()) {
            (Some((h, _)), _) => h,
            (None, Some(c)) => &c.host,
            (None, None) => "unknown",
        }
    }

    /// The response headers arrived: time to first byte, and whether the
    /// connection was reused (when an instrumented connector opened it).
    pub(crate) fn headers<B>(&mut self, res: &Response<B>) {
        let status = res.status();
        self.status = Some(status);
        let elapsed = self.start.elapsed().as_secs_f64();
        let s = &self.shared;
        match s.cache.get().filter(|_| self.hit) {
            Some(c) => c.first_byte.record(elapsed),
            None => {
                let f = &s.families;
                let host = self.host();
                let first_byte = f.first_byte.get(&[&*s.name, self.method, host]);
                first_byte.record(elapsed);
                if status.is_success() && s.cache.get().is_none() {
                    let authority = self.authority_for_cache();
                    let cached = CachedCall {
                        method: self.method,
                        authority,
                        host: host.into(),
                        status,
                        requests: f
                            .requests
                            .get(&[&*s.name, self.method, host, status.as_str()])
                            .clone(),
                        duration: f.duration.get(&[&*s.name, self.method, host]).clone(),
                        first_byte: first_byte.clone(),
                    };
                    // A concurrent first call may have filled it: either
                    // way the handles are the same series.
                    let _ = s.cache.set(cached);
                }
            }
        }
        if let Some(mark) = res.extensions().get::<ConnectionMark>() {
            if mark.0.swap(true, Ordering::Relaxed) {
                s.reused.inc();
            }
        }
    }

    /// The authority this call's host label was made from (empty when the
    /// label is a declared peer, which is the same for every call).
    fn authority_for_cache(&self) -> Box<str> {
        self.host
            .as_ref()
            .map_or_else(Box::default, |(_, a)| a.clone())
    }

    /// The call ended: with its response (`Ok`) or without (`Err`).
    pub(crate) fn finish(&mut self, outcome: Result<(), ErrorKind>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let s = &self.shared;
        let f = &s.families;
        // A body that failed after the headers still has its status.
        let status = match (self.status, outcome) {
            (Some(st), Ok(())) => Some(st),
            _ => None,
        };
        let cached = s.cache.get().filter(|_| self.hit);
        let (client, method, host) = (&*s.name, self.method, self.host());
        match cached {
            Some(c) if status == Some(c.status) => c.requests.inc(),
            _ => {
                let code = match &status {
                    Some(st) => st.as_str(),
                    None => "error",
                };
                f.requests.get(&[client, method, host, code]).inc();
            }
        }
        match cached {
            Some(c) => c.duration.record(elapsed),
            None => f.duration.get(&[client, method, host]).record(elapsed),
        }
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
