//! Errors that say what to do: a missing directory for the SQLite file,
//! a port in use (naming the flag that changes it), and no backtrace for
//! a mistake in the input even with `RUST_BACKTRACE=1`.

use crate::BIN;

/// Runs `vitals ARGS` with a backtrace asked for: (success, stderr).
fn run(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("VITALS_STORE")
        .env_remove("VITALS_LISTEN")
        .env_remove("VITALS_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_no_backtrace(stderr: &str) {
    assert!(
        !stderr.to_lowercase().contains("backtrace") && stderr.lines().count() <= 4,
        "a user error printed a backtrace:\n{stderr}"
    );
}

#[test]
fn a_missing_directory_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").join("dir");
    let url = format!("sqlite://{}/x.db", missing.display());
    for args in [
        vec!["collector", "--listen", "127.0.0.1:0", "--store", &url],
        vec!["collector", "keys", "list", "--store", &url],
        vec![
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--service-listen",
            "127.0.0.1:0",
            "--store",
            &url,
        ],
    ] {
        let (ok, err) = run(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(
            err.contains(&format!(
                "the directory {} does not exist",
                missing.display()
            )) && err.contains("mkdir -p"),
            "{args:?}: {err}"
        );
        assert_no_backtrace(&err);
    }
    assert!(!missing.exists(), "nothing was created");
}

#[test]
fn a_port_in_use_names_the_flag_that_changes_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, err) = run(&["collector", "--store", "sqlite::memory:", "--listen", &addr]);
    assert!(!ok);
    assert!(
        err.contains(&addr) && err.contains("--listen (or VITALS_LISTEN)"),
        "{err}"
    );
    assert_no_backtrace(&err);

    let (ok, err) = run(&[
        "demo",
        "--store",
        "sqlite::memory:",
        "--listen",
        "127.0.0.1:0",
        "--service-listen",
        &addr,
        "--duration",
        "5s",
    ]);
    assert!(!ok);
    assert!(
        err.contains(&addr) && err.contains("--service-listen (or VITALS_DEMO_SERVICE_LISTEN)"),
        "{err}"
    );
    assert_no_backtrace(&err);

    let (ok, err) = run(&["demo", "--store", "sqlite::memory:", "--listen", &addr]);
    assert!(!ok);
    assert!(
        err.contains(&addr) && err.contains("--listen (or VITALS_DEMO_LISTEN)"),
        "{err}"
    );
    assert_no_backtrace(&err);
}

#[test]
fn a_bad_store_url_prints_the_message_not_a_backtrace() {
    let (ok, err) = run(&[
        "collector",
        "--listen",
        "127.0.0.1:0",
        "--store",
        "bogus://x",
    ]);
    assert!(!ok);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("expected sqlite://PATH"), "{err}");
    assert_no_backtrace(&err);
}
