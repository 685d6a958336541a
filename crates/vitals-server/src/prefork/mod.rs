//! Prefork: N worker processes serving one port, with one view of their
//! metrics (feature `prefork`, Unix).
//!
//! [`Prefork::run`] is called first thing in `main`, before any thread or
//! tokio runtime exists. It binds the listener, creates the run directory
//! (the core's [`vitals::SharedRegion`], one slot per worker and one for
//! itself), and forks the workers; each inherits the listening socket and
//! builds its own runtime in [`Worker`]. The parent supervises: a worker
//! that dies is restarted in the same slot (`server_worker_spawns_total`,
//! `server_workers_active`, the `worker_spawned` / `worker_exited` events
//! on the supervisor's bus); SIGTERM or SIGINT stops every worker
//! gracefully and records the lifespan timings.
//!
//! Why fork, not re-exec: the listener and the mapped run directory pass
//! to the child as they are, with no protocol to hand over descriptors
//! or arguments, and a worker starts in a millisecond. The price is the
//! rule above (fork only a single-threaded process), which `run` states
//! and a supervisor that never starts a thread keeps.
//!
//! - `config.rs`: [`Prefork`], the settings.
//! - `supervisor.rs`: forking, reaping, restarting, signals.
//! - `worker.rs`: [`Worker`], what a worker process gets.

mod config;
mod supervisor;
mod worker;

pub use config::{DEFAULT_SHUTDOWN_TIMEOUT, Prefork};
pub use worker::Worker;
