//! The collector's wire format: what a service pushes and what any language
//! may post, defined once here so the push client (`vitals-server`) and the
//! collector (`vitals-collector`) can never disagree.
//!
//! Two bodies, both JSON (optionally gzip-compressed):
//! - [`IngestBatch`] for `POST /v1/ingest`: a service's aggregates for one
//!   interval (per method, route, status class and caller: counts, errors,
//!   Apdex counts and a mergeable duration [`Sketch`]), a bounded sample of
//!   recent requests, and custom metrics.
//! - [`RequestBatch`] for `POST /v1/requests`: plain per-request records for
//!   clients that keep no sketch; the collector aggregates them.
//!
//! Unknown fields are ignored, so either side can grow the format. Both
//! bodies carry a batch id: a retried batch keeps its id, and the collector
//! counts a batch id once per tenant and service.
//!
//! ```
//! use vitals::wire::{IngestBatch, RouteAggregate};
//! use vitals::Sketch;
//!
//! let mut durations = Sketch::new();
//! durations.record(12.5);
//! let batch = IngestBatch {
//!     batch_id: "7f3a…".into(),
//!     service: "checkout".into(),
//!     instance: "checkout-1".into(),
//!     start_unix_ms: 1_700_000_000_000,
//!     interval_ms: 10_000,
//!     apdex_t_ms: 500.0,
//!     routes: vec![RouteAggregate {
//!         method: "GET".into(),
//!         route: "/users/{id}".into(),
//!         status_class: 2,
//!         caller: None,
//!         count: 1,
//!         errors: 0,
//!         satisfied: 1,
//!         tolerating: 0,
//!         duration_ms: durations,
//!     }],
//!     requests: vec![],
//!     custom: vec![],
//!     clients: vec![],
//! };
//! let json = serde_json::to_string(&batch).unwrap();
//! assert_eq!(serde_json::from_str::<IngestBatch>(&json).unwrap(), batch);
//! ```

use crate::Sketch;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Header naming the calling service on a request between services; the
/// server layer reads it to build the service-to-service call map.
pub const CALLER_HEADER: &str = "x-vitals-caller";

/// Path of the aggregated-batch ingest endpoint.
pub const INGEST_PATH: &str = "/v1/ingest";

/// Path of the per-request-record ingest endpoint.
pub const REQUESTS_PATH: &str = "/v1/requests";

/// Default Apdex threshold T, in milliseconds.
pub const DEFAULT_APDEX_T_MS: f64 = 500.0;

/// One service instance's aggregates for one interval (`POST /v1/ingest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestBatch {
    /// Unique per batch; a retry sends the same id, so it is counted once.
    pub batch_id: String,
    /// The service that served the requests.
    pub service: String,
    /// Which instance (host, pod, process) of the service.
    #[serde(default)]
    pub instance: String,
    /// Start of the interval, in milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// Length of the interval, in milliseconds.
    pub interval_ms: u64,
    /// Apdex threshold T the `satisfied` and `tolerating` counts used, in ms.
    #[serde(default = "default_apdex_t_ms")]
    pub apdex_t_ms: f64,
    /// Aggregates per (method, route, status class, caller).
    #[serde(default)]
    pub routes: Vec<RouteAggregate>,
    /// A bounded sample of individual requests from the interval.
    #[serde(default)]
    pub requests: Vec<RequestSample>,
    /// The service's own metrics, as values at the end of the interval.
    #[serde(default)]
    pub custom: Vec<CustomMetric>,
    /// The caller's side of the service's outbound HTTP calls, per
    /// (client, peer, method, status class). Left out of the JSON when
    /// empty, so a collector of an older build reads the batch as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientAggregate>,
}

/// Outbound requests of one (client, peer, method, status class) in one
/// interval, as the calling service saw them: the caller's side of a
/// caller → callee edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientAggregate {
    /// The called service: the client's declared peer name, or the
    /// target's `host[:port]`.
    pub peer: String,
    /// The client's declared name in the calling process.
    #[serde(default)]
    pub client: String,
    /// HTTP method (`GET`, …, or `_OTHER`).
    pub method: String,
    /// Status class of the response, 1 to 5; 5 also for calls that got no
    /// response (connect, timeout, TLS or protocol errors).
    pub status_class: u8,
    /// Calls counted.
    pub count: u64,
    /// Of those, errors: 5xx answers and calls without a response.
    #[serde(default)]
    pub errors: u64,
    /// Durations in milliseconds, until the response body completed or
    /// the call failed.
    #[serde(default)]
    pub duration_ms: Sketch,
}

