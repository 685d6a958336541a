//! Queries: RED statistics (rate, errors, duration), Apdex and health per
//! service, route, time step and caller → callee edge, computed from
//! merged buckets. Percentiles come only from merged sketches.
//!
//! - `window.rs`: the window and step of a query, and the resolution read.
//! - `figures.rs`: figures of services, routes, steps and edges.
//! - `health.rs`: a service's health and why.

mod figures;
mod health;
mod window;

pub use figures::{
    Edge, Figures, Metric, Point, RouteFigures, SideFigures, edges, routes, sparkline, timeseries,
    total,
};
pub use health::{Health, health, policy};
pub use window::{
    MAX_POINTS, MAX_WINDOW_MS, SPARKLINE_POINTS, Window, parse_step, resolution_for_step,
    sparkline_step,
};
