//! The sample of recent requests: a reservoir (algorithm R) per interval.
//!
//! The decision is taken when a request starts (one atomic add and, past the
//! reservoir size, one random draw), so only sampled requests copy their
//! path and trace id, and only they take the reservoir's mutex when they
//! end. A request still running when its interval closes is left out.

use super::aggregate::{Ended, duration_ms};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// A request the reservoir picked, as known when it started.
#[derive(Debug)]
pub(crate) struct PendingSample {
    pub(crate) epoch: u64,
    pub(crate) slot: usize,
    pub(crate) timestamp_unix_ms: u64,
    pub(crate) path: String,
    pub(crate) trace_id: Option<String>,
}

/// The reservoir of sampled requests of the current interval.
pub(crate) struct Sampler {
    size: usize,
    seen: AtomicU64,
    epoch: AtomicU64,
    slots: Mutex<Vec<Option<vitals::wire::RequestSample>>>,
}

impl Sampler {
    pub(crate) fn new(size: usize) -> Self {
        Sampler {
            size,
            seen: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            slots: Mutex::new((0..size).map(|_| None).collect()),
        }
    }

    /// Algorithm R: the i-th request of the interval takes a slot with
    /// probability size / (i + 1).
    #[inline]
    pub(crate) fn reserve(&self) -> Option<(u64, usize)> {
        if self.size == 0 {
            return None;
        }
        let epoch = self.epoch.load(Relaxed);
        let i = self.seen.fetch_add(1, Relaxed);
        let slot = if i < self.size as u64 {
            i
        } else {
            let j = rand::random_range(0..=i);
            if j >= self.size as u64 {
                return None;
            }
            j
        };
        Some((epoch, slot as usize))
    }

    pub(crate) fn store(&self, p: PendingSample, e: &Ended<'_>, caller: Option<&str>) {
        // Statuses the http crate allows but HTTP does not (600 to 999)
        // would make the collector refuse the whole batch: not sampled.
        if !(100..=599).contains(&e.status) {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // A request that started in an earlier interval has no slot now.
        if self.epoch.load(Relaxed) != p.epoch {
            return;
        }
        if let Some(slot) = slots.get_mut(p.slot) {
            *slot = Some(vitals::wire::RequestSample {
                timestamp_unix_ms: p.timestamp_unix_ms,
                method: e.method.to_owned(),
                path: p.path,
                route: e.route.to_owned(),
                status: e.status,
                duration_ms: duration_ms(e.elapsed_secs),
                caller: caller.map(str::to_owned),
                trace_id: p.trace_id,
            });
        }
    }

    pub(crate) fn take(&self) -> Vec<vitals::wire::RequestSample> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Relaxed);
        self.seen.store(0, Relaxed);
        let mut out: Vec<_> = slots.iter_mut().filter_map(Option::take).collect();
        out.sort_by_key(|s| s.timestamp_unix_ms);
        out
    }
}
