//! An alert rule: as written ([`RuleSpec`], in the TOML file's
//! `[[alerting.rules]]`, in `VITALS_ALERTING_RULES` and in the bodies of
//! `POST`/`PUT /v1/alert-rules`) and as checked ([`Rule`]). Every field is
//! bounded, so a rule from the network can cost no more than one from the
//! file. Durations here also take `0s` and `ms` (`for = "0s"`,
//! `retry_backoff = "200ms"`), unlike the rest of the configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest rule name, bytes.
pub const MAX_RULE_NAME_LEN: usize = 128;
/// Most labels or annotations one rule may carry.
pub const MAX_RULE_LABELS: usize = 32;
/// Longest label value, bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;
/// Longest annotation value, bytes.
pub const MAX_ANNOTATION_LEN: usize = 4096;
/// Longest `window`, `for` and `keep_firing_for`: one day.
pub const MAX_RULE_SPAN_MS: i64 = 86_400_000;
/// The name of the built-in health rule (one alert per service); no
/// other rule may take it.
pub const BUILTIN_HEALTH_RULE: &str = "service_health";
/// Labels the collector sets on every alert itself.
pub const RESERVED_LABELS: [&str; 5] = ["alertname", "tenant", "service", "route", "method"];

/// A rule as written. `tenant` is required in the configuration and
/// absent over the API (the key's tenant is the rule's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The tenant (configuration only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Name, unique per tenant: 1 to 128 of letters, digits, `_`, `-`, `.`, `:`.
    pub name: String,
    /// The service the rule watches.
    pub service: String,
    /// Only this route template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only this HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `error_rate`, `p95_ms`, `p99_ms`, `rate`, `apdex`, `no_data`,
    /// `health` or `custom:NAME`.
    pub signal: String,
    /// `>`, `>=`, `<` or `<=` (not for `no_data`; `health` defaults to `>=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The value compared with (not for `no_data`; `health` defaults to 1,
    /// degraded: 0 healthy, 1 degraded, 2 down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The span the signal is computed over (default `5m`).
    #[serde(default = "default_window")]
    pub window: String,
    /// How long the condition must hold before the alert fires (default `0s`).
    #[serde(rename = "for", default = "zero")]
    pub for_: String,
    /// How long a firing alert stays firing after the condition stops
    /// holding (default `0s`).
    #[serde(default = "zero")]
    pub keep_firing_for: String,
    /// Labels added to the alert's.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations; `{{ $value }}`, `{{ $threshold }}` and
    /// `{{ $labels.NAME }}` are replaced when the alert is sent.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_window() -> String {
    "5m".into()
}

fn zero() -> String {
    "0s".into()
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Errors / requests (no value without requests).
    ErrorRate,
    /// 95th percentile duration, ms.
    P95,
    /// 99th percentile duration, ms.
    P99,
    /// Requests per second.
    Rate,
    /// Apdex score.
    Apdex,
    /// Fires when the window holds no request (its value is the count).
    NoData,
    /// The service's health: 0 healthy, 1 degraded, 2 down.
    Health,
    /// A custom metric: a gauge's value or a counter's rate per second,
    /// summed over label sets.
    Custom(String),
}

impl Signal {
    /// The signal's name as written.
    pub fn name(&self) -> String {
        match self {
            Signal::ErrorRate => "error_rate".into(),
            Signal::P95 => "p95_ms".into(),
            Signal::P99 => "p99_ms".into(),
            Signal::Rate => "rate".into(),
            Signal::Apdex => "apdex".into(),
            Signal::NoData => "no_data".into(),
            Signal::Health => "health".into(),
            Signal::Custom(n) => format!("custom:{n}"),
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// The configuration (file or environment): read-only over the API.
    Config,
    /// Written over the API.
    Api,
    /// The built-in health rule of a service.
    Builtin,
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The tenant.
    pub tenant: String,
    /// The name.
    pub name: String,
    /// The service.
    pub service: String,
    /// Only this route.
    pub route: Option<String>,
    /// Only this method.
    pub method: Option<String>,
    /// What is watched.
    pub signal: Signal,
    /// The comparison (unused for `no_data`).
    pub op: Op,
    /// The threshold (unused for `no_data`).
    pub threshold: f64,
    /// The window, ms.
    pub window_ms: i64,
    /// `for`, ms.
    pub for_ms: i64,
    /// `keep_firing_for`, ms.
    pub keep_firing_for_ms: i64,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates).
    pub annotations: BTreeMap<String, String>,
    /// Where it comes from.
    pub source: RuleSource,
    /// The spec it was checked from (what the API shows).
    pub spec: RuleSpec,
}

/// The name limits a rule's names are checked against (the collector's
/// `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameLimits {
    /// Longest service or metric name.
    pub max_name_len: usize,
    /// Longest route template.
    pub max_route_len: usize,
}

