//! The StatsD exporter against what receives it: a raw UDP socket (every
//! datagram within the size limit, every line well formed, nothing lost)
//! and a real StatsD server (the `statsd` npm package, installed by
//! `scripts/test` into `tests/statsd_server/`), read back through its TCP
//! admin interface (`counters`, `gauges`, `timers`), tags included.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vitals::{Options, Registry, Unit};
use vitals_server::statsd::{HistogramType, StatsdConfig, StatsdExporter};
use vitals_test_support::wait_until;

/// Every datagram waiting on `socket`, until it stays quiet for 300 ms.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn datagrams_stay_within_the_limit_and_carry_every_line() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = socket.local_addr().unwrap().to_string();
    let registry = Registry::new();
    let hits = registry
        .counter_vec(("hits_total", "Hits"), &["path", "status"])
        .unwrap();
    for i in 0..300u64 {
        hits.get(&[format!("/p{i}"), "200".to_owned()]).add(i + 1);
    }
    let config = StatsdConfig::new(target)
        .prefix("svc")
        .max_datagram(200)
        .interval(Duration::from_secs(3600));
    let exporter = StatsdExporter::start(&registry, config).unwrap();
    let report = exporter.flush();
    let datagrams = drain(&socket);
    assert_eq!(report.sent, datagrams.len());
    assert!(datagrams.len() > 10, "{} datagrams", datagrams.len());
    let mut seen = std::collections::BTreeMap::new();
    for d in &datagrams {
        assert!(d.len() <= 200, "a datagram of {} bytes", d.len());
        for line in std::str::from_utf8(d).unwrap().split('\n') {
            // svc.hits:N|c|#path:/pI,status:200
            let (name, rest) = line.split_once(':').unwrap_or_else(|| panic!("{line}"));
            let (value, rest) = rest.split_once("|c|#").unwrap_or_else(|| panic!("{line}"));
            if name != "svc.hits" {
                continue;
            }
            seen.insert(rest.to_owned(), value.parse::<u64>().unwrap());
        }
    }
    assert_eq!(seen.len(), 300);
    assert_eq!(seen["path:/p41,status:200"], 42);
    // Counters are deltas: a second send carries only what changed.
    hits.get(&["/p0", "200"]).add(5);
    exporter.flush();
    let again: Vec<String> = drain(&socket)
        .iter()
        .flat_map(|d| {
            String::from_utf8(d.clone())
                .unwrap()
                .split('\n')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.starts_with("svc.hits"))
        .collect();
    assert_eq!(again, ["svc.hits:5|c|#path:/p0,status:200"]);
    // The exporter counts itself.
    let text = String::from_utf8(registry.render(vitals::Format::Prometheus)).unwrap();
    assert!(
        text.contains(&format!(
            "vitals_statsd_datagrams_total {}",
            report.sent + 1
        )),
        "{text}"
    );
    exporter.shutdown();
}

#[test]
fn send_errors_are_counted_never_fatal() {
    // The broadcast address without SO_BROADCAST: the kernel refuses every
    // send (EACCES). A line longer than the limit is left out. Either way
    // the exporter keeps going.
    let registry = Registry::new();
    let long = "x".repeat(400);
    registry
        .counter_vec(("long_total", "h"), &["v"])
        .unwrap()
        .get(&[long.as_str()])
        .inc();
    registry.gauge(("short", "h")).unwrap().set(1);
    let exporter = StatsdExporter::start(
        &registry,
        StatsdConfig::new("255.255.255.255:9").max_datagram(100),
    )
    .unwrap();
    let first = exporter.flush();
    assert_eq!(first.too_long, 1);
    assert!(first.failed >= 1, "{first:?}");
    assert_eq!(first.sent, 0);
    let second = exporter.flush();
    assert!(second.failed >= 1, "{second:?}");
    let text = String::from_utf8(registry.render(vitals::Format::Prometheus)).unwrap();
    assert!(
        text.contains("vitals_statsd_errors_total{reason=\"line_too_long\"} 1"),
        "{text}"
    );
    let failed = (first.failed + second.failed) as u64;
    assert!(
        text.contains(&format!(
            "vitals_statsd_errors_total{{reason=\"send\"}} {failed}"
        )),
        "{text}"
    );
    exporter.shutdown();
}

/// A free local port (bound then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The StatsD server, stopped when dropped.
struct Statsd {
    child: Child,
    admin: u16,
}

