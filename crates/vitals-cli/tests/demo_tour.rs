//! `vitals demo --duration 20s`, toured as a new user would: every URL it
//! prints answers while it runs, its dashboards show WebSocket, SSE,
//! HTTP/2 and task figures, and the collector ends up listing both
//! services with traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use vitals_test_support::wait::wait_until_async;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn get(client: &HttpClient, url: &str, key: Option<&str>) -> Result<(u16, Bytes), String> {
    let mut req = hyper::Request::get(url);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{url}: timeout"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// A number at a dotted path of a JSON document (0 when absent).
fn at(json: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(json, |v, k| &v[k])
        .as_f64()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_demo_shows_every_feature_and_every_url_it_prints_answers() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--service-listen",
            "127.0.0.1:0",
            "--store",
            "sqlite::memory:",
            "--duration",
            "20s",
            "--push-interval",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The banner: every line up to the first report.
    let mut banner = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim_start().starts_with("load ") {
                banner.push(line);
                break;
            }
            banner.push(line);
        }
    })
    .await
    .expect("the demo prints its banner");
    let banner = banner.join("\n");
    let rest = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            out.push(line);
        }
        out.join("\n")
    });
    let read_key = banner
        .split_whitespace()
        .find(|w| w.starts_with("vk_"))
        .expect("the banner shows the read key")
        .trim_end_matches('\'')
        .to_string();
    let urls: Vec<String> = banner
        .split_whitespace()
        .filter(|w| w.starts_with("http://"))
        .map(|w| w.trim_end_matches(['\'', ',', ')']).to_string())
        .collect();
    assert!(
        urls.len() >= 7,
        "the banner names the collector and both services' pages:\n{banner}"
    );

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    // Every URL the demo prints answers 2xx (the collector's with the read
    // key) once the services have pushed their first interval.
    wait_until_async(
        "every URL the demo prints answers",
        Duration::from_secs(15),
        async || {
            for url in &urls {
                let (status, body) = get(&client, url, Some(&read_key)).await?;
                if !(200..300).contains(&status) {
                    return Err(format!(
                        "{url} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
            Ok(())
        },
    )
    .await;

    // The dashboards' figures: WebSocket and SSE on frontend, HTTP/2
    // streams and the task queue on users.
    let debug: Vec<&String> = urls.iter().filter(|u| u.ends_with("/debug/")).collect();
    assert_eq!(debug.len(), 2, "{banner}");
    let figures = [
        "websocket.connections_total",
        "websocket.messages_received",
        "websocket.messages_sent",
        "sse.connections_total",
        "sse.events_sent",
        "streams.total",
        "tasks.enqueued",
        "tasks.completed",
        "tasks.failed",
        "tasks.retried",
    ];
    wait_until_async(
        "every dashboard figure of the demo is non-zero",
        Duration::from_secs(18),
        async || {
            let mut both = Vec::new();
            for d in &debug {
                let (_, body) = get(&client, &format!("{d}metrics"), None).await?;
                both.push(serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())?);
            }
            let zero: Vec<&str> = figures
                .iter()
                .copied()
                .filter(|f| both.iter().all(|j| at(j, f) == 0.0))
                .collect();
            if zero.is_empty() {
                Ok(())
            } else {
                Err(format!("still zero: {zero:?}"))
            }
        },
    )
    .await;

    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("the demo stops after --duration")
        .unwrap();
    let report = rest.await.unwrap();
    assert!(status.success(), "{report}");
    let finale = report.split("final:").nth(1).expect("a final table");
    for service in ["frontend", "users"] {
        let requests: u64 = finale
            .lines()
            .find_map(|l| {
                let mut cols = l.split_whitespace();
                (cols.next() == Some(service)).then(|| cols.next()?.parse().ok())?
            })
            .unwrap_or(0);
        assert!(
            requests > 100,
            "{service} shows {requests} requests:\n{finale}"
        );
    }
}
