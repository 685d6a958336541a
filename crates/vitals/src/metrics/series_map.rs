//! An append-only map from label values to series, with lock-free lookups.
//!
//! Series are never removed while a family lives, so a lookup needs no lock
//! and no epoch: it loads the current table, probes it, and compares label
//! values. Inserts take a mutex, publish each entry with a release store and
//! grow the table by publishing a copy; superseded tables are kept until the
//! map is dropped, so a reader still probing one stays valid. The family's
//! cardinality limit bounds the number of entries, and the retired tables
//! together are smaller than the live one, so memory stays bounded.

use foldhash::fast::FixedState;
use std::hash::{BuildHasher, Hasher};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) struct Entry<M> {
    hash: u64,
    pub(crate) values: Box<[Box<str>]>,
    pub(crate) metric: M,
}

struct Table<M> {
    slots: Box<[AtomicPtr<Entry<M>>]>,
    mask: usize,
}

impl<M> Table<M> {
    fn with_capacity(slots: usize) -> Self {
        Table {
            slots: (0..slots)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            mask: slots - 1,
        }
    }
}

struct Owned<M> {
    /// Every entry, in insertion order (the order series are rendered in).
    entries: Vec<Box<Entry<M>>>,
    /// Tables replaced by a larger one; kept for readers still probing them.
    /// Boxed because readers hold pointers to the `Table` itself.
    #[allow(clippy::vec_box)]
    retired: Vec<Box<Table<M>>>,
    current: Box<Table<M>>,
}

pub(crate) struct SeriesMap<M> {
    table: AtomicPtr<Table<M>>,
    len: AtomicUsize,
    /// Seeded per map from a random source, so hostile label values cannot
    /// be chosen to collide across processes.
    hasher: FixedState,
    owned: Mutex<Owned<M>>,
}

// SAFETY: entries are shared as `&M` across threads and moved in only under
// the mutex; that is sound when `M` is `Send + Sync`.
unsafe impl<M: Send + Sync> Sync for SeriesMap<M> {}
// SAFETY: as above; the raw pointers only point into boxes the map owns.
unsafe impl<M: Send + Sync> Send for SeriesMap<M> {}

/// Hashes label values. The bytes of each value are hashed without a
/// terminator (the costly part for short values); for several values their
/// lengths are mixed in once at the end, so `["ab", "c"]` and `["a", "bc"]`
/// still hash apart. Equality is always checked value by value.
#[inline]
fn hash_values<S: AsRef<str>>(hasher: &FixedState, values: &[S]) -> u64 {
    let mut h = hasher.build_hasher();
    let mut lengths = 0u64;
    for v in values {
        let v = v.as_ref();
        h.write(v.as_bytes());
        lengths = lengths.wrapping_mul(0x0100_0000_01b3) ^ v.len() as u64;
    }
    if values.len() > 1 {
        h.write_u64(lengths);
    }
    h.finish()
}

/// A per-map seed from the standard library's randomly keyed hasher.
fn random_seed() -> u64 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}

fn same_values<S: AsRef<str>>(stored: &[Box<str>], wanted: &[S]) -> bool {
    stored.len() == wanted.len() && stored.iter().zip(wanted).all(|(a, b)| **a == *b.as_ref())
}

impl<M> SeriesMap<M> {
    pub(crate) fn new() -> Self {
        let mut current = Box::new(Table::with_capacity(8));
        let table: *mut Table<M> = &mut *current;
        SeriesMap {
            table: AtomicPtr::new(table),
            len: AtomicUsize::new(0),
            hasher: FixedState::with_seed(random_seed()),
            owned: Mutex::new(Owned {
                entries: Vec::new(),
                retired: Vec::new(),
                current,
            }),
        }
    }

    /// Number of series.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Finds the series with exactly these label values.
    #[inline]
    pub(crate) fn get<S: AsRef<str>>(&self, values: &[S]) -> Option<&M> {
        let hash = hash_values(&self.hasher, values);
        self.find(hash, values)
    }

    #[inline]
    fn find<S: AsRef<str>>(&self, hash: u64, values: &[S]) -> Option<&M> {
        // SAFETY: `table` always points at a live table owned by `owned`
        // (current or retired); tables are freed only when `self` drops.
        let table = unsafe { &*self.table.load(Acquire) };
        let mut i = hash as usize & table.mask;
        loop {
            let p = table.slots[i].load(Acquire);
            // SAFETY: a non-null slot points at an entry boxed in `owned`,
            // published with Release after it was fully written.
            let entry = unsafe { p.as_ref() }?;
            if entry.hash == hash && same_values(&entry.values, values) {
                return Some(&entry.metric);
            }
            i = (i + 1) & table.mask;
        }
    }

