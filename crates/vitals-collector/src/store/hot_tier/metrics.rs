//! What the hot tier's flushing does, for the collector's `GET /metrics`:
//! failed flushes, what reached the store, and how long the oldest data
//! has been waiting in Redis, so an operator can alert on a stuck flush.
//!
//! The hot tier is opened before the collector's registry exists (and may
//! serve several collectors), so it counts into plain atomics here and
//! [`Store::register_metrics`](crate::store::Store::register_metrics) adds a
//! [`vitals::Collector`] reading them at scrape time. The age is computed
//! at scrape time from the wall clock, so it keeps growing while no flush
//! pass succeeds (or none runs at all).

use crate::model::UnixMs;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use vitals::{FamilyInfo, Labels, MetricKind, Unit, Visitor};

/// No data is waiting (or none was seen yet).
const NOTHING_WAITING: i64 = i64::MAX;

/// Redis's persistence is not known (yet, or `CONFIG GET` is refused).
const DURABILITY_UNKNOWN: i64 = -1;

/// Whether Redis keeps what it acknowledged across its own restart, read
/// from its `appendonly` and `appendfsync` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Durability {
    /// AOF on, fsynced every second or on every write.
    Durable,
    /// What would be lost, in words, for the operator.
    NotDurable(String),
    /// Redis refused `CONFIG GET` (managed services often do).
    Unknown,
}

impl Durability {
    /// Judges `CONFIG GET appendonly` / `appendfsync` answers (`None`: not
    /// answered).
    pub(crate) fn of(appendonly: Option<&str>, appendfsync: Option<&str>) -> Durability {
        match (appendonly, appendfsync) {
            (Some("yes"), Some("always" | "everysec")) => Durability::Durable,
            (Some("yes"), Some(other)) => Durability::NotDurable(format!(
                "Redis writes its append-only file but leaves fsync to the OS (appendfsync {other}): \
                 a machine crash loses acknowledged batches; set appendfsync everysec or always"
            )),
            (Some("no"), _) => Durability::NotDurable(
                "Redis keeps no append-only file (appendonly no): a Redis restart loses every \
                 acknowledged batch not yet flushed to the store; set appendonly yes with \
                 appendfsync everysec or always"
                    .into(),
            ),
            _ => Durability::Unknown,
        }
    }
}

/// Counters shared by the hot tier's ingest path and flusher. Relaxed
/// atomics: each is an independent figure, read only by scrapes.
#[derive(Debug)]
pub(crate) struct HotTierMetrics {
    pass_failures: AtomicU64,
    late_data_failures: AtomicU64,
    flushed_snapshots: AtomicU64,
    flushed_buckets: AtomicU64,
    /// Start of the oldest unflushed minute, or the seal time of the oldest
    /// snapshot not yet in the store, as of the last flush pass (ms).
    oldest_unflushed_ms: AtomicI64,
    /// 1 durable, 0 not, [`DURABILITY_UNKNOWN`] unknown.
    durable: AtomicI64,
}

impl Default for HotTierMetrics {
    fn default() -> Self {
        HotTierMetrics {
            pass_failures: AtomicU64::new(0),
            late_data_failures: AtomicU64::new(0),
            flushed_snapshots: AtomicU64::new(0),
            flushed_buckets: AtomicU64::new(0),
            oldest_unflushed_ms: AtomicI64::new(NOTHING_WAITING),
            durable: AtomicI64::new(DURABILITY_UNKNOWN),
        }
    }
}

