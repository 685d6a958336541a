//! An OTLP export request into per-service writes: walk its resources,
//! check and admit each one's `service.name`, send each data point to
//! `points.rs`, and gather what they add into one [`ServiceWrite`] per
//! service. A point that cannot be used is rejected alone (counted by
//! reason, for the answer's `partialSuccess`); only a failure of the
//! store refuses the whole request.

use super::super::prepare::{Prepared, to_buckets};
use super::super::validate::check_service;
use super::attributes;
use super::building::Building;
use super::points::{Ctx, Outcome, custom_points, route_point};
use super::streams::{Last, Streams};
use crate::error::ApiError;
use crate::ingest::Intake;
use crate::model::{CustomPoint, IngestWrite, Resolution};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use std::collections::{BTreeMap, HashMap};

/// The OpenTelemetry semantic-convention metric whose points become
/// per-route request aggregates.
pub const DURATION_METRIC: &str = "http.server.request.duration";

/// What one service of a request adds: the write for the store, and the
/// stream readings to remember once the store has it.
#[derive(Debug)]
pub(crate) struct ServiceWrite {
    /// The service's write (`None` when its points added nothing new:
    /// baselines and repeats only).
    pub prepared: Option<Prepared>,
    /// Stream readings to keep after the write is acknowledged.
    pub updates: Vec<(String, Last)>,
}

/// Rejected data points: how many, by reason, and the first few messages.
#[derive(Debug, Default)]
pub(crate) struct Rejected {
    /// Data points rejected.
    pub points: u64,
    /// Rejections by reason (the `vitals_rejected_total` label).
    pub by_reason: BTreeMap<&'static str, u64>,
    /// The first messages, for the answer's `errorMessage`.
    pub messages: Vec<String>,
}

impl Rejected {
    pub(crate) fn add(&mut self, n: u64, err: &ApiError) {
        if n == 0 {
            return;
        }
        self.points += n;
        *self.by_reason.entry(err.reason).or_default() += n;
        if self.messages.len() < 3 {
            self.messages.push(err.message.clone());
        }
    }

    /// The answer's `errorMessage`: the first messages, and how many more.
    pub fn message(&self) -> String {
        let mut m = self.messages.join("; ");
        let more = self.by_reason.values().sum::<u64>() - self.messages.len() as u64;
        if more > 0 && !self.messages.is_empty() {
            m.push_str(&format!(" (and {more} more rejected data points)"));
        }
        m
    }
}

/// A converted request.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    /// One entry per service with accepted points.
    pub services: Vec<ServiceWrite>,
    /// The points rejected.
    pub rejected: Rejected,
    /// Data points in the request.
    pub points: u64,
}

/// Data points in one metric.
pub(crate) fn point_count(m: &Metric) -> usize {
    match &m.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

/// Whether converting `req` reads or writes stream state (anything but
/// delta request durations and gauges), so the caller takes the streams'
/// lock only when needed.
pub(crate) fn needs_streams(req: &ExportMetricsServiceRequest) -> bool {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .any(|m| match &m.data {
            None | Some(Data::Gauge(_)) => false,
            Some(Data::Histogram(h)) if m.name == DURATION_METRIC => h.aggregation_temporality != 1,
            Some(Data::ExponentialHistogram(h)) if m.name == DURATION_METRIC => {
                h.aggregation_temporality != 1
            }
            Some(_) => true,
        })
}

/// Converts `req` (whose data points were counted and capped by the
/// caller) into one write per service, against the stream readings in
/// `known`. `batch_id` identifies the request (a retry sends the same
/// bytes, so the same id), for the store's duplicate check.
pub(crate) async fn convert(
    req: ExportMetricsServiceRequest,
    at: &Intake<'_>,
    streams: &Streams,
    known: &HashMap<String, Last>,
    batch_id: &str,
) -> Result<Converted, ApiError> {
    let limits = &at.config.limits;
    let mut out = Converted::default();
    let mut services: BTreeMap<String, Building> = BTreeMap::new();
    for (ri, rm) in req.resource_metrics.into_iter().enumerate() {
        let in_resource: usize = rm
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(point_count)
            .sum();
        out.points += in_resource as u64;
        let attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let service = match attributes::text(&attrs, "service.name") {
            Some(s) => s,
            None => {
                let err = ApiError::bad_request(
                    "missing_field",
                    format!("resource {ri} has no service.name attribute; set OTEL_SERVICE_NAME"),
                );
                out.rejected.add(in_resource as u64, &err);
                continue;
            }
        };
        let admitted = match check_service(&service, limits) {
            Ok(()) => {
                at.routes
                    .admit_service(at.store, at.tenant, &service, at.now, limits)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = admitted {
            if !e.is_rejection() {
                return Err(e);
            }
            out.rejected.add(in_resource as u64, &e);
            continue;
        }
        let instance = attributes::text(&attrs, "service.instance.id").unwrap_or_default();
        if let Err(e) = super::super::validate::check_name(
            "service.instance.id",
            &instance,
            limits.max_name_len,
            false,
        ) {
            out.rejected.add(in_resource as u64, &e);
            continue;
        }
        let building = services.entry(service.clone()).or_default();
        let ctx = Ctx {
            at,
            service: &service,
            instance: &instance,
            resource: attributes::canonical(&attrs),
            started_ns: streams.started_ns,
            known,
        };
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let outcomes = if m.name == DURATION_METRIC
                    && matches!(
                        m.data,
                        Some(Data::Histogram(_) | Data::ExponentialHistogram(_))
                    ) {
                    route_point(&ctx, m, building)
                } else {
                    custom_points(&ctx, m, building)
                };
                for o in outcomes {
                    if let Outcome::Rejected(e) = o {
                        out.rejected.add(1, &e);
                    }
                }
            }
        }
    }
    for (service, b) in services {
        let mut w = finish(at, &service, b, batch_id);
        // Several collectors on one store: routes it refuses fold now.
        if let Some(p) = &mut w.prepared {
            p.overflowed += at
                .routes
                .confirm_routes(at.store, at.tenant, &mut p.write, limits)
                .await?;
        }
        out.services.push(w);
    }
    Ok(out)
}

/// A service's gathered points as its write.
fn finish(at: &Intake<'_>, service: &str, b: Building, batch_id: &str) -> ServiceWrite {
    let updates = b.updates.into_iter().collect();
    if b.buckets.is_empty() && b.custom.is_empty() {
        return ServiceWrite {
            prepared: None,
            updates,
        };
    }
    let custom = b
        .custom
        .into_iter()
        .map(|((start_ms, key), stats)| CustomPoint {
            tenant: at.tenant.into(),
            resolution: Resolution::Minute,
            start_ms,
            key,
            stats,
        })
        .collect();
    ServiceWrite {
        prepared: Some(Prepared {
            write: IngestWrite {
                tenant: at.tenant.into(),
                service: service.into(),
                batch_id: Some(batch_id.into()),
                received_ms: at.now,
                buckets: to_buckets(at.tenant, at.now, b.buckets),
                samples: Vec::new(),
                custom,
            },
            overflowed: b.overflowed,
            requests: b.requests,
            custom_dropped: 0,
            apdex_estimated: 0,
        }),
        updates,
    }
}
