//! Helpers shared by the black-box tests.

use std::time::Duration;
use vitals::snapshot::Value;
use vitals::{Registry, Snapshot};

/// The value of one series as an integer: counters and gauges as they are,
/// histograms as their count, floats truncated. `None` if it does not exist.
pub fn value(snap: &Snapshot, family: &str, labels: &[(&str, &str)]) -> Option<i128> {
    match &snap.family(family)?.series(labels)?.value {
        Value::Unsigned { value } => Some(*value as i128),
        Value::Signed { value } => Some(*value as i128),
        Value::Histogram(h) => Some(h.count as i128),
        Value::Float { value } => Some(*value as i128),
    }
}

/// Waits (up to 3 s) until `check` passes on a fresh snapshot, since
/// sessions and connections end asynchronously; returns the last snapshot.
pub async fn eventually(registry: &Registry, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    for _ in 0..300 {
        let snap = registry.snapshot();
        if check(&snap) {
            return snap;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    registry.snapshot()
}
