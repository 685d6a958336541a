//! Exposition formats: Prometheus text 0.0.4, OpenMetrics 1.0 and JSON.
//!
//! The text encoders are [`Visitor`](crate::Visitor)s that write straight
//! into a byte buffer as the registry walks its series: no intermediate
//! structure and no allocation per series.

mod escape;
mod format;
mod render;
mod text;

pub use format::{Format, MAX_ACCEPT_LEN};
pub use render::{encode, encode_json, encode_openmetrics, encode_prometheus};
pub use text::TextEncoder;
