//! The push client over `https://`: a fake collector served over rustls
//! with a certificate from a CA made in the test (rcgen), receiving real
//! gzip batches; and a collector whose certificate is not trusted.
#![cfg(feature = "push-tls")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::rustls;
use tower::ServiceExt;
use vitals::Registry;
use vitals::wire::IngestBatch;
use vitals_server::{PushConfig, PushError, ServerMetrics};
use vitals_test_support::wait_until_async;

mod common;
use common::value;

/// A private CA and a server certificate it signed for 127.0.0.1 and
/// localhost.
struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "collector.test");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key: leaf_key.into(),
    }
}

#[derive(Default)]
struct Seen {
    batches: Mutex<Vec<(IngestBatch, bool, String)>>,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
}

/// A collector stand-in that answers `POST /v1/ingest` over TLS only.
async fn tls_collector(pki: &Pki) -> (SocketAddr, Arc<Seen>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(pki.chain.clone(), pki.key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/v1/ingest", post(ingest))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app, counts) = (acceptor.clone(), app.clone(), counts.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    counts.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                counts.handshakes_ok.fetch_add(1, Ordering::SeqCst);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn ingest(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> StatusCode {
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let mut json = Vec::new();
    if gzip {
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut json)
            .unwrap();
    } else {
        json = body.to_vec();
    }
    let batch: IngestBatch = serde_json::from_slice(&json).unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.batches.lock().unwrap().push((batch, gzip, auth));
    StatusCode::ACCEPTED
}