fn default_apdex_t_ms() -> f64 {
    DEFAULT_APDEX_T_MS
}

/// Requests of one (method, route, status class, caller) in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteAggregate {
    /// HTTP method (`GET`, …, or `_OTHER`).
    pub method: String,
    /// Route template (`/users/{id}`), `unmatched`, or an overflow marker.
    pub route: String,
    /// Status class: 1 to 5 (2 means 2xx).
    pub status_class: u8,
    /// The calling service, from the `x-vitals-caller` header.
    #[serde(default)]
    pub caller: Option<String>,
    /// Requests counted.
    pub count: u64,
    /// Of those, errors (5xx and handler failures).
    #[serde(default)]
    pub errors: u64,
    /// Of those, requests that took at most T and were not errors (Apdex
    /// "satisfied"; an error counts as frustrated whatever its speed).
    #[serde(default)]
    pub satisfied: u64,
    /// Of those, non-error requests that took more than T and at most 4T.
    #[serde(default)]
    pub tolerating: u64,
    /// Durations in milliseconds, as a mergeable sketch.
    #[serde(default)]
    pub duration_ms: Sketch,
}

/// One sampled request, for the "recent requests" view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSample {
    /// When the request started, in milliseconds since the Unix epoch.
    pub timestamp_unix_ms: u64,
    /// HTTP method.
    pub method: String,
    /// The raw path (without the query string).
    #[serde(default)]
    pub path: String,
    /// Route template.
    pub route: String,
    /// Response status.
    pub status: u16,
    /// Time until the response completed, in milliseconds.
    pub duration_ms: f64,
    /// The calling service, if known.
    #[serde(default)]
    pub caller: Option<String>,
    /// The W3C trace id from the request's `traceparent` header.
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// Kind of a custom metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomKind {
    /// A monotonic total.
    Counter,
    /// A value that goes up and down.
    Gauge,
}

/// One custom metric value pushed with a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomMetric {
    /// Metric name.
    pub name: String,
    /// Counter or gauge.
    pub kind: CustomKind,
    /// Label pairs.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The value at the end of the interval.
    pub value: f64,
}

/// Plain per-request records from any language (`POST /v1/requests`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestBatch {
    /// The service that served the requests.
    pub service: String,
    /// Which instance of the service.
    #[serde(default)]
    pub instance: Option<String>,
    /// Optional id: a retried body with the same id is counted once.
    #[serde(default)]
    pub batch_id: Option<String>,
    /// The requests.
    pub requests: Vec<RequestRecord>,
}

/// One request as any client can describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Route template; preferred over `path` when both are given.
    #[serde(default)]
    pub route: Option<String>,
    /// Raw path, used as the route when no template is given.
    #[serde(default)]
    pub path: Option<String>,
    /// Response status.
    pub status: u16,
    /// Time until the response completed, in milliseconds.
    pub duration_ms: f64,
    /// The calling service, if known.
    #[serde(default)]
    pub caller: Option<String>,
    /// When the request happened, in milliseconds since the Unix epoch;
    /// the collector uses its arrival time when absent. Also read from
    /// `timestamp` (the name the design uses), so a sender using it does
    /// not silently get the arrival time; a record giving both is refused
    /// as a duplicate field.
    #[serde(default, alias = "timestamp")]
    pub timestamp_ms: Option<u64>,
    /// W3C trace id, if known.
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// [`RequestBatch`] read in place: the same JSON body, with its strings
/// borrowed from the input where they hold no escape (`Cow::Borrowed`) and
/// copied only where they do. The collector decodes `POST /v1/requests`
/// into this so that 1,000 records do not cost 2,000+ string allocations
/// it would throw away after aggregating them.
///
/// Field for field the same format as [`RequestBatch`]: what one accepts
/// or refuses, the other does too.
///
/// ```
/// use vitals::wire::RequestBatchRef;
///
/// let body = br#"{"service":"s","requests":[{"method":"GET","path":"\/a","status":200,"duration_ms":1.5}]}"#;
/// let batch: RequestBatchRef<'_> = serde_json::from_slice(body).unwrap();
/// assert_eq!(batch.service, "s");
/// assert_eq!(batch.requests[0].path.as_deref(), Some("/a"));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestBatchRef<'a> {
    /// The service that served the requests.
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    /// Which instance of the service.
    #[serde(default, borrow, deserialize_with = "borrow_opt")]
    pub instance: Option<Cow<'a, str>>,
    /// Optional id: a retried body with the same id is counted once.
    #[serde(default, borrow, deserialize_with = "borrow_opt")]
    pub batch_id: Option<Cow<'a, str>>,
    /// The requests.
    #[serde(borrow)]
    pub requests: Vec<RequestRecordRef<'a>>,
}

