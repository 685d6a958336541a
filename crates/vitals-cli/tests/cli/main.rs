//! The real `vitals` binary: keys, flags from the environment and the
//! config file, and no acknowledged batch lost when the process is killed.
//!
//! - `settings`: every setting comes from a flag, a variable or the file,
//!   in that order, and a mistyped or bad one is refused by name.
//! - `output`: `--help` documents every flag and its variable; store
//!   passwords never reach the output.
//! - `durability`: a killed collector loses no acknowledged batch.
//! - `keys`: keys are listed without their secrets and revoked by id.
//! - `errors`: errors name what to do (a missing directory, a taken port)
//!   and print no backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod durability;
mod errors;
mod keys;
mod output;
mod settings;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_vitals");

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn create_key(config: &std::path::Path, role: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "collector",
            "keys",
            "create",
            "--tenant",
            "acme",
            "--role",
            role,
            "--config",
        ])
        .arg(config)
        .env_remove("VITALS_STORE")
        .output()
        .await
        .expect("run keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("vk_"), "{key}");
    key
}

/// Starts `vitals collector` with the listen address from the environment
/// and everything else from the config file; returns it and its address.
async fn start(config: &std::path::Path) -> (Child, String) {
    start_with(config, &[], &[]).await
}

/// As [`start`], with more flags and variables.
async fn start_with(
    config: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["collector", "--config"])
        .arg(config)
        .args(args)
        .env("VITALS_LISTEN", "127.0.0.1:0")
        .env_remove("VITALS_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn collector");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("the collector exited before listening");
    })
    .await
    .expect("collector starts in time");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: String,
    key: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from(
            body.map(|b| serde_json::to_vec(b).unwrap())
                .unwrap_or_default(),
        )))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
