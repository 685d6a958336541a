//! The sample of recent requests: a reservoir per interval, filled by
//! Li's algorithm L, which draws how many requests to skip until the next
//! one it keeps instead of drawing for every request (as algorithm R does):
//! each request costs one atomic add and one comparison, and only the kept
//! ones draw random numbers. Every request of an interval still has the
//! same chance to be in the sample.
//!
//! The decision is taken when a request starts, so only sampled requests
//! copy their path and trace id, and only they take the reservoir's mutex
//! when they end. A request still running when its interval closes (a slow one, most
//! likely) competes again, as a request of the interval it ends in, where
//! its aggregates are counted too; without that, `/recent` would miss the
//! slow requests people look for there.

use super::ended::{Ended, duration_ms};
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
    /// Algorithm L's state: the index of the next request to keep once the
    /// reservoir is full, and its running weight `W` (as `f64` bits). Only
    /// the request whose index is `next` moves them.
    next: AtomicU64,
    weight: AtomicU64,
    slots: Mutex<Vec<Option<vitals::wire::RequestSample>>>,
}

/// A uniform draw in (0, 1] (so its logarithm is finite).
fn unit() -> f64 {
    1.0 - rand::random::<f64>()
}

impl Sampler {
    pub(crate) fn new(size: usize) -> Self {
        let s = Sampler {
            size,
            seen: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            next: AtomicU64::new(u64::MAX),
            weight: AtomicU64::new(0),
            slots: Mutex::new((0..size).map(|_| None).collect()),
        };
        s.restart_skips();
        s
    }

    /// Draws the first skip of an interval: the reservoir takes requests
    /// `0..size`, then keeps request `size + gap`.
    fn restart_skips(&self) {
        if self.size == 0 {
            return;
        }
        let w = (unit().ln() / self.size as f64).exp();
        self.weight.store(w.to_bits(), Relaxed);
        self.next.store(self.size as u64 + gap(w), Relaxed);
    }

    /// Whether the request starting now is kept, and in which slot: the
    /// i-th request of the interval is, with probability size / (i + 1).
    #[inline]
    pub(crate) fn reserve(&self) -> Option<(u64, usize)> {
        if self.size == 0 {
            return None;
        }
        let epoch = self.epoch.load(Relaxed);
        let i = self.seen.fetch_add(1, Relaxed);
        if i < self.size as u64 {
            return Some((epoch, i as usize));
        }
        if i != self.next.load(Relaxed) {
            return None;
        }
        // This request is the one to keep: it replaces a random slot, and
        // the weight and the next index move on.
        let w = f64::from_bits(self.weight.load(Relaxed)) * (unit().ln() / self.size as f64).exp();
        self.weight.store(w.to_bits(), Relaxed);
        self.next
            .store(i.saturating_add(1).saturating_add(gap(w)), Relaxed);
        Some((epoch, rand::random_range(0..self.size)))
    }

    pub(crate) fn store(&self, p: PendingSample, e: &Ended<'_>, caller: Option<&str>) {
        // Statuses the http crate allows but HTTP does not (600 to 999)
        // would make the collector refuse the whole batch: not sampled.
        if !(100..=599).contains(&e.status) {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // A request that started in an earlier interval has no slot now: it
        // draws again in this one (the epoch cannot move while the lock is
        // held, since `take` moves it under the lock).
        let slot = if self.epoch.load(Relaxed) == p.epoch {
            p.slot
        } else {
            match self.reserve() {
                Some((_, slot)) => slot,
                None => return,
            }
        };
        if let Some(slot) = slots.get_mut(slot) {
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
        self.restart_skips();
        let mut out: Vec<_> = slots.iter_mut().filter_map(Option::take).collect();
        out.sort_by_key(|s| s.timestamp_unix_ms);
        out
    }
}

/// Algorithm L's skip: requests passed over before the next one kept,
/// for weight `w` (saturating: a vanishing weight keeps nothing more).
fn gap(w: f64) -> u64 {
    let skip = (unit().ln() / (1.0 - w).ln()).floor();
    if skip.is_finite() && skip >= 0.0 {
        skip as u64
    } else {
        u64::MAX / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(ms: f64) -> Ended<'static> {
        Ended {
            method: "GET",
            route: "/slow",
            status: 200,
            error: false,
            elapsed_secs: ms / 1000.0,
            timed: true,
        }
    }

    fn pending(s: &Sampler, path: &str) -> PendingSample {
        let (epoch, slot) = s.reserve().expect("room in the reservoir");
        PendingSample {
            epoch,
            slot,
            timestamp_unix_ms: 1,
            path: path.into(),
            trace_id: None,
        }
    }

    #[test]
    fn a_request_running_across_intervals_is_sampled_where_it_ends() {
        let s = Sampler::new(4);
        let slow = pending(&s, "/slow");
        let quick = pending(&s, "/quick");
        s.store(quick, &ended(1.0), None);
        let first = s.take();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].path, "/quick");
        // Ends in the next interval, which has room: it is kept there.
        s.store(slow, &ended(12_000.0), None);
        let second = s.take();
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!(second[0].path, "/slow");
        assert_eq!(second[0].duration_ms, 12_000.0);
    }

    #[test]
    fn a_late_request_draws_like_any_request_of_its_interval() {
        // One slot, taken by the interval's own first request; the late
        // request is the interval's second, so algorithm R keeps it with
        // probability 1/2, never always and never not at all.
        let mut late_kept = 0;
        for _ in 0..2000 {
            let s = Sampler::new(1);
            let slow = pending(&s, "/slow");
            let _ = s.take();
            let own = pending(&s, "/own");
            s.store(own, &ended(1.0), None);
            s.store(slow, &ended(12_000.0), None);
            let kept = s.take();
            assert_eq!(kept.len(), 1, "one slot: {kept:?}");
            late_kept += usize::from(kept[0].path == "/slow");
        }
        assert!((800..=1200).contains(&late_kept), "{late_kept} of 2000");
    }

    #[test]
    fn every_request_of_an_interval_has_the_same_chance() {
        // Reservoir of 4 over 40 requests: each is kept with probability
        // 1/10; over 4000 intervals each index is kept about 400 times.
        let s = Sampler::new(4);
        let mut kept = [0u32; 40];
        for _ in 0..4000 {
            let mut slots: [Option<usize>; 4] = [None; 4];
            for i in 0..40 {
                if let Some((_, slot)) = s.reserve() {
                    slots[slot] = Some(i);
                }
            }
            for i in slots.into_iter().flatten() {
                kept[i] += 1;
            }
            let _ = s.take();
        }
        for (i, &k) in kept.iter().enumerate() {
            assert!(
                (300..=500).contains(&k),
                "request {i} kept {k} times of 4000"
            );
        }
    }
}
