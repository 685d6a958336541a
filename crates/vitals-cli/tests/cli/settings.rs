//! Where each setting comes from: flags over variables over the config
//! file, for the store, the hot tier and the rest, each value checked; a
//! mistyped or bad variable is refused by name.

use crate::{BIN, call, create_key, now_ms, start_with};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

#[test]
fn hot_tier_settings_come_from_flags_env_and_file_and_are_checked() {
    let out = std::process::Command::new(BIN)
        .args(["collector", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, var) in [
        ("--hot-window", "VITALS_HOT_WINDOW"),
        ("--hot-flush-interval", "VITALS_HOT_FLUSH_INTERVAL"),
        ("--hot-flush-grace", "VITALS_HOT_FLUSH_GRACE"),
        ("--hot-orphan-after", "VITALS_HOT_ORPHAN_AFTER"),
        ("--hot-dedup-window", "VITALS_HOT_DEDUP_WINDOW"),
        ("--hot-recent-samples", "VITALS_HOT_RECENT_SAMPLES"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
        assert!(help.contains(var), "{var} missing from --help");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hot.toml");
    std::fs::write(&file, "[hot_tier]\nflush_grace = \"90s\"\n").unwrap();
    // Each refused before anything is opened, naming the setting, the
    // value and where it can come from.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case<'_>; 5] = [
        (
            &["--hot-window", "90s"],
            &[],
            &[
                "hot_tier.window",
                "whole number of minutes",
                "\"90s\"",
                "--hot-window",
            ],
        ),
        (
            &[],
            &[("VITALS_HOT_FLUSH_GRACE", "1m")],
            &[
                "hot_tier.flush_grace",
                "less than 1m",
                "VITALS_HOT_FLUSH_GRACE",
            ],
        ),
        (
            &["--hot-recent-samples", "0"],
            &[],
            &["hot_tier.recent_samples", "1 to 100000"],
        ),
        (
            &["--hot-dedup-window", "soon"],
            &[],
            &["hot_tier.dedup_window", "\"soon\""],
        ),
        (
            &["--config", file.to_str().unwrap()],
            &[],
            &["hot_tier.flush_grace", "\"90s\""],
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args([
            "collector",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "sqlite::memory:",
        ])
        .args(args)
        .env_remove("RUST_BACKTRACE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} was accepted");
        for w in want {
            assert!(
                stderr.contains(w),
                "{args:?} {env:?}: {w:?} not in {stderr}"
            );
        }
    }
    // Precedence: a flag beats the variable, which beats the file. Each
    // run ends at the bad value that won, or else at the store URL, which
    // nothing opens (so the collector never starts).
    let ok_file = dir.path().join("ok.toml");
    std::fs::write(&ok_file, "[hot_tier]\nwindow = \"5m\"\n").unwrap();
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["collector", "--store", "nowhere://x", "--config"])
            .arg(&ok_file)
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .env_remove("VITALS_HOT_WINDOW");
        if let Some(v) = env {
            cmd.env("VITALS_HOT_WINDOW", v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The file alone is fine: only the store fails.
    let e = run(&[], None);
    assert!(e.contains("nowhere://x") && !e.contains("window"), "{e}");
    // The variable over the file.
    let e = run(&[], Some("90s"));
    assert!(
        e.contains("hot_tier.window") && e.contains("\"90s\""),
        "{e}"
    );
    // The flag over the variable.
    let e = run(&["--hot-window", "45s"], Some("90s"));
    assert!(e.contains("\"45s\"") && !e.contains("90s"), "{e}");
    // A good flag over a bad variable: only the store fails.
    let e = run(&["--hot-window", "3m"], Some("90s"));
    assert!(e.contains("nowhere://x") && !e.contains("window"), "{e}");
}

/// `n` records for `service`, the first `errors` of them answered 500.
fn records(service: &str, n: usize, errors: usize, now: i64) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            let status = if i < errors { 500 } else { 200 };
            json!({"method": "GET", "route": "/r", "status": status, "duration_ms": 5.0, "timestamp_ms": now})
        })
        .collect();
    json!({"service": service, "requests": requests})
}

#[tokio::test]
async fn every_setting_comes_from_a_variable_over_the_file_and_under_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\n\
             [limits]\nmax_records_per_batch = 15\n\
             [defaults]\ndown_error_rate = 0.9\n\
             [services.checkout]\napdex_t_ms = 200.0\nobjective_p95_ms = 900.0\n",
            dir.path().join("vitals.db").display()
        ),
    )
    .unwrap();
    let ingest = create_key(&config, "ingest").await;
    let read = create_key(&config, "read").await;
    let (mut child, addr) = start_with(
        &config,
        &["--apdex-t-ms", "250"],
        &[
            // None of these has a flag; each beats the file's value.
            ("VITALS_LIMITS_MAX_RECORDS_PER_BATCH", "10"),
            ("VITALS_DEFAULTS_DOWN_ERROR_RATE", "0.08"),
            ("VITALS_SERVICES", "checkout = { apdex_t_ms = 300 }"),
            // The flag beats this one.
            ("VITALS_DEFAULTS_APDEX_T_MS", "400"),
        ],
    )
    .await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let now = now_ms();
    let post = |body: Value| {
        let (client, url, key) = (&client, format!("http://{addr}/v1/requests"), &ingest);
        async move { call(client, "POST", url, key, Some(&body)).await }
    };
    let stats = |service: &str| {
        call(
            &client,
            "GET",
            format!("http://{addr}/v1/services/{service}/stats?window=15m"),
            &read,
            None,
        )
    };

    // The variable's limit, not the file's 15.
    let (status, body) = post(records("api", 12, 0, now)).await.unwrap();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["reason"], "batch_too_large", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("limit of 10"),
        "{body}"
    );
    let (status, body) = post(records("api", 10, 2, now)).await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("stored")),
        "{body}"
    );
    let (status, body) = post(records("checkout", 5, 0, now)).await.unwrap();
    assert_eq!(status, 200, "{body}");

    let (status, api) = stats("api").await.unwrap();
    assert_eq!(status, 200, "{api}");
    assert_eq!(
        api["apdex_t_ms"], 250.0,
        "the flag over the variable: {api}"
    );
    // 20 % errors: down from the variable's 8 %, where the file's 90 %
    // would have left it degraded.
    assert_eq!(api["health"], "down", "{api}");
    let (status, checkout) = stats("checkout").await.unwrap();
    assert_eq!(status, 200, "{checkout}");
    assert_eq!(
        checkout["apdex_t_ms"], 300.0,
        "VITALS_SERVICES over the file: {checkout}"
    );
    assert_eq!(
        checkout["objective_p95_ms"], 900.0,
        "the file's other keys of the service stay: {checkout}"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[test]
fn a_mistyped_or_bad_variable_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, "[limits]\nmax_count = 5\n").unwrap();
    // (variables, what the error must say)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            &[("VITALS_LIMITS_MAX_ROUTES_PER_BATHC", "5")],
            &[
                "VITALS_LIMITS_MAX_ROUTES_PER_BATHC",
                "max_routes_per_bathc",
                "its keys are",
                "max_routes_per_batch",
            ],
        ),
        (
            &[("VITALS_LIMITS_MAX_COUNT", "lots")],
            &["VITALS_LIMITS_MAX_COUNT", "\"lots\"", "limits.max_count"],
        ),
        (
            &[("VITALS_DEFAULTS_STALE_AFTER_SECS", "-5")],
            &["VITALS_DEFAULTS_STALE_AFTER_SECS", "-5"],
        ),
        (
            &[("VITALS_SERVICES", "checkout = { apdex = 3 }")],
            &["VITALS_SERVICES", "apdex", "services.checkout"],
        ),
        (
            &[("VITALS_SERVICES", "checkout = { apdex_t_ms = 0 }")],
            &[
                "services.checkout.apdex_t_ms",
                "positive",
                "VITALS_SERVICES",
            ],
        ),
        (
            &[("VITALS_DEFAULTS_DEGRADED_ERROR_RATE", "-1")],
            &[
                "defaults.degraded_error_rate",
                "positive",
                "VITALS_DEFAULTS_DEGRADED_ERROR_RATE",
            ],
        ),
        (
            &[("VITALS_HOT_TIER_FLUSH_GRACE", "2m")],
            &[
                "hot_tier.flush_grace",
                "\"2m\"",
                "VITALS_HOT_TIER_FLUSH_GRACE",
            ],
        ),
        (
            &[
                ("VITALS_HOT_WINDOW", "5m"),
                ("VITALS_HOT_TIER_WINDOW", "10m"),
            ],
            &["VITALS_HOT_WINDOW and VITALS_HOT_TIER_WINDOW", "keep one"],
        ),
    ];
    // Each refused before anything opens (the store URL is bad too, but
    // never reached), also by `keys create`, which reads the same settings.
    for (env, want) in cases {
        for args in [
            &["collector", "--store", "nowhere://x", "--config"][..],
            &[
                "collector",
                "keys",
                "create",
                "--tenant",
                "t",
                "--role",
                "read",
                "--config",
            ],
        ] {
            if args[1] == "keys" && env[0].0 == "VITALS_HOT_WINDOW" {
                continue; // a flag pair of the collector's own
            }
            let mut cmd = std::process::Command::new(BIN);
            cmd.args(args)
                .arg(&file)
                .env_remove("RUST_BACKTRACE")
                .env("VITALS_STORE", "postgres://u:hunter2@127.0.0.1:1/db");
            for (k, v) in *env {
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{env:?} {args:?} was accepted");
            for w in *want {
                assert!(
                    stderr.contains(w),
                    "{env:?} {args:?}: {w:?} not in {stderr}"
                );
            }
            assert!(!stderr.contains("hunter2"), "{stderr}");
            assert!(!stderr.contains("nowhere"), "{stderr}");
        }
    }
    // The same variable set right goes through to the store, which fails.
    let out = std::process::Command::new(BIN)
        .args(["collector", "--store", "nowhere://x", "--config"])
        .arg(&file)
        .env_remove("RUST_BACKTRACE")
        .env("VITALS_LIMITS_MAX_ROUTES_PER_BATCH", "5")
        .env("VITALS_LIMITS_MAX_COUNT", "7")
        .env("VITALS_HOT_WINDOW", "5m")
        .env("VITALS_HOT_TIER_WINDOW", "5m")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("nowhere://x") && !stderr.contains("VITALS_"),
        "{stderr}"
    );
}
