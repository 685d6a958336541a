//! What a test does when a tool or service it needs from outside the
//! process is missing: it fails, unless the person asked to skip.
//!
//! The one rule, decided by [`skip_decision`] and applied by
//! [`skip_or_fail`]:
//!
//! - By default a missing tool or service **fails** the test, with a message
//!   saying what is missing and how to get it. A plain `cargo test` never
//!   reports a test that could not run as passed.
//! - With `VITALS_SKIP_EXTERNAL=1` (or `true`) the test is **skipped**: it
//!   returns early, prints `!!! SKIPPED <test>: <what>: <why>` straight to
//!   stderr (past libtest's capture, so it shows although the test passes)
//!   and appends `<test>: <what>: <why>` to the file named by
//!   `VITALS_SKIP_LOG`, if set. `scripts/test` sets it and lists the
//!   skipped tests at the end.
//! - In CI (`CI` set to anything but empty, `0` or `false`) nothing is ever
//!   skipped, whatever `VITALS_SKIP_EXTERNAL` says.
//!
//! Tools are looked up with [`require_command`] and
//! [`require_python_module`]; PostgreSQL and Redis with [`POSTGRES`] and
//! [`REDIS`], which default to the standard local addresses when their
//! variable is unset.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable with which a person allows tests to skip what is missing:
/// `VITALS_SKIP_EXTERNAL=1`.
pub const SKIP_VAR: &str = "VITALS_SKIP_EXTERNAL";

/// The variable naming a file to which every skip appends one line
/// (`<test>: <what>: <why>`), so a test script can list them at the end.
pub const SKIP_LOG_VAR: &str = "VITALS_SKIP_LOG";

/// Whether a test may skip what it cannot find, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipDecision {
    /// `VITALS_SKIP_EXTERNAL=1` outside CI: skip, loudly.
    Allowed,
    /// Nobody asked to skip: the test fails.
    NotAsked,
    /// Skipping was asked for, but `CI` is set (to this value): CI runs
    /// every test, so the test fails.
    RefusedInCi(String),
}

/// Reads `VITALS_SKIP_EXTERNAL` and `CI` and decides.
pub fn skip_decision() -> SkipDecision {
    decide(
        std::env::var(SKIP_VAR).ok().as_deref(),
        std::env::var("CI").ok().as_deref(),
    )
}

/// True when a test may skip a missing tool or service (see
/// [`skip_decision`]).
pub fn may_skip() -> bool {
    skip_decision() == SkipDecision::Allowed
}

fn decide(skip: Option<&str>, ci: Option<&str>) -> SkipDecision {
    let asked = skip.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let ci = ci
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "0" && !v.eq_ignore_ascii_case("false"));
    match (asked, ci) {
        (false, _) => SkipDecision::NotAsked,
        (true, Some(ci)) => SkipDecision::RefusedInCi(ci.to_owned()),
        (true, None) => SkipDecision::Allowed,
    }
}

/// Called by a test that cannot find `what` (because of `why`, which
/// should say how to get it): panics, failing the test, unless skipping is
/// allowed ([`skip_decision`]); then reports the skip and returns, and the
/// test must return at once.
///
/// ```no_run
/// # let found = false;
/// if !found {
///     vitals_test_support::skip_or_fail("promtool", "not on PATH: apt-get install prometheus");
///     return;
/// }
/// ```
pub fn skip_or_fail(what: &str, why: impl Display) {
    let test = current_test();
    let why = why.to_string();
    match skip_decision() {
        SkipDecision::Allowed => report_skip(&test, what, &why),
        SkipDecision::NotAsked => panic!(
            "{test} needs {what}, which is not available: {why}\n\
             Install or start it (scripts/test installs and starts everything the tests need), \
             or set {SKIP_VAR}=1 to skip the tests that need it (scripts/test then lists them)."
        ),
        SkipDecision::RefusedInCi(ci) => panic!(
            "{test} needs {what}, which is not available: {why}\n\
             CI={ci} is set, so {SKIP_VAR} is not honoured: CI runs every test."
        ),
    }
}

fn report_skip(test: &str, what: &str, why: &str) {
    let line = format!("{test}: {what}: {}", one_line(why));
    // Straight to the stderr file descriptor: libtest captures `eprintln!`
    // of a passing test, and this line must show.
    let _ = writeln!(std::io::stderr().lock(), "\n!!! SKIPPED {line}\n");
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR).filter(|v| !v.is_empty()) {
        append_line(Path::new(&log), &line).unwrap_or_else(|e| {
            panic!(
                "{SKIP_LOG_VAR}={}: cannot record the skip: {e}",
                Path::new(&log).display()
            )
        });
    }
}

