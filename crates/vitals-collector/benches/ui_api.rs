//! The web UI's API calls, timed over real HTTP, on SQLite and PostgreSQL,
//! at 20 and 200 services × 50 routes, over 24 h and 7 d; and the time
//! from a stored batch to its `/v1/live` event.
//!
//! Data, as a running collector holds it: 7 days and an hour of hour
//! buckets (written as the rollup job leaves them), the last 16 minutes
//! as ingest writes them, one rollup pass, then one more minute ingested,
//! so the current five minutes and hour are dirty and every coarse read
//! goes through the fresh path (finer buckets in place of dirty periods).
//! Every service has its per-service totals (two status classes, with and
//! without a caller, so `/v1/connections` has edges); route rows are
//! stored for the three services the per-service calls read (a route read
//! seeks one service's rows by index, so other services' route rows do
//! not change its cost). svc-0 also has 100 custom series (10 names × 10
//! label sets) and 100 sampled requests per service of svc-0..svc-4, whose
//! trace ids each cross the five services.
//!
//! Each call: 2 warm-ups, then 15 timed runs; the table gives the median
//! and the slowest. The collector runs on a tokio runtime with two worker
//! threads, the client in the same process. PostgreSQL at
//! `VITALS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`)
//! in a fresh schema, dropped at the end; skipped with a note when it does
//! not answer. Live: 300 small `/v1/requests` bodies posted one after
//! another to a SQLite collector with one stream open; the time from the
//! POST's answer to the event's arrival (0 when the event came first), and
//! from sending the POST to the event. Run:
//! `cargo bench -p vitals-collector --bench ui_api`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::time::{Duration, Instant};
use vitals::Sketch;
use vitals_collector::model::{CustomKey, CustomKind, CustomPoint, CustomStats};
use vitals_collector::{
    Bucket, BucketStats, Collector, CollectorConfig, DirtyPeriod, IngestWrite, Resolution, Role,
    Sample, SeriesKey, now_ms, with_totals,
};

const ROUTES: usize = 50;
const TENANT: &str = "bench";
const DETAIL: usize = 3;
const RUNS: usize = 15;
const HOUR: i64 = 3_600_000;

type Http = Client<HttpConnector, Full<Bytes>>;

fn sketches() -> Vec<Sketch> {
    let mut seed = 7u64;
    (0..8)
        .map(|_| {
            let mut sk = Sketch::new();
            for _ in 0..500 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
                sk.record((0.5f64.ln() + u * (5000.0f64 / 0.5).ln()).exp());
            }
            sk
        })
        .collect()
}

