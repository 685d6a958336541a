//! The exposition, with every metric type and hostile label values, checked
//! by the real parsers: `promtool check metrics` and prometheus_client's text
//! and OpenMetrics parsers (via scripts/check_exposition.py). Values parsed
//! back must equal what was recorded.
//!
//! Needs `promtool` and Python's `prometheus_client` (scripts/test installs
//! both). Without them these tests fail, unless `VITALS_SKIP_EXTERNAL=1`
//! skips them (never in CI): the rule of `vitals_test_support::external`.
#![cfg(feature = "enabled")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use vitals::{Format, Options, Registry, Unit};
use vitals_test_support::external;

const HOSTILE: &[&str] = &[
    "plain",
    "",
    "quote\" backslash\\ newline\n end",
    "\\n literally",
    "\\",
    "\"",
    "漢字 emoji 😀 rtl \u{202e}",
    "tab\tcr\rbell\u{7}del\u{7f}nul\u{0}",
    "{braces}=,\"le\"",
    "# not a comment",
];

struct Recorded {
    samples: Vec<Value>,
    types: serde_json::Map<String, Value>,
}

impl Recorded {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        self.samples
            .push(json!({"name": name, "labels": labels, "value": value}));
    }
}

fn le_string(b: f64) -> String {
    // prometheus_client keeps label values as text: match vitals' rendering.
    let mut buf = format!("{b:?}");
    if !buf.contains(['.', 'e', 'E']) {
        buf.push_str(".0");
    }
    buf
}

/// Builds a registry with every metric type, records known values, and
/// returns what a parser must read back.
fn fixture() -> (Registry, Recorded) {
    let r = Registry::new();
    let mut rec = Recorded {
        samples: Vec::new(),
        types: serde_json::Map::new(),
    };
    // Counters with hostile label values (and one over-long value).
    let c = r
        .counter_vec(
            (
                "test_requests_total",
                "Requests with \"quotes\", back\\slash\nand newline",
            ),
            &["path", "code"],
        )
        .unwrap();
    rec.types.insert("test_requests".into(), json!("counter"));
    for (i, v) in HOSTILE.iter().enumerate() {
        c.get(&[*v, "200"]).add(i as u64 + 1);
        // Control characters other than tab and newline become U+FFFD.
        let stored: String = v
            .chars()
            .map(|c| {
                if c.is_ascii_control() && c != '\t' && c != '\n' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect();
        rec.sample(
            "test_requests_total",
            &[("path", &stored), ("code", "200")],
            json!(i + 1),
        );
    }
    let long = "x".repeat(5000);
    c.get(&[long.as_str(), "500"]).add(7);
    let truncated = "x".repeat(vitals::limits::DEFAULT_MAX_LABEL_VALUE_LEN);
    rec.sample(
        "test_requests_total",
        &[("path", &truncated), ("code", "500")],
        json!(7),
    );
    // Unlabelled counter with a big value.
    let big = r.counter(("test_big_total", "Big")).unwrap();
    big.add(u64::from(u32::MAX) * 1000);
    rec.types.insert("test_big".into(), json!("counter"));
    rec.sample("test_big_total", &[], json!(u64::from(u32::MAX) * 1000));
    // Gauges, integer and float, including special values.
    let g = r
        .gauge_vec(("test_temperature", "Integer gauge"), &["room"])
        .unwrap();
    g.get(&["a"]).set(-42);
    g.get(&["b"]).set(i64::MAX / 2);
    rec.types.insert("test_temperature".into(), json!("gauge"));
    rec.sample("test_temperature", &[("room", "a")], json!(-42));
    rec.sample("test_temperature", &[("room", "b")], json!(i64::MAX / 2));
    let f = r
        .float_gauge_vec(
            Options::new("test_load", "Float gauge").unit(Unit::Ratio),
            &["kind"],
        )
        .unwrap();
    let floats: &[(&str, f64, Value)] = &[
        ("small", 1.5e-12, json!(1.5e-12)),
        ("third", 1.0 / 3.0, json!(1.0 / 3.0)),
        ("neg", -0.25, json!(-0.25)),
        ("huge", 6.02e23, json!(6.02e23)),
        ("nan", f64::NAN, json!("NaN")),
        ("inf", f64::INFINITY, json!("+Inf")),
        ("minf", f64::NEG_INFINITY, json!("-Inf")),
    ];
    rec.types.insert("test_load_ratio".into(), json!("gauge"));
    for (k, v, want) in floats {
        f.get(&[*k]).set(*v);
        rec.sample("test_load_ratio", &[("kind", k)], want.clone());
    }
    // Histograms with default and custom buckets; values at the bounds.
    let h = r
        .histogram_vec(
            Options::new("test_latency", "Latency").unit(Unit::Seconds),
            &["route"],
        )
        .unwrap();
    rec.types
        .insert("test_latency_seconds".into(), json!("histogram"));
    let values: Vec<f64> = (0..500)
        .map(|i| match i % 5 {
            0 => vitals::DEFAULT_BUCKETS[i % 14],
            1 => 0.0001 * i as f64,
            2 => 3.7,
            3 => 20.0 + i as f64,
            _ => 0.0,
        })
        .collect();
    for route in ["/users/{id}", "we\"ird\nroute"] {
        for &v in &values {
            h.get(&[route]).record(v);
        }
        for &b in vitals::DEFAULT_BUCKETS {
            let n = values.iter().filter(|&&v| v <= b).count();
            let le = le_string(b);
            rec.sample(
                "test_latency_seconds_bucket",
                &[("route", route), ("le", &le)],
                json!(n),
            );
        }
        rec.sample(
            "test_latency_seconds_bucket",
            &[("route", route), ("le", "+Inf")],
            json!(values.len()),
        );
        rec.sample(
            "test_latency_seconds_count",
            &[("route", route)],
            json!(values.len()),
        );
        rec.sample(
            "test_latency_seconds_sum",
            &[("route", route)],
            json!(values.iter().sum::<f64>()),
        );
    }
    let sizes = r
        .histogram(
            Options::new("test_body", "Sizes")
                .unit(Unit::Bytes)
                .buckets(&[100.0, 1e3, 1e4, 1e6]),
        )
        .unwrap();
    rec.types
        .insert("test_body_bytes".into(), json!("histogram"));
    for v in [1.0, 100.0, 101.0, 5000.0, 1e6, 1e9] {
        sizes.record(v);
    }
    for (b, n) in [(100.0, 2), (1e3, 3), (1e4, 4), (1e6, 5)] {
        rec.sample("test_body_bytes_bucket", &[("le", &le_string(b))], json!(n));
    }
    rec.sample("test_body_bytes_bucket", &[("le", "+Inf")], json!(6));
    rec.sample("test_body_bytes_count", &[], json!(6));
    rec.sample(
        "test_body_bytes_sum",
        &[],
        json!(1.0 + 100.0 + 101.0 + 5000.0 + 1e6 + 1e9),
    );
    // A family past its cardinality limit: overflow series and counter.
    let capped = r
        .counter_vec(
            Options::new("test_capped_total", "Capped").cardinality_limit(3),
            &["user"],
        )
        .unwrap();
    rec.types.insert("test_capped".into(), json!("counter"));
    for i in 0..10 {
        capped.get(&[format!("u{i}")]).inc();
    }
    for i in 0..3 {
        rec.sample("test_capped_total", &[("user", &format!("u{i}"))], json!(1));
    }
    rec.sample("test_capped_total", &[("overflow", "true")], json!(7));
    rec.sample(
        "vitals_cardinality_overflow_total",
        &[("family", "test_capped")],
        json!(7),
    );
    rec.sample(
        "vitals_rejected_total",
        &[("reason", "label_value_too_long")],
        json!(1),
    );
    rec.sample(
        "vitals_rejected_total",
        &[("reason", "label_value_control_char")],
        json!(1),
    );
    (r, rec)
}

/// How to get what these tests need, for the failure message.
const INSTALL_CLIENT: &str = "pip install prometheus_client, or Debian package python3-prometheus-client \
     (scripts/test installs it)";

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vitals-{}-{name}", std::process::id()))
}

fn check_with_python(format: Format, label: &str) {
    let (registry, rec) = fixture();
    let text = registry.render(format);
    let exposition = temp_path(&format!("{label}.txt"));
    let expected = temp_path(&format!("{label}.json"));
    std::fs::write(&exposition, &text).unwrap();
    std::fs::write(
        &expected,
        serde_json::to_vec(&json!({"samples": rec.samples, "types": rec.types})).unwrap(),
    )
    .unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_exposition.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(label)
        .arg(&exposition)
        .arg(&expected)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "prometheus_client {label} parser disagrees:\n{stdout}\n{stderr}\n--- exposition ---\n{}",
        String::from_utf8_lossy(&text)
    );
    eprintln!("{stdout}");
}

