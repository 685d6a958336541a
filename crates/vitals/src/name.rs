//! Metric and label name rules, and units.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// Most label names one family may have.
pub const MAX_LABELS: usize = 32;
/// Longest help text accepted, in bytes.
pub const MAX_HELP_LEN: usize = 4096;

/// The unit of a metric. It becomes a name suffix (`_seconds`) and the
/// OpenMetrics `# UNIT` line, so every output format agrees on the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unit {
    /// Durations, in seconds (the Prometheus base unit).
    Seconds,
    /// Sizes, in bytes.
    Bytes,
    /// Dimensionless ratios in `0..=1`.
    Ratio,
}

impl Unit {
    /// The unit's name as it appears in metric names and `# UNIT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
            Unit::Ratio => "ratio",
        }
    }
}

/// Checks a metric name against `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn validate_metric_name(name: &str) -> Result<(), Error> {
    let mut bytes = name.bytes();
    let ok = match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {
            bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        }
        _ => false,
    };
    if ok && name.len() <= 200 {
        Ok(())
    } else {
        Err(Error::InvalidMetricName {
            name: name.to_owned(),
        })
    }
}

/// Checks a label name against `[a-zA-Z_][a-zA-Z0-9_]*` and the reserved
/// names (`__*`, `le`, `quantile`, `overflow`).
pub fn validate_label_name(metric: &str, label: &str) -> Result<(), Error> {
    let err = |reason| Error::InvalidLabelName {
        metric: metric.to_owned(),
        label: label.to_owned(),
        reason,
    };
    let mut bytes = label.bytes();
    let ok = match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
            bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    };
    if !ok || label.len() > 100 {
        return Err(err(
            "label names must match [a-zA-Z_][a-zA-Z0-9_]* and be at most 100 bytes",
        ));
    }
    if label.starts_with("__") {
        return Err(err(
            "names starting with \"__\" are reserved for Prometheus",
        ));
    }
    match label {
        "le" => Err(err("\"le\" is reserved for histogram buckets")),
        "quantile" => Err(err("\"quantile\" is reserved for summaries")),
        "overflow" => Err(err(
            "\"overflow\" is reserved for the cardinality-overflow series",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for good in ["a", "_a", "a:b", "http_requests_total", "A1_"] {
            assert!(validate_metric_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "a-b", "a b", "é", "a\n", &"a".repeat(201)] {
            let err = validate_metric_name(bad).unwrap_err();
            assert!(err.to_string().contains("invalid metric name"), "{err}");
        }
    }

    #[test]
    fn label_names() {
        assert!(validate_label_name("m", "method").is_ok());
        for bad in ["", "a:b", "__x", "le", "quantile", "overflow", "1a", "ü"] {
            let err = validate_label_name("m", bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
