//! OTLP/HTTP metrics ingest (`POST /v1/metrics`): an OpenTelemetry export
//! request, protobuf or JSON, into the same writes as our own batches.
//!
//! - `decode.rs`: the body's encoding (by `Content-Type`) and decoding.
//! - `convert.rs`: the request's resources, by `service.name`, into one
//!   write per service; rejected points counted for `partialSuccess`.
//! - `points.rs`: one data point into what it adds: the
//!   `http.server.request.duration` histogram into per-route aggregates,
//!   everything else into custom metrics.
//! - `distribution.rs`: explicit and exponential histograms into the
//!   collector's duration sketch; cumulative readings into deltas.
//! - `streams.rs`: the per-stream state cumulative streams need (where it
//!   lives and what it guarantees is in that file's docs).
//! - `attributes.rs`: reading attributes; labels; stream keys.
//! - `building.rs`: what a service's points add up to, before its write.

mod attributes;
mod building;
mod convert;
mod decode;
mod distribution;
mod points;
mod streams;

pub use convert::DURATION_METRIC;
pub(crate) use convert::{convert, needs_streams};
pub use decode::{Encoding, decode_request, point_total};
pub(crate) use streams::commit;
pub use streams::{MAX_STREAMS, Streams};
