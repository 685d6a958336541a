//! `vitals demo` end to end: the real binary starts a collector and two
//! pushing services, loads them, and its final report shows what the
//! collector received.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

/// Requests the final table reports for `service`.
fn requests_of(report: &str, service: &str) -> Option<u64> {
    let finale = report.split("final:").nth(1)?;
    finale.lines().find_map(|line| {
        let mut cols = line.split_whitespace();
        if cols.next()? == service {
            cols.next()?.parse().ok()
        } else {
            None
        }
    })
}

#[test]
fn demo_pushes_both_services_to_the_collector() {
    let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--service-listen",
            "127.0.0.1:0",
            "--store",
            "sqlite::memory:",
            "--duration",
            "4s",
            "--rate",
            "100",
            "--push-interval",
            "1s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // About 400 requests were sent: 45 % to the frontend, 55 % to users
    // directly, plus one call to users from each checkout (35 %).
    let frontend = requests_of(&stdout, "frontend").unwrap_or(0);
    let users = requests_of(&stdout, "users").unwrap_or(0);
    assert!(frontend >= 50, "frontend saw {frontend}:\n{stdout}");
    assert!(
        users > frontend,
        "users saw {users}, frontend {frontend}:\n{stdout}"
    );
    assert!(
        stdout.contains("last push 1 delivered, 0 refused, 0 undelivered"),
        "{stdout}"
    );
}

#[test]
fn demo_refuses_bad_flags_clearly() {
    for (flag, value, message) in [
        ("--duration", "soon", "--duration"),
        ("--push-interval", "0s", "--push-interval"),
        ("--rate", "0", "--rate"),
        (
            "--service-listen",
            "nowhere",
            "--service-listen wants IP:PORT",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args([
                "demo",
                "--store",
                "sqlite::memory:",
                "--listen",
                "127.0.0.1:0",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
    }
}

#[test]
fn starting_the_demo_again_does_not_pile_up_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("demo.db").display());
    let list = || {
        let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args(["collector", "keys", "list", "--store", &store])
            .env_remove("VITALS_TENANT")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--service-listen",
                "127.0.0.1:0",
                "--store",
                &store,
                "--duration",
                "1s",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = list();
        assert_eq!(
            keys.len(),
            2,
            "the demo keeps one ingest and one read key: {keys:?}"
        );
        assert!(keys.iter().all(|k| k.ends_with("demo")), "{keys:?}");
        seen.push(keys);
    }
    assert_ne!(
        seen[0], seen[1],
        "the second run made new keys and revoked the old"
    );
}
