//! The sample of recent requests, bounded per interval: requests with a
//! trace id are kept by their trace id, the others by a reservoir
//! (algorithm R).
//!
//! **Traced requests** (a valid W3C `traceparent`) are kept or dropped by
//! a deterministic function of the trace id, so every service of a
//! journey makes the same decision: each trace id has a priority,
//! [`trace_priority`] (a fixed 64-bit hash of its 32 hex digits), and the
//! interval keeps the `size` traced requests of lowest priority (bottom-k
//! sampling). Two services seeing the same trace ids keep exactly the same
//! ones; a busier service keeps a prefix of what a quieter one keeps, so
//! the journeys of the lowest priorities are whole everywhere.
//!
//! **Untraced requests** share a reservoir of the same size, and fill only
//! the places the traced ones leave: an interval sends at most `size`
//! samples. The reservoir is filled by Li's algorithm L, which draws how
//! many requests to skip until the next one it keeps instead of drawing
//! for every request (as algorithm R does): every request of an interval
//! has the same chance, size / n, and each costs one atomic add and one
//! comparison; only the kept ones draw random numbers.
//!
//! The decision is taken when a request starts (one atomic load for a
//! traced request; one atomic add and a comparison for another), so only
//! sampled requests copy their path and trace id, and only they take a
//! mutex when they end. A request still running
//! when its interval closes (a slow one, most likely) competes again, as a
//! request of the interval it ends in, where its aggregates are counted
//! too; without that, `/recent` would miss the slow requests people look
//! for there.

use super::ended::{Ended, duration_ms};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// The sampling priority of a trace id: FNV-1a (64-bit) of its bytes,
/// then the SplitMix64 finalizer so every bit is mixed. Lower is kept
/// first. Fixed here and documented, so any client (in any language)
/// can make the same decision for the same trace.
pub fn trace_priority(trace_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trace_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A request the sampler picked, as known when it started.
#[derive(Debug)]
pub(crate) struct PendingSample {
    pub(crate) epoch: u64,
    /// Its place in the reservoir (untraced requests).
    pub(crate) slot: usize,
    /// Its trace's priority (traced requests: kept by it, not a slot).
    pub(crate) priority: Option<u64>,
    pub(crate) timestamp_unix_ms: u64,
    pub(crate) path: String,
    pub(crate) trace_id: Option<String>,
}

/// A kept traced request, ordered by its trace's priority (then by
/// arrival, so equal priorities are ordered too).
struct Traced {
    priority: u64,
    seq: u64,
    sample: vitals::wire::RequestSample,
}

impl PartialEq for Traced {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}
impl Eq for Traced {}
impl PartialOrd for Traced {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Traced {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

/// The sampled requests of the current interval.
pub(crate) struct Sampler {
    size: usize,
    seen: AtomicU64,
    epoch: AtomicU64,
    /// Algorithm L's state: the index of the next untraced request to keep
    /// once the reservoir is full, and its running weight `W` (as `f64`
    /// bits). Only the request whose index is `next` moves them.
    next: AtomicU64,
    weight: AtomicU64,
    slots: Mutex<Vec<Option<vitals::wire::RequestSample>>>,
    /// The kept traced requests, the highest priority on top.
    traced: Mutex<BinaryHeap<Traced>>,
    /// The highest priority kept once `traced` is full (`u64::MAX`
    /// before): a traced request above it is dropped when it starts.
    cutoff: AtomicU64,
    seq: AtomicU64,
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
            traced: Mutex::new(BinaryHeap::with_capacity(size)),
            cutoff: AtomicU64::new(u64::MAX),
            seq: AtomicU64::new(0),
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

    /// Whether a request of a trace with `priority` may be kept (the
    /// final word is at [`Sampler::store`]); its epoch if so.
    #[inline]
    pub(crate) fn reserve_traced(&self, priority: u64) -> Option<u64> {
        if self.size == 0 || priority > self.cutoff.load(Relaxed) {
            return None;
        }
        Some(self.epoch.load(Relaxed))
    }

    /// Whether the untraced request starting now is kept, and in which
    /// slot: the i-th of the interval is, with probability size / (i + 1).
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
        if let Some(priority) = p.priority {
            return self.store_traced(priority, p, e, caller);
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
            *slot = Some(sample_of(p, e, caller));
        }
    }

    /// Keeps a traced request if its priority is among the `size` lowest
    /// of the interval it ends in (whichever it started in: the heap is
    /// the current interval's, since `take` empties it under this lock).
    fn store_traced(&self, priority: u64, p: PendingSample, e: &Ended<'_>, caller: Option<&str>) {
        let mut heap = self.traced.lock().unwrap_or_else(PoisonError::into_inner);
        if heap.len() >= self.size {
            match heap.peek() {
                Some(top) if top.priority > priority => {
                    heap.pop();
                }
                _ => return,
            }
        }
        heap.push(Traced {
            priority,
            seq: self.seq.fetch_add(1, Relaxed),
            sample: sample_of(p, e, caller),
        });
        if heap.len() >= self.size {
            let top = heap.peek().map_or(u64::MAX, |t| t.priority);
            self.cutoff.store(top, Relaxed);
        }
    }

    /// The interval's samples, oldest first, and a fresh start: every kept
    /// traced request, then untraced ones in the places left (at most
    /// `size` in all).
    pub(crate) fn take(&self) -> Vec<vitals::wire::RequestSample> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut heap = self.traced.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Relaxed);
        self.seen.store(0, Relaxed);
        self.restart_skips();
        self.cutoff.store(u64::MAX, Relaxed);
        let mut out: Vec<_> = std::mem::take(&mut *heap)
            .into_vec()
            .into_iter()
            .map(|t| t.sample)
            .collect();
        let room = self.size.saturating_sub(out.len());
        let untraced: Vec<_> = slots.iter_mut().filter_map(Option::take).collect();
        out.extend(untraced.into_iter().take(room));
        out.sort_by_key(|s| s.timestamp_unix_ms);
        out
    }
}

