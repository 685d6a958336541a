//! Calls that get no response, counted by why.

use super::*;
use std::time::Duration;

fn errors(registry: &Registry, client: &str, host: &str, kind: &str) -> i128 {
    int(
        registry,
        "http_client_errors",
        &[
            ("client", client),
            ("method", "GET"),
            ("host", host),
            ("kind", kind),
        ],
    )
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let d = demo().await;
    // A port that was just free: nothing listens on it.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let client = instrumented(&d.metrics.client("down").unwrap());
    let err = get(&client, &format!("http://{addr}/")).await.unwrap_err();
    assert!(!err.is_empty());
    let host = addr.to_string();
    assert_eq!(errors(&d.registry, "down", &host, "connect"), 1);
    for other in ["timeout", "tls", "protocol"] {
        assert_eq!(errors(&d.registry, "down", &host, other), 0, "{other}");
    }
    assert_eq!(
        int(
            &d.registry,
            "http_client_requests",
            &[
                ("client", "down"),
                ("method", "GET"),
                ("host", &host),
                ("status", "error")
            ]
        ),
        1
    );
    assert_eq!(
        int(
            &d.registry,
            "http_client_active_requests",
            &[("client", "down")]
        ),
        0
    );
}

#[tokio::test]
async fn slow_past_the_clients_timeout_is_a_timeout() {
    let d = demo().await;
    let c = d
        .metrics
        .client("impatient")
        .unwrap()
        .timeout(Duration::from_millis(150));
    let client = instrumented(&c);
    let url = format!("http://{}/slow?ms=3000", d.addr);
    let err = get(&client, &url).await.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    // A fast call through the same client is not one.
    assert_eq!(get(&client, &format!("http://{}/", d.addr)).await, Ok(200));
    let host = d.addr.to_string();
    assert_eq!(errors(&d.registry, "impatient", &host, "timeout"), 1);
    assert_eq!(errors(&d.registry, "impatient", &host, "connect"), 0);
    let status = |s: &str| {
        int(
            &d.registry,
            "http_client_requests",
            &[
                ("client", "impatient"),
                ("method", "GET"),
                ("host", &host),
                ("status", s),
            ],
        )
    };
    assert_eq!((status("error"), status("200")), (1, 1));
}

#[cfg(feature = "push-tls")]
#[tokio::test]
async fn tls_to_a_plain_http_port_is_a_tls_error() {
    let d = demo().await;
    let c = d.metrics.client("secure").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client = tower::ServiceBuilder::new().layer(c.layer()).service(
        Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(c.connector(https)),
    );
    let req = http::Request::get(format!("https://{}/", d.addr))
        .body(Empty::new())
        .unwrap();
    let err = client.oneshot(req).await.unwrap_err();
    let host = d.addr.to_string();
    assert_eq!(errors(&d.registry, "secure", &host, "tls"), 1, "{err:?}");
    assert_eq!(
        errors(&d.registry, "secure", &host, "connect"),
        0,
        "{err:?}"
    );
}
