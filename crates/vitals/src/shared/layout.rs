//! The bytes of one slot file: a header, an index of records, and an
//! arena holding the records and the cells they point at. Every process
//! maps every slot; only the worker that owns a slot writes it, so the
//! arena needs no cross-process lock. Records are immutable once
//! published (index entry, then `entries`, with release stores); cells
//! are atomics.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// "vitals01" in the first 8 bytes of every slot file.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"vitals01");
/// Bytes before the index.
pub(crate) const HEADER: usize = 4096;
/// Most records (series) one slot holds.
pub(crate) const MAX_RECORDS: usize = 1 << 18;
/// Where the arena starts.
pub(crate) const ARENA: usize = HEADER + MAX_RECORDS * 4;
/// The smallest slot: header, index and 1 MiB of arena.
pub(crate) const MIN_SLOT_BYTES: usize = ARENA + (1 << 20);

/// Byte offsets of the header's fields.
pub(crate) mod field {
    /// `u64`: [`MAGIC`](super::MAGIC).
    pub(crate) const MAGIC: usize = 0;
    /// `AtomicU32`: the slot's state (`EMPTY`, `LIVE`, `DEAD`).
    pub(crate) const STATE: usize = 8;
    /// `AtomicU32`: the process id of the worker holding the slot.
    pub(crate) const PID: usize = 12;
    /// `AtomicU64`: when the holder attached (ns since the Unix epoch),
    /// which orders workers for `GaugeMode::Latest`.
    pub(crate) const STARTED: usize = 16;
    /// `AtomicU32`: records published.
    pub(crate) const ENTRIES: usize = 24;
    /// `AtomicU64`: arena bytes used (from the file's start).
    pub(crate) const USED: usize = 32;
    /// `AtomicU64`: times a worker attached to the slot.
    pub(crate) const ATTACHES: usize = 40;
}

/// Slot states (0: no worker attached yet).
pub(crate) const LIVE: u32 = 1;
pub(crate) const DEAD: u32 = 2;

/// Record kinds.
pub(crate) const COUNTER: u8 = 1;
pub(crate) const SHARDED: u8 = 2;
pub(crate) const GAUGE: u8 = 3;
pub(crate) const FLOAT_GAUGE: u8 = 4;
pub(crate) const HISTOGRAM: u8 = 5;

/// A record's fixed part, before the family name and label values:
/// `u32 len, u8 kind, u8 flags, u8 gauge mode, u8 values, u32 cells_off,
/// u32 cells, u16 name_len`, then the name, then each value as
/// `u16 len` + bytes.
pub(crate) const RECORD_FIXED: usize = 18;
/// Flag: the family's overflow series.
pub(crate) const FLAG_OVERFLOW: u8 = 1;

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) kind: u8,
    pub(crate) overflow: bool,
    pub(crate) mode: u8,
    pub(crate) cells_off: u32,
    pub(crate) cells: u32,
    pub(crate) name: Box<str>,
    pub(crate) values: Box<[Box<str>]>,
}

impl Record {
    /// The encoded bytes, padded to 8.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(self.kind);
        b.push(if self.overflow { FLAG_OVERFLOW } else { 0 });
        b.push(self.mode);
        b.push(self.values.len() as u8);
        b.extend_from_slice(&self.cells_off.to_le_bytes());
        b.extend_from_slice(&self.cells.to_le_bytes());
        b.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        b.extend_from_slice(self.name.as_bytes());
        for v in self.values.iter() {
            b.extend_from_slice(&(v.len() as u16).to_le_bytes());
            b.extend_from_slice(v.as_bytes());
        }
        while b.len() % 8 != 0 {
            b.push(0);
        }
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_le_bytes());
        b
    }

    /// Decodes the record at the start of `bytes`; `None` when it is cut
    /// short or not UTF-8 (a torn file from another build).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Record> {
        let u16_at = |i: usize| -> Option<usize> {
            Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize)
        };
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
        };
        let len = u32_at(0)? as usize;
        let bytes = bytes.get(..len)?;
        let kind = *bytes.get(4)?;
        let flags = *bytes.get(5)?;
        let mode = *bytes.get(6)?;
        let count = *bytes.get(7)? as usize;
        let cells_off = u32_at(8)?;
        let cells = u32_at(12)?;
        let name_len = u16_at(16)?;
        let mut at = RECORD_FIXED;
        let name = std::str::from_utf8(bytes.get(at..at + name_len)?).ok()?;
        at += name_len;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            let n = u16_at(at)?;
            at += 2;
            values.push(Box::from(std::str::from_utf8(bytes.get(at..at + n)?).ok()?));
            at += n;
        }
        Some(Record {
            kind,
            overflow: flags & FLAG_OVERFLOW != 0,
            mode,
            cells_off,
            cells,
            name: name.into(),
            values: values.into(),
        })
    }
}

/// The `AtomicU32` at `off` of the mapping at `base`.
///
/// # Safety
/// `base + off` must be inside a live mapping and 4-aligned.
pub(crate) unsafe fn u32_cell<'a>(base: *mut u8, off: usize) -> &'a AtomicU32 {
    // SAFETY: the caller's contract.
    unsafe { &*base.add(off).cast::<AtomicU32>() }
}

/// The `AtomicU64` at `off` of the mapping at `base`.
///
/// # Safety
/// `base + off` must be inside a live mapping and 8-aligned.
pub(crate) unsafe fn u64_cell<'a>(base: *mut u8, off: usize) -> &'a AtomicU64 {
    // SAFETY: the caller's contract.
    unsafe { &*base.add(off).cast::<AtomicU64>() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_refused() {
        let r = Record {
            kind: HISTOGRAM,
            overflow: false,
            mode: 3,
            cells_off: 123_456,
            cells: 113,
            name: "http_server_request_duration_seconds".into(),
            values: vec![Box::from("GET"), Box::from("/users/{id}"), Box::from("")].into(),
        };
        let bytes = r.encode();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(Record::decode(&bytes), Some(r));
        assert_eq!(Record::decode(&bytes[..bytes.len() - 9]), None);
        assert_eq!(Record::decode(&[]), None);
    }
}
