//! [`SlotWriter`]: this worker's side of its slot. It hands each new
//! series its cells (taking over the cells a previous holder of the slot
//! left for the same series), appends the series' record for readers,
//! and allocates histogram chunks. Only the slot's worker writes the
//! slot, so a process-local mutex is all the arena needs.

use super::layout::{self, ARENA, FLOAT_GAUGE, GAUGE, HEADER, LIVE, MAX_RECORDS, Record, field};
use super::region::SharedRegion;
use crate::limits::Limits;
use crate::metrics::histogram::{CHUNK_COUNT, Chunk, ChunkArena};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, PoisonError};

/// A series' identity in a slot: family name, label values, overflow.
type Key = (Box<str>, Box<[Box<str>]>, bool);

struct WriterState {
    /// Arena bytes used, from the file's start.
    used: usize,
    entries: u32,
    /// Series a previous holder of the slot created, by identity.
    adopted: HashMap<Key, Record>,
}

/// This worker's writer of its slot.
pub(crate) struct SlotWriter {
    /// Keeps every mapping alive while a handle points into one.
    pub(crate) region: SharedRegion,
    pub(crate) slot: usize,
    base: *mut u8,
    len: usize,
    state: Mutex<WriterState>,
    limits: Arc<Limits>,
}

// SAFETY: `base` points into a mapping `region` keeps alive; writes go
// through atomics or happen under `state`'s lock into arena bytes no
// reader looks at before they are published.
unsafe impl Send for SlotWriter {}
// SAFETY: as above.
unsafe impl Sync for SlotWriter {}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Reads the published records of the slot at `base` from `from` on,
/// with their index.
pub(crate) fn read_records(
    base: *mut u8,
    len: usize,
    from: u32,
    mut each: impl FnMut(u32, Record),
) -> u32 {
    // SAFETY: header and index fields of a live mapping of `len` bytes.
    let entries = unsafe { layout::u32_cell(base, field::ENTRIES) }
        .load(Acquire)
        .min(MAX_RECORDS as u32);
    for i in from..entries {
        // SAFETY: as above; the index entry was published before `entries`.
        let off = unsafe { layout::u32_cell(base, HEADER + i as usize * 4) }.load(Acquire) as usize;
        if off < ARENA || off >= len {
            continue;
        }
        // SAFETY: a published record is immutable; it lies in the mapping.
        let bytes = unsafe { std::slice::from_raw_parts(base.add(off), len - off) };
        if let Some(r) = Record::decode(bytes) {
            each(i, r);
        }
    }
    entries
}

impl SlotWriter {
    /// Attaches this process to `slot`: takes over what a previous holder
    /// left, zeroes its gauges, and marks the slot live.
    pub(crate) fn attach(
        region: &SharedRegion,
        slot: usize,
        limits: Arc<Limits>,
    ) -> std::io::Result<Arc<SlotWriter>> {
        let base = region
            .base(slot)
            .ok_or_else(|| std::io::Error::other(format!("no slot {slot} in the region")))?;
        let len = region.slot_bytes();
        let mut adopted = HashMap::new();
        let entries = read_records(base, len, 0, |_, r| {
            if r.kind == GAUGE || r.kind == FLOAT_GAUGE {
                // A dead worker's gauges go with it.
                // SAFETY: the record's cell lies in the mapping (checked).
                if (r.cells_off as usize) + 8 <= len {
                    unsafe { layout::u64_cell(base, r.cells_off as usize) }.store(0, Relaxed);
                }
            }
            adopted.insert((r.name.clone(), r.values.clone(), r.overflow), r);
        });
        // SAFETY: header fields of a live mapping.
        let used = unsafe { layout::u64_cell(base, field::USED) }.load(Acquire) as usize;
        let writer = SlotWriter {
            region: region.clone(),
            slot,
            base,
            len,
            state: Mutex::new(WriterState {
                used: used.max(ARENA),
                entries,
                adopted,
            }),
            limits,
        };
        // SAFETY: header fields of a live mapping.
        unsafe {
            layout::u32_cell(base, field::PID).store(std::process::id(), Release);
            layout::u64_cell(base, field::STARTED).store(now_ns(), Release);
            layout::u64_cell(base, field::ATTACHES).fetch_add(1, AcqRel);
            layout::u32_cell(base, field::STATE).store(LIVE, Release);
        }
        Ok(Arc::new(writer))
    }

