//! JSON output: the registry's [`Snapshot`](crate::Snapshot) serialised.

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
