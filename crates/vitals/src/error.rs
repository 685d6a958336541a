//! Errors returned when registering metrics or building their options.

/// Why a metric could not be registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error(
        "invalid metric name {name:?}: names must match [a-zA-Z_:][a-zA-Z0-9_:]* (e.g. \"http_requests_total\")"
    )]
    InvalidMetricName {
        /// The rejected name.
        name: String,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`, or is reserved.
    #[error("invalid label name {label:?} on metric {metric:?}: {reason}")]
    InvalidLabelName {
        /// The metric being registered.
        metric: String,
        /// The rejected label name.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same label name appears twice.
    #[error("label {label:?} appears twice on metric {metric:?}")]
    DuplicateLabel {
        /// The metric being registered.
        metric: String,
        /// The repeated label name.
        label: String,
    },
    /// More label names than a family may have.
    #[error("metric {metric:?} has {count} labels; at most {max} are allowed")]
    TooManyLabels {
        /// The metric being registered.
        metric: String,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A metric of this name exists with another type, unit or label set.
    #[error(
        "metric {name:?} is already registered as {existing}; it cannot be registered again as {requested}"
    )]
    Conflict {
        /// The metric name.
        name: String,
        /// What is registered.
        existing: String,
        /// What was asked for.
        requested: String,
    },
    /// Histogram bucket bounds are not finite, positive and increasing.
    #[error("invalid histogram buckets for {metric:?}: {reason}")]
    InvalidBuckets {
        /// The metric being registered.
        metric: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A label lookup gave the wrong number of values.
    #[error("metric {metric:?} has {expected} labels but {got} values were given")]
    LabelCount {
        /// The metric name.
        metric: String,
        /// Labels the family has.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// Help text is longer than allowed.
    #[error("help text of {metric:?} is {len} bytes; at most {max} are allowed")]
    HelpTooLong {
        /// The metric name.
        metric: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
