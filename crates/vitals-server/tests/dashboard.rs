//! The `/debug/` dashboard: HTTP checks here, and the page itself in real
//! headless Chromium, driven by `tests/browser/drive.js` (playwright-core
//! with Debian's `/usr/bin/chromium`) against a real server on 127.0.0.1.
//!
//! The browser test needs `node` 20 or later, `chromium` and `npm ci` in
//! `tests/browser` (`scripts/test` sees to all three). Without them it
//! fails, unless `VITALS_SKIP_EXTERNAL=1` skips it (never in CI): the rule
//! of `vitals_test_support::external`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vitals_server::{ConnectionInfo, RouteMetrics, ServerMetrics, TrackedListener};

mod common;

async fn sse(Query(q): Query<HashMap<String, u64>>, tracked: RouteMetrics) -> impl IntoResponse {
    let n = q.get("n").copied().unwrap_or(3).min(100);
    let interval = Duration::from_millis(q.get("interval_ms").copied().unwrap_or(10).min(1000));
    let events = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        tokio::time::sleep(interval).await;
        Some((
            Ok::<_, Infallible>(Event::default().data(format!("tick {i}"))),
            i + 1,
        ))
    });
    Sse::new(tracked.sse(Box::pin(events)))
}

/// The demo server's routes, a task queue, and `/note?text=…`, which puts
/// the client's text on the event bus (hostile input for the page).
fn app(metrics: &ServerMetrics) -> Router {
    let emails = metrics.tasks().queue("emails");
    let bus = metrics.clone();
    Router::new()
        .route(
            "/note",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let mut fields = serde_json::Map::new();
                let text = q.get("text").cloned().unwrap_or_default();
                fields.insert("text".into(), serde_json::Value::String(text.clone()));
                bus.events()
                    .emit(vitals::Event::Custom { name: text, fields });
                StatusCode::NO_CONTENT
            }),
        )
        .route("/", get(|| async { "vitals demo server\n" }))
        .route(
            "/users/{id}",
            get(|UrlPath(id): UrlPath<u32>| async move { format!("{{\"id\":{id}}}") }),
        )
        .route(
            "/slow",
            get(|Query(q): Query<HashMap<String, u64>>| async move {
                let ms = q.get("ms").copied().unwrap_or(100).min(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "slow"
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose") }),
        )
        .route("/ws", get(common::ws_echo))
        .route("/sse", get(sse))
        .route(
            "/job",
            get(move |Query(q): Query<HashMap<String, u64>>| async move {
                // One job through the "emails" queue; `?fail=1` fails it.
                emails.enqueued();
                let task = emails.start();
                if q.get("fail") == Some(&1) {
                    task.fail();
                    StatusCode::ACCEPTED
                } else {
                    task.complete();
                    StatusCode::OK
                }
            }),
        )
        .merge(metrics.endpoints())
        .layer(metrics.layer())
}

/// For [`Kind::Multi`]: two requests to the admin server, and four calls
/// through the instrumented client `backend` to the public one.
async fn multi_traffic(metrics: &ServerMetrics, public: SocketAddr, admin: SocketAddr) {
    use http_body_util::{BodyExt, Empty};
    use tower::ServiceExt;
    let backend = metrics.client("backend").unwrap();
    let client = tower::ServiceBuilder::new().layer(backend.layer()).service(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, Empty<bytes::Bytes>>(
                backend.connector(hyper_util::client::legacy::connect::HttpConnector::new()),
            ),
    );
    let calls = [
        (admin, "/users/8"),
        (admin, "/users/9"),
        (public, "/users/1"),
        (public, "/users/2"),
        (public, "/users/3"),
        (public, "/fail"),
    ];
    for (i, (to, path)) in calls.into_iter().enumerate() {
        let req = http::Request::get(format!("http://{to}{path}"))
            .body(Empty::new())
            .unwrap();
        // The admin requests with a plain client: not one of `backend`'s.
        let res = if i < 2 {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<bytes::Bytes>>()
                .request(req)
                .await
                .unwrap()
                .map(|b| b.boxed())
        } else {
            client
                .clone()
                .oneshot(req)
                .await
                .unwrap()
                .map(|b| b.boxed())
        };
        res.into_body().collect().await.unwrap();
    }
}

/// What a server from before `/debug/history` and `/debug/events` answers.
async fn older_server(uri: Uri, req: axum::extract::Request, next: Next) -> Response {
    match uri.path() {
        "/debug/history" | "/debug/events" => StatusCode::NOT_FOUND.into_response(),
        _ => next.run(req).await,
    }
}

/// Which application a test server runs.
#[derive(Clone, Copy)]
enum Kind {
    /// The demo routes with the endpoints at `/`.
    Demo,
    /// The same, answering 404 on `/debug/history` and `/debug/events`.
    Older,
    /// `/users/{id}`, with the endpoints nested under `/ops`.
    Prefixed,
    /// The demo routes on two declared servers (`public` on the address,
    /// `admin` on another port), and an instrumented client `backend`
    /// that has called the public server four times (one 500).
    Multi,
}

/// A server on its own runtime, so stopping it drops every connection too.
struct RunningServer {
    addr: SocketAddr,
    /// The second server of [`Kind::Multi`].
    admin: Option<SocketAddr>,
    runtime: tokio::runtime::Runtime,
}

impl RunningServer {
    fn start(addr: SocketAddr, kind: Kind) -> RunningServer {
        Self::start_with(addr, kind, |b| b)
    }

    fn start_with(
        addr: SocketAddr,
        kind: Kind,
        configure: impl FnOnce(
            vitals_server::ServerMetricsBuilder,
        ) -> vitals_server::ServerMetricsBuilder,
    ) -> RunningServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let builder = configure(ServerMetrics::builder().registry(vitals::Registry::new()));
        let builder = match kind {
            Kind::Multi => builder.server("public").server("admin"),
            _ => builder,
        };
        let metrics = builder.build().unwrap();
        // Built inside the runtime, as in a `#[tokio::main]`, so the
        // history sampler starts with the server.
        let _inside = runtime.enter();
        let router = match kind {
            Kind::Demo | Kind::Multi => app(&metrics),
            Kind::Older => app(&metrics).layer(middleware::from_fn(older_server)),
            // The endpoints under /ops: the page must find its JSON there.
            Kind::Prefixed => Router::new()
                .route(
                    "/users/{id}",
                    get(|UrlPath(id): UrlPath<u32>| async move { format!("{{\"id\":{id}}}") }),
                )
                .nest("/ops", metrics.endpoints())
                .layer(metrics.layer()),
        };
        // The port was just closed by the previous server: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        // Multi: the main listener records into the `public` server.
        let listen_metrics = match kind {
            Kind::Multi => metrics.server("public").unwrap(),
            _ => metrics.clone(),
        };
        let listener = loop {
            match runtime.block_on(TrackedListener::bind(addr, &listen_metrics)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("bind {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot bind {addr}: {e}"),
            }
        };
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let admin = match kind {
            Kind::Multi => {
                let admin = metrics.server("admin").unwrap();
                let listener = runtime
                    .block_on(TrackedListener::bind(any_addr(), &admin))
                    .unwrap();
                let admin_addr = axum::serve::Listener::local_addr(&listener).unwrap();
                let router = router.clone();
                runtime.spawn(async move {
                    axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<ConnectionInfo>(),
                    )
                    .await
                });
                Some(admin_addr)
            }
            _ => None,
        };
        runtime.spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<ConnectionInfo>(),
            )
            .await
        });
        if let (Kind::Multi, Some(admin)) = (kind, admin) {
            runtime.block_on(multi_traffic(&metrics, addr, admin));
        }
        RunningServer {
            addr,
            admin,
            runtime,
        }
    }

    fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

