//! The endpoints' own traffic (`/metrics`, `/debug/*`): kept out of the
//! application's figures by default and counted on its own, or counted as
//! application traffic when the builder says so.

use crate::common::value;
use crate::{get_body, start, start_with};

#[tokio::test]
async fn endpoint_requests_are_counted_apart_by_default() {
    let s = start().await;
    for path in ["/metrics", "/metrics", "/debug/metrics", "/", "/debug/nope"] {
        get_body(&s, path).await;
    }
    let snap = s.registry.snapshot();
    let routes: Vec<String> = snap
        .family("http_server_requests")
        .unwrap()
        .series
        .iter()
        .map(|series| {
            let route = series.labels.iter().find(|(k, _)| *k == "route").unwrap();
            route.1.clone()
        })
        .collect();
    assert_eq!(routes, ["/"], "only the application's route");
    let own = |route: &str, status: &str| {
        value(
            &snap,
            "server_endpoint_requests",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(own("/metrics", "200"), Some(2));
    assert_eq!(own("/debug/metrics", "200"), Some(1));
    // The dashboard's file route answering 404 for an unknown file.
    assert_eq!(own("/debug/{file}", "404"), Some(1));
    assert_eq!(
        value(
            &snap,
            "http_server_request_duration_seconds",
            &[("method", "GET"), ("route", "/metrics")]
        ),
        None
    );
}

#[tokio::test]
async fn endpoint_requests_count_as_application_traffic_when_configured() {
    let s = start_with(|b| b.endpoints_as_application(true)).await;
    get_body(&s, "/metrics").await;
    let snap = s.registry.snapshot();
    assert_eq!(
        value(
            &snap,
            "http_server_requests",
            &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
        ),
        Some(1)
    );
    assert_eq!(
        value(
            &snap,
            "server_endpoint_requests",
            &[("route", "/metrics"), ("status", "200")]
        ),
        None
    );
}
