//! `GET /debug/metrics`: the server's figures as JSON, with rates and
//! percentiles over the last
//! [`DEFAULT_WINDOW`](crate::DEFAULT_WINDOW) and an optional `?route=`
//! filter (see the crate docs, "Debug endpoints").

use super::debug_history;
use super::query::{Query, QueryError};
use super::window::{Delta, Reading, RouteTotals, TaskTotals, Window};
use crate::server_metrics::ServerMetrics;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use vitals::Sketch;

/// The metrics and the reads the window is measured between.
struct DebugState {
    metrics: ServerMetrics,
    window: Window,
}

/// The router serving `/debug/metrics`. Rates cover the configured window,
/// measured between the reads each request takes (and one taken now).
pub(crate) fn router(metrics: &ServerMetrics) -> axum::Router {
    let state = Arc::new(DebugState {
        metrics: metrics.clone(),
        window: Window::new(metrics.inner.debug.window),
    });
    state.window.push(Reading::take(metrics));
    axum::Router::new()
        .route("/debug/metrics", get(debug_metrics))
        .with_state(state)
}

/// The filters `/debug/metrics` understands.
#[derive(Debug, Default)]
struct Filters {
    route: Option<String>,
    server: Option<String>,
    client: Option<String>,
}

/// The filters there are, as a 400 lists them.
const KNOWN_FILTERS: &[&str] = &["route", "server", "client"];

/// Filters a client may still send that this version does not have: a
/// 400, so nobody mistakes the unfiltered answer for a filtered one.
const UNAVAILABLE_FILTERS: &[&str] = &["worker"];

fn parse_filters(raw: Option<&str>) -> Result<Filters, QueryError> {
    let query = Query::parse(raw)?;
    for name in UNAVAILABLE_FILTERS {
        if query.once(name)?.is_some() {
            return Err(QueryError::new(format!(
                "filter {name:?} is not available in this version: /debug/metrics shows \
                 this process as a whole; leave {name:?} out"
            ))
            .with("known_filters", KNOWN_FILTERS));
        }
    }
    query.each_name_once()?;
    // Parameters that are not filters (the dashboard's own, say) are
    // accepted as they are.
    Ok(Filters {
        route: query.once("route")?.map(str::to_owned),
        server: query.once("server")?.map(str::to_owned),
        client: query.once("client")?.map(str::to_owned),
    })
}

/// Sums a per-route family's series whose route passes `wanted` (the
/// overflow series, which has no route, always counts).
fn sum_series<M: vitals::Metric>(
    family: &vitals::Family<M>,
    wanted: &impl Fn(&str) -> bool,
    read: impl Fn(&M) -> i64,
) -> i64 {
    let mut total = 0;
    family.for_each(|values, m| {
        if values.first().is_none_or(|r| wanted(r)) {
            total += read(m);
        }
    });
    total
}

/// The `tasks` section: lifetime counts, in-flight now, and the rate of
/// finished tasks (completed + failed) and p95 run time over the window,
/// overall and per queue.
fn tasks_section(now: &Reading, delta: &Delta, metrics: &ServerMetrics) -> Value {
    let in_flight = &metrics.inner.tasks.in_flight;
    let mut flying = std::collections::BTreeMap::new();
    in_flight.for_each(|values, g| {
        let queue = values.first().map_or("overflow", |v| v.as_ref());
        *flying.entry(queue.to_owned()).or_insert(0i64) += g.get();
    });
    let mut totals = TaskTotals::default();
    let mut recent = Sketch::new();
    let mut recent_finished = 0;
    let mut queues = Vec::new();
    for (queue, t) in &now.tasks {
        let d = delta.tasks.get(queue).cloned().unwrap_or_default();
        totals.enqueued += t.enqueued;
        totals.started += t.started;
        totals.completed += t.completed;
        totals.failed += t.failed;
        totals.retried += t.retried;
        recent.merge(&d.duration);
        recent_finished += d.completed + d.failed;
        queues.push(json!({
            "queue": queue,
            "enqueued": t.enqueued,
            "started": t.started,
            "completed": t.completed,
            "failed": t.failed,
            "retried": t.retried,
            "in_flight": flying.get(queue).copied().unwrap_or(0),
            "rate_per_sec": rate(d.completed + d.failed, delta.seconds),
            "p95_ms": ms(d.duration.quantile(0.95)),
        }));
    }
    json!({
        "enqueued": totals.enqueued,
        "started": totals.started,
        "completed": totals.completed,
        "failed": totals.failed,
        "retried": totals.retried,
        "in_flight": flying.values().sum::<i64>(),
        "rate_per_sec": rate(recent_finished, delta.seconds),
        "p95_ms": ms(recent.quantile(0.95)),
        "queues": queues,
    })
}