/// [`RequestRecord`] read in place (see [`RequestBatchRef`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestRecordRef<'a> {
    /// HTTP method.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// Route template; preferred over `path` when both are given.
    #[serde(default, borrow, deserialize_with = "borrow_opt")]
    pub route: Option<Cow<'a, str>>,
    /// Raw path, used as the route when no template is given.
    #[serde(default, borrow, deserialize_with = "borrow_opt")]
    pub path: Option<Cow<'a, str>>,
    /// Response status.
    pub status: u16,
    /// Time until the response completed, in milliseconds.
    pub duration_ms: f64,
    /// The calling service, if known.
    #[serde(default, borrow, deserialize_with = "borrow_opt")]
    pub caller: Option<Cow<'a, str>>,
    /// When the request happened, in milliseconds since the Unix epoch;
    /// also read from `timestamp` (see [`RequestRecord::timestamp_ms`]).
    #[serde(default, alias = "timestamp")]
    pub timestamp_ms: Option<u64>,
    /// W3C trace id, if known.
    #[serde(default, borrow, deserialize_with = "borrow_opt")]
    pub trace_id: Option<Cow<'a, str>>,
}

/// An optional string borrowed from the input when it holds no escape.
/// (serde borrows a plain `Cow<str>` field with `#[serde(borrow)]`, but
/// reads an `Option<Cow<str>>` into an owned `String`.)
fn borrow_opt<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