/// A uniform draw in (0, 1] (so its logarithm is finite).
fn unit() -> f64 {
    1.0 - rand::random::<f64>()
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

/// The wire sample of a picked request that ended as `e`.
fn sample_of(p: PendingSample, e: &Ended<'_>, caller: Option<&str>) -> vitals::wire::RequestSample {
    vitals::wire::RequestSample {
        timestamp_unix_ms: p.timestamp_unix_ms,
        method: e.method.to_owned(),
        path: p.path,
        route: e.route.to_owned(),
        status: e.status,
        duration_ms: duration_ms(e.elapsed_secs),
        caller: caller.map(str::to_owned),
        trace_id: p.trace_id,
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
            priority: None,
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

    /// A trace id like the ones `traceparent` carries.
    fn trace(i: u64) -> String {
        format!("{:032x}", (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Runs `traces` (in order) through a sampler of `size`: the trace
    /// ids it keeps, sorted.
    fn kept(size: usize, traces: &[String], untraced: usize) -> Vec<String> {
        let s = Sampler::new(size);
        let mut pending = Vec::new();
        for t in traces {
            let priority = trace_priority(t);
            if let Some(epoch) = s.reserve_traced(priority) {
                pending.push(PendingSample {
                    epoch,
                    slot: 0,
                    priority: Some(priority),
                    timestamp_unix_ms: 1,
                    path: "/t".into(),
                    trace_id: Some(t.clone()),
                });
            }
        }
        for _ in 0..untraced {
            if let Some(p) = s.reserve().map(|(epoch, slot)| PendingSample {
                epoch,
                slot,
                priority: None,
                timestamp_unix_ms: 1,
                path: "/u".into(),
                trace_id: None,
            }) {
                s.store(p, &ended(1.0), None);
            }
        }
        for p in pending {
            s.store(p, &ended(1.0), None);
        }
        let out = s.take();
        assert!(out.len() <= size, "bounded: {}", out.len());
        let mut ids: Vec<String> = out.into_iter().filter_map(|r| r.trace_id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn services_with_the_same_traces_keep_the_same_ones() {
        let traces: Vec<String> = (0..500).map(trace).collect();
        // Another service sees the same traces in another order, with
        // other untraced traffic: the same traces are kept.
        let mut shuffled = traces.clone();
        shuffled.reverse();
        shuffled.rotate_left(77);
        let a = kept(20, &traces, 0);
        let b = kept(20, &shuffled, 300);
        assert_eq!(a.len(), 20);
        assert_eq!(a, b);
        // They are the 20 of lowest priority.
        let mut by_priority = traces.clone();
        by_priority.sort_by_key(|t| trace_priority(t));
        let mut want: Vec<String> = by_priority[..20].to_vec();
        want.sort();
        assert_eq!(a, want);
        // A quieter service (every other trace) keeps every journey the
        // busier one keeps that passes through it.
        let quiet: Vec<String> = traces.iter().step_by(2).cloned().collect();
        let q = kept(20, &quiet, 0);
        for t in a.iter().filter(|t| quiet.contains(t)) {
            assert!(
                q.contains(t),
                "{t} kept by the busy service, not the quiet one"
            );
        }
    }

    #[test]
    fn untraced_requests_fill_the_places_traced_ones_leave() {
        let s = Sampler::new(4);
        let traced: Vec<String> = (0..2).map(trace).collect();
        for t in &traced {
            let priority = trace_priority(t);
            let epoch = s.reserve_traced(priority).expect("room");
            let p = PendingSample {
                epoch,
                slot: 0,
                priority: Some(priority),
                timestamp_unix_ms: 1,
                path: "/t".into(),
                trace_id: Some(t.clone()),
            };
            s.store(p, &ended(1.0), None);
        }
        for i in 0..10 {
            let p = pending_or_none(&s, &format!("/u{i}"));
            if let Some(p) = p {
                s.store(p, &ended(1.0), None);
            }
        }
        let out = s.take();
        assert_eq!(out.len(), 4);
        assert_eq!(out.iter().filter(|r| r.trace_id.is_some()).count(), 2);
        assert_eq!(s.take().len(), 0, "a fresh start");
        // The priority is fixed: other clients can compute it.
        assert_eq!(
            trace_priority("4bf92f3577b34da6a3ce929d0e0e4736"),
            trace_priority(&String::from("4bf92f3577b34da6a3ce929d0e0e4736"))
        );
        assert_ne!(trace_priority(&trace(1)), trace_priority(&trace(2)));
    }

    fn pending_or_none(s: &Sampler, path: &str) -> Option<PendingSample> {
        s.reserve().map(|(epoch, slot)| PendingSample {
            epoch,
            slot,
            priority: None,
            timestamp_unix_ms: 1,
            path: path.into(),
            trace_id: None,
        })
    }

    #[test]
    fn every_untraced_request_of_an_interval_has_the_same_chance() {
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
