//! Metrics shared by the worker processes of one server (feature
//! `shared`): each worker's series live in its slot of a memory-mapped
//! run directory, and any worker reads every slot as the whole server.
//!
//! - `layout.rs`: the bytes of a slot file (header, record index, arena).
//! - `region.rs`: [`SharedRegion`], the run directory and its slots.
//! - `slot.rs`: this worker's writer of its slot (cells, records, chunks).
//! - `merge.rs`: the merged read (counters summed, histograms merged,
//!   gauges by [`GaugeMode`](crate::GaugeMode)).
//!
//! Recording on a handle is still one atomic: the handle points straight
//! at its cell in the mapping. See docs/core.md, "Several processes".

pub(crate) mod layout;
pub(crate) mod merge;
mod region;
pub(crate) mod slot;

pub use region::{DEFAULT_SLOT_BYTES, SharedRegion, SlotState};