/// One period's buckets of `services` (all of them, or one): route rows
/// for the first [`DETAIL`] services, totals for every one.
fn buckets(
    res: Resolution,
    start: i64,
    services: usize,
    only: Option<usize>,
    count: u64,
    sk: &[Sketch],
) -> Vec<Bucket> {
    let mut out = Vec::new();
    for s in (0..services).filter(|s| only.is_none_or(|o| o == *s)) {
        for r in 0..ROUTES {
            out.push(Bucket {
                tenant: TENANT.into(),
                resolution: res,
                start_ms: start,
                key: SeriesKey {
                    service: format!("svc-{s}"),
                    method: "GET".into(),
                    route: format!("/route/{r}"),
                    status_class: if r % 10 == 0 { 5 } else { 2 },
                    caller: if r % 5 == 0 {
                        format!("svc-{}", (s + 1) % services)
                    } else {
                        String::new()
                    },
                },
                stats: BucketStats {
                    count,
                    errors: if r % 10 == 0 { count } else { 0 },
                    satisfied: count * 3 / 4,
                    tolerating: count / 8,
                    duration_ms: sk[(s + r) % sk.len()].clone(),
                    last_seen_ms: start + 1,
                },
            });
        }
    }
    let mut all = with_totals(out);
    all.retain(|b| {
        b.key.is_total()
            || b.key
                .service
                .strip_prefix("svc-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n < DETAIL)
    });
    all
}

fn trace_id(i: usize) -> String {
    format!(
        "{:032x}",
        (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

/// One minute of every service, as ingest writes it, all at once (the
/// store groups concurrent commits).
async fn ingest_minute(c: &Collector, t: i64, services: usize, sk: &[Sketch], samples: bool) {
    let store = c.store().clone();
    let writes = (0..services).map(|s| {
        let store = store.clone();
        let samples: Vec<Sample> = if samples && s < 5 {
            (0..100)
                .map(|i| Sample {
                    timestamp_ms: t + i as i64 * 100 + s as i64,
                    instance: "i-1".into(),
                    method: "GET".into(),
                    path: format!("/route/{}", i % ROUTES),
                    route: format!("/route/{}", i % ROUTES),
                    status: 200,
                    duration_ms: 12.5,
                    caller: None,
                    trace_id: Some(trace_id(i)),
                })
                .collect()
        } else {
            Vec::new()
        };
        let w = IngestWrite {
            tenant: TENANT.into(),
            service: format!("svc-{s}"),
            batch_id: None,
            received_ms: now_ms(),
            buckets: buckets(Resolution::Minute, t, services, Some(s), 100, sk),
            samples,
            custom: vec![],
        };
        async move { store.ingest(w).await.unwrap() }
    });
    futures_util::future::join_all(writes).await;
}

async fn populate(c: &Collector, services: usize) {
    let store = c.store().clone();
    let sk = sketches();
    let now = now_ms();
    let hour_now = Resolution::Hour.floor(now);
    for h in 1..=(7 * 24 + 1) {
        let start = hour_now - h * HOUR;
        let period = DirtyPeriod {
            resolution: Resolution::Hour,
            tenant: TENANT.into(),
            start_ms: start,
            generation: 0,
        };
        let b = buckets(Resolution::Hour, start, services, None, 6000, &sk);
        store.write_rollup(period.clone(), b).await.unwrap();
        let points: Vec<CustomPoint> = (0..100)
            .map(|i| CustomPoint {
                tenant: TENANT.into(),
                resolution: Resolution::Hour,
                start_ms: start,
                key: CustomKey {
                    service: "svc-0".into(),
                    name: format!("app_metric_{}", i % 10),
                    labels: format!(r#"{{"shard":"{}"}}"#, i / 10),
                    instance: "i-1".into(),
                },
                stats: CustomStats {
                    kind: if i % 2 == 0 {
                        CustomKind::Counter
                    } else {
                        CustomKind::Gauge
                    },
                    last: (200 - h) as f64 * 100.0,
                    last_ms: start + 3_000_000,
                    min: 0.0,
                    max: 20_000.0,
                },
            })
            .collect();
        store.write_custom_rollup(period, points).await.unwrap();
    }
    let minute_now = Resolution::Minute.floor(now);
    for m in (1..=16).rev() {
        ingest_minute(c, minute_now - m * 60_000, services, &sk, false).await;
    }
    c.run_jobs_once(now_ms()).await.unwrap();
    // After the pass: the current minute, so the current five minutes and
    // hour are dirty, as between two passes of a running collector.
    ingest_minute(c, minute_now, services, &sk, true).await;
}

async fn get(client: &Http, url: &str, key: &str) -> usize {
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.into_body().collect().await.unwrap().to_bytes().len()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn serve(c: &Collector) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, c.router()).into_future());
    addr
}

async fn calls(backend: &str, config: CollectorConfig, services: usize) {
    let c = Collector::open(config).await.unwrap();
    let t = Instant::now();
    populate(&c, services).await;
    eprintln!(
        "{backend} {services}×{ROUTES}: data written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let key = c.create_key(TENANT, Role::Read).await.unwrap();
    let addr = serve(&c).await;
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{addr}");
    let trace = trace_id(7);
    for window in ["24h", "7d"] {
        let paths = [
            (
                "services+sparkline",
                format!("/v1/services?window={window}&sparkline=1"),
            ),
            ("stats", format!("/v1/services/svc-0/stats?window={window}")),
            (
                "routes",
                format!("/v1/services/svc-0/routes?window={window}"),
            ),
            (
                "timeseries p95",
                format!("/v1/services/svc-0/timeseries?window={window}&metric=p95_ms"),
            ),
            (
                "custom",
                format!("/v1/services/svc-0/custom?window={window}"),
            ),
            ("connections", format!("/v1/connections?window={window}")),
            (
                "recent 100",
                "/v1/services/svc-0/recent?limit=100".to_string(),
            ),
            ("trace", format!("/v1/traces/{trace}")),
        ];
        for (name, path) in paths {
            let url = format!("{base}{path}");
            let mut bytes = 0;
            for _ in 0..2 {
                bytes = get(&client, &url, &key).await;
            }
            let mut times: Vec<f64> = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let t = Instant::now();
                get(&client, &url, &key).await;
                times.push(ms(t.elapsed()));
            }
            times.sort_by(f64::total_cmp);
            println!(
                "| {backend} | {services}×{ROUTES} | {window} | {name} | {:.1} | {:.1} | {bytes} |",
                times[RUNS / 2],
                times[RUNS - 1]
            );
        }
    }
}

async fn live_latency() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::open(CollectorConfig {
        store: format!("sqlite://{}", dir.path().join("live.db").display()),
        ..Default::default()
    })
    .await
    .unwrap();
    let read = c.create_key(TENANT, Role::Read).await.unwrap();
    let ingest = c.create_key(TENANT, Role::Ingest).await.unwrap();
    let addr = serve(&c).await;
    let sse = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = hyper::Request::get(format!("http://{addr}/v1/live"))
        .header("authorization", format!("Bearer {read}"))
        .body(Empty::new())
        .unwrap();
    let mut body = sse.request(req).await.unwrap().into_body();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                buf.push_str(std::str::from_utf8(&data).unwrap());
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    if block.starts_with("event: batch") {
                        let _ = tx.send(Instant::now());
                    }
                }
            }
        }
    });
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let n = 300;
    let (mut after_ack, mut after_send) = (Vec::new(), Vec::new());
    for i in 0..n {
        let body = json!({"service": "live", "batch_id": format!("l{i}"), "requests": [
            {"method": "GET", "route": "/x", "status": 200, "duration_ms": 1.0}
        ]});
        let req = hyper::Request::post(format!("http://{addr}/v1/requests"))
            .header("authorization", format!("Bearer {ingest}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
            .unwrap();
        let sent = Instant::now();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        let acked = Instant::now();
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the event within 10 s")
            .unwrap();
        after_ack.push(ms(event.saturating_duration_since(acked)));
        after_send.push(ms(event - sent));
    }
    for v in [&mut after_ack, &mut after_send] {
        v.sort_by(f64::total_cmp);
    }
    let q = |v: &[f64], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "live, {n} batches: acknowledged → event received p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         POST sent → event received p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        q(&after_ack, 0.5),
        q(&after_ack, 0.99),
        after_ack[n - 1],
        q(&after_send, 0.5),
        q(&after_send, 0.99),
        after_send[n - 1],
    );
}

