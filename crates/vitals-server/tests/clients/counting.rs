//! Exact counts by status, connections, bounded series, the event and the
//! headers, and the JSON view.

use super::*;
use std::time::Duration;
use vitals::Event;

#[tokio::test]
async fn calls_are_counted_exactly_by_status_and_connections_are_reused() {
    let d = demo().await;
    let c = d.metrics.client("demo").unwrap();
    let client = instrumented(&c);
    let base = format!("http://{}", d.addr);
    let host = d.addr.to_string();
    for path in [
        "/", "/users/1", "/users/2", "/fail", "/nope", "/users/3", "/fail",
    ] {
        get(&client, &format!("{base}{path}")).await.unwrap();
    }
    let requests = |status: &str| {
        int(
            &d.registry,
            "http_client_requests",
            &[
                ("client", "demo"),
                ("method", "GET"),
                ("host", &host),
                ("status", status),
            ],
        )
    };
    assert_eq!(
        (
            requests("200"),
            requests("500"),
            requests("404"),
            requests("error")
        ),
        (4, 2, 1, 0)
    );
    let labels = [
        ("client", "demo"),
        ("method", "GET"),
        ("host", host.as_str()),
    ];
    // Every call timed to its body's end and to its first byte.
    assert_eq!(
        int(&d.registry, "http_client_request_duration_seconds", &labels),
        7
    );
    assert_eq!(
        int(
            &d.registry,
            "http_client_time_to_first_byte_seconds",
            &labels
        ),
        7
    );
    assert_eq!(
        int(
            &d.registry,
            "http_client_active_requests",
            &[("client", "demo")]
        ),
        0
    );
    // Sequential calls on one keep-alive connection: one opened, six reused.
    let one = [("client", "demo")];
    assert_eq!(int(&d.registry, "http_client_connections_opened", &one), 1);
    assert_eq!(int(&d.registry, "http_client_connections_reused", &one), 6);
    // The callee side of the same calls, in the same registry.
    assert_eq!(
        int(
            &d.registry,
            "http_server_requests",
            &[("method", "GET"), ("route", "/fail"), ("status", "500")]
        ),
        2
    );
}

#[tokio::test]
async fn ten_thousand_urls_on_one_host_stay_one_series() {
    let d = demo().await;
    let c = d.metrics.client("many").unwrap();
    let client = instrumented(&c);
    for i in 0..10_000 {
        let url = format!("http://{}/users/{i}?page={i}", d.addr);
        assert_eq!(get(&client, &url).await, Ok(200));
    }
    let snap = d.registry.snapshot();
    let family = snap.family("http_client_requests").unwrap();
    let series: Vec<_> = family
        .series
        .iter()
        .filter(|s| s.labels.iter().any(|(k, v)| k == "client" && v == "many"))
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(
        int(
            &d.registry,
            "http_client_requests",
            &[
                ("client", "many"),
                ("method", "GET"),
                ("host", &d.addr.to_string()),
                ("status", "200")
            ]
        ),
        10_000
    );
    let durations = snap.family("http_client_request_duration_seconds").unwrap();
    assert_eq!(durations.series.len(), 1);
}

#[tokio::test]
async fn each_call_emits_an_event_and_carries_the_caller_and_a_traceparent() {
    // A callee that echoes the two headers it received.
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .without_process_metrics()
        .without_runtime_metrics()
        .build()
        .unwrap();
    let echo = axum::Router::new().route(
        "/echo",
        axum::routing::get(|headers: http::HeaderMap| async move {
            let h = |n: &str| {
                headers
                    .get(n)
                    .map_or("-", |v| v.to_str().unwrap_or("?"))
                    .to_owned()
            };
            format!("{} {}", h("x-vitals-caller"), h("traceparent"))
        }),
    );
    let addr = common::serve(&metrics, echo).await;
    let (_sub, events) = metrics.events().subscribe_channel("test", 16);
    let c = metrics
        .client("echo")
        .unwrap()
        .caller("checkout")
        .unwrap()
        .peer("echo-svc")
        .unwrap();
    let client = instrumented(&c);
    let req = http::Request::get(format!("http://{addr}/echo"))
        .body(Empty::new())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let (caller, traceparent) = text.split_once(' ').unwrap();
    assert_eq!(caller, "checkout");
    assert!(
        vitals_server::parse_traceparent(traceparent.as_bytes()).is_some(),
        "{text}"
    );
    // A traceparent the application set is kept.
    let mine = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = http::Request::get(format!("http://{addr}/echo"))
        .header("traceparent", mine)
        .body(Empty::new())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        format!("checkout {mine}")
    );
    // The event, labelled with the declared peer, not the address.
    let event = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(5)).ok())
        .find(|e| matches!(e.event, Event::ClientRequestCompleted { .. }))
        .unwrap();
    match &event.event {
        Event::ClientRequestCompleted {
            client,
            method,
            host,
            status,
            error,
            duration_secs,
        } => {
            assert_eq!(
                (client.as_str(), method.as_str(), host.as_str()),
                ("echo", "GET", "echo-svc")
            );
            assert_eq!((*status, error.as_deref()), (Some(200), None));
            assert!(*duration_secs > 0.0);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn debug_metrics_shows_each_client_and_filters_by_index_or_name() {
    let d = demo().await;
    let a = instrumented(&d.metrics.client("first").unwrap());
    let b = instrumented(&d.metrics.client("second").unwrap());
    for _ in 0..3 {
        get(&a, &format!("http://{}/users/1", d.addr))
            .await
            .unwrap();
    }
    get(&b, &format!("http://{}/fail", d.addr)).await.unwrap();
    let plain = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let json = |q: &'static str| {
        let plain = plain.clone();
        let addr = d.addr;
        async move {
            let res = plain
                .get(format!("http://{addr}/debug/metrics{q}").parse().unwrap())
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (status, all) = json("").await;
    assert_eq!(status, 200);
    let clients = all["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{all}");
    assert_eq!(
        (
            clients[0]["client"].as_str(),
            clients[0]["requests"].as_u64()
        ),
        (Some("first"), Some(3))
    );
    assert_eq!(clients[1]["errors"], 1, "{all}");
    for q in ["?client=1", "?client=second"] {
        let (status, one) = json(q).await;
        assert_eq!(status, 200, "{one}");
        let clients = one["clients"].as_array().unwrap();
        assert_eq!(clients.len(), 1, "{one}");
        assert_eq!(clients[0]["client"], "second");
        assert_eq!(clients[0]["hosts"][0]["host"], d.addr.to_string());
    }
    let (status, refused) = json("?client=third").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["known_clients"],
        serde_json::json!(["first", "second"])
    );
}
