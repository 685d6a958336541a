//! The metric names of docs/ARCHITECTURE.md ("Server metrics", the block
//! between `<!-- metric-names:begin -->` and `<!-- metric-names:end -->`)
//! and the families the demo server (`examples/demo_server.rs`) exposes at
//! `/metrics` are the same set: no more, no fewer, no renames, with and
//! without a namespace, in Prometheus text and in OpenMetrics. A rename in
//! either place fails here until the other follows.

mod common;

#[path = "../examples/demo_server.rs"]
#[allow(dead_code)] // its `main` and flags are the example's, not the test's
mod demo_server;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use vitals::Registry;
use vitals_server::push::PushConfig;
use vitals_server::{ServerMetrics, ServerMetricsBuilder};

const ARCHITECTURE: &str = include_str!("../../../docs/ARCHITECTURE.md");

/// One row of the documented block.
#[derive(Debug)]
struct Row {
    name: String,
    /// Whether `namespace()` prefixes it.
    namespaced: bool,
    /// When it is shown: `always`, `linux`, `runtime`, `push`, `on event`.
    shown: String,
}

fn documented() -> Vec<Row> {
    let begin = ARCHITECTURE
        .find("<!-- metric-names:begin -->")
        .expect("docs/ARCHITECTURE.md has no `<!-- metric-names:begin -->` line");
    let end = ARCHITECTURE
        .find("<!-- metric-names:end -->")
        .expect("docs/ARCHITECTURE.md has no `<!-- metric-names:end -->` line");
    let mut rows = Vec::new();
    for line in ARCHITECTURE[begin..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| `name` | labels | type | meaning | namespace | shown |`
        if cells.len() < 8 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        let namespaced = match cells[5] {
            "yes" => true,
            "no" => false,
            other => panic!("{name}: the namespace column says {other:?}, not yes/no"),
        };
        let shown = cells[6].to_owned();
        assert!(
            ["always", "linux", "runtime", "push", "on event", "statsd"].contains(&shown.as_str()),
            "{name}: the shown column says {shown:?}"
        );
        rows.push(Row {
            name,
            namespaced,
            shown,
        });
    }
    assert!(
        rows.len() > 40,
        "docs/ARCHITECTURE.md's metric block parsed to only {} rows",
        rows.len()
    );
    rows
}

/// The documented names shown in these cases, as a namespace makes them.
fn expected(rows: &[Row], namespace: &str, shown: &[&str]) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| shown.contains(&r.shown.as_str()))
        .map(|r| {
            if r.namespaced && !namespace.is_empty() {
                format!("{namespace}_{}", r.name)
            } else {
                r.name.clone()
            }
        })
        .collect()
}

/// The cases a Linux process with a tokio runtime always shows.
fn always() -> Vec<&'static str> {
    let mut v = vec!["always", "runtime"];
    if cfg!(target_os = "linux") {
        v.push("linux");
    }
    v
}

struct Demo {
    addr: SocketAddr,
    metrics: ServerMetrics,
}

async fn serve_demo(
    namespace: &str,
    more: impl FnOnce(ServerMetricsBuilder) -> ServerMetricsBuilder,
) -> Demo {
    let mut builder = ServerMetrics::builder().registry(Registry::new());
    if !namespace.is_empty() {
        builder = builder.namespace(namespace);
    }
    let metrics = more(builder).build().expect("valid metric names");
    let addr = common::serve(&metrics, metrics.instrument(demo_server::routes())).await;
    Demo { addr, metrics }
}

async fn get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String) {
    let req = hyper::Request::get(format!("http://{addr}{path}"))
        .header("accept", accept)
        .body(Empty::<bytes::Bytes>::new())
        .expect("valid request");
    let res = Client::builder(TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .expect("the demo server answers");
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The sample names of the `# TYPE` lines: Prometheus text names counters
/// with `_total`, OpenMetrics names the family without it.
async fn exposed(addr: SocketAddr) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut text = BTreeSet::new();
    let mut open = BTreeSet::new();
    for (accept, set) in [
        ("text/plain", &mut text),
        ("application/openmetrics-text; version=1.0.0", &mut open),
    ] {
        let (status, body) = get(addr, "/metrics", accept).await;
        assert_eq!(status, 200, "GET /metrics ({accept}): {body}");
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                panic!("malformed TYPE line {line:?}");
            };
            let openmetrics_counter =
                accept.starts_with("application/openmetrics") && kind == "counter";
            set.insert(if openmetrics_counter {
                format!("{name}_total")
            } else {
                name.to_owned()
            });
        }
    }
    (text, open)
}

fn assert_same(what: &str, exposed: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let undocumented: Vec<_> = exposed.difference(documented).collect();
    let missing: Vec<_> = documented.difference(exposed).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "{what}: the exposition and docs/ARCHITECTURE.md differ.\n\
         exposed but not in the doc's metric block: {undocumented:?}\n\
         in the doc's block but not exposed: {missing:?}"
    );
}

async fn check_demo(namespace: &str) {
    let rows = documented();
    // Route limit 2: the demo's third route overflows, so
    // `vitals_cardinality_overflow_total` shows up on cue below.
    let demo = serve_demo(namespace, |b| b.route_limit(2)).await;
    // `tokio_runtime_busy_ratio` needs 100 ms between two readings.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = get(demo.addr, "/metrics", "text/plain").await;
    tokio::time::sleep(Duration::from_millis(150)).await;

    let base = expected(&rows, namespace, &always());
    let (text, open) = exposed(demo.addr).await;
    assert_same(&format!("namespace {namespace:?}, text"), &text, &base);
    assert_same(
        &format!("namespace {namespace:?}, OpenMetrics"),
        &open,
        &base,
    );

    // The core's own families, each once its event happened: a refused
    // filter, a route past the limit, a subscriber that reads nothing.
    let (status, _) = get(demo.addr, "/debug/metrics?worker=1", "*/*").await;
    assert_eq!(status, 400, "?worker= is refused");
    for path in ["/", "/users/1", "/fail", "/slow?ms=1"] {
        get(demo.addr, path, "*/*").await;
    }
    let (_sub, _unread) = demo.metrics.events().subscribe_channel("unread", 1);
    for _ in 0..3 {
        get(demo.addr, "/", "*/*").await;
    }
    let all = expected(&rows, namespace, &[always(), vec!["on event"]].concat());
    let (text, open) = exposed(demo.addr).await;
    assert_same(
        &format!("namespace {namespace:?} after events, text"),
        &text,
        &all,
    );
    assert_same(
        &format!("namespace {namespace:?} after events, OpenMetrics"),
        &open,
        &all,
    );
}

#[tokio::test]
async fn the_demo_server_exposes_the_documented_names() {
    check_demo("").await;
}

#[tokio::test]
async fn the_demo_server_exposes_the_documented_names_under_a_namespace() {
    check_demo("pagi").await;
}

#[tokio::test]
async fn push_adds_the_documented_push_names() {
    let rows = documented();
    // Nothing listens on port 1: the push client only has to exist.
    let push = PushConfig::new("http://127.0.0.1:1", "key").expect("valid push config");
    let demo = serve_demo("", |b| b.push(push)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = get(demo.addr, "/metrics", "text/plain").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let want = expected(&rows, "", &[always(), vec!["push"]].concat());
    let (text, open) = exposed(demo.addr).await;
    // Only `always`, `runtime`, `linux` and `push` rows: anything else
    // exposed here (an `on event` family) would be a surprise worth a look.
    assert_same("with push, text", &text, &want);
    assert_same("with push, OpenMetrics", &open, &want);
}
