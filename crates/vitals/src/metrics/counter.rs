//! `Counter`: a monotonic `u64`.

use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// A monotonically increasing count.
///
/// A `Counter` is a handle: cloning it is cheap and every clone updates the
/// same value. Incrementing is one relaxed atomic add, no lock and no lookup.
/// For a series many threads hit at once, use a
/// [`ShardedCounter`](crate::ShardedCounter) instead. For the very hottest
/// loops, take a [`LocalCounter`](crate::LocalCounter) with [`Counter::local`].
///
/// ```
/// let requests = vitals::Counter::new();
/// requests.inc();
/// requests.add(2);
/// assert_eq!(requests.get(), 3);
/// ```
#[derive(Clone)]
pub struct Counter {
    pub(crate) core: Arc<CounterCore>,
    /// Where the total lives: `core.value`, or a cell of a shared region
    /// (feature `shared`). Read straight from the handle, so recording
    /// costs what it costs without the feature: one load, one atomic add.
    #[cfg(feature = "shared")]
    cell: std::ptr::NonNull<AtomicU64>,
}

// SAFETY: `cell` points at `core.value` or at a shared cell the core's
// owner keeps mapped; both are atomics, used only through `&`.
#[cfg(feature = "shared")]
unsafe impl Send for Counter {}
// SAFETY: as above.
#[cfg(feature = "shared")]
unsafe impl Sync for Counter {}

impl Default for Counter {
    fn default() -> Self {
        let core = Arc::new(CounterCore::default());
        Counter {
            #[cfg(feature = "shared")]
            cell: std::ptr::NonNull::from(&core.value),
            core,
        }
    }
}

/// Aligned to a cache line so the hot `value` never shares one with the
/// `Arc` reference counts, which clones and drops of the handle on other
/// threads write (measured: 2× slower contended increments without it).
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct CounterCore {
    value: AtomicU64,
    /// Published running totals of live `LocalCounter`s. Guarded by a mutex
    /// because it changes only when a local handle starts or ends; reads
    /// take it so a handle folding its total in is never counted twice.
    locals: Mutex<Vec<Arc<AtomicU64>>>,
    local_count: AtomicUsize,
    /// Keeps a shared region mapped while a handle points into it.
    #[cfg(feature = "shared")]
    _owner: Option<Arc<dyn super::cell::Owner>>,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("value", &self.get())
            .finish()
    }
}

impl Counter {
    /// A counter at zero, not registered anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter whose total is the shared cell at `cell`.
    ///
    /// # Safety
    /// `cell` must stay valid (and be used only atomically) while `owner`
    /// lives.
    #[cfg(feature = "shared")]
    pub(crate) unsafe fn in_shared(
        cell: std::ptr::NonNull<AtomicU64>,
        owner: Arc<dyn super::cell::Owner>,
    ) -> Self {
        let core = CounterCore {
            _owner: Some(owner),
            ..CounterCore::default()
        };
        Counter {
            core: Arc::new(core),
            cell,
        }
    }

    /// The atomic holding the total.
    #[inline]
    fn value(&self) -> &AtomicU64 {
        #[cfg(feature = "shared")]
        // SAFETY: see the field: valid while `core` (and its owner) lives.
        return unsafe { self.cell.as_ref() };
        #[cfg(not(feature = "shared"))]
        &self.core.value
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        // Relaxed: a counter orders nothing, readers only need the total.
        self.value().fetch_add(n, Relaxed);
    }

    /// The current total, including what live local handles have published.
    pub fn get(&self) -> u64 {
        let core = &*self.core;
        if core.local_count.load(Relaxed) == 0 {
            return self.value().load(Relaxed);
        }
        let locals = core.locals.lock().unwrap_or_else(PoisonError::into_inner);
        let published = locals
            .iter()
            .fold(0u64, |acc, l| acc.wrapping_add(l.load(Relaxed)));
        self.value().load(Relaxed).wrapping_add(published)
    }

    /// A handle for one thread's hottest loop: increments are a plain load
    /// and store on a slot only this handle writes, no atomic read-modify-write.
    ///
    /// Consistency: every increment is published as it happens, so a
    /// snapshot or scrape sees all of them (with relaxed ordering: a scrape
    /// racing an increment may see the total just before it). On drop the
    /// handle folds its total into the counter under the same lock readers
    /// take, so nothing is lost or counted twice.
    pub fn local(&self) -> LocalCounter {
        let slot = Arc::new(AtomicU64::new(0));
        let mut locals = self
            .core
            .locals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locals.push(slot.clone());
        self.core.local_count.store(locals.len(), Relaxed);
        drop(locals);
        LocalCounter {
            counter: self.clone(),
            slot,
            _not_sync: PhantomData,
        }
    }
}

