//! `server_uptime_seconds`, read at scrape time.

use std::time::Instant;
use vitals::{Collector, FamilyInfo, Labels, MetricKind, Unit, Visitor};

/// Seconds since the server metrics were built, as a gauge.
pub(crate) struct Uptime {
    /// The family name, namespace included.
    name: String,
    started: Instant,
}

impl Uptime {
    /// Reports the time since `started` as `name`.
    pub(crate) fn new(name: String, started: Instant) -> Self {
        Uptime { name, started }
    }
}

impl Collector for Uptime {
    fn collect(&self, visitor: &mut dyn Visitor) {
        visitor.family(&FamilyInfo {
            name: &self.name,
            help: "Seconds since the server started",
            unit: Some(Unit::Seconds),
            kind: MetricKind::Gauge,
        });
        visitor.float_gauge(&Labels::empty(), self.started.elapsed().as_secs_f64());
    }
}