/// Parses a span: a whole number and `ms`, `s`, `m`, `h` or `d`; `0` and
/// `0s` are zero.
pub fn parse_span_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: use ms, s, m, h or d (like 30s)"))?;
    let (num, unit) = text.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number (like 30s)"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{:?} has unknown unit {:?}: use ms, s, m, h or d",
                short(text),
                short(unit)
            ));
        }
    };
    if n > 1_000_000_000 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(n * unit_ms)
}

/// At most 64 characters of `s`, for error messages.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= MAX_RULE_NAME_LEN
}

/// Checks a rule name: 1 to 128 of letters, digits, `_`, `-`, `.`, `:`.
pub fn check_rule_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_RULE_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        return Err(format!(
            "rule name {:?} must be 1 to {MAX_RULE_NAME_LEN} of letters, digits, '_', '-', '.', ':'",
            short(name)
        ));
    }
    Ok(())
}

fn check_text(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(format!(
            "{what} {:?} must be 1 to {max} bytes without control characters",
            short(value)
        ));
    }
    Ok(())
}

fn check_pairs(
    what: &str,
    pairs: &BTreeMap<String, String>,
    max_value: usize,
    reserved: &[&str],
) -> Result<(), String> {
    if pairs.len() > MAX_RULE_LABELS {
        return Err(format!(
            "{what}: {} entries, at most {MAX_RULE_LABELS}",
            pairs.len()
        ));
    }
    for (k, v) in pairs {
        if !is_label_name(k) || k.starts_with("__") {
            return Err(format!(
                "{what}: name {:?} must match [a-zA-Z_][a-zA-Z0-9_]* (at most {MAX_RULE_NAME_LEN} bytes, not starting with __)",
                short(k)
            ));
        }
        if reserved.contains(&k.as_str()) {
            return Err(format!(
                "{what}: {k:?} is set by the collector; use another name"
            ));
        }
        if v.len() > max_value {
            return Err(format!(
                "{what}: the value of {k:?} is {} bytes, at most {max_value}",
                v.len()
            ));
        }
    }
    Ok(())
}

fn span(what: &str, text: &str, min: i64) -> Result<i64, String> {
    let ms = parse_span_ms(text).map_err(|e| format!("{what}: {e}"))?;
    if ms < min || ms > MAX_RULE_SPAN_MS {
        return Err(format!(
            "{what} {:?} must be {} to 1d",
            short(text),
            if min == 0 { "0s" } else { "1m" }
        ));
    }
    Ok(ms)
}

