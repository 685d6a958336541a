//! The body of an OTLP/HTTP export: its encoding, from `Content-Type`
//! (`application/x-protobuf` or `application/json`), and its decoding into
//! an [`ExportMetricsServiceRequest`]. Unknown fields are ignored, as the
//! OTLP specification asks; anything else malformed refuses the request.

use super::convert::point_count;
use crate::error::ApiError;
use axum::http::{HeaderValue, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

/// The two encodings of OTLP/HTTP; the answer uses the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
    /// The protobuf JSON mapping as OTLP defines it, `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters such as `charset`
    /// ignored); anything else is a 415.
    pub fn of(content_type: Option<&HeaderValue>) -> Result<Self, ApiError> {
        let essence = content_type
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Ok(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {essence:?} is not OTLP/HTTP; send application/x-protobuf or application/json"
                ),
            ))
        }
    }

    /// The `Content-Type` of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Decodes an export request (already inflated).
pub fn decode_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportMetricsServiceRequest, ApiError> {
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(body).map_err(|e| {
            ApiError::bad_request(
                "invalid_protobuf",
                format!("the body is not an OTLP ExportMetricsServiceRequest: {e}"),
            )
        }),
        Encoding::Json => {
            let invalid = |e: &dyn std::fmt::Display| {
                ApiError::bad_request(
                    "invalid_json",
                    format!("the body is not an OTLP/JSON ExportMetricsServiceRequest: {e}"),
                )
            };
            let req: ExportMetricsServiceRequest =
                serde_json::from_slice(body).map_err(|e| invalid(&e))?;
            if has_metric_without_data(&req) {
                check_metric_data(body).map_err(|e| invalid(&e))?;
            }
            Ok(req)
        }
    }
}

/// The five JSON keys of `Metric.data`.
const DATA_KEYS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

fn has_metric_without_data(req: &ExportMetricsServiceRequest) -> bool {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .any(|m| m.data.is_none())
}

/// The generated JSON mapping reads `Metric.data` through a flattened
/// `Option`, which turns a malformed `gauge`, `sum` or histogram into "no
/// data" instead of an error: the metric would vanish without a word. So
/// when a metric came out without data, the body is read again and each
/// data key present is decoded on its own, to find the error.
fn check_metric_data(body: &[u8]) -> Result<(), String> {
    use opentelemetry_proto::tonic::metrics::v1 as m;
    let raw: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let metrics = raw["resourceMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["scopeMetrics"].as_array().into_iter().flatten())
        .flat_map(|s| s["metrics"].as_array().into_iter().flatten());
    for metric in metrics {
        for key in DATA_KEYS {
            let Some(data) = metric.get(key) else {
                continue;
            };
            let data = data.clone();
            let read = match key {
                "gauge" => serde_json::from_value::<m::Gauge>(data).map(drop),
                "sum" => serde_json::from_value::<m::Sum>(data).map(drop),
                "histogram" => serde_json::from_value::<m::Histogram>(data).map(drop),
                "exponentialHistogram" => {
                    serde_json::from_value::<m::ExponentialHistogram>(data).map(drop)
                }
                _ => serde_json::from_value::<m::Summary>(data).map(drop),
            };
            read.map_err(|e| format!("metric {}: its {key} cannot be read: {e}", metric["name"]))?;
        }
    }
    Ok(())
}

/// Data points in a request, for the per-request limit.
pub fn point_total(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(point_count)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_follows_the_content_type() {
        let h = HeaderValue::from_static;
        assert_eq!(
            Encoding::of(Some(&h("application/x-protobuf"))),
            Ok(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::of(Some(&h("Application/JSON; charset=utf-8"))),
            Ok(Encoding::Json)
        );
        for bad in [None, Some(h("text/plain")), Some(h("application/protobuf"))] {
            let e = Encoding::of(bad.as_ref()).expect_err("refused");
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
}