impl RequestBatchRef<'_> {
    /// The owned [`RequestBatch`] with the same content.
    pub fn to_owned_batch(&self) -> RequestBatch {
        let s = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_string);
        RequestBatch {
            service: self.service.to_string(),
            instance: s(&self.instance),
            batch_id: s(&self.batch_id),
            requests: self
                .requests
                .iter()
                .map(|r| RequestRecord {
                    method: r.method.to_string(),
                    route: s(&r.route),
                    path: s(&r.path),
                    status: r.status,
                    duration_ms: r.duration_ms,
                    caller: s(&r.caller),
                    timestamp_ms: r.timestamp_ms,
                    trace_id: s(&r.trace_id),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_bodies_fill_defaults() {
        let b: IngestBatch = serde_json::from_str(
            r#"{"batch_id":"b1","service":"s","start_unix_ms":1,"interval_ms":10000,"future_field":1}"#,
        )
        .expect("minimal batch parses");
        assert_eq!(b.apdex_t_ms, DEFAULT_APDEX_T_MS);
        assert!(b.routes.is_empty() && b.requests.is_empty() && b.custom.is_empty());
        assert_eq!(b.instance, "");

        let r: RequestBatch = serde_json::from_str(
            r#"{"service":"s","requests":[{"method":"GET","path":"/a","status":200,"duration_ms":1.5}]}"#,
        )
        .expect("minimal request batch parses");
        assert_eq!(r.requests[0].route, None);
        assert_eq!(r.requests[0].path.as_deref(), Some("/a"));
        assert_eq!(r.batch_id, None);
    }

    #[test]
    fn missing_required_fields_are_errors() {
        assert!(serde_json::from_str::<IngestBatch>(r#"{"service":"s"}"#).is_err());
        assert!(
            serde_json::from_str::<RequestBatch>(
                r#"{"service":"s","requests":[{"method":"GET"}]}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<CustomMetric>(r#"{"name":"x","kind":"summary","value":1}"#)
                .is_err()
        );
    }

    /// The borrowed form reads exactly what the owned form reads, and
    /// refuses exactly what it refuses.
    #[test]
    fn borrowed_batch_reads_what_the_owned_batch_reads() {
        let bodies = [
            r#"{"service":"s","requests":[{"method":"GET","path":"/a","status":200,"duration_ms":1.5}]}"#,
            r#"{"service":"s\u00e9","instance":"i-1","batch_id":"b","x":[1,{"y":null}],"requests":[
                {"method":"GET","route":"\/users\/{id}","path":"/users/1?x=\"1\"","status":200,
                 "duration_ms":1e1,"caller":"caf\u00e9 \ud83d\ude00","timestamp_ms":17,"trace_id":"t"},
                {"method":"POST","route":null,"path":null,"caller":null,"trace_id":null,
                 "timestamp_ms":null,"status":201,"duration_ms":0},
                {"method":"GET","route":"/über/🦀","status":500,"duration_ms":3}]}"#,
            r#"{"service":"s","requests":[]}"#,
        ];
        for body in bodies {
            let owned: RequestBatch = serde_json::from_str(body).expect("owned parses");
            let view: RequestBatchRef<'_> = serde_json::from_str(body).expect("view parses");
            assert_eq!(view.to_owned_batch(), owned, "{body}");
        }
        let second: RequestBatchRef<'_> = serde_json::from_str(bodies[1]).expect("parses");
        assert_eq!(second.requests[0].route.as_deref(), Some("/users/{id}"));
        assert!(matches!(second.requests[0].method, Cow::Borrowed("GET")));
        // Strings without escapes are borrowed, optional ones too.
        let first: RequestBatchRef<'_> = serde_json::from_str(bodies[1]).expect("parses");
        let r = &first.requests[2];
        assert!(matches!(r.route, Some(Cow::Borrowed("/über/🦀"))));
        assert!(matches!(first.instance, Some(Cow::Borrowed("i-1"))));
        assert!(matches!(
            first.requests[0].trace_id,
            Some(Cow::Borrowed("t"))
        ));
        assert!(matches!(first.requests[0].route, Some(Cow::Owned(_))));
        assert_eq!(second.requests[0].caller.as_deref(), Some("café 😀"));
        assert_eq!(second.requests[2].route.as_deref(), Some("/über/🦀"));

        let refused = [
            r#"{"service":"s"}"#,
            r#"{"requests":[]}"#,
            r#"{"service":"s","requests":[{"method":"GET"}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","status":70000,"duration_ms":1}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":"1"}]}"#,
            r#"{"service":"s","requests":[{"method":1,"status":200,"duration_ms":1}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","method":"PUT","status":200,"duration_ms":1}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp_ms":-1}]}"#,
            r#"{"service":"\ud800","requests":[]}"#,
            r#"{"service":"s","requests":[]"#,
            r#"{"service":"s","requests":[]} x"#,
            r#"{"service":"s","requests":[{"method":"GET","route":5,"status":200,"duration_ms":1}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","caller":["a"],"status":200,"duration_ms":1}]}"#,
            r#"{"service":"s","instance":{},"requests":[]}"#,
            r#"{"service":"s","requests":[{"method":"GET","trace_id":"\ud800","status":200,"duration_ms":1}]}"#,
        ];
        for body in refused {
            let owned = serde_json::from_str::<RequestBatch>(body);
            let view = serde_json::from_str::<RequestBatchRef<'_>>(body);
            assert!(owned.is_err(), "owned accepted {body}");
            assert_eq!(
                view.map_err(|e| e.to_string()).err(),
                owned.map_err(|e| e.to_string()).err(),
                "{body}"
            );
        }
    }

    /// `timestamp` is read as `timestamp_ms` by both forms; a record with
    /// both is refused (by both, with the same error) rather than one
    /// silently winning.
    #[test]
    fn timestamp_is_an_alias_of_timestamp_ms() {
        for (body, want) in [
            (
                r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp":1700000000123}]}"#,
                Some(1_700_000_000_123),
            ),
            (
                r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp_ms":1700000000123}]}"#,
                Some(1_700_000_000_123),
            ),
            (
                r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1}]}"#,
                None,
            ),
        ] {
            let owned: RequestBatch = serde_json::from_str(body).expect("owned parses");
            let view: RequestBatchRef<'_> = serde_json::from_str(body).expect("view parses");
            assert_eq!(owned.requests[0].timestamp_ms, want, "{body}");
            assert_eq!(view.requests[0].timestamp_ms, want, "{body}");
            assert_eq!(view.to_owned_batch(), owned, "{body}");
        }
        // Written back, the owned record uses the canonical name.
        let owned: RequestBatch = serde_json::from_str(
            r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp":5}]}"#,
        )
        .expect("parses");
        let text = serde_json::to_string(&owned).expect("serializes");
        assert!(text.contains(r#""timestamp_ms":5"#), "{text}");

        for body in [
            r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp":5,"timestamp_ms":6}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp_ms":5,"timestamp":5}]}"#,
            r#"{"service":"s","requests":[{"method":"GET","status":200,"duration_ms":1,"timestamp":5,"timestamp":6}]}"#,
        ] {
            let owned = serde_json::from_str::<RequestBatch>(body).map_err(|e| e.to_string());
            let view = serde_json::from_str::<RequestBatchRef<'_>>(body).map_err(|e| e.to_string());
            let err = owned.clone().expect_err(body);
            assert!(err.contains("duplicate field `timestamp_ms`"), "{err}");
            assert_eq!(view.err(), owned.err(), "{body}");
        }
    }
}
