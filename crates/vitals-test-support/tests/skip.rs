//! The skip rule end to end: this binary runs its own test
//! `child_needs_a_missing_tool` in a child process under each combination
//! of `VITALS_SKIP_EXTERNAL` and `CI`, and checks the child's exit status,
//! stderr and skip log. The variables are read at run time, so each case
//! needs a process of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};
use vitals_test_support::external::{SKIP_LOG_VAR, SKIP_VAR, require_command};

/// Set only in the child: makes `child_needs_a_missing_tool` act.
const CHILD_VAR: &str = "VITALS_TEST_SUPPORT_CHILD";
const MISSING: &str = "no-such-tool-for-vitals-tests";

#[test]
fn child_needs_a_missing_tool() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return; // Run directly: only the cases below run it for real.
    }
    if !require_command(MISSING, "nowhere: it does not exist") {
        println!("the test returned after the skip");
        return;
    }
    unreachable!("{MISSING} was found");
}

fn run_child(envs: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_needs_a_missing_tool"])
        .args(extra)
        .env(CHILD_VAR, "1")
        .env_remove(SKIP_VAR)
        .env_remove(SKIP_LOG_VAR)
        .env_remove("CI");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("the test binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_log(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("skip-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn a_missing_tool_fails_the_test_by_default() {
    let out = run_child(&[], &[]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "skip::child_needs_a_missing_tool needs {MISSING}, which is not available: \
             `{MISSING}` is not on PATH; install it: nowhere: it does not exist"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("or set VITALS_SKIP_EXTERNAL=1 to skip the tests that need it"),
        "{stdout}"
    );
    assert!(!stdout.contains("returned after the skip"), "{stdout}");
}

#[test]
fn skipping_when_asked_is_loud_and_recorded() {
    let log = temp_log("asked");
    let log_str = log.to_str().unwrap();
    // Captured output (the default) and one test thread: the skip line
    // still shows and names the test.
    for extra in [&[][..], &["--test-threads=1"][..]] {
        let _ = std::fs::remove_file(&log);
        let out = run_child(&[(SKIP_VAR, "1"), (SKIP_LOG_VAR, log_str)], extra);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{extra:?}: {stdout}{stderr}");
        let line = format!(
            "skip::child_needs_a_missing_tool: {MISSING}: `{MISSING}` is not on PATH; \
             install it: nowhere: it does not exist"
        );
        assert!(
            stderr.contains(&format!("!!! SKIPPED {line}")),
            "{extra:?}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("{line}\n"));
        // The test went on past the skip and returned (its stdout is
        // captured and not shown, as it passed).
        assert!(stdout.contains("1 passed"), "{stdout}");
    }
    let _ = std::fs::remove_file(&log);
}

#[test]
fn ci_never_skips() {
    let log = temp_log("ci");
    for ci in ["true", "1", "yes"] {
        let out = run_child(
            &[
                (SKIP_VAR, "1"),
                ("CI", ci),
                (SKIP_LOG_VAR, log.to_str().unwrap()),
            ],
            &[],
        );
        let stdout = text(&out.stdout);
        assert!(!out.status.success(), "CI={ci}: {stdout}");
        assert!(
            stdout.contains(&format!(
                "CI={ci} is set, so VITALS_SKIP_EXTERNAL is not honoured"
            )),
            "{stdout}"
        );
        assert!(!log.exists(), "nothing recorded as skipped");
    }
    // CI=false is no CI.
    let out = run_child(&[(SKIP_VAR, "1"), ("CI", "false")], &[]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}