#[test]
fn prometheus_client_text_parser_reads_back_every_value() {
    if !external::require_python_module("prometheus_client", INSTALL_CLIENT) {
        return;
    }
    check_with_python(Format::Prometheus, "text");
}

#[test]
fn prometheus_client_openmetrics_parser_reads_back_every_value() {
    if !external::require_python_module("prometheus_client", INSTALL_CLIENT) {
        return;
    }
    check_with_python(Format::OpenMetrics, "openmetrics");
}

#[test]
fn promtool_accepts_the_text_format() {
    // promtool reads the Prometheus text format only (OpenMetrics is checked
    // by the OpenMetrics parser above and by a real Prometheus scrape).
    for format in [Format::Prometheus] {
        let (registry, _) = fixture();
        let text = registry.render(format);
        // Exit 0 = clean; 3 = lint findings only. Any lint must be one we accept.
        let Some(report) = external::promtool_check_metrics(&text) else {
            return;
        };
        for line in report.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                ACCEPTED_LINT.iter().any(|a| line.contains(a)),
                "unexpected promtool finding for {format:?}: {line}"
            );
        }
        eprintln!("promtool {format:?}: {report}");
    }
}

/// promtool lint findings that are about our deliberately hostile fixture
/// rather than about the encoder.
const ACCEPTED_LINT: &[&str] = &[];

#[test]
fn json_snapshot_round_trips() {
    let (registry, rec) = fixture();
    let mut out = Vec::new();
    vitals::encode::encode_json(&registry, &mut out);
    let snapshot: vitals::Snapshot = serde_json::from_slice(&out).unwrap();
    let fam = snapshot.family("test_requests").unwrap();
    let s = fam
        .series(&[("path", HOSTILE[2]), ("code", "200")])
        .unwrap();
    assert_eq!(s.value, vitals::snapshot::Value::Unsigned { value: 3 });
    let lat = snapshot.family("test_latency_seconds").unwrap();
    let vitals::snapshot::Value::Histogram(h) = &lat.series[0].value else {
        panic!("not a histogram")
    };
    assert_eq!(h.count, 500);
    assert!(h.quantiles.p50.is_some());
    assert!(!rec.samples.is_empty());
}