/// A fresh schema on the test PostgreSQL: its URL and an admin client,
/// or `None` when it does not answer.
async fn postgres_schema(name: &str) -> Option<(String, tokio_postgres::Client)> {
    let base = std::env::var("VITALS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let connect = tokio_postgres::connect(&base, tokio_postgres::NoTls);
    let (client, conn) = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(c)) => c,
        _ => {
            eprintln!("PostgreSQL at {base} does not answer: its rows are skipped");
            return None;
        }
    };
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}options=-csearch_path%3D{name}"), client))
}

fn main() {
    // `cargo bench` passes `--bench`; a filter picks the sizes: `20`, `200`.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "| store | services × routes | window | call | median ms | slowest ms | answer bytes |"
        );
        println!("|---|---|---|---|---|---|---|");
        for services in [20, 200] {
            if !filter.is_empty() && !filter.contains(&services.to_string()) {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let sqlite = CollectorConfig {
                store: format!("sqlite://{}", dir.path().join("ui.db").display()),
                ..Default::default()
            };
            calls("SQLite", sqlite, services).await;
            let name = format!("vitals_bench_ui_{}_{services}", std::process::id());
            if let Some((url, admin)) = postgres_schema(&name).await {
                let pg = CollectorConfig {
                    store: url,
                    ..Default::default()
                };
                calls("PostgreSQL", pg, services).await;
                admin
                    .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                    .await
                    .unwrap();
            }
        }
        live_latency().await;
    });
}