fn any_addr() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// One plain HTTP/1.1 GET; returns the head and the body.
fn http_get(addr: SocketAddr, target: &str) -> (String, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn page_and_assets_are_served_with_their_types() {
    let server = RunningServer::start(any_addr(), Kind::Demo);
    let (head, body) = http_get(server.addr, "/debug/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        body.contains("<script src=\"dashboard.js\""),
        "relative script URL"
    );
    assert!(
        body.contains(r#"<meta name="vitals-endpoints" content="metrics history events">"#),
        "the page is told which endpoints exist"
    );
    // Nothing from another origin: every src/href is relative.
    for attr in ["src=\"", "href=\""] {
        for part in body.split(attr).skip(1) {
            assert!(
                !part.starts_with("http") && !part.starts_with("//") && !part.starts_with('/'),
                "absolute URL in the page: {attr}{}",
                &part[..part.len().min(40)]
            );
        }
    }
    const JS: &str = "text/javascript; charset=utf-8";
    for (path, ty) in [
        ("/debug/dashboard.js", JS),
        ("/debug/dashboard-state.js", JS),
        ("/debug/dashboard-format.js", JS),
        ("/debug/dashboard-data.js", JS),
        ("/debug/dashboard-sync.js", JS),
        ("/debug/dashboard-panels.js", JS),
        ("/debug/dashboard-charts.js", JS),
        ("/debug/dashboard-theme.js", JS),
        ("/debug/dashboard.css", "text/css; charset=utf-8"),
        ("/debug/favicon.svg", "image/svg+xml"),
    ] {
        let (head, body) = http_get(server.addr, path);
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {ty}")),
            "{path}: {head}"
        );
        assert!(head.contains("cache-control: no-cache"), "{path}: {head}");
        assert!(!body.is_empty());
        if ty == JS {
            assert!(
                !body.contains("innerHTML"),
                "{path}: the script never writes markup"
            );
        }
    }
    // Only the page's own files are served beside it.
    for path in [
        "/debug/dashboard-nope.js",
        "/debug/dashboard.map",
        "/debug/assets/dashboard.js",
    ] {
        let (head, _) = http_get(server.addr, path);
        assert!(head.starts_with("http/1.1 404"), "{path}: {head}");
    }
    // The files are one route in the application's figures, not one each.
    let (_, text) = http_get(server.addr, "/metrics");
    assert!(
        text.contains("route=\"/debug/{file}\",status=\"200\"} 10\n"),
        "{text}"
    );
    assert!(!text.contains("route=\"/debug/dashboard"), "{text}");
    // `/debug` redirects relatively, keeping the filters.
    let (head, _) = http_get(server.addr, "/debug?route=%2Fusers%2F%7Bid%7D&live=1");
    assert!(head.starts_with("http/1.1 308"), "{head}");
    assert!(
        head.contains("location: debug/?route=%2fusers%2f%7bid%7d&live=1"),
        "{head}"
    );
    let (head, _) = http_get(server.addr, "/debug");
    assert!(head.contains("location: debug/\r\n"), "{head}");
    server.stop();
}

