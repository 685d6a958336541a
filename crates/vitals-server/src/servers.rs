//! Several servers in one process, one registry: the servers a
//! [`ServerMetricsBuilder`](crate::ServerMetricsBuilder) declares, the
//! `server_*` handles each one records into ([`ServerSide`]), and the
//! `server` label value that leads the HTTP families' labels.
//!
//! Servers are declared up front (`.server("public").server("admin")`),
//! never derived from traffic, so the `server` label is bounded by the
//! declaration. A process that declares none has one implicit server,
//! index 0, and its families carry no `server` label at all (the names and
//! labels of a single-server process do not change).

use vitals::{Counter, Gauge, Options, Registry};

/// Most servers one [`ServerMetrics`](crate::ServerMetrics) may declare.
pub const MAX_SERVERS: usize = 64;

/// The `server_*` handles of one server (its connections, bytes and
/// streams, and its HTTP requests in flight).
#[derive(Debug)]
pub(crate) struct ServerSide {
    /// `server` label value: the declared name, or the index when unnamed;
    /// `None` when no server was declared (no `server` label at all).
    pub(crate) label: Option<Box<str>>,
    /// The declared name, if any.
    pub(crate) name: Option<Box<str>>,
    pub(crate) connections_total: Counter,
    pub(crate) connections_active: Gauge,
    pub(crate) connections_failed: Counter,
    pub(crate) connections_idle: Gauge,
    pub(crate) connections_peer_closed: Counter,
    pub(crate) connections_timed_out: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) streams_total: Counter,
    pub(crate) streams_active: Gauge,
    pub(crate) active_requests: Gauge,
}

impl ServerSide {
    /// Calls `f` with `rest` preceded by this server's label value when the
    /// families carry a `server` label (a stack array; no allocation).
    #[inline]
    pub(crate) fn with_labels<R>(&self, rest: &[&str], f: impl FnOnce(&[&str]) -> R) -> R {
        match self.label.as_deref() {
            None => f(rest),
            Some(server) => {
                let mut all = [""; 5];
                let n = rest.len().min(4);
                all[0] = server;
                all[1..=n].copy_from_slice(&rest[..n]);
                f(&all[..=n])
            }
        }
    }
}

