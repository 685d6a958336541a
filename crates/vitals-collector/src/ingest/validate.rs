//! The rules every value from the network is checked against, with the
//! [`Limits`]: names and labels, methods, statuses, durations,
//! timestamps, counts, and an aggregate's inner consistency. Each refusal
//! names the value and the limit, so the sender can fix it.

use crate::config::Limits;
use crate::error::ApiError;
use crate::model::UnixMs;
use vitals::wire::RouteAggregate;

/// Checks a service name (required, at most `max_name_len` bytes, no
/// control characters, and usable as a path segment: see
/// [`service_name_problem`]); done before anything else about a batch.
pub fn check_service(service: &str, limits: &Limits) -> Result<(), ApiError> {
    check_name("service", service, limits.max_name_len, true)?;
    if let Some(problem) = service_name_problem(service) {
        return Err(ApiError::bad_request(
            "invalid_service",
            format!(
                "service {:?} {problem}; a service name must be usable as one path segment of /v1/services/{{service}}",
                service.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// Why a service name could not be queried back, or `None` when it can:
/// `.` and `..` (clients normalise them out of a path), a `/` (it splits
/// the path segment), only white space (trimmed away or invisible), and
/// bidirectional-text controls or line and paragraph separators (a name
/// that displays as another, or breaks a log line). The same rule holds
/// for every way a service name arrives: `/v1/ingest`, `/v1/requests` and
/// OTLP's `service.name`.
pub fn service_name_problem(service: &str) -> Option<&'static str> {
    if service == "." || service == ".." {
        return Some("is a path dot segment");
    }
    if service.contains('/') {
        return Some("contains '/'");
    }
    if !service.is_empty() && service.chars().all(char::is_whitespace) {
        return Some("is only white space");
    }
    if service.chars().any(is_bidi_or_separator) {
        return Some("contains a bidirectional-text control or a line separator");
    }
    None
}

/// The invisible characters that reorder or break displayed text:
/// Unicode's bidirectional controls (ALM, LRM, RLM, the embeddings,
/// overrides and isolates) and the line and paragraph separators.
fn is_bidi_or_separator(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

pub(super) fn check_name(
    what: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), ApiError> {
    if required && value.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!("{what} must not be empty"),
        ));
    }
    if value.len() > max {
        let head: String = value.chars().take(32).collect();
        return Err(ApiError::bad_request(
            "label_too_long",
            format!(
                "{what} is {} bytes, over the {max}-byte limit (starts {head:?})",
                value.len()
            ),
        ));
    }
    if has_control(value) {
        return Err(ApiError::bad_request(
            "invalid_label",
            format!("{what} {value:?} contains control characters"),
        ));
    }
    Ok(())
}

/// Whether `value` holds a control character (`char::is_control`: U+0000
/// to U+001F and U+007F to U+009F). Every one of them is encoded with a
/// byte below 0x20, 0x7F, or the lead byte 0xC2, so a byte scan rules
/// almost every string out before the exact per-character test.
#[inline]
pub(super) fn has_control(value: &str) -> bool {
    value.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) && value.chars().any(char::is_control)
}

pub(super) fn check_method(method: &str) -> Result<(), ApiError> {
    if method.is_empty()
        || method.len() > 16
        || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        return Err(ApiError::bad_request(
            "invalid_method",
            format!(
                "method {:?} is not an HTTP method (1 to 16 letters)",
                method.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_status(status: u16) -> Result<(), ApiError> {
    if !(100..=599).contains(&status) {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("status {status} is outside 100..=599"),
        ));
    }
    Ok(())
}

pub(super) fn check_duration(d: f64, limits: &Limits) -> Result<(), ApiError> {
    if !d.is_finite() || d < 0.0 || d > limits.max_duration_ms as f64 {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!(
                "duration_ms {d} must be a number from 0 to {} ms",
                limits.max_duration_ms
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_timestamp(
    what: &str,
    t: u64,
    now: UnixMs,
    oldest_ms: i64,
    limits: &Limits,
) -> Result<UnixMs, ApiError> {
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    let newest = now.saturating_add(limits.max_future_ms as i64);
    let oldest = now.saturating_sub(oldest_ms);
    if t < oldest || t > newest {
        return Err(ApiError::bad_request(
            "timestamp_out_of_range",
            format!(
                "{what} {t} is outside the accepted range {oldest}..={newest} (ms since the epoch; check the sender's clock)"
            ),
        ));
    }
    Ok(t)
}

pub(super) fn check_count(what: &str, n: usize, max: usize) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{n} {what} in one batch, over the limit of {max}; send smaller batches"),
        ));
    }
    Ok(())
}

pub(super) fn check_aggregate(r: &RouteAggregate, limits: &Limits) -> Result<(), ApiError> {
    check_method(&r.method)?;
    check_name("route", &r.route, limits.max_route_len, true)?;
    if let Some(c) = &r.caller {
        check_name("caller", c, limits.max_name_len, false)?;
    }
    if !(1..=5).contains(&r.status_class) {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("status_class {} is outside 1..=5", r.status_class),
        ));
    }
    if r.count > limits.max_count {
        return Err(ApiError::bad_request(
            "count_out_of_range",
            format!(
                "count {} is over the limit of {}",
                r.count, limits.max_count
            ),
        ));
    }
    // The sketch's own count, computed without overflow: a hostile body
    // can send bucket counts that add up past u64::MAX.
    let timed = r
        .duration_ms
        .buckets()
        .try_fold(r.duration_ms.zero_count(), |n, (_, c)| n.checked_add(c));
    let counted = timed.and_then(|t| t.checked_add(r.duration_ms.rejected()));
    let apdex = r.satisfied.checked_add(r.tolerating);
    if r.errors > r.count
        || apdex.is_none_or(|a| a > r.count)
        || counted.is_none_or(|c| c > r.count)
    {
        return Err(ApiError::bad_request(
            "inconsistent_counts",
            format!(
                "route {:?}: errors ({}), satisfied + tolerating ({} + {}) and the sketch's values plus its rejected ones ({}) must each be at most count ({})",
                r.route,
                r.errors,
                r.satisfied,
                r.tolerating,
                counted.map_or_else(|| "over 2^64".to_string(), |c| c.to_string()),
                r.count
            ),
        ));
    }
    let sum = r.duration_ms.sum();
    let max_seen = r.duration_ms.quantile(1.0).unwrap_or(0.0);
    if !sum.is_finite() || sum < 0.0 || max_seen > limits.max_duration_ms as f64 * 1.01 {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!(
                "route {:?}: the duration sketch holds values outside 0..={} ms (sum {sum}, max {max_seen})",
                r.route, limits.max_duration_ms
            ),
        ));
    }
    check_sketch_sum(r, sum)
}