/// A single-thread batch handle on a [`Counter`], from [`Counter::local`].
///
/// `inc` is a plain load, add and store on a slot only this handle writes
/// (a fraction of a nanosecond), against a locked read-modify-write for an
/// atomic add. It is `Send` but not
/// `Sync`: one thread owns it. Dropping it (or calling [`flush`](Self::flush))
/// folds its total into the counter.
pub struct LocalCounter {
    counter: Counter,
    /// This handle's running total. Only the owning thread writes it (so a
    /// load and a store suffice); readers load it under the counter's lock.
    slot: Arc<AtomicU64>,
    /// One writer per slot: the handle must not be shared between threads.
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for LocalCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCounter")
            .field("pending", &self.pending())
            .finish()
    }
}

impl LocalCounter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        // A plain load and store, no locked read-modify-write: this handle
        // is the slot's only writer. Readers sum the slots.
        let slot = &*self.slot;
        slot.store(slot.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Moves the accumulated total into the shared counter now.
    pub fn flush(&self) {
        let core = &*self.counter.core;
        let _locals = core.locals.lock().unwrap_or_else(PoisonError::into_inner);
        self.counter
            .value()
            .fetch_add(self.slot.load(Relaxed), Relaxed);
        self.slot.store(0, Relaxed);
    }

    /// Increments since the last flush.
    pub fn pending(&self) -> u64 {
        self.slot.load(Relaxed)
    }
}

impl Drop for LocalCounter {
    fn drop(&mut self) {
        let core = &*self.counter.core;
        let mut locals = core.locals.lock().unwrap_or_else(PoisonError::into_inner);
        self.counter
            .value()
            .fetch_add(self.slot.load(Relaxed), Relaxed);
        locals.retain(|l| !Arc::ptr_eq(l, &self.slot));
        core.local_count.store(locals.len(), Relaxed);
    }
}

/// A counter for a series that several threads update at the same time.
///
/// Each thread adds to its own cache line, so increments from different
/// threads never contend; reading sums the lines. It costs 64 bytes per
/// shard (a power of two at least the number of CPUs, at most 64) and a
/// thread-local read per increment, so use it only where contention shows.
///
/// ```
/// let hits = vitals::ShardedCounter::new();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         let hits = hits.clone();
///         s.spawn(move || for _ in 0..1000 { hits.inc() });
///     }
/// });
/// assert_eq!(hits.get(), 4000);
/// ```
#[derive(Clone)]
pub struct ShardedCounter {
    pub(crate) shards: super::cell::Cell<[CachePadded<AtomicU64>]>,
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedCounter")
            .field("value", &self.get())
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl ShardedCounter {
    /// A sharded counter at zero, not registered anywhere.
    pub fn new() -> Self {
        ShardedCounter {
            shards: super::cell::Cell::from_vec(
                (0..shard_count())
                    .map(|_| CachePadded::new(AtomicU64::new(0)))
                    .collect(),
            ),
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n` to this thread's shard.
    #[inline]
    pub fn add(&self, n: u64) {
        // The shard count is a power of two, so masking picks a valid shard.
        self.shards[thread_shard() & (self.shards.len() - 1)].fetch_add(n, Relaxed);
    }

    /// The current total.
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |acc, c| acc.wrapping_add(c.load(Relaxed)))
    }
}

/// Number of shards for a sharded counter: a power of two at least the
/// number of CPUs, at most 64.
pub(crate) fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(2, 64)
        .next_power_of_two()
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard number, handed out round-robin on first use so that
/// concurrently running threads land on different cache lines.
#[inline]
fn thread_shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            v
        } else {
            let n = NEXT_SHARD.fetch_add(1, Relaxed);
            s.set(n);
            n
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_increments_sum_exactly() {
        let counter = Counter::new();
        let sharded = ShardedCounter::new();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (c, sh) = (counter.clone(), sharded.clone());
                s.spawn(move || {
                    for _ in 0..100_000 {
                        c.inc();
                        sh.add(2);
                    }
                });
            }
        });
        assert_eq!(counter.get(), 800_000);
        assert_eq!(sharded.get(), 1_600_000);
    }

    #[test]
    fn local_counters_lose_nothing() {
        let counter = Counter::new();
        counter.add(5);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = counter.clone();
                s.spawn(move || {
                    let local = c.local();
                    for i in 0..50_000 {
                        local.inc();
                        if i == 25_000 && t == 0 {
                            local.flush();
                        }
                    }
                });
            }
            // Read while handles are live: never more than the final total.
            for _ in 0..100 {
                assert!(counter.get() <= 200_005);
            }
        });
        assert_eq!(counter.get(), 200_005);
        assert_eq!(counter.core.locals.lock().map(|l| l.len()).unwrap_or(9), 0);
    }

    #[test]
    fn scrape_sees_unflushed_local_increments() {
        let counter = Counter::new();
        let local = counter.local();
        local.add(41);
        local.inc();
        assert_eq!(counter.get(), 42);
        assert_eq!(local.pending(), 42);
        local.flush();
        assert_eq!(counter.get(), 42);
        local.inc();
        drop(local);
        assert_eq!(counter.get(), 43);
    }
}