    /// The cells of a series (`cells` of 8 bytes, 64-aligned), taken over
    /// from a previous holder or newly allocated with its record
    /// published. `None` when the slot is full (counted as
    /// `vitals_rejected_total{reason="shared_region_full"}`): the series
    /// then lives on this process's heap, unseen by other workers.
    pub(crate) fn series(
        &self,
        kind: u8,
        mode: u8,
        name: &str,
        values: &[&str],
        overflow: bool,
        cells: usize,
    ) -> Option<NonNull<AtomicU64>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key: Key = (
            name.into(),
            values.iter().map(|&v| Box::from(v)).collect(),
            overflow,
        );
        if let Some(r) = st.adopted.get(&key) {
            if r.kind == kind && r.cells as usize == cells {
                return Some(self.cell_ptr(r.cells_off as usize));
            }
        }
        let record = Record {
            kind,
            overflow,
            mode,
            cells_off: 0,
            cells: cells as u32,
            name: key.0.clone(),
            values: key.1.clone(),
        };
        let record_len = record.encode().len();
        let fits = (st.entries as usize) < MAX_RECORDS
            && st.used.next_multiple_of(64) + cells * 8 + record_len + 64 <= self.len
            && values.iter().all(|v| v.len() <= u16::MAX as usize)
            && name.len() <= u16::MAX as usize
            && values.len() <= u8::MAX as usize;
        if !fits {
            drop(st);
            self.limits.count_custom("shared_region_full");
            return None;
        }
        let cells_off = st.used.next_multiple_of(64);
        let record_off = cells_off + (cells * 8).next_multiple_of(8);
        let record = Record {
            cells_off: cells_off as u32,
            ..record
        };
        let bytes = record.encode();
        // SAFETY: the record's bytes lie in the arena past `used`, which no
        // one reads before the index entry below is published.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(record_off), bytes.len());
        }
        st.used = record_off + bytes.len();
        let i = st.entries as usize;
        // SAFETY: header and index fields of the mapping.
        unsafe {
            layout::u64_cell(self.base, field::USED).store(st.used as u64, Release);
            layout::u32_cell(self.base, HEADER + i * 4).store(record_off as u32, Release);
            layout::u32_cell(self.base, field::ENTRIES).store(i as u32 + 1, Release);
        }
        st.entries += 1;
        st.adopted.insert(key, record);
        Some(self.cell_ptr(cells_off))
    }

    fn cell_ptr(&self, off: usize) -> NonNull<AtomicU64> {
        // SAFETY: `off` is inside the mapping (checked when allocated or
        // when the record was read); `base` is non-null.
        unsafe { NonNull::new_unchecked(self.base.add(off).cast::<AtomicU64>()) }
    }

    /// The start of the slot's mapping.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }
}

impl ChunkArena for SlotWriter {
    fn alloc_chunk(&self, offset: &AtomicU64) -> Option<NonNull<Chunk>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let existing = offset.load(Acquire) as usize;
        if existing != 0 {
            // SAFETY: published by this slot's arena, inside the mapping.
            return Some(unsafe { NonNull::new_unchecked(self.base.add(existing).cast()) });
        }
        let off = st.used.next_multiple_of(64);
        let size = std::mem::size_of::<Chunk>();
        if off + size > self.len {
            drop(st);
            self.limits.count_custom("shared_region_full");
            return None;
        }
        st.used = off + size;
        // SAFETY: header field; the chunk's bytes are zero (a fresh file)
        // or were never handed out (a previous holder's `used` is kept).
        unsafe { layout::u64_cell(self.base, field::USED) }.store(st.used as u64, Release);
        offset.store(off as u64, Release);
        let _ = CHUNK_COUNT;
        // SAFETY: inside the mapping, 64-aligned.
        Some(unsafe { NonNull::new_unchecked(self.base.add(off).cast()) })
    }
}