/// Instrumented app pushing to `config`, driven in-process (no listener:
/// the push client is what is under test).
fn instrumented(config: PushConfig) -> (Registry, ServerMetrics, Router) {
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .without_process_metrics()
        .without_runtime_metrics()
        .push(
            config
                .service("checkout")
                .instance("checkout-1")
                .interval(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let app = metrics.instrument(Router::new().route(
        "/users/{id}",
        get(|Path(id): Path<u32>| async move { format!("{{\"id\":{id}}}") }),
    ));
    (registry, metrics, app)
}

async fn hit(app: &Router, n: u32) {
    for id in 0..n {
        let req = http::Request::get(format!("/users/{id}?with=a-query-string-to-drop"))
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn https_push_with_a_private_ca_delivers_gzip_batches() {
    let pki = pki("trusted");
    let (addr, seen) = tls_collector(&pki).await;
    // By IP address and by name: both are in the certificate.
    for url in [
        format!("https://{addr}"),
        format!("https://localhost:{}/", addr.port()),
    ] {
        let config = PushConfig::new(&url, "tls-key")
            .unwrap()
            .root_certificate_pem(pki.ca_pem.as_bytes())
            .unwrap();
        let (registry, metrics, app) = instrumented(config);
        // 40 sampled requests make a body well over the gzip threshold.
        hit(&app, 40).await;
        let report = metrics
            .push_client()
            .unwrap()
            .flush(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(report.delivered, 1, "{url}: {report:?}");
        assert_eq!(report.pending, 0);
        let snap = registry.snapshot();
        assert_eq!(
            value(&snap, "vitals_push_batches", &[("result", "sent")]),
            Some(1)
        );
        assert_eq!(
            value(&snap, "vitals_push_failures", &[("reason", "tls")]),
            Some(0)
        );
    }
    // Dropping the first `ServerMetrics` pushes its last (empty) interval.
    let batches: Vec<_> = seen
        .batches
        .lock()
        .unwrap()
        .iter()
        .filter(|(b, _, _)| !b.routes.is_empty())
        .cloned()
        .collect();
    assert_eq!(batches.len(), 2);
    for (batch, gzip, auth) in &batches {
        assert!(gzip, "a 40-sample batch is sent gzip-compressed");
        assert_eq!(auth, "Bearer tls-key");
        assert_eq!(batch.service, "checkout");
        let count: u64 = batch
            .routes
            .iter()
            .filter(|r| r.route == "/users/{id}")
            .map(|r| r.count)
            .sum();
        assert_eq!(count, 40);
        assert_eq!(batch.requests.len(), 40);
    }
    assert_eq!(seen.handshakes_failed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn untrusted_certificate_fails_is_counted_and_gives_up() {
    let server_pki = pki("server");
    let other_pki = pki("other");
    let (addr, seen) = tls_collector(&server_pki).await;
    // Trusted: Mozilla's roots and an unrelated private CA, not the one
    // that signed the collector's certificate.
    let config = PushConfig::new(&format!("https://{addr}"), "tls-key")
        .unwrap()
        .root_certificate_pem(other_pki.ca_pem.as_bytes())
        .unwrap()
        .max_attempts(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(5));
    let (registry, metrics, app) = instrumented(config);
    hit(&app, 3).await;
    let report = metrics
        .push_client()
        .unwrap()
        .flush(Duration::from_secs(10))
        .await
        .unwrap();
    // Given up after three attempts, well before the flush's time ran out.
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(report.pending, 0, "{report:?}");
    let snap = registry.snapshot();
    let v = |family: &str, labels: &[(&str, &str)]| value(&snap, family, labels);
    assert_eq!(v("vitals_push_failures", &[("reason", "tls")]), Some(3));
    assert_eq!(v("vitals_push_failures", &[("reason", "connect")]), Some(0));
    assert_eq!(v("vitals_push_retries", &[]), Some(2));
    assert_eq!(
        v("vitals_push_dropped", &[("reason", "retries_exhausted")]),
        Some(1)
    );
    assert_eq!(v("vitals_push_batches", &[("result", "sent")]), Some(0));
    assert_eq!(v("vitals_push_queue_batches", &[]), Some(0));
    assert!(seen.batches.lock().unwrap().is_empty());
    // The server side saw the client refuse each handshake.
    wait_until_async(
        "the collector to see 3 refused handshakes",
        Duration::from_secs(10),
        async || match seen.handshakes_failed.load(Ordering::SeqCst) {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} refused")),
        },
    )
    .await;
    assert_eq!(seen.handshakes_ok.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn plain_http_to_a_tls_collector_is_a_protocol_failure_not_a_tls_one() {
    let pki = pki("plain");
    let (addr, _seen) = tls_collector(&pki).await;
    let config = PushConfig::new(&format!("http://{addr}"), "k")
        .unwrap()
        .max_attempts(1);
    let (registry, metrics, app) = instrumented(config);
    hit(&app, 1).await;
    let report = metrics
        .push_client()
        .unwrap()
        .flush(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(report.delivered, 0);
    let snap = registry.snapshot();
    assert_eq!(
        value(&snap, "vitals_push_failures", &[("reason", "tls")]),
        Some(0)
    );
    // The TLS server drops a connection that does not start a handshake.
    assert_eq!(
        value(&snap, "vitals_push_failures", &[("reason", "protocol")]),
        Some(1)
    );
    assert_eq!(
        value(
            &snap,
            "vitals_push_dropped",
            &[("reason", "retries_exhausted")]
        ),
        Some(1)
    );
}

#[test]
fn bad_root_certificates_are_refused_clearly() {
    let base = || PushConfig::new("https://collector.test", "k").unwrap();
    let err = base().root_certificate_pem(b"hello").unwrap_err();
    assert!(matches!(err, PushError::InvalidRootCertificate { .. }));
    assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    // A private key is PEM, but not a certificate.
    let key = KeyPair::generate().unwrap().serialize_pem();
    let err = base().root_certificate_pem(key.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    let damaged = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
    let err = base().root_certificate_pem(damaged.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("invalid root certificate"),
        "{err}"
    );
    // A bundle of two CAs is fine.
    let bundle = format!("{}{}", pki("a").ca_pem, pki("b").ca_pem);
    assert!(base().root_certificate_pem(bundle.as_bytes()).is_ok());
}
