//! `scripts/check_test_log.py`, which fails a test run unless every test
//! ran, against small libtest logs: what it accepts and what it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use vitals_test_support::external::require_command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the checker on `logs` (name, text); returns (success, output).
fn check(args: &[&str], logs: &[(&str, &str)]) -> Option<(bool, String)> {
    if !require_command("python3", "Debian package python3") {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("check-test-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("scripts/check_test_log.py")).args(args);
    for (name, text) in logs {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        cmd.arg(path);
    }
    let out = cmd.output().expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

const GOOD: &str = "\
running 2 tests
test a::tests::one ... ok
test two - should panic ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

#[test]
fn a_complete_run_passes() {
    let Some((ok, out)) = check(&[], &[("good.log", GOOD)]) else {
        return;
    };
    assert!(ok, "{out}");
    assert_eq!(out, "check_test_log: good.log: 2 suites, 2 tests passed\n");
}

#[test]
fn ignored_filtered_failed_and_unfinished_tests_fail_the_run() {
    let cases = [
        (
            "running 2 tests\ntest a ... ok\ntest b ... ignored\n\n\
             test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n",
            "1 ignored (an ignored test never runs): b (ignored)",
        ),
        (
            "running 1 test\ntest a ... ok\n\n\
             test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out\n",
            "4 tests filtered out",
        ),
        (
            "running 2 tests\ntest a ... ok\ntest b ... FAILED\n\n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
            "1 failed: b (FAILED)",
        ),
        (
            "running 3 tests\ntest a ... ok\n",
            "the binary stopped before its `test result:` line",
        ),
        ("   Compiling x\n", "no test suite ran"),
    ];
    for (log, expected) in cases {
        let Some((ok, out)) = check(&[], &[("bad.log", log)]) else {
            return;
        };
        assert!(!ok, "{log}: {out}");
        assert!(out.contains("NOT every test ran and passed"), "{out}");
        assert!(out.contains(expected), "{expected:?} in {out}");
    }
}

#[test]
fn tests_in_the_sources_that_did_not_run_are_named() {
    // A run of this crate's unit tests only: every other test in the
    // workspace is missing, this crate's are not.
    let Some((ok, out)) = check(&["--sources", "tests"], &[("one-crate.log", GOOD)]) else {
        return;
    };
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "skipping_needs_the_variable_and_no_ci (defined in \
             crates/vitals-test-support/src/external.rs; passed 0 time(s))"
        ),
        "{out}"
    );
    assert!(
        out.contains("defined in crates/vitals-server/tests/server/"),
        "{out}"
    );
}

#[test]
fn doc_tests_are_counted_per_file() {
    let log = "running 1 test\n\
               test crates/vitals-test-support/src/wait.rs - wait::wait_until (line 24) ... ok\n\n\
               test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
    let Some((ok, out)) = check(&["--sources", "doctests"], &[("doc.log", log)]) else {
        return;
    };
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "crates/vitals-test-support/src/wait.rs: 2 Rust block(s) in doc comments, \
             1 doc test(s) passed"
        ),
        "{out}"
    );
}
