//! The caller's side of outbound calls, per interval: what the instrumented
//! HTTP clients (`client/`) add to each pushed batch as
//! [`ClientAggregate`]s, so the collector can show a caller → callee edge
//! from both ends.
//!
//! One short mutex per finished call, taken only when push is configured;
//! series are bounded (past the limit, calls fold into the peer
//! [`OVERFLOW_PEER`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use vitals::Sketch;
use vitals::wire::ClientAggregate;

/// The peer calls past the series limit are folded into.
pub const OVERFLOW_PEER: &str = "_overflow";

#[derive(Debug, Default)]
struct Acc {
    count: u64,
    errors: u64,
    duration_ms: Sketch,
}

type Key = (Arc<str>, Box<str>, &'static str, u8);

/// Accumulates finished outbound calls until the push task takes them.
#[derive(Debug)]
pub(crate) struct ClientAggregator {
    series: Mutex<HashMap<Key, Acc>>,
    max_series: usize,
}

impl ClientAggregator {
    pub(crate) fn new(max_series: usize) -> Self {
        ClientAggregator {
            series: Mutex::new(HashMap::new()),
            max_series: max_series.max(1),
        }
    }

    /// Counts one finished call; `class` 0 (no response) counts as 5.
    pub(crate) fn record(
        &self,
        client: &Arc<str>,
        peer: &str,
        method: &'static str,
        class: u8,
        error: bool,
        elapsed_secs: f64,
    ) {
        let class = if (1..=5).contains(&class) { class } else { 5 };
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let full = series.len() >= self.max_series;
        let key: Key = (client.clone(), peer.into(), method, class);
        let key = if full && !series.contains_key(&key) {
            (client.clone(), OVERFLOW_PEER.into(), method, class)
        } else {
            key
        };
        let acc = series.entry(key).or_default();
        acc.count += 1;
        acc.errors += u64::from(error);
        acc.duration_ms.record(elapsed_secs * 1000.0);
    }

    /// The interval's calls, emptied for the next.
    pub(crate) fn take(&self) -> Vec<ClientAggregate> {
        let taken =
            std::mem::take(&mut *self.series.lock().unwrap_or_else(PoisonError::into_inner));
        let mut out: Vec<ClientAggregate> = taken
            .into_iter()
            .map(|((client, peer, method, class), acc)| ClientAggregate {
                peer: peer.into(),
                client: client.to_string(),
                method: method.to_owned(),
                status_class: class,
                count: acc.count,
                errors: acc.errors,
                duration_ms: acc.duration_ms,
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.client, &a.peer, &a.method, a.status_class).cmp(&(
                &b.client,
                &b.peer,
                &b.method,
                b.status_class,
            ))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_fold_per_series_and_overflow_past_the_limit() {
        let agg = ClientAggregator::new(2);
        let c: Arc<str> = "billing".into();
        agg.record(&c, "billing-svc", "GET", 2, false, 0.010);
        agg.record(&c, "billing-svc", "GET", 2, false, 0.020);
        agg.record(&c, "billing-svc", "GET", 0, true, 0.5);
        agg.record(&c, "other", "GET", 2, false, 0.001);
        let got = agg.take();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].peer.as_str(), got[0].count), ("_overflow", 1));
        assert_eq!((got[1].status_class, got[1].count), (2, 2));
        assert_eq!((got[2].status_class, got[2].errors), (5, 1));
        assert!(agg.take().is_empty());
    }
}