/// The sum of a sketch must be one its buckets can hold: between the
/// count of its non-zero values times its lowest bucket's lower bound and
/// its count times its highest bucket's upper bound (with 2 % slack for
/// senders that re-bucket, and a little for float rounding). Otherwise one
/// request could carry a sum of 1e30 ms and turn a service's average into
/// nonsense while every other figure looks sane.
fn check_sketch_sum(r: &RouteAggregate, sum: f64) -> Result<(), ApiError> {
    let sketch = &r.duration_ms;
    let bound = |i: i32| (f64::from(i) / f64::from(1 << vitals::sketch::SCALE)).exp2();
    let mut buckets = sketch.buckets();
    let first = buckets.next();
    let last = buckets.last().or(first);
    let nonzero = sketch.count() - sketch.zero_count();
    let (low, high) = match (first, last) {
        (Some((lo, _)), Some((hi, _))) => (
            nonzero as f64 * bound(lo) / 1.02,
            sketch.count() as f64 * bound(hi + 1) * 1.02,
        ),
        // Only zeros: each at most 2^-32 ms.
        _ => (
            0.0,
            sketch.zero_count() as f64 * 2f64.powi(vitals::sketch::MIN_EXP),
        ),
    };
    if sum < low - 1e-3 || sum > high + 1e-3 {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!(
                "route {:?}: the duration sketch's sum {sum} ms cannot come from its {} values (their buckets allow {low:.3}..={high:.3} ms)",
                r.route,
                sketch.count()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_exactly() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let s = format!("ab{c}");
            assert_eq!(has_control(&s), c.is_control(), "{:x}", c as u32);
        }
    }
}
