//! Errors a person can act on: which flag to change when a port is taken,
//! and how an error is printed (its causes, one per line; no backtrace for
//! a mistake in the input, even with `RUST_BACKTRACE=1`: a bug still
//! panics, and a panic prints one).

use std::io;

/// The error of binding `addr` for `what`, naming the flag and the
/// environment variable that choose another address when it is taken.
pub(crate) fn cannot_listen(
    e: io::Error,
    addr: &str,
    what: &str,
    flag: &str,
    env: &str,
) -> anyhow::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "; another program (or another vitals) already listens there: \
             choose another address with {flag} (or {env}), port 0 for any free port"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "; that address is not one of this machine's: choose another with {flag} (or {env})"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "; ports below 1024 need privileges: choose a higher port with {flag} (or {env})"
        ),
        _ => String::new(),
    };
    anyhow::anyhow!("cannot listen on {addr} for {what}: {e}{hint}")
}

/// `error: …` and each cause on a line of its own, as the person reads
/// it; the `Debug` form anyhow gives `main` would add a backtrace when
/// `RUST_BACKTRACE` is set, which helps nobody with a bad flag.
pub(crate) fn report(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}");
    for cause in e.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_names_the_flag_that_changes_it() {
        let e = cannot_listen(
            io::Error::from(io::ErrorKind::AddrInUse),
            "127.0.0.1:7070",
            "the collector",
            "--listen",
            "VITALS_LISTEN",
        );
        let text = e.to_string();
        assert!(text.contains("127.0.0.1:7070"), "{text}");
        assert!(text.contains("--listen (or VITALS_LISTEN)"), "{text}");
        let other = cannot_listen(
            io::Error::other("boom"),
            "x",
            "y",
            "--listen",
            "VITALS_LISTEN",
        );
        assert!(!other.to_string().contains("--listen"), "{other}");
    }

    #[test]
    fn a_report_lists_every_cause_and_no_backtrace() {
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(report(&e), "error: outer\n  caused by: inner");
    }
}
