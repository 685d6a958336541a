//! What a pushed batch carries: exact counts per method, route, status
//! class and caller, Apdex counts and percentiles from the sketch, hostile
//! callers and traceparents folded and counted, a sample bounded per
//! interval, the caller layer's name, and chosen registry metrics riding
//! along as custom metrics.

use crate::{Collector, find, start};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use vitals::wire::IngestBatch;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn exact_counts_per_method_route_status_class_and_caller() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c).await;
    let checkout: &[(&str, &[u8])] = &[("x-vitals-caller", b"checkout")];
    for i in 0..5 {
        assert_eq!(s.get(&format!("/users/{i}?debug=1"), &[]).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(s.get("/users/7", checkout).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(s.get("/fail", checkout).await, 500);
    }
    for _ in 0..4 {
        assert_eq!(s.get("/no/such/page", &[]).await, 404);
    }
    assert_eq!(
        s.get("/users/9", &[("traceparent", TRACEPARENT.as_bytes())])
            .await,
        200
    );
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));

    let got = collector.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.authorization, "Bearer test-key");
    assert!(r.gzip, "a batch with 15 samples is over 1 KiB: gzip");
    let b = &r.batch;
    assert_eq!(
        (b.service.as_str(), b.instance.as_str()),
        ("checkout", "checkout-1")
    );
    assert_eq!(b.batch_id.len(), 32);
    assert!(b.batch_id.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(b.apdex_t_ms, 500.0);
    assert_eq!(b.routes.len(), 4, "{:#?}", b.routes);

    let users = find(b, "GET", "/users/{id}", 2, None);
    assert_eq!((users.count, users.errors), (6, 0));
    assert_eq!(users.duration_ms.count(), 6);
    let users_checkout = find(b, "GET", "/users/{id}", 2, Some("checkout"));
    assert_eq!((users_checkout.count, users_checkout.errors), (3, 0));
    let fail = find(b, "GET", "/fail", 5, Some("checkout"));
    assert_eq!((fail.count, fail.errors), (2, 2));
    let unmatched = find(b, "GET", "unmatched", 4, None);
    assert_eq!((unmatched.count, unmatched.errors), (4, 0));

    // Fewer requests than the reservoir: every one is sampled.
    assert_eq!(b.requests.len(), 15);
    assert!(b.requests.iter().all(|r| !r.path.contains('?')));
    let traced: Vec<_> = b.requests.iter().filter(|r| r.trace_id.is_some()).collect();
    assert_eq!(traced.len(), 1);
    assert_eq!(traced[0].path, "/users/9");
    assert_eq!(traced[0].route, "/users/{id}");
    assert_eq!(
        traced[0].trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let failed = b.requests.iter().filter(|r| r.status == 500).count();
    assert_eq!(failed, 2);
    assert!(
        b.requests
            .iter()
            .filter(|r| r.route == "/fail")
            .all(|r| r.caller.as_deref() == Some("checkout"))
    );

    // The next interval holds only what came after.
    assert_eq!(s.get("/users/1", &[]).await, 200);
    s.flush().await;
    let got = collector.received();
    assert_eq!(got.len(), 2);
    let next = &got[1].batch;
    assert_ne!(next.batch_id, b.batch_id);
    assert_eq!(next.routes.len(), 1);
    assert_eq!(find(next, "GET", "/users/{id}", 2, None).count, 1);
    assert!(next.start_unix_ms >= b.start_unix_ms + b.interval_ms);
    assert_eq!(s.counter("vitals_push_batches", &[("result", "sent")]), 2);
}

#[tokio::test]
async fn apdex_counts_and_percentiles_from_the_pushed_sketch() {
    let collector = Collector::start().await;
    // T = 80 ms: satisfied ≤ 80, tolerating ≤ 320, frustrated above; the
    // sleeps keep wide margins from both bounds.
    let s = Arc::new(start(&collector.url(), |c| c.apdex_t(Duration::from_millis(80))).await);
    // 20 fast, 10 of about 150 ms, 5 over 400 ms, sent concurrently.
    let mut plan = vec![0u64; 20];
    plan.extend([150; 10]);
    plan.extend([400; 5]);
    let tasks: Vec<_> = plan
        .iter()
        .map(|&ms| {
            let s = s.clone();
            tokio::spawn(async move { s.get(&format!("/sleep?ms={ms}"), &[]).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    s.flush().await;
    let got = collector.received();
    let b = &got[0].batch;
    assert_eq!(b.apdex_t_ms, 80.0);
    let sleep = find(b, "GET", "/sleep", 2, None);
    assert_eq!(sleep.count, 35);
    assert_eq!((sleep.satisfied, sleep.tolerating), (20, 10));

    // Exact durations: every request is in the sample (35 < 100).
    let mut exact: Vec<f64> = b.requests.iter().map(|r| r.duration_ms).collect();
    assert_eq!(exact.len(), 35);
    exact.sort_by(f64::total_cmp);
    for q in [0.5, 0.75, 0.9, 0.95, 0.99, 1.0] {
        let rank = ((q * exact.len() as f64).ceil() as usize).max(1) - 1;
        let want = exact[rank];
        let got = sleep.duration_ms.quantile(q).unwrap();
        assert!(
            (got - want).abs() / want <= 0.01,
            "p{q}: sketch {got} ms vs exact {want} ms"
        );
    }
    let sum: f64 = exact.iter().sum();
    assert!((sleep.duration_ms.sum() - sum).abs() < 1e-6 * sum);
}

#[tokio::test]
async fn hostile_callers_and_traceparents_are_folded_and_counted() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c.max_callers(2)).await;
    let long_path = format!("/users/1/{}", "a".repeat(1000));
    let cases: &[(&str, &[u8])] = &[
        ("x-vitals-caller", b"billing"),
        ("x-vitals-caller", b"search"),
        ("x-vitals-caller", b"third"),       // over the limit
        ("x-vitals-caller", b"fourth"),      // over the limit
        ("x-vitals-caller", b"has space"),   // bad charset
        ("x-vitals-caller", b"caf\xc3\xa9"), // not ASCII
        ("x-vitals-caller", b"\x80\xff"),
        ("x-vitals-caller", &[b'x'; 65]), // too long
        (
            "traceparent",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ),
        ("traceparent", b"garbage"),
    ];
    for (k, v) in cases {
        assert_eq!(s.get("/users/1", &[(k, v)]).await, 200);
    }
    let huge = vec![b'y'; 8000];
    assert_eq!(s.get("/users/1", &[("x-vitals-caller", &huge)]).await, 200);
    assert_eq!(s.get(&long_path, &[]).await, 404);
    s.flush().await;
    let b = collector.received()[0].batch.clone();
    let count = |caller: Option<&str>| find(&b, "GET", "/users/{id}", 2, caller).count;
    assert_eq!(count(Some("billing")), 1);
    assert_eq!(count(Some("search")), 1);
    assert_eq!(count(Some("_overflow")), 2);
    assert_eq!(count(Some("invalid")), 5);
    assert_eq!(count(None), 2);
    assert!(b.routes.iter().all(|r| {
        r.caller
            .as_deref()
            .is_none_or(|c| ["billing", "search", "_overflow", "invalid"].contains(&c))
    }));
    assert!(b.requests.iter().all(|r| r.trace_id.is_none()));
    let sampled_long = b.requests.iter().find(|r| r.status == 404).unwrap();
    assert_eq!(
        sampled_long.path.len(),
        vitals_server::push::MAX_SAMPLED_PATH_LEN
    );
    assert!(long_path.starts_with(&sampled_long.path));
    let rejected = |reason| s.counter("vitals_push_rejected", &[("reason", reason)]);
    assert_eq!(rejected("caller_invalid"), 5);
    assert_eq!(rejected("caller_overflow"), 2);
    assert_eq!(rejected("traceparent_invalid"), 2);
}

#[tokio::test]
async fn the_sample_is_bounded_per_interval() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c.sample_size(10)).await;
    for i in 0..40 {
        assert_eq!(s.get(&format!("/users/{i}"), &[]).await, 200);
    }
    s.flush().await;
    let b = collector.received()[0].batch.clone();
    assert_eq!(find(&b, "GET", "/users/{id}", 2, None).count, 40);
    assert_eq!(b.requests.len(), 10);
    let mut paths: Vec<&str> = b.requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 10, "ten distinct requests");
    // The reservoir starts afresh each interval.
    assert_eq!(s.get("/users/1", &[]).await, 200);
    s.flush().await;
    assert_eq!(collector.received()[1].batch.requests.len(), 1);
}