/// The declared servers, as `/debug/metrics` lists them.
fn server_list(m: &crate::server_metrics::Handles) -> Value {
    let list: Vec<Value> = m
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "index": i, "name": s.name.as_deref() }))
        .collect();
    Value::Array(list)
}

/// The `clients` section: each declared client (or only `only`), its
/// lifetime counts, in-flight calls and connections, and per host its
/// counts and the window's rate and percentiles.
fn clients_section(
    now: &Reading,
    delta: &Delta,
    m: &crate::server_metrics::Handles,
    only: Option<&str>,
) -> Value {
    let f = &m.clients;
    let mut out = Vec::new();
    for (index, name) in f.names().iter().enumerate() {
        if only.is_some_and(|o| o != &**name) {
            continue;
        }
        let label = [&**name];
        let mut lifetime = RouteTotals::default();
        let mut recent = Sketch::new();
        let mut recent_requests = 0;
        let mut hosts = Vec::new();
        for ((client, host), t) in &now.clients {
            if client != &**name {
                continue;
            }
            let d = delta
                .clients
                .get(&(client.clone(), host.clone()))
                .cloned()
                .unwrap_or_default();
            lifetime.requests += t.requests;
            lifetime.errors += t.errors;
            recent.merge(&d.duration);
            recent_requests += d.requests;
            hosts.push(json!({
                "host": host,
                "requests": t.requests,
                "errors": t.errors,
                "rate_per_sec": rate(d.requests, delta.seconds),
                "p50_ms": ms(d.duration.quantile(0.5)),
                "p95_ms": ms(d.duration.quantile(0.95)),
                "p99_ms": ms(d.duration.quantile(0.99)),
            }));
        }
        let mut kinds = serde_json::Map::new();
        for kind in crate::client::ErrorKind::ALL {
            let mut n = 0;
            f.errors.for_each(|values, c| {
                if values.first().is_some_and(|c| **c == **name)
                    && values.get(3).is_some_and(|k| &**k == kind.as_str())
                {
                    n += c.get();
                }
            });
            kinds.insert(kind.as_str().to_owned(), json!(n));
        }
        out.push(json!({
            "index": index,
            "client": &**name,
            "requests": lifetime.requests,
            "errors": lifetime.errors,
            "errors_by_kind": kinds,
            "active": f.active.get(&label).get(),
            "connections_opened": f.opened.get(&label).get(),
            "connections_reused": f.reused.get(&label).get(),
            "rate_per_sec": rate(recent_requests, delta.seconds),
            "p50_ms": ms(recent.quantile(0.5)),
            "p95_ms": ms(recent.quantile(0.95)),
            "p99_ms": ms(recent.quantile(0.99)),
            "hosts": hosts,
        }));
    }
    Value::Array(out)
}

