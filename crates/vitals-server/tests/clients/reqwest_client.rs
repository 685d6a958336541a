//! The reqwest wrapper (feature `reqwest`): the same series as the layer.

use super::*;
use vitals_server::client::reqwest::TrackedReqwest;

#[tokio::test]
async fn reqwest_calls_are_counted_by_status_and_kind() {
    let d = demo().await;
    let client = TrackedReqwest::new(reqwest::Client::new(), d.metrics.client("rq").unwrap());
    let base = format!("http://{}", d.addr);
    for path in ["/users/1", "/users/2", "/fail"] {
        let res = client.get(&format!("{base}{path}")).await.unwrap();
        // Recorded once the body has been read.
        let _ = res.text().await.unwrap();
    }
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    assert!(client.get(&format!("http://{down}/")).await.is_err());
    let host = d.addr.to_string();
    let status = |s: &str| {
        int(
            &d.registry,
            "http_client_requests",
            &[
                ("client", "rq"),
                ("method", "GET"),
                ("host", &host),
                ("status", s),
            ],
        )
    };
    assert_eq!((status("200"), status("500")), (2, 1));
    let down = down.to_string();
    assert_eq!(
        int(
            &d.registry,
            "http_client_errors",
            &[
                ("client", "rq"),
                ("method", "GET"),
                ("host", &down),
                ("kind", "connect")
            ]
        ),
        1
    );
    assert_eq!(
        int(
            &d.registry,
            "http_client_request_duration_seconds",
            &[("client", "rq"), ("method", "GET"), ("host", &host)]
        ),
        3
    );
}
