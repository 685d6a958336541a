//! The entry points of [`ServerMetrics`]: the methods that build it or
//! hand out a concern's type (`builder`, `new`, `layer`, `endpoints`,
//! `instrument`, `tasks`).
//!
//! `impl ServerMetrics` is in two files on purpose. `server_metrics.rs`
//! holds the struct, its handles and the methods that need nothing but
//! them; `record/` and `endpoints/` take a `&ServerMetrics`, so they sit
//! above it. The methods here return those concerns' types (the layer, the
//! router, the task tracker, the builder that registers the handles), so
//! they sit above the concerns: in `server_metrics.rs` they would make it
//! and every concern import each other. Both files are one type's API; a
//! method goes here only if it needs a concern's type.

use crate::builder::ServerMetricsBuilder;
use crate::endpoints;
use crate::record::layer::HttpMetricsLayer;
use crate::record::tasks::TaskTracker;
use crate::server_metrics::ServerMetrics;

impl ServerMetrics {
    // --- Building ---

    /// Starts configuring server metrics.
    pub fn builder() -> ServerMetricsBuilder {
        ServerMetricsBuilder::default()
    }

    /// Server metrics in the global registry, without a namespace.
    pub fn new() -> Result<Self, vitals::Error> {
        Self::builder().build()
    }

    // --- Recording requests, and serving the figures ---

    /// The tower layer recording HTTP metrics; add it with `Router::layer`.
    pub fn layer(&self) -> HttpMetricsLayer {
        HttpMetricsLayer::new(self)
    }

    /// The `/metrics`, `/debug/metrics`, `/debug/events`, `/debug/history`
    /// and `/debug/` (the dashboard) router, to `merge` into the app
    /// (behind the credentials, if the builder set any).
    pub fn endpoints(&self) -> axum::Router {
        endpoints::router(self)
    }

    /// Merges the endpoints into `app` and adds the layer over everything,
    /// including the fallback that answers unmatched requests.
    pub fn instrument(&self, app: axum::Router) -> axum::Router {
        app.merge(self.endpoints()).layer(self.layer())
    }

    // --- Task queues ---

    /// The task-queue tracker recording into these metrics (`task_*{queue}`,
    /// the `tasks` section of `/debug/metrics`, `Task` events).
    pub fn tasks(&self) -> TaskTracker {
        TaskTracker::new(self)
    }
}