    /// Finds or inserts the series for `values`. `make` is called only when
    /// inserting; `allow` is asked (under the insert lock) whether one more
    /// series may be added. Returns `None` when it refuses.
    pub(crate) fn get_or_insert<S: AsRef<str>>(
        &self,
        values: &[S],
        allow: impl FnOnce(usize) -> bool,
        make: impl FnOnce() -> M,
    ) -> Option<&M> {
        let hash = hash_values(&self.hasher, values);
        if let Some(m) = self.find(hash, values) {
            return Some(m);
        }
        let mut owned = self.lock();
        if let Some(m) = self.find(hash, values) {
            return Some(m);
        }
        if !allow(owned.entries.len()) {
            return None;
        }
        let mut entry = Box::new(Entry {
            hash,
            values: values.iter().map(|v| Box::from(v.as_ref())).collect(),
            metric: make(),
        });
        let raw: *mut Entry<M> = &mut *entry;
        owned.entries.push(entry);
        if owned.entries.len() * 2 > owned.current.slots.len() {
            // Grow: build a bigger table holding every entry, then publish.
            let bigger = Box::new(Table::with_capacity(owned.current.slots.len() * 2));
            for e in &owned.entries {
                let p: *const Entry<M> = &**e;
                insert_slot(&bigger, e.hash, p.cast_mut());
            }
            let old = std::mem::replace(&mut owned.current, bigger);
            let new_ptr: *const Table<M> = &*owned.current;
            self.table.store(new_ptr.cast_mut(), Release);
            owned.retired.push(old);
        } else {
            insert_slot(&owned.current, hash, raw);
        }
        self.len.store(owned.entries.len(), Relaxed);
        // SAFETY: `raw` points into a box now owned by `owned.entries`,
        // which lives (and never moves its boxes' contents) as long as self.
        Some(unsafe { &(*raw).metric })
    }

    fn lock(&self) -> MutexGuard<'_, Owned<M>> {
        self.owned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `f` for every series in insertion order. Inserts wait meanwhile.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[Box<str>], &M)) {
        let owned = self.lock();
        for e in &owned.entries {
            f(&e.values, &e.metric);
        }
    }
}

fn insert_slot<M>(table: &Table<M>, hash: u64, entry: *mut Entry<M>) {
    let mut i = hash as usize & table.mask;
    loop {
        let slot = &table.slots[i];
        if slot.load(Relaxed).is_null() {
            // Release: a reader that sees the pointer sees the whole entry.
            slot.store(entry, Release);
            return;
        }
        i = (i + 1) & table.mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn concatenations_do_not_collide() {
        let map = SeriesMap::new();
        map.get_or_insert(&["ab", "c"], |_| true, || 1);
        map.get_or_insert(&["a", "bc"], |_| true, || 2);
        assert_eq!(map.get(&["ab", "c"]), Some(&1));
        assert_eq!(map.get(&["a", "bc"]), Some(&2));
        assert_eq!(map.get(&["abc", ""]), None);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn concurrent_inserts_and_lookups_agree() {
        let map = SeriesMap::<usize>::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let map = &map;
                s.spawn(move || {
                    for i in 0..2000 {
                        let key = [format!("k{}", (i * 7 + t) % 1500)];
                        let n: usize = key[0][1..].parse().unwrap_or(0);
                        let got = map.get_or_insert(&key, |_| true, || n);
                        assert_eq!(got, Some(&n));
                    }
                });
            }
        });
        assert_eq!(map.len(), 1500);
        let mut seen = 0;
        map.for_each(|values, &m| {
            assert_eq!(values[0][1..].parse::<usize>().ok(), Some(m));
            seen += 1;
        });
        assert_eq!(seen, 1500);
    }

    proptest! {
        #[test]
        fn behaves_like_a_hashmap(keys in prop::collection::vec(prop::collection::vec(".{0,3}", 0..3), 0..300)) {
            let map = SeriesMap::new();
            let mut model = std::collections::HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                let next = model.len();
                let want = *model.entry(k.clone()).or_insert(next);
                let got = *map.get_or_insert(k, |_| true, || next).unwrap_or(&usize::MAX);
                prop_assert_eq!(got, want, "key #{} {:?}", i, k);
            }
            for (k, v) in &model {
                prop_assert_eq!(map.get(k), Some(v));
            }
            prop_assert_eq!(map.len(), model.len());
        }
    }
}
