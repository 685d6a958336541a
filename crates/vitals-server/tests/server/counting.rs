//! Requests counted exactly: per route template (not per raw path), per
//! status and method on one route, and a bounded number of series however
//! many random paths arrive.

use crate::common::{eventually, value};
use crate::{client, get_body, start};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use vitals::Format;

#[tokio::test]
async fn exact_counts_per_route_template() {
    let s = start().await;
    for _ in 0..3 {
        assert_eq!(get_body(&s, "/").await.0, 200);
    }
    assert_eq!(get_body(&s, "/users/1").await.0, 200);
    assert_eq!(get_body(&s, "/users/2").await.0, 200);
    assert_eq!(get_body(&s, "/api/items/x").await.0, 200);
    assert_eq!(get_body(&s, "/fail").await.0, 500);
    assert_eq!(get_body(&s, "/no/such/path").await.0, 404);
    let snap = eventually(
        &s.registry,
        "the request to /no/such/path, counted as unmatched 404",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
            ) == Some(1)
        },
    )
    .await;
    let req = |route: &str, status: &str| {
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(req("/", "200"), Some(3));
    assert_eq!(
        req("/users/{id}", "200"),
        Some(2),
        "both users share one series"
    );
    assert_eq!(
        req("/api/items/{item}", "200"),
        Some(1),
        "nested routers keep the full template"
    );
    assert_eq!(req("/fail", "500"), Some(1));
    assert_eq!(req("unmatched", "404"), Some(1));
    let errors = |route: &str| {
        value(
            &snap,
            "http_server_request_errors",
            &[("method", "GET"), ("route", route)],
        )
    };
    assert_eq!(errors("/fail"), Some(1));
    assert_eq!(errors("/"), None);
    let durations = |route: &str| {
        value(
            &snap,
            "http_server_request_duration_seconds",
            &[("method", "GET"), ("route", route)],
        )
    };
    assert_eq!(durations("/users/{id}"), Some(2));
    assert_eq!(value(&snap, "http_server_active_requests", &[]), Some(0));
    // No raw path ever becomes a label.
    let text = String::from_utf8(s.registry.render(Format::Prometheus)).unwrap();
    assert!(!text.contains("/users/1\""), "{text}");
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(value(&snap, "server_connections", &[]).unwrap() >= 1);
    assert!(value(&snap, "server_bytes_received", &[]).unwrap() > 0);
}

#[tokio::test]
async fn mixed_statuses_and_methods_on_one_route_count_exactly() {
    // The layer caches handles for the first (method, route, status) it sees;
    // everything else must still land in its own series.
    let s = start().await;
    for n in 0..10 {
        get_body(&s, &format!("/flip/{n}")).await;
    }
    let c: Client<_, String> = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..3 {
        let req = http::Request::post(format!("http://{}/flip/1", s.addr))
            .body(String::new())
            .unwrap();
        c.request(req)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
    }
    let snap = eventually(
        &s.registry,
        "the three POSTs to /flip/{n}, counted",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[
                    ("method", "POST"),
                    ("route", "/flip/{n}"),
                    ("status", "201"),
                ],
            ) == Some(3)
        },
    )
    .await;
    let req = |method: &str, status: &str| {
        value(
            &snap,
            "http_server_requests",
            &[
                ("method", method),
                ("route", "/flip/{n}"),
                ("status", status),
            ],
        )
    };
    assert_eq!(req("GET", "200"), Some(5));
    assert_eq!(req("GET", "503"), Some(5));
    assert_eq!(req("POST", "201"), Some(3));
    let by = |family: &str, method: &str| {
        value(&snap, family, &[("method", method), ("route", "/flip/{n}")])
    };
    assert_eq!(by("http_server_request_duration_seconds", "GET"), Some(10));
    assert_eq!(
        by("http_server_time_to_first_byte_seconds", "GET"),
        Some(10)
    );
    assert_eq!(by("http_server_request_duration_seconds", "POST"), Some(3));
    assert_eq!(by("http_server_request_errors", "GET"), Some(5));
    assert_eq!(by("http_server_request_errors", "POST"), None);
}

#[tokio::test]
async fn many_random_paths_keep_series_bounded() {
    let s = start().await;
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let uri = format!(
            "http://{}/random/{}/{}",
            s.addr,
            i.wrapping_mul(2_654_435_761),
            i
        );
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let res = c.get(uri.parse().unwrap()).await.unwrap();
            res.into_body().collect().await.unwrap();
        }));
        if tasks.len() >= 64 {
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let snap = eventually(
        &s.registry,
        "all 10 000 unmatched requests, counted",
        |snap| {
            value(
                snap,
                "http_server_requests",
                &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
            ) == Some(10_000)
        },
    )
    .await;
    let fam = snap.family("http_server_requests").unwrap();
    assert_eq!(fam.series.len(), 1, "{:?}", fam.series);
}
