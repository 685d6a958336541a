//! The prefork example (`examples/prefork.rs`) as its users run it: four
//! worker processes on one port. Every scrape shows the whole server
//! whichever worker answers; `?worker=N` shows one and the workers add up;
//! a worker killed with SIGKILL comes back with no count lost and its live
//! gauges gone; a thousand restarts leave the run directory as it was and
//! a scrape fast; SIGTERM stops everything.

#![cfg(all(unix, feature = "prefork"))]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vitals_test_support::wait_until;

/// The example's binary, built (a no-op when up to date) with the same
/// profile as this test.
fn example() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "vitals-server", "--example", "prefork"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success());
    // target/debug/deps/prefork-HASH -> target/debug/examples/prefork
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/prefork")
}

/// The running example; killed (the whole group) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    run_dir: PathBuf,
    /// Worker number -> pid, from the "worker N pid P ready" lines.
    pids: Arc<Mutex<HashMap<usize, u32>>>,
    readies: Arc<Mutex<usize>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pids: Vec<u32> = self.pids.lock().unwrap().values().copied().collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in pids {
            signal(pid, "KILL");
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

impl Server {
    fn start(name: &str, workers: usize) -> Server {
        let exe = example();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prefork-{name}"));
        let mut child = Command::new(exe)
            .args([
                "--listen",
                &addr.to_string(),
                "--workers",
                &workers.to_string(),
            ])
            .arg("--run-dir")
            .arg(&run_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pids = Arc::new(Mutex::new(HashMap::new()));
        let readies = Arc::new(Mutex::new(0));
        let stderr = child.stderr.take().unwrap();
        let (p, r) = (pids.clone(), readies.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                // "worker N pid P ready"
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["worker", n, "pid", pid, "ready"] = words.as_slice() {
                    p.lock()
                        .unwrap()
                        .insert(n.parse().unwrap(), pid.parse().unwrap());
                    *r.lock().unwrap() += 1;
                }
            }
        });
        let server = Server {
            child,
            addr,
            run_dir,
            pids,
            readies,
        };
        wait_until("every worker to be ready", Duration::from_secs(60), || {
            let n = *server.readies.lock().unwrap();
            if n >= workers {
                Ok(())
            } else {
                Err(format!("{n} ready"))
            }
        });
        server
    }

    fn pid(&self, worker: usize) -> u32 {
        self.pids.lock().unwrap()[&worker]
    }

    /// Kills worker `worker` with SIGKILL and waits for its successor.
    fn kill_and_wait(&self, worker: usize) -> u32 {
        let old = self.pid(worker);
        signal(old, "KILL");
        wait_until(
            "the worker to be restarted",
            Duration::from_secs(30),
            || {
                let now = self.pid(worker);
                if now != old {
                    Ok(now)
                } else {
                    Err(format!("still pid {now}"))
                }
            },
        )
    }
}

/// One request on a new connection; the status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |x| x.1);
    // Chunked bodies: the JSON and the text have no CRLF of their own.
    let body = if raw
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n").skip(1).step_by(2).collect::<String>()
    } else {
        body.to_owned()
    };
    (status, body)
}

/// A sample's value in Prometheus text (`name{labels} value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const USERS: &str =
    "http_server_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"}";

