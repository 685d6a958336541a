//! A whole registry in one call: as text (the [`TextEncoder`] fed by the
//! registry's walk) or as JSON (its [`Snapshot`](crate::Snapshot)
//! serialised). Above the registry, which renders through the encoder
//! itself, so the two do not import each other.

use super::format::Format;
use super::text::TextEncoder;

/// Renders `registry` as JSON: `{"families":[{"name","help","type","unit"?,
/// "series":[{"labels":{…},"value":…} | {"labels":{…},"count","sum",
/// "buckets","quantiles","sketch"}]}]}`.
pub fn encode_json(registry: &crate::Registry, out: &mut Vec<u8>) {
    let snapshot = registry.snapshot();
    // Serialising plain data into a Vec cannot fail; an empty object is the
    // safe answer if it ever did.
    if serde_json::to_writer(&mut *out, &snapshot).is_err() {
        out.clear();
        out.extend_from_slice(b"{\"families\":[]}");
    }
}

/// Renders `registry` in `format`, appending to `out`.
pub fn encode(registry: &crate::Registry, format: Format, out: &mut Vec<u8>) {
    let mut enc = TextEncoder::new(out, format);
    registry.visit(&mut enc);
    enc.finish();
}

/// Renders `registry` as Prometheus text 0.0.4.
pub fn encode_prometheus(registry: &crate::Registry, out: &mut Vec<u8>) {
    encode(registry, Format::Prometheus, out);
}

/// Renders `registry` as OpenMetrics 1.0 text, ending with `# EOF`.
pub fn encode_openmetrics(registry: &crate::Registry, out: &mut Vec<u8>) {
    encode(registry, Format::OpenMetrics, out);
}