/// Two services pushing the same traffic of the same traces (in another
/// order, the second with untraced requests besides) keep exactly the
/// same trace ids: the sample decides by trace id, so journeys are whole.
#[tokio::test]
async fn services_keep_the_same_traces() {
    let collector = Collector::start().await;
    let a = start(&collector.url(), |c| c.sample_size(10)).await;
    let b = start(&collector.url(), |c| c.sample_size(10).service("payments")).await;
    let traces: Vec<String> = (0u64..60)
        .map(|i| format!("{:032x}", (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let header = |t: &str| format!("00-{t}-00f067aa0ba902b7-01");
    for t in &traces {
        let tp = header(t);
        assert_eq!(
            a.get("/users/1", &[("traceparent", tp.as_bytes())]).await,
            200
        );
    }
    for (i, t) in traces.iter().rev().enumerate() {
        let tp = header(t);
        assert_eq!(
            b.get("/users/2", &[("traceparent", tp.as_bytes())]).await,
            200
        );
        if i % 3 == 0 {
            assert_eq!(b.get("/users/3", &[]).await, 200);
        }
    }
    a.flush().await;
    b.flush().await;
    let kept = |service: &str| {
        let got = collector.received();
        let batch = &got
            .iter()
            .find(|r| r.batch.service == service)
            .expect("a batch")
            .batch;
        assert!(batch.requests.len() <= 10, "bounded");
        let mut ids: Vec<String> = batch
            .requests
            .iter()
            .filter_map(|r| r.trace_id.clone())
            .collect();
        ids.sort();
        ids
    };
    let (ka, kb) = (kept("checkout"), kept("payments"));
    assert_eq!(ka.len(), 10, "the reservoir is full of traced requests");
    assert_eq!(ka, kb, "the same traces in both services");
    // The kept ones are those of lowest priority, whoever computes it.
    let mut want = traces.clone();
    want.sort_by_key(|t| vitals_server::push::trace_priority(t));
    want.truncate(10);
    want.sort();
    assert_eq!(ka, want);
}

#[tokio::test]
async fn caller_layer_names_the_calling_service() {
    use tower::{Layer, Service, ServiceExt};
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c).await;
    let mut client = vitals_server::CallerLayer::new("frontend")
        .unwrap()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>());
    for _ in 0..3 {
        let req = http::Request::get(format!("http://{}/users/5", s.addr))
            .body(Empty::new())
            .unwrap();
        let res = client.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    s.flush().await;
    let b = collector.received()[0].batch.clone();
    assert_eq!(b.routes.len(), 1);
    assert_eq!(find(&b, "GET", "/users/{id}", 2, Some("frontend")).count, 3);
    assert!(
        b.requests
            .iter()
            .all(|r| r.caller.as_deref() == Some("frontend"))
    );
}

#[tokio::test]
async fn chosen_registry_metrics_ride_along_as_custom_metrics() {
    use vitals::wire::CustomKind;
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| {
        c.push_metrics(["orders_total"])
            .push_metrics_prefix("app_")
            .max_custom(3)
    })
    .await;
    let orders = s
        .registry
        .counter_vec(("orders_total", "Orders"), &["shop"])
        .unwrap();
    orders.get(&["eu"]).add(3);
    let depth = s.registry.gauge(("app_queue_depth", "Depth")).unwrap();
    depth.set(9);
    let hidden = s.registry.counter(("hidden_total", "Not pushed")).unwrap();
    hidden.inc();
    assert_eq!(s.flush().await.delivered, 1);
    orders.get(&["eu"]).add(2);
    orders.get(&["us"]).inc();
    depth.set(4);
    // A fourth series goes past max_custom(3).
    orders.get(&["jp"]).inc();
    assert_eq!(s.flush().await.delivered, 1);
    let got = collector.received();
    assert_eq!(got.len(), 2);
    let find = |b: &IngestBatch, name: &str, labels: &[(&str, &str)]| {
        b.custom
            .iter()
            .find(|m| {
                m.name == name
                    && m.labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<Vec<_>>()
                        == labels
            })
            .map(|m| (m.kind, m.value))
    };
    let first = &got[0].batch;
    assert_eq!(first.custom.len(), 2, "{:?}", first.custom);
    assert_eq!(
        find(first, "orders_total", &[("shop", "eu")]),
        Some((CustomKind::Counter, 3.0))
    );
    assert_eq!(
        find(first, "app_queue_depth", &[]),
        Some((CustomKind::Gauge, 9.0))
    );
    let second = &got[1].batch;
    assert_eq!(second.custom.len(), 3, "capped: {:?}", second.custom);
    assert_eq!(
        find(second, "orders_total", &[("shop", "eu")]),
        Some((CustomKind::Counter, 5.0)),
        "counters are cumulative"
    );
    assert!(second.custom.iter().all(|m| m.name != "hidden_total"));
    assert_eq!(
        s.counter("vitals_push_custom_dropped", &[("reason", "batch_limit")]),
        1
    );
}

#[tokio::test]
async fn the_endpoints_own_requests_are_not_pushed() {
    let collector = Collector::start().await;
    let s = start(&collector.url(), |c| c).await;
    assert_eq!(s.get("/users/1", &[]).await, 200);
    for path in ["/metrics", "/debug/metrics", "/debug/history"] {
        assert_eq!(s.get(path, &[]).await, 200, "{path}");
    }
    let report = s.flush().await;
    assert_eq!((report.delivered, report.pending), (1, 0));
    let got = collector.received();
    let b = &got[0].batch;
    let routes: Vec<&str> = b.routes.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(routes, ["/users/{id}"], "{:#?}", b.routes);
    assert!(b.requests.iter().all(|r| r.route == "/users/{id}"));
    assert_eq!(
        s.counter(
            "server_endpoint_requests",
            &[("route", "/metrics"), ("status", "200")]
        ),
        1
    );
}