fn debug_json(addr: SocketAddr, query: &str) -> serde_json::Value {
    let (status, body) = get(addr, &format!("/debug/metrics{query}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn users_requests(json: &serde_json::Value) -> u64 {
    json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["route"] == "/users/{id}")
        .map(|r| r["requests"].as_u64().unwrap())
        .sum()
}

#[test]
fn every_worker_shows_the_whole_server_and_a_killed_worker_loses_nothing() {
    let server = Server::start("count", 4);
    let addr = server.addr;
    const THREADS: usize = 8;
    const EACH: usize = 50;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..EACH {
                    let (status, _) = get(addr, &format!("/users/{}", t * EACH + i));
                    assert_eq!(status, 200);
                }
            });
        }
    });
    let sent = (THREADS * EACH) as f64;
    for _ in 0..50 {
        let (status, text) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert_eq!(sample(&text, USERS), Some(sent), "{text}");
        assert_eq!(sample(&text, "server_workers_active"), Some(4.0), "{text}");
    }
    // /debug/metrics agrees from whichever worker answers, and the
    // workers' own counts add up to it.
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let json = debug_json(addr, "");
        assert_eq!(users_requests(&json), sent as u64, "{json}");
        assert_eq!(json["workers"]["count"], 4, "{json}");
        answered.insert(json["workers"]["this"].as_u64().unwrap());
    }
    let per: Vec<u64> = (0..4)
        .map(|w| {
            let json = debug_json(addr, &format!("?worker={w}"));
            assert_eq!(json["workers"]["shown"], w, "{json}");
            users_requests(&json)
        })
        .collect();
    assert_eq!(per.iter().sum::<u64>(), sent as u64, "{per:?}");
    assert!(
        per.iter().filter(|&&n| n > 0).count() >= 2,
        "{per:?}, answered by {answered:?}"
    );
    let (status, body) = get(addr, "/debug/metrics?worker=4");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("known_workers"), "{body}");

    // Twenty idle keep-alive connections, spread over the workers.
    let mut idle = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /users/x{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(s);
    }
    let sent = sent + 20.0;
    let held: Vec<i64> = wait_until(
        "the idle connections to count",
        Duration::from_secs(10),
        || {
            let held: Vec<i64> = (0..4)
                .map(|w| {
                    let json = debug_json(addr, &format!("?worker={w}"));
                    json["connections"]["idle"].as_i64().unwrap()
                })
                .collect();
            if held.iter().sum::<i64>() == 20 {
                Ok(held)
            } else {
                Err(format!("{held:?}"))
            }
        },
    );
    let victim = (0..4).max_by_key(|&w| held[w]).unwrap();
    let spawns_before = sample(&get(addr, "/metrics").1, "server_worker_spawns_total").unwrap();
    let new_pid = server.kill_and_wait(victim);
    assert_ne!(new_pid, 0);
    wait_until(
        "the killed worker's gauges to go",
        Duration::from_secs(10),
        || {
            let (_, text) = get(addr, "/metrics");
            let idle_now = sample(&text, "server_connections_idle");
            let want = (20 - held[victim]) as f64;
            if idle_now == Some(want) {
                Ok(())
            } else {
                Err(format!("idle {idle_now:?}, want {want}"))
            }
        },
    );
    let (_, text) = get(addr, "/metrics");
    assert_eq!(sample(&text, USERS), Some(sent), "no count lost: {text}");
    assert_eq!(
        sample(&text, "server_worker_spawns_total"),
        Some(spawns_before + 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "server_workers_active"), Some(4.0), "{text}");
    assert!(
        sample(&text, "server_lifespan_startup_seconds").unwrap() > 0.0,
        "{text}"
    );
    let json = debug_json(addr, &format!("?worker={victim}"));
    assert_eq!(
        json["connections"]["idle"], 0,
        "a new worker starts with no connection: {json}"
    );
    drop(idle);

    // SIGTERM: every worker stops, then the supervisor, cleanly.
    let mut server = server;
    signal(server.child.id(), "TERM");
    let status = wait_until("the supervisor to exit", Duration::from_secs(30), || {
        server.child.try_wait().unwrap().ok_or("running")
    });
    assert!(status.success(), "{status:?}");
    for w in 0..4 {
        let pid = server.pid(w);
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        assert!(!alive, "worker {w} (pid {pid}) still runs");
    }
}

#[test]
fn a_thousand_restarts_leave_the_run_directory_and_the_scrape_as_they_were() {
    let server = Server::start("churn", 4);
    let addr = server.addr;
    for i in 0..100 {
        assert_eq!(get(addr, &format!("/users/{i}")).0, 200);
    }
    let listing = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&server.run_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing();
    assert_eq!(before.len(), 5, "{before:?}");
    let started = Instant::now();
    for i in 0..1000 {
        server.kill_and_wait(i % 4);
    }
    eprintln!("1000 restarts in {:?}", started.elapsed());
    assert_eq!(listing(), before);
    // A scrape still answers quickly (the bound: 50 ms), and
    // counts every request and restart.
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let (status, text) = get(addr, "/metrics");
        fastest = fastest.min(t.elapsed());
        assert_eq!(status, 200);
        assert_eq!(sample(&text, USERS), Some(100.0), "{text}");
        assert_eq!(
            sample(&text, "server_worker_spawns_total"),
            Some(1004.0),
            "{text}"
        );
        assert_eq!(sample(&text, "server_workers_active"), Some(4.0), "{text}");
    }
    assert!(
        fastest < Duration::from_millis(50),
        "a scrape took {fastest:?}"
    );
}