/// Appends `line` and a newline in one write, so lines from tests running
/// in parallel (threads or processes) do not interleave.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The running test as `binary::path::to::test`: libtest names each test's
/// thread after the test, and the binary is the crate (unit tests) or the
/// file under `tests/`. Outside a test thread, the thread's name stands in.
pub fn current_test() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("an unnamed thread");
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(binary_name(exe.file_stem()?.to_str()?).to_owned()));
    match binary {
        Some(binary) => format!("{binary}::{name}"),
        None => name.to_owned(),
    }
}

/// `server-0123456789abcdef` (cargo's test binary) → `server`.
fn binary_name(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    }
}

/// Where `name` is found on `PATH`, as `Command::new(name)` would find it
/// (a name with a `/` is taken as a path).
pub fn find_command(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// True when the command `name` is on `PATH`; otherwise
/// [`skip_or_fail`]s, saying to `install` it, and returns false (the test
/// must then return).
pub fn require_command(name: &str, install: &str) -> bool {
    if find_command(name).is_some() {
        return true;
    }
    skip_or_fail(
        name,
        format_args!("`{name}` is not on PATH; install it: {install}"),
    );
    false
}

/// Runs Prometheus's own checker, `promtool check metrics`, on `text` (the
/// Prometheus text format) and returns what it reported, for the caller to
/// judge its lint findings. Panics when promtool refuses the text: any exit
/// but 0 (clean) or 3 (lint findings only). `None` when promtool is not
/// installed, after [`skip_or_fail`] (the test must then return).
pub fn promtool_check_metrics(text: &[u8]) -> Option<String> {
    if !require_command(
        "promtool",
        "Debian package prometheus (scripts/test installs it)",
    ) {
        return None;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text)
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "promtool rejected the exposition ({code:?}):\n{report}\n{}",
        String::from_utf8_lossy(text)
    );
    Some(report)
}

/// True when `python3` is on `PATH` and imports `module`; otherwise
/// [`skip_or_fail`]s, saying to `install` it, and returns false.
pub fn require_python_module(module: &str, install: &str) -> bool {
    if !require_command("python3", "Debian package python3") {
        return false;
    }
    let what = format!("python3 with {module}");
    match Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("").trim();
            skip_or_fail(
                &what,
                format_args!("`import {module}` failed ({last}); install it: {install}"),
            );
            false
        }
        Err(e) => {
            skip_or_fail(&what, format_args!("python3 did not run: {e}"));
            false
        }
    }
}

/// A server the tests talk to, found through an environment variable or
/// at its standard local address.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The server's name, as in messages: `PostgreSQL`.
    pub name: &'static str,
    /// The variable that points the tests at a server: `VITALS_TEST_POSTGRES`.
    pub var: &'static str,
    /// The address used when the variable is unset or empty.
    pub default_url: &'static str,
    /// How to get one running, for the failure message.
    pub start: &'static str,
}

/// PostgreSQL for the collector's store tests: `VITALS_TEST_POSTGRES`, or
/// the default `postgres://postgres@127.0.0.1:5432/test`. Each test works
/// in a schema of its own and drops it.
pub const POSTGRES: Service = Service {
    name: "PostgreSQL",
    var: "VITALS_TEST_POSTGRES",
    default_url: "postgres://postgres@127.0.0.1:5432/test",
    start: "install and start it with a database `test` that the user postgres may reach \
            from 127.0.0.1 without a password (on Debian: apt-get install postgresql; \
            scripts/test does all of this)",
};

/// Redis for the collector's hot-tier tests: `VITALS_TEST_REDIS`, or the
/// default `redis://127.0.0.1:6379`. Each test uses keys under a prefix of
/// its own and deletes them.
pub const REDIS: Service = Service {
    name: "Redis",
    var: "VITALS_TEST_REDIS",
    default_url: "redis://127.0.0.1:6379",
    start: "install and start it (on Debian: apt-get install redis-server; \
            redis-server --port 6379; scripts/test does this)",
};

impl Service {
    /// The URL to test against: the variable's value, or the standard
    /// local address when it is unset or empty.
    pub fn url(&self) -> String {
        std::env::var(self.var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| self.default_url.to_owned())
    }

    /// [`skip_or_fail`] for a server that did not answer at `url` with
    /// `error`: the message says where the URL came from, and how to start
    /// a server or point the tests at one. The password in `url` is hidden.
    pub fn unavailable(&self, url: &str, error: impl Display) {
        let from_env = std::env::var(self.var).is_ok_and(|v| !v.trim().is_empty());
        skip_or_fail(self.name, self.reason(url, &error, from_env));
    }

