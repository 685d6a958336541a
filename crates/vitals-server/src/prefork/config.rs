//! [`Prefork`]: how many workers, where they listen, where the run
//! directory is, how long a graceful shutdown may take.

use std::path::PathBuf;
use std::time::Duration;

/// Longest wait for workers to finish after SIGTERM before they are
/// killed.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a server as several worker processes on one port.
///
/// ```no_run
/// use vitals_server::prefork::Prefork;
/// use vitals_server::ServerMetrics;
/// fn main() -> std::io::Result<()> {
///     let metrics = |registry: vitals::Registry| ServerMetrics::builder().registry(registry).build();
///     Prefork::new("127.0.0.1:3000", 4).run(metrics, |worker| {
///         // Build a tokio runtime here and serve `worker.listener()`.
///         # let _ = worker;
///         Ok(())
///     })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Prefork {
    pub(crate) listen: String,
    pub(crate) workers: usize,
    pub(crate) run_dir: Option<PathBuf>,
    pub(crate) slot_bytes: usize,
    pub(crate) shutdown_timeout: Duration,
}

impl Prefork {
    /// `workers` processes (at least 1, at most 1024) serving `listen`.
    pub fn new(listen: impl Into<String>, workers: usize) -> Self {
        Prefork {
            listen: listen.into(),
            workers: workers.clamp(1, 1024),
            run_dir: None,
            slot_bytes: vitals::shared::DEFAULT_SLOT_BYTES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// The run directory (default `vitals-prefork-<port>` in the system's
    /// temporary directory). Its slot files are removed and made anew at
    /// start: a run starts clean.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// Size of each worker's slot file (default 64 MiB, sparse: only the
    /// pages used take memory). The run directory holds `workers + 1` of
    /// them, whatever the number of restarts.
    pub fn slot_bytes(mut self, bytes: usize) -> Self {
        self.slot_bytes = bytes;
        self
    }

    /// Longest wait for the workers after SIGTERM (default 30 s); then
    /// they are killed.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
}
