//! Outbound HTTP client metrics, black-box: a real instrumented client
//! (the tower layer over hyper-util's client, with the tracked connector)
//! calling the real demo server (`examples/demo_server.rs`'s routes on a
//! tracked listener), and the `http_client_*` series, events and
//! `/debug/metrics?client=` it leaves.
//!
//! - `counting`: exact counts by status, connections opened and reused,
//!   10 000 distinct URLs on one host staying one series, the event, the
//!   caller and `traceparent` headers, `/debug/metrics?client=`.
//! - `failures`: a connect error (closed port), a timeout (`/slow` past the
//!   client's timeout) and a TLS failure (TLS to a plain-HTTP port), each
//!   counted by kind.
//! - `reqwest_client` (feature `reqwest`): the same through the reqwest
//!   wrapper.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;

#[path = "../../examples/demo_server.rs"]
#[allow(dead_code)] // its `main` and flags are the example's, not the test's
mod demo_server;

mod counting;
mod failures;
#[cfg(feature = "reqwest")]
mod reqwest_client;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use tower::ServiceExt;
use vitals::Registry;
use vitals_server::ServerMetrics;
use vitals_server::client::{ClientMetrics, ClientMetricsService, TrackedConnector};

/// The instrumented client the tests call through.
type Instrumented = ClientMetricsService<Client<TrackedConnector<HttpConnector>, Empty<Bytes>>>;

/// Metrics in a registry of their own, and the demo server on a tracked
/// listener recording into them too (so one registry holds both sides).
struct Demo {
    registry: Registry,
    metrics: ServerMetrics,
    addr: SocketAddr,
}

async fn demo() -> Demo {
    let registry = Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .without_process_metrics()
        .without_runtime_metrics()
        .build()
        .unwrap();
    let addr = common::serve(&metrics, metrics.instrument(demo_server::routes())).await;
    Demo {
        registry,
        metrics,
        addr,
    }
}

/// hyper-util's client over the tracked connector, under the layer.
fn instrumented(client: &ClientMetrics) -> Instrumented {
    tower::ServiceBuilder::new().layer(client.layer()).service(
        Client::builder(TokioExecutor::new()).build(client.connector(HttpConnector::new())),
    )
}

/// GETs `url` through `client` and reads the body to its end: the status,
/// or the error's text.
async fn get(client: &Instrumented, url: &str) -> Result<u16, String> {
    let req = http::Request::get(url).body(Empty::new()).unwrap();
    match client.clone().oneshot(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            res.into_body().collect().await.map_err(|e| e.to_string())?;
            Ok(status)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// One series' value as an integer, or 0 when it does not exist.
fn int(registry: &Registry, family: &str, labels: &[(&str, &str)]) -> i128 {
    common::value(&registry.snapshot(), family, labels).unwrap_or(0)
}
