//! Durability: a collector killed mid-stream loses no batch it has
//! acknowledged.

use crate::{call, create_key, now_ms, start};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;

fn batch(id: &str, now: i64) -> Value {
    let requests: Vec<Value> = (0..20)
        .map(|i| json!({"method": "GET", "route": "/r", "status": 200, "duration_ms": 1.0 + i as f64, "timestamp_ms": now}))
        .collect();
    json!({"service": "api", "batch_id": id, "requests": requests})
}

#[tokio::test]
async fn a_killed_collector_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\nrollup_interval_secs = 1\n",
            dir.path().join("vitals.db").display()
        ),
    )
    .unwrap();
    let ingest = create_key(&config, "ingest").await;
    let read = create_key(&config, "read").await;
    let (mut child, addr) = start(&config).await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let now = now_ms();

    // Four senders post as fast as they can; the process is killed under them.
    let mut senders = Vec::new();
    for s in 0..4 {
        let (client, addr, key) = (client.clone(), addr.clone(), ingest.clone());
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..100_000 {
                let id = format!("s{s}-{i}");
                match call(
                    &client,
                    "POST",
                    format!("http://{addr}/v1/requests"),
                    &key,
                    Some(&batch(&id, now)),
                )
                .await
                {
                    Ok((200, b)) if b["status"] == "stored" => acked.push(id),
                    Ok((status, b)) => panic!("unexpected answer {status}: {b}"),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert!(
        acked.len() >= 4,
        "some batches were acknowledged before the kill: {}",
        acked.len()
    );

    let (mut child, addr) = start(&config).await;
    let (status, stats) = call(
        &client,
        "GET",
        format!("http://{addr}/v1/services/api/stats?window=15m"),
        &read,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{stats}");
    let stored = stats["requests"].as_u64().unwrap();
    assert!(
        stored >= 20 * acked.len() as u64,
        "{stored} requests stored for {} acknowledged batches",
        acked.len()
    );
    assert!(
        stored <= 20 * (acked.len() as u64 + 4),
        "at most the in-flight batches beyond those acknowledged"
    );
    for id in &acked {
        let (status, b) = call(
            &client,
            "POST",
            format!("http://{addr}/v1/requests"),
            &ingest,
            Some(&batch(id, now)),
        )
        .await
        .unwrap();
        assert_eq!(
            (status, b["status"].as_str()),
            (200, Some("duplicate")),
            "acknowledged batch {id} was lost"
        );
    }

    // SIGTERM stops it cleanly.
    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process by its pid.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