#[test]
fn dashboard_is_behind_the_endpoint_credentials() {
    let server = RunningServer::start_with(any_addr(), Kind::Demo, |b| b.auth_bearer("t0ken"));
    for path in [
        "/debug/",
        "/debug",
        "/debug/dashboard.js",
        "/debug/dashboard-sync.js",
    ] {
        let (head, body) = http_get(server.addr, path);
        assert!(head.starts_with("http/1.1 401"), "{path}: {head}");
        assert!(body.contains("error"), "{path}: {body}");
    }
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /debug/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    server.stop();
}

#[test]
fn oversized_query_is_refused_and_counted() {
    let registry = vitals::Registry::new();
    let metrics = ServerMetrics::builder()
        .registry(registry.clone())
        .build()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = runtime.block_on(common::serve(&metrics, app(&metrics)));
    let long = "x".repeat(vitals_server::MAX_QUERY_LEN + 1);
    for path in ["/debug/", "/debug"] {
        let (head, body) = http_get(addr, &format!("{path}?route={long}"));
        assert!(head.starts_with("http/1.1 400"), "{path}: {head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            err["error"].as_str().unwrap().contains("at most 2048"),
            "{err}"
        );
    }
    let text = String::from_utf8(registry.render(vitals::Format::Prometheus)).unwrap();
    assert!(
        text.contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 2"),
        "{text}"
    );
    // Right at the limit is still served.
    let fits = "x".repeat(vitals_server::MAX_QUERY_LEN - "route=".len());
    let (head, _) = http_get(addr, &format!("/debug/?route={fits}"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    runtime.shutdown_timeout(Duration::from_secs(1));
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

#[test]
fn dashboard_in_headless_chromium() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Err(why) = browser_setup(&dir) {
        vitals_test_support::skip_or_fail("headless Chromium with node and playwright-core", why);
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();

    let mut server = Some(RunningServer::start(any_addr(), Kind::Demo));
    let addr = server.as_ref().unwrap().addr;
    let older = RunningServer::start(any_addr(), Kind::Older);
    let prefixed = RunningServer::start(any_addr(), Kind::Prefixed);
    let guarded = RunningServer::start_with(any_addr(), Kind::Demo, |b| {
        b.auth_basic("admin", "s3cret:pass")
    });
    let multi = RunningServer::start(any_addr(), Kind::Multi);

    let mut child = Command::new("node")
        .arg(dir.join("drive.js"))
        .args(["--base", &format!("http://{addr}")])
        .args(["--old", &format!("http://{}", older.addr)])
        .args(["--prefixed", &format!("http://{}/ops", prefixed.addr)])
        .args([
            "--auth",
            &format!("http://admin:s3cret%3Apass@{}", guarded.addr),
        ])
        .args(["--multi", &format!("http://{}", multi.addr)])
        .arg("--shots")
        .arg(&shots)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());

    // A watchdog, so a hung browser cannot hang the test.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let waited = done_rx.recv_timeout(Duration::from_secs(180));
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("dashboard test: node ran for 180 s; killing it");
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });

    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        println!("browser: {line}");
        match line.strip_prefix("CONTROL ") {
            Some("stop") => {
                if let Some(s) = server.take() {
                    s.stop();
                }
                writeln!(stdin, "ok").unwrap();
            }
            Some("start") => {
                server = Some(RunningServer::start(addr, Kind::Demo));
                writeln!(stdin, "ok").unwrap();
            }
            Some(other) => {
                writeln!(stdin, "unknown command {other}").unwrap();
            }
            None => lines.push(line),
        }
    }
    let status = child.wait().unwrap();
    drop(done_tx);
    watchdog.join().unwrap();
    if let Some(s) = server.take() {
        s.stop();
    }
    older.stop();
    prefixed.stop();
    guarded.stop();
    let _admin = multi.admin;
    multi.stop();
    assert!(status.success(), "the browser checks failed: {status}");
    assert!(lines.iter().any(|l| l == "all dashboard checks passed"));
    for name in ["dashboard-light.png", "dashboard-dark.png"] {
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
