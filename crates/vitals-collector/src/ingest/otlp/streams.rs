//! The per-stream state that turns cumulative OTLP points into deltas
//! (and delta sums into the running totals a custom counter needs).
//!
//! Where it lives: in this collector process's memory, one map per
//! collector behind a mutex ([`Streams`]), keyed by tenant, resource,
//! metric and point attributes. It holds each stream's last reading, so a
//! later cumulative reading becomes the values recorded in between. What
//! the OTLP data model asks of such a receiver, and how it is met:
//!
//! - A reading no newer than the last one (an exporter's retry, or points
//!   out of order) adds nothing: a retried cumulative export is never
//!   counted twice.
//! - A reading whose start time moved forward, or whose counts went down,
//!   is a reset: it counts whole, from its own start.
//! - The first reading of a stream counts whole when the stream started
//!   after this collector did (its start time is later), since nothing of
//!   it can have been stored before; otherwise (the collector restarted,
//!   or the stream moved to it from another collector) it is a baseline
//!   and only what comes after it counts. So a restart loses at most one
//!   export interval per cumulative stream and never counts one twice.
//! - The state is updated only after the store acknowledged the write the
//!   deltas went into, so a failed write retried by the exporter computes
//!   the same deltas again.
//!
//! The map is bounded ([`MAX_STREAMS`]); past it the streams idle longest
//! are forgotten (their next reading is a baseline). Several collectors
//! behind one load balancer each keep their own map: send cumulative
//! streams of one sender to one collector (sticky routing), or configure
//! the SDK for delta temporality, which needs no state.

use super::distribution::Distribution;
use std::collections::HashMap;
use std::time::Instant;

/// Most streams remembered per collector.
pub const MAX_STREAMS: usize = 200_000;

/// A stream's last reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading {
    /// A histogram (cumulative).
    Distribution(Distribution),
    /// A number: a cumulative sum's value, or a delta sum's running total.
    Number(f64),
}

/// What is remembered per stream.
#[derive(Debug, Clone)]
pub(crate) struct Last {
    /// The reading's start time (ns since the epoch; 0 unknown).
    pub start_ns: u64,
    /// The reading's time (ns since the epoch).
    pub time_ns: u64,
    /// The reading (or running total).
    pub reading: Reading,
    used: Instant,
}

impl Last {
    /// A reading taken now.
    pub(crate) fn new(start_ns: u64, time_ns: u64, reading: Reading) -> Self {
        Last {
            start_ns,
            time_ns,
            reading,
            used: Instant::now(),
        }
    }
}

/// Every stream's last reading; see the module docs.
#[derive(Debug)]
pub struct Streams {
    /// When this collector started (ns since the epoch): a stream that
    /// started later is counted from its first reading.
    pub(crate) started_ns: u64,
    pub(crate) map: tokio::sync::Mutex<HashMap<String, Last>>,
}

impl Streams {
    /// An empty map for a collector started at `started_ms`.
    pub fn new(started_ms: i64) -> Self {
        Streams {
            started_ns: u64::try_from(started_ms)
                .unwrap_or(0)
                .saturating_mul(1_000_000),
            map: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// Keeps `updates` (stream key, last reading) in `map`, forgetting the
/// streams idle longest when it would grow past [`MAX_STREAMS`].
pub(crate) fn commit(map: &mut HashMap<String, Last>, updates: Vec<(String, Last)>) {
    let fresh: std::collections::HashSet<String> = updates.iter().map(|(k, _)| k.clone()).collect();
    map.extend(updates);
    if map.len() > MAX_STREAMS {
        let mut ages: Vec<(Instant, String)> = map
            .iter()
            .filter(|(k, _)| !fresh.contains(*k))
            .map(|(k, v)| (v.used, k.clone()))
            .collect();
        ages.sort_unstable();
        let drop = map.len().saturating_sub(MAX_STREAMS * 9 / 10);
        for (_, k) in ages.into_iter().take(drop) {
            map.remove(&k);
        }
    }
}

/// Whether a reading at (`start_ns`, `time_ns`) is new, a reset, or
/// stale relative to `last`; `None` for `last` when the stream is new.
pub(crate) fn classify(
    last: Option<&Last>,
    start_ns: u64,
    time_ns: u64,
    started_ns: u64,
) -> Classified {
    match last {
        None if start_ns > 0 && start_ns >= started_ns => Classified::Whole,
        None => Classified::First,
        Some(l) if time_ns <= l.time_ns => Classified::Stale,
        Some(l) if start_ns > l.start_ns && start_ns != 0 => Classified::Whole,
        Some(_) => Classified::Since,
    }
}

/// The outcome of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classified {
    /// Count the whole reading (a new stream that began after this
    /// collector started, or a reset).
    Whole,
    /// A stream first seen here that may have begun earlier: a baseline.
    First,
    /// Count the difference from the last reading.
    Since,
    /// No newer than the last reading.
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_classified_as_the_data_model_asks() {
        let started = 1_000;
        let last = Last::new(500, 2_000, Reading::Number(1.0));
        assert_eq!(classify(None, 1_500, 2_000, started), Classified::Whole);
        assert_eq!(classify(None, 500, 2_000, started), Classified::First);
        assert_eq!(classify(None, 0, 2_000, started), Classified::First);
        assert_eq!(
            classify(Some(&last), 500, 2_000, started),
            Classified::Stale
        );
        assert_eq!(
            classify(Some(&last), 500, 1_999, started),
            Classified::Stale
        );
        assert_eq!(
            classify(Some(&last), 500, 3_000, started),
            Classified::Since
        );
        assert_eq!(
            classify(Some(&last), 2_500, 3_000, started),
            Classified::Whole
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let mut map = HashMap::new();
        let updates = (0..MAX_STREAMS)
            .map(|i| (i.to_string(), Last::new(0, 1, Reading::Number(0.0))))
            .collect();
        commit(&mut map, updates);
        commit(
            &mut map,
            vec![("new".into(), Last::new(0, 1, Reading::Number(0.0)))],
        );
        assert!(map.len() <= MAX_STREAMS, "{}", map.len());
        assert!(map.contains_key("new"));
    }
}
