//! What an alert carries: its labels (the collector's own, then the
//! rule's), its fingerprint (a hash of the labels, as Alertmanager has
//! one), annotations rendered from templates, and times as RFC 3339.

use crate::config::Rule;
use crate::model::UnixMs;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The labels of `rule`'s alert: `alertname` (the rule's name), `tenant`,
/// `service`, `route` and `method` when the rule has them, then the
/// rule's own labels.
pub fn alert_labels(rule: &Rule) -> BTreeMap<String, String> {
    let mut out = rule.labels.clone();
    out.insert("alertname".into(), rule.name.clone());
    out.insert("tenant".into(), rule.tenant.clone());
    out.insert("service".into(), rule.service.clone());
    if let Some(r) = &rule.route {
        out.insert("route".into(), r.clone());
    }
    if let Some(m) = &rule.method {
        out.insert("method".into(), m.clone());
    }
    out
}

/// 16 hex digits identifying a label set (SHA-256 of the sorted pairs).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xff]);
    }
    let mut out = String::with_capacity(16);
    for b in &h.finalize()[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A value as annotations show it: up to 4 decimals, no trailing zeros.
pub fn format_value(v: Option<f64>) -> String {
    match v {
        None => "none".into(),
        Some(v) => {
            let s = format!("{v:.4}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" { "0".into() } else { s.into() }
        }
    }
}

/// Renders `template`: `{{ $value }}`, `{{ $threshold }}` and
/// `{{ $labels.NAME }}` (spaces inside the braces optional) become their
/// values; anything else is left as written.
pub fn render(
    template: &str,
    value: Option<f64>,
    threshold: f64,
    labels: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let expr = after[..close].trim();
        let replaced = match expr {
            "$value" => Some(format_value(value)),
            "$threshold" => Some(format_value(Some(threshold))),
            _ => expr
                .strip_prefix("$labels.")
                .map(|name| labels.get(name).cloned().unwrap_or_default()),
        };
        match replaced {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// `ms` as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
pub fn rfc3339(ms: UnixMs) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The zero time Alertmanager's webhooks send as a firing alert's `endsAt`.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_value_threshold_and_labels() {
        let labels: BTreeMap<String, String> =
            [("service".to_string(), "checkout".to_string())].into();
        assert_eq!(
            render(
                "{{ $labels.service }}: error rate {{$value}} > {{ $threshold }} {{ $other }} {{",
                Some(0.123456),
                0.05,
                &labels
            ),
            "checkout: error rate 0.1235 > 0.05 {{ $other }} {{"
        );
        assert_eq!(render("{{ $value }}", None, 1.0, &labels), "none");
        assert_eq!(render("{{ $value }}", Some(12.0), 1.0, &labels), "12");
    }

    #[test]
    fn fingerprints_follow_the_labels() {
        let a: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        let b: BTreeMap<String, String> = [("ab".to_string(), String::new())].into();
        assert_eq!(fingerprint(&a).len(), 16);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
    }
}
