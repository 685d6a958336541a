//! The alerts page of the web UI in real headless Chromium, driven by
//! `tests/browser/alerts.js` (playwright-core with Debian's
//! `/usr/bin/chromium`) against a real collector that evaluates its rules
//! every second: a rule added in the page's form fires after bad traffic
//! and shows in the history.
//!
//! Needs what `tests/ui.rs` needs (node 20 or later, chromium, `npm ci` in
//! `tests/browser`; `scripts/test` sees to all three); without them it
//! fails, unless `VITALS_SKIP_EXTERNAL=1` skips it (never in CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use vitals_collector::{CollectorConfig, Role};

/// Why the browser test cannot run, if it cannot.
fn browser_setup(dir: &Path) -> Result<(), String> {
    if vitals_test_support::external::find_command("node").is_none() {
        return Err("node is not on PATH (Debian package nodejs)".into());
    }
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node --version failed: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("node --version said {version:?}"))?;
    if major < 20 {
        return Err(format!(
            "node {version} is older than 20, which playwright-core needs"
        ));
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is not installed (apt-get install chromium)".into());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            dir.display()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_added_in_the_page_fires_after_bad_traffic_and_shows_in_history() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Err(why) = browser_setup(&dir) {
        vitals_test_support::skip_or_fail("headless Chromium with node and playwright-core", why);
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("collector-ui");
    std::fs::create_dir_all(&shots).unwrap();
    let mut config =
        CollectorConfig::from_toml("[alerting]\ninterval = \"1s\"\nhealth_rule = false").unwrap();
    config.store = "sqlite::memory:".into();
    let c = TestCollector::start(config).await;
    let rounds = c.collector.alerting().spawn();
    let admin = c.collector.create_key("acme", Role::Admin).await.unwrap();

    let mut child = Command::new("node")
        .arg(dir.join("alerts.js"))
        .args(["--base", &format!("http://{}", c.addr)])
        .args([
            "--ingest",
            &c.ingest_key,
            "--read",
            &c.read_key,
            "--admin",
            &admin,
        ])
        .arg("--shots")
        .arg(&shots)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // A watchdog, so a hung browser cannot hang the test.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(180))
            == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            eprintln!("alerts ui test: node ran for 180 s; killing it");
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let (status, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            println!("browser: {line}");
            lines.push(line);
        }
        (child.wait().unwrap(), lines)
    })
    .await
    .unwrap();
    drop(done_tx);
    watchdog.join().unwrap();
    rounds.abort();
    c.stop().await;
    assert!(status.success(), "the browser checks failed: {status}");
    assert!(lines.iter().any(|l| l == "all alerts UI checks passed"));
    let png = std::fs::read(shots.join("collector-alerts.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let _ = writeln!(
        std::io::stderr(),
        "screenshot: {}",
        shots.join("collector-alerts.png").display()
    );
}
