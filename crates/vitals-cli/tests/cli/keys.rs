//! `vitals collector keys list` and `keys revoke`: keys can be seen (never
//! their secrets) and taken back, and a running collector stops taking a
//! revoked key.

use crate::{BIN, call, create_key, start};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::process::Command;
use vitals_test_support::wait::wait_until_async;

/// Runs `vitals collector keys ARGS --config CONFIG`: (success, stdout, stderr).
async fn keys(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["collector", "keys"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("VITALS_STORE")
        .env_remove("VITALS_TENANT")
        .output()
        .await
        .expect("run keys");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rows of `keys list` (after its header): `[id, role, …, tenant]`.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revoked_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\n",
            dir.path().join("vitals.db").display()
        ),
    )
    .unwrap();
    let (ok, out, _) = keys(&config, &["list"]).await;
    assert!(ok);
    assert!(rows(&out).is_empty(), "a new store has no keys: {out}");

    let ingest = create_key(&config, "ingest").await;
    let read = create_key(&config, "read").await;
    let (ok, out, err) = keys(&config, &["list"]).await;
    assert!(ok, "{err}");
    let listed = rows(&out);
    assert_eq!(listed.len(), 2, "{out}");
    assert!(err.contains("2 key(s)"), "{err}");
    let roles: Vec<&str> = listed.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(roles, ["ingest", "read"], "oldest first: {out}");
    for row in &listed {
        assert_eq!(row[0].len(), 12, "an id is 12 hex digits: {row:?}");
        assert_eq!(row.last().unwrap(), "acme", "{row:?}");
    }
    for secret in [&ingest, &read] {
        let digits = &secret[3..];
        assert!(
            !out.contains(digits) && !out.contains(&digits[..12]),
            "keys list shows a secret: {out}"
        );
    }
    let (ok, out, _) = keys(&config, &["list", "--tenant", "other"]).await;
    assert!(ok);
    assert!(
        rows(&out).is_empty(),
        "another tenant's list is empty: {out}"
    );

    // Ids that are too short, not hex, or name no key are refused by name,
    // and revoke nothing.
    for bad in ["abc", "zzzzzzzzzzzz", "000000000000"] {
        let (ok, _, err) = keys(&config, &["revoke", bad]).await;
        assert!(!ok, "revoke {bad} succeeded");
        assert!(err.contains("keys list"), "{bad}: {err}");
    }
    let (_, out, _) = keys(&config, &["list"]).await;
    assert_eq!(rows(&out).len(), 2, "a refused revoke took a key: {out}");

    // A running collector takes the read key, then refuses it once revoked.
    let (mut child, addr) = start(&config).await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{addr}/v1/services");
    let (status, _) = call(&client, "GET", url.clone(), &read, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let read_id = listed[1][0].clone();
    let (ok, _, err) = keys(&config, &["revoke", &read_id]).await;
    assert!(ok, "{err}");
    assert!(
        err.contains(&read_id) && err.contains("read key"),
        "says what it revoked: {err}"
    );
    let (_, out, _) = keys(&config, &["list"]).await;
    let left = rows(&out);
    assert_eq!(left.len(), 1, "{out}");
    assert_eq!(left[0][1], "ingest", "{out}");
    // Revoking it again says it is gone.
    let (ok, _, err) = keys(&config, &["revoke", &read_id]).await;
    assert!(!ok && err.contains("no key has the id"), "{err}");

    // The collector trusts a looked-up key for 10 s at most.
    wait_until_async(
        "the revoked key is refused",
        Duration::from_secs(20),
        async || match call(&client, "GET", url.clone(), &read, None).await {
            Ok((401, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    // The other key still works.
    let (status, _) = call(
        &client,
        "POST",
        format!("http://{addr}/v1/requests"),
        &ingest,
        Some(&serde_json::json!({"service": "api", "requests": []})),
    )
    .await
    .unwrap();
    assert_ne!(status, 401, "the ingest key was revoked with the read key");
    child.kill().await.unwrap();
}