impl Drop for Statsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Statsd {
    fn start(dir: &std::path::Path, udp: u16) -> Statsd {
        let admin = free_port();
        let config = std::env::temp_dir().join(format!("vitals-statsd-{udp}.js"));
        std::fs::write(
            &config,
            format!(
                "{{ port: {udp}, address: \"127.0.0.1\", mgmt_port: {admin}, mgmt_address: \"127.0.0.1\", \
                 backends: [\"./backends/console\"], flushInterval: 3600000 }}"
            ),
        )
        .unwrap();
        let child = Command::new("node")
            .arg("stats.js")
            .arg(&config)
            .current_dir(dir.join("node_modules/statsd"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let statsd = Statsd { child, admin };
        wait_until(
            "the StatsD admin port to answer",
            Duration::from_secs(30),
            || statsd.ask("counters"),
        );
        statsd
    }

    /// One admin command's answer (up to its `END` line).
    fn ask(&self, command: &str) -> Result<String, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("{command}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(s);
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                break;
            }
            if line.trim() == "END" {
                return Ok(answer);
            }
            answer.push_str(&line);
        }
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        Err(format!("no END line: {answer}{rest}"))
    }
}

#[test]
fn a_real_statsd_server_receives_the_values_and_tags() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/statsd_server");
    if !vitals_test_support::external::require_command("node", "apt-get install nodejs") {
        return;
    }
    if !dir.join("node_modules/statsd/stats.js").exists() {
        vitals_test_support::skip_or_fail(
            "the statsd npm package",
            format!("run `npm ci` in {}", dir.display()),
        );
        return;
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    drop(udp);
    let statsd = Statsd::start(&dir, port);

    let registry = Registry::new();
    let requests = registry
        .counter_vec(("requests_total", "Requests"), &["method", "status"])
        .unwrap();
    let temp = registry
        .gauge_vec(("room_temp", "Temperature"), &["room"])
        .unwrap();
    let latency = registry
        .histogram(Options::new("latency", "Latency").unit(Unit::Seconds))
        .unwrap();
    requests.get(&["GET", "200"]).add(5);
    requests.get(&["POST", "500"]).add(2);
    temp.get(&["a"]).set(21);
    temp.get(&["b"]).set(-3);
    latency.record(0.25);
    latency.record(0.25);
    latency.record(0.004);
    let exporter = StatsdExporter::start(
        &registry,
        StatsdConfig::new(format!("127.0.0.1:{port}"))
            .prefix("app")
            .histograms(HistogramType::Timer)
            .interval(Duration::from_secs(3600)),
    )
    .unwrap();
    exporter.flush();
    let counters = wait_until(
        "StatsD to count the requests",
        Duration::from_secs(10),
        || {
            let c = statsd.ask("counters")?;
            if c.contains("'app.requests;method=POST;status=500': 2") {
                Ok(c)
            } else {
                Err(c)
            }
        },
    );
    assert!(
        counters.contains("'app.requests;method=GET;status=200': 5"),
        "{counters}"
    );
    let gauges = statsd.ask("gauges").unwrap();
    assert!(gauges.contains("'app.room_temp;room=a': 21"), "{gauges}");
    assert!(gauges.contains("'app.room_temp;room=b': -3"), "{gauges}");
    let timers = statsd.ask("timers").unwrap();
    let line = timers
        .lines()
        .find(|l| l.contains("app.latency_seconds"))
        .unwrap_or_else(|| panic!("{timers}"));
    // Bucket values within the sketch's 1 %: 250 ms and 4 ms.
    let values: Vec<f64> = line
        .split(['[', ']', ','])
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert_eq!(values.len(), 2, "{line}");
    assert!(
        (values[0] - 250.0).abs() < 2.5 || (values[1] - 250.0).abs() < 2.5,
        "{line}"
    );
    assert!(values.iter().any(|v| (v - 4.0).abs() < 0.04), "{line}");
    // A second send adds only the difference.
    requests.get(&["GET", "200"]).add(1);
    exporter.flush();
    wait_until("StatsD to add the delta", Duration::from_secs(10), || {
        let c = statsd.ask("counters")?;
        if c.contains("'app.requests;method=GET;status=200': 6") {
            Ok(())
        } else {
            Err(c)
        }
    });
    exporter.shutdown();
}