fn ms(seconds: Option<f64>) -> Value {
    seconds.map_or(Value::Null, |s| json!(s * 1000.0))
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

async fn debug_metrics(
    State(state): State<Arc<DebugState>>,
    RawQuery(query): RawQuery,
) -> Response {
    debug_history::ensure_sampler(&state.metrics);
    let registry = state.metrics.registry();
    let filters = match parse_filters(query.as_deref()) {
        Ok(f) => f,
        Err(refused) => return refused.respond(registry),
    };
    let now = Reading::take(&state.metrics);
    let delta = state.window.delta(&now);
    state.window.push(now.clone());
    let m = &state.metrics.inner;
    let server = match filters.server.as_deref() {
        None => None,
        Some(key) => match crate::servers::find(&m.servers, key) {
            Some(i) => Some(i),
            None => {
                return QueryError::new(format!(
                    "unknown server {key:?}: give a declared server's index or name"
                ))
                .with("known_servers", server_list(m))
                .respond(registry);
            }
        },
    };
    let client = match filters.client.as_deref() {
        None => None,
        Some(key) => match m.clients.find(key) {
            Some(i) => Some(m.clients.names()[i].to_string()),
            None => {
                let known: Vec<String> = m.clients.names().iter().map(|n| n.to_string()).collect();
                return QueryError::new(format!(
                    "unknown client {key:?}: give a declared client's index or name"
                ))
                .with("known_clients", known)
                .respond(registry);
            }
        },
    };
    // One server's view: its bytes and routes, its connections.
    let (now, delta) = match server {
        Some(i) => (now.only(i), delta.only(i)),
        None => (now, delta),
    };
    let sides: &[crate::servers::ServerSide] = match server {
        Some(i) => &m.servers[i..=i],
        None => &m.servers,
    };
    let total = |f: fn(&crate::servers::ServerSide) -> i64| -> i64 { sides.iter().map(f).sum() };
    if let Some(route) = &filters.route {
        if !now.routes.keys().any(|(_, r)| r == route) {
            let known: Vec<&str> = now.routes.keys().map(|(_, r)| r.as_str()).collect();
            return QueryError::new(format!(
                "unknown route {route:?}: no request has been served on it"
            ))
            .with("known_routes", known)
            .respond(registry);
        }
    }
    let wanted = |r: &str| filters.route.as_deref().is_none_or(|f| f == r);

    // Totals over every (selected) route; percentiles from merged sketches.
    let mut lifetime = RouteTotals::default();
    for ((_, r), t) in &now.routes {
        if wanted(r) {
            lifetime.requests += t.requests;
            lifetime.errors += t.errors;
            lifetime.duration.merge(&t.duration);
        }
    }
    let mut recent = Sketch::new();
    let mut recent_requests = 0;
    let mut routes = Vec::new();
    for ((method, r), d) in &delta.routes {
        if !wanted(r) {
            continue;
        }
        recent.merge(&d.duration);
        recent_requests += d.requests;
        let total = &now.routes[&(method.clone(), r.clone())];
        routes.push(json!({
            "method": method,
            "route": r,
            "requests": total.requests,
            "errors": total.errors,
            "rate_per_sec": rate(d.requests, delta.seconds),
            "error_rate_per_sec": rate(d.errors, delta.seconds),
            "p50_ms": ms(d.duration.quantile(0.5)),
            "p95_ms": ms(d.duration.quantile(0.95)),
            "p99_ms": ms(d.duration.quantile(0.99)),
        }));
    }
    let count = lifetime.duration.count();
    let avg = (count > 0).then(|| lifetime.duration.sum() / count as f64);
    let kbps = |bytes: u64| rate(bytes, delta.seconds) * 8.0 / 1000.0;
    let sum_family = |f: &vitals::CounterVec| sum_series(f, &wanted, |c| c.get() as i64);
    let sum_gauges = |f: &vitals::GaugeVec| sum_series(f, &wanted, vitals::Gauge::get);
    let body = json!({
        "uptime_seconds": state.metrics.uptime_seconds(),
        "window_seconds": delta.seconds,
        "connections": {
            "total": total(|s| s.connections_total.get() as i64),
            "active": total(|s| s.connections_active.get()),
            "failed": total(|s| s.connections_failed.get() as i64),
            "idle": total(|s| s.connections_idle.get()),
            "peer_closed": total(|s| s.connections_peer_closed.get() as i64),
        },
        "streams": {
            "total": total(|s| s.streams_total.get() as i64),
            "active": total(|s| s.streams_active.get()),
        },
        "requests": {
            "total": lifetime.requests,
            "active": total(|s| s.active_requests.get()),
            "errors": lifetime.errors,
            "rate_per_sec": rate(recent_requests, delta.seconds),
            "avg_latency_ms": ms(avg),
            "p50_ms": ms(recent.quantile(0.5)),
            "p95_ms": ms(recent.quantile(0.95)),
            "p99_ms": ms(recent.quantile(0.99)),
        },
        "bytes": {
            "sent_total": now.bytes_sent,
            "recv_total": now.bytes_received,
            "sent_rate_kbps": kbps(delta.bytes_sent),
            "recv_rate_kbps": kbps(delta.bytes_received),
        },
        "websocket": {
            "connections_total": sum_family(&m.ws_connections),
            "active": sum_gauges(&m.ws_active),
            "messages_received": sum_family(&m.ws_messages_received),
            "messages_sent": sum_family(&m.ws_messages_sent),
            "bytes_received": sum_family(&m.ws_bytes_received),
            "bytes_sent": sum_family(&m.ws_bytes_sent),
        },
        "sse": {
            "connections_total": sum_family(&m.sse_connections),
            "active": sum_gauges(&m.sse_active),
            "events_sent": sum_family(&m.sse_events),
            "bytes_sent": sum_family(&m.sse_bytes),
        },
        "workers": {
            "active": m.lifespan.workers_active.get(),
            "spawns_total": m.lifespan.worker_spawns.get(),
        },
        "tasks": tasks_section(&now, &delta, &state.metrics),
        "routes": routes,
        "custom": [],
        "servers": server_list(m),
        "server": server.map_or(Value::Null, |i| json!(i)),
        "clients": clients_section(&now, &delta, m, client.as_deref()),
    });
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_server_and_client_filters_are_there() {
        let f = parse_filters(Some("route=%2Fa&live=1")).unwrap();
        assert_eq!(f.route.as_deref(), Some("/a"));
        assert!(parse_filters(None).unwrap().route.is_none());
        let f = parse_filters(Some("server=admin&client=1")).unwrap();
        assert_eq!(f.server.as_deref(), Some("admin"));
        assert_eq!(f.client.as_deref(), Some("1"));
        for raw in ["worker=1", "route=%2Fa&worker=1", "worker="] {
            let refused = parse_filters(Some(raw)).unwrap_err();
            assert!(
                refused.message().contains("not available in this version"),
                "{raw}: {refused:?}"
            );
        }
        assert!(parse_filters(Some("route=a&route=b")).is_err());
    }
}
