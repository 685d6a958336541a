//! The web UI at `/`: its files over HTTP here, and the pages themselves
//! in real headless Chromium, driven by `tests/browser/drive.js`
//! (playwright-core with Debian's `/usr/bin/chromium`) against a real
//! collector on 127.0.0.1 that the driver pushes batches to.
//!
//! The browser test needs `node` 20 or later, `chromium` and `npm ci` in
//! `tests/browser` (`scripts/test` sees to all three). Without them it
//! fails, unless `VITALS_SKIP_EXTERNAL=1` skips it (never in CI): the rule
//! of `vitals_test_support::external`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use vitals_collector::Role;

/// One GET without a key: status, headers (lowercase names) and body.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_files_are_served_without_a_key() {
    let c = TestCollector::start(memory_config()).await;
    let (status, head, body) = raw_get(c.addr, "/").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains(r#"<script type="module" src="ui/app.js">"#),
        "{html}"
    );
    // Nothing from another origin: every src/href is relative.
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            assert!(
                part.starts_with("ui/"),
                "not a file of the UI: {attr}{}",
                &part[..part.len().min(40)]
            );
        }
    }
    const JS: &str = "content-type: text/javascript; charset=utf-8";
    for (path, ty) in [
        ("/ui/app.js", JS),
        ("/ui/views/index.js", JS),
        ("/ui/views/services.js", JS),
        ("/ui/vendor/preact.js", JS),
        ("/ui/vendor/uplot.js", JS),
        ("/ui/app.css", "content-type: text/css; charset=utf-8"),
        ("/ui/favicon.svg", "content-type: image/svg+xml"),
    ] {
        let (status, head, body) = raw_get(c.addr, path).await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(head.contains(ty), "{path}: {head}");
        assert!(head.contains("cache-control: no-cache"), "{path}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert!(!body.is_empty(), "{path}");
    }
    // Only the table's files: not the sources around them, not a path out.
    for path in [
        "/ui/nope.js",
        "/ui/index.html",
        "/ui/package.json",
        "/ui/vendor.sh",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/views/../app.js",
        "/ui/%FF",
    ] {
        let (status, head, body) = raw_get(c.addr, path).await;
        assert!(status == 404 || status == 400, "{path}: {head}");
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(err["reason"].is_string(), "{path}: {err}");
    }
    let text = c.metrics_text().await;
    assert!(
        metric_value(&text, "vitals_rejected_total{reason=\"not_found\"}") >= 6,
        "{text}"
    );
    c.stop().await;
}

/// Checks that `node` (20 or later: playwright-core's minimum), Chromium
/// and playwright-core are there, or says why the browser test cannot run.
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
            "node {version} is older than 20, which playwright-core needs \
             (scripts/test puts a node 20 from the npm registry first on PATH)"
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
async fn ui_in_headless_chromium() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Err(why) = browser_setup(&dir) {
        vitals_test_support::skip_or_fail("headless Chromium with node and playwright-core", why);
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("collector-ui");
    std::fs::create_dir_all(&shots).unwrap();
    let c = TestCollector::start(memory_config()).await;
    let other_ingest = c
        .collector
        .create_key("globex", Role::Ingest)
        .await
        .unwrap();
    let other_read = c.collector.create_key("globex", Role::Read).await.unwrap();

    let mut child = Command::new("node")
        .arg(dir.join("drive.js"))
        .args(["--base", &format!("http://{}", c.addr)])
        .args(["--ingest", &c.ingest_key, "--read", &c.read_key])
        .args(["--other-ingest", &other_ingest, "--other-read", &other_read])
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
        if done_rx.recv_timeout(Duration::from_secs(240))
            == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            eprintln!("ui test: node ran for 240 s; killing it");
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    // The collector serves on this runtime's workers while this thread reads node.
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
    c.stop().await;
    assert!(status.success(), "the browser checks failed: {status}");
    assert!(lines.iter().any(|l| l == "all collector UI checks passed"));
    for name in [
        "collector-overview-light.png",
        "collector-service-light.png",
        "collector-service-dark.png",
        "collector-callmap-dark.png",
        "collector-journey-dark.png",
    ] {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        // Straight to stderr, so CI's log shows where the pictures are.
        let _ = writeln!(
            std::io::stderr(),
            "screenshot: {}",
            shots.join(name).display()
        );
    }
}