/// Registers the `server_*` families and resolves one [`ServerSide`] per
/// declared server (one unlabelled side when `declared` is empty).
pub(crate) fn register(
    r: &Registry,
    opts: &dyn Fn(&str, &str) -> Options,
    declared: &[Option<String>],
) -> Result<Vec<ServerSide>, vitals::Error> {
    let specs: [(&str, &str); 11] = [
        ("server_connections_total", "Connections accepted"),
        ("server_connections_active", "Connections open now"),
        (
            "server_connections_failed_total",
            "Connections that failed: accept errors, handshake and protocol errors",
        ),
        (
            "server_connections_idle",
            "Open connections with no request in flight (keep-alive)",
        ),
        (
            "server_connections_peer_closed_total",
            "Connections the peer closed while a request was in flight",
        ),
        // The byte counters carry no unit: with one the exposed name
        // would have to end in `_bytes` (`server_bytes_sent_bytes_total`),
        // and the contract's names end in `_sent_total` / `_received_total`.
        ("server_bytes_sent_total", "Bytes written to connections"),
        ("server_bytes_received_total", "Bytes read from connections"),
        ("server_streams_total", "HTTP/2 streams opened"),
        ("server_streams_active", "HTTP/2 streams open now"),
        ("http_server_active_requests", "HTTP requests in flight"),
        (
            "server_connections_timed_out_total",
            "Connections closed for sending no complete request head in time (slowloris)",
        ),
    ];
    let o = |i: usize| opts(specs[i].0, specs[i].1);
    if declared.is_empty() {
        return Ok(vec![ServerSide {
            label: None,
            name: None,
            connections_total: r.counter(o(0))?,
            connections_active: r.gauge(o(1))?,
            connections_failed: r.counter(o(2))?,
            connections_idle: r.gauge(o(3))?,
            connections_peer_closed: r.counter(o(4))?,
            connections_timed_out: r.counter(o(10))?,
            bytes_sent: r.counter(o(5))?,
            bytes_received: r.counter(o(6))?,
            streams_total: r.counter(o(7))?,
            streams_active: r.gauge(o(8))?,
            active_requests: r.gauge(o(9))?,
        }]);
    }
    let server = &["server"];
    let counters = [0, 2, 4, 5, 6, 7, 10].map(|i| r.counter_vec(o(i), server));
    let gauges = [1, 3, 8, 9].map(|i| r.gauge_vec(o(i), server));
    let [
        total,
        failed,
        peer_closed,
        sent,
        received,
        streams,
        timed_out,
    ] = counters;
    let [
        total,
        failed,
        peer_closed,
        sent,
        received,
        streams,
        timed_out,
    ] = [
        total?,
        failed?,
        peer_closed?,
        sent?,
        received?,
        streams?,
        timed_out?,
    ];
    let [active, idle, streams_active, requests_active] = gauges;
    let [active, idle, streams_active, requests_active] =
        [active?, idle?, streams_active?, requests_active?];
    Ok(declared
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let label: Box<str> = name.clone().unwrap_or_else(|| i.to_string()).into();
            let l = [&*label];
            ServerSide {
                connections_total: total.get(&l).clone(),
                connections_active: active.get(&l).clone(),
                connections_failed: failed.get(&l).clone(),
                connections_idle: idle.get(&l).clone(),
                connections_peer_closed: peer_closed.get(&l).clone(),
                connections_timed_out: timed_out.get(&l).clone(),
                bytes_sent: sent.get(&l).clone(),
                bytes_received: received.get(&l).clone(),
                streams_total: streams.get(&l).clone(),
                streams_active: streams_active.get(&l).clone(),
                active_requests: requests_active.get(&l).clone(),
                name: name.as_deref().map(Into::into),
                label: Some(label),
            }
        })
        .collect())
}

/// The sum of one figure over `sides` (the whole process's value).
pub(crate) fn sum<T: std::iter::Sum>(sides: &[ServerSide], f: impl Fn(&ServerSide) -> T) -> T {
    sides.iter().map(f).sum()
}

/// Which of `sides` a `?server=` value names: its index or its declared
/// name (or, unnamed, its index as label).
pub(crate) fn find(sides: &[ServerSide], key: &str) -> Option<usize> {
    if let Ok(i) = key.parse::<usize>() {
        if i < sides.len() {
            return Some(i);
        }
    }
    sides
        .iter()
        .position(|s| s.name.as_deref() == Some(key) || s.label.as_deref() == Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_servers_get_a_label_each_and_are_found_by_index_or_name() {
        let r = Registry::new();
        let opts = |n: &str, h: &str| Options::new(n, h);
        let sides = register(&r, &opts, &[Some("public".into()), None]).unwrap();
        assert_eq!(sides[0].label.as_deref(), Some("public"));
        assert_eq!(sides[1].label.as_deref(), Some("1"));
        assert_eq!(find(&sides, "0"), Some(0));
        assert_eq!(find(&sides, "public"), Some(0));
        assert_eq!(find(&sides, "1"), Some(1));
        assert_eq!(find(&sides, "2"), None);
        assert_eq!(find(&sides, "admin"), None);
        sides[1].connections_total.inc();
        let mut out = Vec::new();
        vitals::encode::encode_prometheus(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("server_connections_total{server=\"1\"} 1"),
            "{text}"
        );
        let got = sides[0].with_labels(&["GET", "/a", "200"], |l| l.join(","));
        assert_eq!(got, "public,GET,/a,200");
        let plain = register(&Registry::new(), &opts, &[]).unwrap();
        assert_eq!(plain[0].with_labels(&["GET"], |l| l.join(",")), "GET");
    }
}
