//! Finding the metrics and the route from inside a handler.

use super::connection::ConnectionInfo;
use super::current_connection;
use crate::labels::UNMATCHED;
use crate::server_metrics::ServerMetrics;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::{StatusCode, request::Parts};

/// The metrics and route template of the current request, as the WebSocket
/// and SSE trackers need them. The metrics come from the request's
/// connection (through [`TrackedRouter`](crate::TrackedRouter),
/// `TrackedIo::serve` or [`ConnectionInfo`]) or, without one, from the
/// extension that [`HttpMetricsLayer`](crate::HttpMetricsLayer) inserts.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub(crate) metrics: ServerMetrics,
    pub(crate) route: String,
}

impl RouteMetrics {
    /// Explicit construction, for code that does not go through the layer.
    pub fn new(metrics: &ServerMetrics, route: impl Into<String>) -> Self {
        RouteMetrics {
            metrics: metrics.clone(),
            route: route.into(),
        }
    }

    /// The route label.
    pub fn route(&self) -> &str {
        &self.route
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RouteMetrics {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_connection = || {
            current_connection::current()
                .map(|c| c.metrics().clone())
                .or_else(|| {
                    parts
                        .extensions
                        .get::<ConnectInfo<ConnectionInfo>>()
                        .map(|c| c.0.0.metrics().clone())
                })
        };
        let metrics = parts
            .extensions
            .get::<ServerMetrics>()
            .cloned()
            .or_else(from_connection)
            .ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "vitals-server: add ServerMetrics::layer() to this router to track WebSocket/SSE sessions",
            ))?;
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str)
            .to_owned();
        Ok(RouteMetrics { metrics, route })
    }
}
