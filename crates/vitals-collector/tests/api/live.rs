//! `GET /v1/live` through a real streaming HTTP client: a stored batch
//! reaches its tenant's streams (and no other tenant's), a duplicate sends
//! nothing, and the hostile cases are clear, counted refusals: no or a
//! wrong key, an ingest key, an unknown parameter, one client too many.

use crate::common::*;
use crate::{raw_requests, records_body};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;
use vitals_collector::{CollectorConfig, Limits, Role, now_ms};
use vitals_test_support::wait::wait_until_async;

/// An open event stream: its body, and the text read so far.
struct Stream {
    body: hyper::body::Incoming,
    buf: String,
}

/// Opens `GET /v1/live` with `key`; the status and, on 200, the stream.
async fn open(tc: &TestCollector, key: &str) -> (u16, Option<Stream>, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = hyper::Request::get(format!("http://{}/v1/live", tc.addr))
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    if status == 200 {
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        let body = resp.into_body();
        return (
            status,
            Some(Stream {
                body,
                buf: String::new(),
            }),
            Value::Null,
        );
    }
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).expect("a JSON error");
    (status, None, value)
}

impl Stream {
    /// The next event (not a comment): its name and data, within 10 s.
    async fn next_event(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if name.is_empty() {
                    continue; // a keepalive comment
                }
                return (name, serde_json::from_str(&data).expect("JSON data"));
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s")
                .expect("the stream stays open")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.buf
                    .push_str(std::str::from_utf8(&data).expect("UTF-8"));
            }
        }
    }
}

async fn post(tc: &TestCollector, key: &str, service: &str, id: &str) -> Value {
    let body = records_body(service, Some(id), &raw_requests(7, 5), now_ms());
    let (status, answer) = tc
        .request(
            "POST",
            "/v1/requests",
            Some(key),
            &[("content-type", "application/json")],
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn a_stored_batch_reaches_its_tenants_streams_only() {
    let tc = TestCollector::start(memory_config()).await;
    let other_read = tc
        .collector
        .create_key("globex", Role::Read)
        .await
        .expect("key");
    let other_ingest = tc
        .collector
        .create_key("globex", Role::Ingest)
        .await
        .expect("key");
    let (_, mine, _) = open(&tc, &tc.read_key).await;
    let (_, theirs, _) = open(&tc, &other_read).await;
    let (mut mine, mut theirs) = (mine.expect("stream"), theirs.expect("stream"));
    wait_until_async("both streams counted", Duration::from_secs(5), async || {
        let n = metric_value(&tc.metrics_text().await, "vitals_collector_live_clients");
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} clients"))
        }
    })
    .await;

    let before = now_ms();
    post(&tc, &tc.ingest_key, "api", "b1").await;
    let after = now_ms();
    let (name, data) = mine.next_event().await;
    assert_eq!(name, "batch");
    assert_eq!(data["service"], "api");
    let at = data["at_ms"].as_i64().expect("at_ms");
    assert!((before..=after).contains(&at), "{at} in {before}..={after}");

    // A retry is a duplicate: no event. The next event on each stream is
    // its own tenant's next batch, so nothing of acme reached globex.
    let answer = post(&tc, &tc.ingest_key, "api", "b1").await;
    assert_eq!(answer["status"], "duplicate");
    post(&tc, &other_ingest, "billing", "g1").await;
    post(&tc, &tc.ingest_key, "web", "b2").await;
    let (_, data) = theirs.next_event().await;
    assert_eq!(
        data["service"], "billing",
        "globex sees its own batch first"
    );
    let (_, data) = mine.next_event().await;
    assert_eq!(data["service"], "web", "the duplicate sent nothing");

    let text = tc.metrics_text().await;
    assert!(metric_value(&text, "vitals_collector_live_events_total") >= 3);
    drop((mine, theirs));
    wait_until_async("streams given back", Duration::from_secs(5), async || {
        let n = metric_value(&tc.metrics_text().await, "vitals_collector_live_clients");
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} clients"))
        }
    })
    .await;
    tc.stop().await;
}

#[tokio::test]
async fn live_refuses_wrong_keys_and_one_client_too_many() {
    let tc = TestCollector::start(CollectorConfig {
        limits: Limits {
            max_live_clients: 2,
            ..Limits::default()
        },
        ..memory_config()
    })
    .await;
    let (status, _, body) = open(&tc, "vk_0000").await;
    assert_eq!(
        (status, body["reason"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, _, body) = open(&tc, &tc.ingest_key).await;
    assert_eq!((status, body["reason"].clone()), (403, json!("forbidden")));
    let (status, body) = tc.get("/v1/live?since=1").await;
    assert_eq!(
        (status, body["reason"].clone()),
        (400, json!("unknown_parameter"))
    );

    let (_, first, _) = open(&tc, &tc.read_key).await;
    let (_, second, _) = open(&tc, &tc.read_key).await;
    assert!(first.is_some() && second.is_some());
    let (status, third, body) = open(&tc, &tc.read_key).await;
    assert!(third.is_none());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "too_many_live_clients");
    assert!(body["error"].as_str().expect("error").contains("at most 2"));
    assert_eq!(
        metric_value(
            &tc.metrics_text().await,
            r#"vitals_rejected_total{reason="too_many_live_clients"}"#
        ),
        1
    );
    // A closed stream gives its place back.
    drop(first);
    let mut again = wait_until_async(
        "a place is free again",
        Duration::from_secs(5),
        async || match open(&tc, &tc.read_key).await {
            (200, Some(s), _) => Ok(s),
            (status, _, body) => Err(format!("{status} {body}")),
        },
    )
    .await;
    post(&tc, &tc.ingest_key, "api", "c1").await;
    assert_eq!(again.next_event().await.1["service"], "api");
    drop((second, again));
    tc.stop().await;
}