impl HotTierMetrics {
    /// A flush pass failed (it is retried next pass).
    pub(crate) fn pass_failed(&self) {
        self.pass_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Late data could not be written to the store at ingest (it stays in
    /// Redis and a later pass retries it).
    pub(crate) fn late_data_failed(&self) {
        self.late_data_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot holding `buckets` series-minutes reached the store.
    pub(crate) fn flushed(&self, buckets: usize) {
        self.flushed_snapshots.fetch_add(1, Ordering::Relaxed);
        self.flushed_buckets
            .fetch_add(buckets as u64, Ordering::Relaxed);
    }

    /// The oldest time data has been waiting since, as a flush pass found
    /// it; `None` when nothing is waiting.
    pub(crate) fn set_oldest_unflushed(&self, since: Option<UnixMs>) {
        self.oldest_unflushed_ms
            .store(since.unwrap_or(NOTHING_WAITING), Ordering::Relaxed);
    }

    /// Records Redis's persistence as last read; `true` when it changed.
    pub(crate) fn set_durability(&self, d: &Durability) -> bool {
        let v = match d {
            Durability::Durable => 1,
            Durability::NotDurable(_) => 0,
            Durability::Unknown => DURABILITY_UNKNOWN,
        };
        self.durable.swap(v, Ordering::Relaxed) != v
    }

    /// Seconds since the oldest waiting data's time, at `now` (0 when
    /// nothing waits).
    fn age_seconds(&self, now: UnixMs) -> f64 {
        match self.oldest_unflushed_ms.load(Ordering::Relaxed) {
            NOTHING_WAITING => 0.0,
            since => (now.saturating_sub(since)).max(0) as f64 / 1000.0,
        }
    }
}

/// Reads a hot tier's [`HotTierMetrics`] at every scrape.
pub(crate) struct HotTierCollector(pub(crate) std::sync::Arc<HotTierMetrics>);

impl vitals::Collector for HotTierCollector {
    fn collect(&self, visitor: &mut dyn Visitor) {
        let m = &self.0;
        let stage_names = [Box::<str>::from("stage")];
        visitor.family(&FamilyInfo {
            name: "vitals_collector_hot_flush_failures",
            help: "Hot tier writes to the store that failed and will be retried: stage=pass (a background flush pass) or late_data (late data written at ingest)",
            unit: None,
            kind: MetricKind::Counter,
        });
        for (stage, v) in [
            ("pass", &m.pass_failures),
            ("late_data", &m.late_data_failures),
        ] {
            let value = [Box::<str>::from(stage)];
            visitor.counter(
                &Labels::new(&stage_names, &value),
                v.load(Ordering::Relaxed),
            );
        }
        visitor.family(&FamilyInfo {
            name: "vitals_collector_hot_flushed_snapshots",
            help: "Hot tier snapshots (one tenant, service and minute, or one batch of late data) written to the store",
            unit: None,
            kind: MetricKind::Counter,
        });
        visitor.counter(
            &Labels::empty(),
            m.flushed_snapshots.load(Ordering::Relaxed),
        );
        visitor.family(&FamilyInfo {
            name: "vitals_collector_hot_flushed_buckets",
            help: "Minute buckets (one series, one minute) the hot tier wrote to the store",
            unit: None,
            kind: MetricKind::Counter,
        });
        visitor.counter(&Labels::empty(), m.flushed_buckets.load(Ordering::Relaxed));
        visitor.family(&FamilyInfo {
            name: "vitals_collector_hot_oldest_unflushed_age_seconds",
            help: "How long the oldest data held only in Redis has waited, as of the last flush pass: since its minute began (open minute) or since it was sealed (snapshot not yet in the store); 0 when none. Normally under a minute plus the flush grace and interval; growing means the flush is stuck",
            unit: Some(Unit::Seconds),
            kind: MetricKind::Gauge,
        });
        visitor.float_gauge(&Labels::empty(), m.age_seconds(crate::clock::now_ms()));
        visitor.family(&FamilyInfo {
            name: "vitals_collector_hot_durable",
            help: "Whether Redis keeps acknowledged batches across its own restart, from its appendonly and appendfsync settings: 1 yes (AOF, fsync everysec or always), 0 no, -1 unknown (CONFIG GET refused); re-read every flush pass",
            unit: None,
            kind: MetricKind::Gauge,
        });
        visitor.gauge(&Labels::empty(), m.durable.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_fsynced_append_only_file_is_durable() {
        assert_eq!(
            Durability::of(Some("yes"), Some("everysec")),
            Durability::Durable
        );
        assert_eq!(
            Durability::of(Some("yes"), Some("always")),
            Durability::Durable
        );
        for (only, fsync, names) in [
            (Some("yes"), Some("no"), "appendfsync no"),
            (Some("no"), Some("everysec"), "appendonly no"),
            (Some("no"), None, "appendonly no"),
        ] {
            match Durability::of(only, fsync) {
                Durability::NotDurable(why) => assert!(why.contains(names), "{why}"),
                other => panic!("{only:?}/{fsync:?}: {other:?}"),
            }
        }
        assert_eq!(Durability::of(None, None), Durability::Unknown);
        assert_eq!(Durability::of(Some("maybe"), None), Durability::Unknown);
    }

    #[test]
    fn the_gauge_reports_the_last_reading_and_changes() {
        let m = HotTierMetrics::default();
        assert_eq!(m.durable.load(Ordering::Relaxed), DURABILITY_UNKNOWN);
        assert!(m.set_durability(&Durability::NotDurable("x".into())));
        assert!(
            !m.set_durability(&Durability::NotDurable("x".into())),
            "unchanged"
        );
        assert_eq!(m.durable.load(Ordering::Relaxed), 0);
        assert!(m.set_durability(&Durability::Durable));
        assert_eq!(m.durable.load(Ordering::Relaxed), 1);
    }
}
