//! [`Worker`]: what a worker process gets from the supervisor: its
//! number, the inherited listener and its registry in the shared region.

use std::future::Future;

/// One worker process: build a tokio runtime, then metrics on
/// [`registry`](Self::registry) and serve [`listener`](Self::listener)
/// until [`shutdown_signal`](Self::shutdown_signal) completes.
#[derive(Debug)]
pub struct Worker {
    pub(crate) index: usize,
    pub(crate) workers: usize,
    pub(crate) listener: std::net::TcpListener,
    pub(crate) registry: vitals::Registry,
}

impl Worker {
    /// This worker's number, `0..workers` (also its slot and the value
    /// of `?worker=` that shows it alone).
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers the server runs.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The listening socket every worker shares (non-blocking, ready for
    /// `tokio::net::TcpListener::from_std`, then
    /// [`TrackedListener::new`](crate::TrackedListener::new)).
    pub fn listener(&self) -> std::io::Result<std::net::TcpListener> {
        self.listener.try_clone()
    }

    /// This worker's registry, in its slot of the run directory: hand it
    /// to [`ServerMetricsBuilder::registry`](crate::ServerMetricsBuilder::registry).
    /// Its renders show the whole server.
    pub fn registry(&self) -> vitals::Registry {
        self.registry.clone()
    }

    /// Completes when the supervisor asks this worker to stop (SIGTERM).
    /// Call it inside the worker's tokio runtime. SIGINT is ignored in
    /// workers: a Ctrl-C reaches the supervisor, which stops them in
    /// order.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        async move {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                // No signal driver: never stop on a signal.
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }
}
