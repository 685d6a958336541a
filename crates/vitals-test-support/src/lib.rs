//! # vitals-test-support
//!
//! Helpers for the workspace's tests, so that no test can pass by accident:
//!
//! - [`external`]: one decision on what a test does when a tool or service
//!   it needs (PostgreSQL, Redis, promtool, Prometheus, python3 with
//!   prometheus_client, node with Chromium) is missing. It **fails**, unless
//!   the person set `VITALS_SKIP_EXTERNAL=1` outside CI; then it prints a
//!   loud `SKIPPED` line and appends it to the file named by
//!   `VITALS_SKIP_LOG`, which `scripts/test` reports at the end.
//! - [`wait`]: waits for a condition and **fails** the test with what was
//!   awaited and the last state seen when it never holds.
//! - `import_graph` (feature `import-graph`): the file-level import graph
//!   of a crate's `src/`, and the check that no file imports one that
//!   imports it back (docs/ARCHITECTURE.md, "Inside each crate").
//!
//! ```no_run
//! use std::time::Duration;
//! use vitals_test_support::{external, wait_until};
//!
//! # fn check_with_promtool() {}
//! if external::require_command("promtool", "Debian package prometheus") {
//!     check_with_promtool();
//! }
//! let mut tries = 0;
//! let seen = wait_until("the third try", Duration::from_secs(5), || {
//!     tries += 1;
//!     if tries == 3 { Ok(tries) } else { Err(format!("{tries} tries")) }
//! });
//! assert_eq!(seen, 3);
//! ```
//!
//! This crate depends on no other crate of the workspace, so any of them can
//! dev-depend on it without a dependency circle; `publish = false`.
//!
//! ## Features
//! - `tokio`: [`wait_until_async`], which sleeps on tokio's timer.
//! - `import-graph`: `import_graph`, which parses the sources with syn.

pub mod external;
#[cfg(feature = "import-graph")]
pub mod import_graph;
pub mod wait;

pub use external::{may_skip, skip_or_fail};
pub use wait::wait_until;
#[cfg(feature = "tokio")]
pub use wait::wait_until_async;