impl RuleSpec {
    /// Checks the spec and makes the rule of `tenant`.
    pub fn check(
        &self,
        tenant: &str,
        source: RuleSource,
        limits: NameLimits,
    ) -> Result<Rule, String> {
        check_rule_name(&self.name)?;
        if self.name == BUILTIN_HEALTH_RULE && source != RuleSource::Builtin {
            return Err(format!(
                "rule name {BUILTIN_HEALTH_RULE:?} is the built-in health rule's; use another"
            ));
        }
        check_text("service", &self.service, limits.max_name_len)?;
        if let Some(route) = &self.route {
            check_text("route", route, limits.max_route_len)?;
        }
        if let Some(method) = &self.method
            && (method.is_empty()
                || method.len() > 16
                || !method.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!(
                "method {:?} must be 1 to 16 upper-case letters, like GET",
                short(method)
            ));
        }
        let signal = match self.signal.as_str() {
            "error_rate" => Signal::ErrorRate,
            "p95_ms" => Signal::P95,
            "p99_ms" => Signal::P99,
            "rate" => Signal::Rate,
            "apdex" => Signal::Apdex,
            "no_data" => Signal::NoData,
            "health" => Signal::Health,
            other => match other.strip_prefix("custom:") {
                Some(name) => {
                    check_text("custom metric name", name, limits.max_name_len)?;
                    Signal::Custom(name.to_owned())
                }
                None => {
                    return Err(format!(
                        "unknown signal {:?}: use error_rate, p95_ms, p99_ms, rate, apdex, no_data, health or custom:NAME",
                        short(other)
                    ));
                }
            },
        };
        let service_wide = matches!(signal, Signal::Health | Signal::Custom(_));
        if service_wide && (self.route.is_some() || self.method.is_some()) {
            return Err(format!(
                "signal {} is about the whole service: remove route and method",
                signal.name()
            ));
        }
        let op = match (self.op.as_deref(), &signal) {
            (Some(_), Signal::NoData) | (None, Signal::NoData) if self.threshold.is_some() => {
                return Err(
                    "signal no_data fires when the window has no request: remove op and threshold"
                        .into(),
                );
            }
            (Some(_), Signal::NoData) => {
                return Err(
                    "signal no_data fires when the window has no request: remove op".into(),
                );
            }
            (None, Signal::NoData | Signal::Health) => Op::Ge,
            (None, _) => return Err(format!("signal {} needs an op", signal.name())),
            (Some(">"), _) => Op::Gt,
            (Some(">="), _) => Op::Ge,
            (Some("<"), _) => Op::Lt,
            (Some("<="), _) => Op::Le,
            (Some(other), _) => {
                return Err(format!("op {:?} must be one of >, >=, <, <=", short(other)));
            }
        };
        let threshold = match (self.threshold, &signal) {
            (_, Signal::NoData) => 0.0,
            (None, Signal::Health) => 1.0,
            (None, _) => return Err(format!("signal {} needs a threshold", signal.name())),
            (Some(t), _) if !t.is_finite() => {
                return Err("threshold must be a finite number".into());
            }
            (Some(t), _) => t,
        };
        check_pairs(
            "labels",
            &self.labels,
            MAX_LABEL_VALUE_LEN,
            &RESERVED_LABELS,
        )?;
        check_pairs("annotations", &self.annotations, MAX_ANNOTATION_LEN, &[])?;
        Ok(Rule {
            tenant: tenant.to_owned(),
            name: self.name.clone(),
            service: self.service.clone(),
            route: self.route.clone(),
            method: self.method.clone(),
            signal,
            op,
            threshold,
            window_ms: span("window", &self.window, 60_000)?,
            for_ms: span("for", &self.for_, 0)?,
            keep_firing_for_ms: span("keep_firing_for", &self.keep_firing_for, 0)?,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            source,
            spec: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: NameLimits = NameLimits {
        max_name_len: 128,
        max_route_len: 256,
    };

    fn spec(signal: &str) -> RuleSpec {
        RuleSpec {
            tenant: None,
            name: "errors".into(),
            service: "checkout".into(),
            route: None,
            method: None,
            signal: signal.into(),
            op: Some(">".into()),
            threshold: Some(0.1),
            window: "5m".into(),
            for_: "1m".into(),
            keep_firing_for: "0s".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn spans_take_zero_and_milliseconds() {
        assert_eq!(parse_span_ms("0s"), Ok(0));
        assert_eq!(parse_span_ms("0"), Ok(0));
        assert_eq!(parse_span_ms("250ms"), Ok(250));
        assert_eq!(parse_span_ms("15s"), Ok(15_000));
        assert_eq!(parse_span_ms("2h"), Ok(7_200_000));
        for bad in ["", "s", "5", "5x", "-5s", "99999999999999s"] {
            assert!(parse_span_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_good_rule_is_checked_into_its_parts() {
        let r = spec("p95_ms")
            .check("acme", RuleSource::Api, LIMITS)
            .expect("valid");
        assert_eq!(r.signal, Signal::P95);
        assert_eq!((r.op, r.threshold), (Op::Gt, 0.1));
        assert_eq!(
            (r.window_ms, r.for_ms, r.keep_firing_for_ms),
            (300_000, 60_000, 0)
        );
        assert!(r.op.holds(0.2, 0.1) && !r.op.holds(0.1, 0.1));
        assert!(Op::Ge.holds(0.1, 0.1) && Op::Le.holds(0.1, 0.1) && Op::Lt.holds(0.0, 0.1));
        let custom = spec("custom:queue_depth")
            .check("acme", RuleSource::Api, LIMITS)
            .expect("custom");
        assert_eq!(custom.signal, Signal::Custom("queue_depth".into()));
        let health = RuleSpec {
            op: None,
            threshold: None,
            ..spec("health")
        }
        .check("acme", RuleSource::Builtin, LIMITS)
        .expect("health");
        assert_eq!((health.op, health.threshold), (Op::Ge, 1.0));
        let no_data = RuleSpec {
            op: None,
            threshold: None,
            ..spec("no_data")
        };
        assert!(no_data.check("acme", RuleSource::Api, LIMITS).is_ok());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let long = "x".repeat(5000);
        let cases: Vec<(RuleSpec, &str)> = vec![
            (
                RuleSpec {
                    name: "".into(),
                    ..spec("rate")
                },
                "rule name",
            ),
            (
                RuleSpec {
                    name: "a b".into(),
                    ..spec("rate")
                },
                "rule name",
            ),
            (
                RuleSpec {
                    service: long.clone(),
                    ..spec("rate")
                },
                "service",
            ),
            (
                RuleSpec {
                    service: "a\nb".into(),
                    ..spec("rate")
                },
                "service",
            ),
            (
                RuleSpec {
                    route: Some(long.clone()),
                    ..spec("rate")
                },
                "route",
            ),
            (
                RuleSpec {
                    method: Some("get".into()),
                    ..spec("rate")
                },
                "method",
            ),
            (spec("error_rte"), "unknown signal"),
            (
                RuleSpec {
                    name: BUILTIN_HEALTH_RULE.into(),
                    ..spec("rate")
                },
                "built-in",
            ),
            (
                RuleSpec {
                    op: Some("=".into()),
                    ..spec("rate")
                },
                "op",
            ),
            (
                RuleSpec {
                    op: None,
                    ..spec("rate")
                },
                "needs an op",
            ),
            (
                RuleSpec {
                    threshold: None,
                    ..spec("rate")
                },
                "needs a threshold",
            ),
            (
                RuleSpec {
                    threshold: Some(f64::NAN),
                    ..spec("rate")
                },
                "finite",
            ),
            (spec("no_data"), "no_data"),
            (
                RuleSpec {
                    route: Some("/x".into()),
                    ..spec("health")
                },
                "whole service",
            ),
            (
                RuleSpec {
                    window: "30s".into(),
                    ..spec("rate")
                },
                "window",
            ),
            (
                RuleSpec {
                    window: "2d".into(),
                    ..spec("rate")
                },
                "window",
            ),
            (
                RuleSpec {
                    for_: "soon".into(),
                    ..spec("rate")
                },
                "for",
            ),
            (
                RuleSpec {
                    keep_firing_for: "2d".into(),
                    ..spec("rate")
                },
                "keep_firing_for",
            ),
            (
                RuleSpec {
                    labels: [("service".to_string(), "x".to_string())].into(),
                    ..spec("rate")
                },
                "set by the collector",
            ),
            (
                RuleSpec {
                    labels: [("bad-name".to_string(), "x".to_string())].into(),
                    ..spec("rate")
                },
                "labels",
            ),
            (
                RuleSpec {
                    labels: [("team".to_string(), long.clone())].into(),
                    ..spec("rate")
                },
                "at most 1024",
            ),
            (
                RuleSpec {
                    annotations: (0..40).map(|i| (format!("a{i}"), String::new())).collect(),
                    ..spec("rate")
                },
                "at most 32",
            ),
        ];
        for (s, want) in cases {
            let err = s
                .check("acme", RuleSource::Api, LIMITS)
                .expect_err(&format!("{s:?}"));
            assert!(err.contains(want), "{want:?} not in {err}");
            assert!(err.len() < 400, "error repeats the input: {err}");
        }
    }
}