    fn reason(&self, url: &str, error: &dyn Display, from_env: bool) -> String {
        let source = if from_env {
            format!("from {}", self.var)
        } else {
            format!("the default address, as {} is not set", self.var)
        };
        format!(
            "cannot connect to {} ({source}): {error}. To run these tests, {}; or set {} to \
             a server's URL",
            hide_password(url),
            self.start,
            self.var
        )
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_passes_a_valid_exposition_and_refuses_a_broken_one() {
        let Some(report) = promtool_check_metrics(b"# HELP up Up.\n# TYPE up gauge\nup 1\n") else {
            return;
        };
        assert!(report.trim().is_empty(), "a clean exposition: {report:?}");
        let refused = std::panic::catch_unwind(|| promtool_check_metrics(b"up{job=\"x 1\n"));
        assert!(refused.is_err(), "promtool accepted a broken exposition");
    }

    #[test]
    fn skipping_needs_the_variable_and_no_ci() {
        use SkipDecision::*;
        assert_eq!(decide(None, None), NotAsked);
        assert_eq!(decide(Some("0"), None), NotAsked);
        assert_eq!(decide(Some(""), None), NotAsked);
        assert_eq!(decide(Some("yes please"), None), NotAsked);
        assert_eq!(decide(Some("1"), None), Allowed);
        assert_eq!(decide(Some("TRUE"), None), Allowed);
        assert_eq!(decide(Some("1"), Some("")), Allowed);
        assert_eq!(decide(Some("1"), Some("0")), Allowed);
        assert_eq!(decide(Some("1"), Some("false")), Allowed);
        assert_eq!(decide(Some("1"), Some("true")), RefusedInCi("true".into()));
        assert_eq!(decide(Some("1"), Some("1")), RefusedInCi("1".into()));
        assert_eq!(decide(None, Some("true")), NotAsked);
    }

    #[test]
    fn binary_names_lose_cargos_hash() {
        assert_eq!(binary_name("server-0123456789abcdef"), "server");
        assert_eq!(
            binary_name("vitals_server-ffffffffffffffff"),
            "vitals_server"
        );
        assert_eq!(binary_name("hot-tier"), "hot-tier");
        assert_eq!(binary_name("x-0123456789abcdeg"), "x-0123456789abcdeg");
    }

    #[test]
    fn the_test_is_named_after_its_thread() {
        let name = current_test();
        assert!(
            name.ends_with("::external::tests::the_test_is_named_after_its_thread"),
            "{name}"
        );
        assert!(name.starts_with("vitals_test_support::"), "{name}");
    }

    #[test]
    fn commands_are_found_on_path() {
        assert!(find_command("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_command("no-such-command-vitals"), None);
        assert_eq!(find_command("/no/such/file"), None);
        assert!(find_command("/bin/sh").is_some());
        // A directory is not a command.
        assert_eq!(find_command("/"), None);
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("postgres://u:hunter2@127.0.0.1:5432/db?x=1"),
            "postgres://u:***@127.0.0.1:5432/db?x=1"
        );
        assert_eq!(
            hide_password("redis://:hunter2@h:6379"),
            "redis://:***@h:6379"
        );
        assert_eq!(
            hide_password("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(hide_password("redis://h/a@b"), "redis://h/a@b");
        assert_eq!(hide_password("not a url"), "not a url");
    }

    #[test]
    fn an_unavailable_service_says_where_it_looked_and_what_to_do() {
        let r = REDIS.reason("redis://:pw@127.0.0.1:6379", &"refused", false);
        assert_eq!(
            r,
            "cannot connect to redis://:***@127.0.0.1:6379 (the default address, as \
             VITALS_TEST_REDIS is not set): refused. To run these tests, install and start it \
             (on Debian: apt-get install redis-server; redis-server --port 6379; scripts/test \
             does this); or set VITALS_TEST_REDIS to a server's URL"
        );
        let r = POSTGRES.reason(POSTGRES.default_url, &"no database", true);
        assert!(
            r.starts_with(
                "cannot connect to postgres://postgres@127.0.0.1:5432/test \
                 (from VITALS_TEST_POSTGRES): no database. To run these tests, install"
            ),
            "{r}"
        );
    }

    #[test]
    fn reasons_fit_on_one_line() {
        assert_eq!(one_line("a\n\n  b \r\nc"), "a; b; c");
    }
}
