//! What the binary prints: `--help` documents every flag and its
//! variable, and store passwords never reach the output.

use crate::BIN;
use tokio::process::Command;

#[tokio::test]
async fn help_documents_every_flag_and_its_variable() {
    let out = Command::new(BIN)
        .args(["collector", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    // Every option in the help, whatever it is: its line names the flag,
    // and its description (the deeper-indented lines after it) the variable.
    let mut options: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        let flag = if t.starts_with("--") {
            t.split_whitespace().next()
        } else if t.starts_with('-') && t.contains(", --") {
            t.split(", ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
        } else {
            None
        };
        match (flag, options.last_mut()) {
            (Some(f), _) if line.starts_with("  ") => options.push((f.to_string(), String::new())),
            (None, Some((_, doc))) if line.starts_with("          ") => doc.push_str(t),
            _ => {}
        }
    }
    let flags: Vec<&str> = options.iter().map(|(f, _)| f.as_str()).collect();
    for want in [
        "--listen",
        "--store",
        "--cache",
        "--config",
        "--rollup-interval-secs",
        "--retention-minute",
        "--apdex-t-ms",
        "--max-body-bytes",
        "--max-routes-per-service",
        "--hot-window",
    ] {
        assert!(
            flags.contains(&want),
            "{want} not found in {flags:?}:\n{help}"
        );
    }
    assert!(options.len() >= 21, "{flags:?}");
    for (flag, doc) in &options {
        if flag == "--help" {
            continue;
        }
        assert!(doc.len() > 10, "{flag} is not described:\n{help}");
        assert!(
            doc.contains("[env: VITALS_"),
            "{flag} has no variable in --help: {doc}"
        );
    }
    // The rule for every key of the file, with the keys no flag has.
    for want in [
        "VITALS_<SECTION>_<KEY>",
        "VITALS_LIMITS_<KEY>",
        "max_routes_per_batch",
        "max_future_ms",
        "VITALS_DEFAULTS_<KEY>",
        "stale_after_secs",
        "VITALS_SERVICES='checkout = { apdex_t_ms = 300 }'",
    ] {
        assert!(help.contains(want), "{want} not in --help:\n{help}");
    }
    let out = Command::new(BIN)
        .args([
            "collector",
            "keys",
            "create",
            "--tenant",
            "a",
            "--role",
            "superuser",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ingest, read or admin"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listne = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["collector", "--config"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listne"),
        "a typo in the config is named"
    );
}

#[test]
fn store_passwords_never_reach_the_output() {
    // Nothing listens on port 1: opening the store fails, and says so
    // without the password.
    for args in [
        vec![
            "collector",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "postgres://vitals:hunter2@127.0.0.1:1/db",
        ],
        vec![
            "collector",
            "keys",
            "create",
            "--tenant",
            "t",
            "--role",
            "read",
            "--store",
            "postgres://vitals:hunter2@127.0.0.1:1/db",
        ],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("vitals:***@127.0.0.1:1"),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{args:?} leaked the password: {stderr}"
        );
    }
    // Nor does --help, which shows other variables' values.
    for args in [
        &["collector", "--help"][..],
        &["collector", "keys", "create", "--help"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("VITALS_STORE", "postgres://vitals:hunter2@127.0.0.1:1/db")
            .env("VITALS_CACHE", "redis://:hunter2@127.0.0.1:1/")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("VITALS_STORE"), "{stdout}");
        assert!(
            !stdout.contains("hunter2"),
            "{args:?} leaked the password: {stdout}"
        );
    }
}
