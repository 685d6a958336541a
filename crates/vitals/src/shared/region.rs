//! [`SharedRegion`]: the run directory of a multi-process server, one
//! fixed-size memory-mapped file per slot (`slot-000.vitals`, …). A slot
//! is a worker number, not a process id: a worker that is restarted
//! attaches to the same slot and goes on counting where its predecessor
//! stopped, so the directory never grows, whatever the churn.

use super::layout::{self, DEAD, LIVE, MAGIC, MIN_SLOT_BYTES, field};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default size of one slot file: 64 MiB, of which only the pages used
/// take memory or disk (the file is sparse). About 300 000 counters, or
/// 1 000 histogram series with every octave in use.
pub const DEFAULT_SLOT_BYTES: usize = 64 << 20;

/// The shared storage of the worker processes of one server: every
/// process maps every slot; each worker writes only its own.
///
/// Create it once in the supervisor, before forking
/// ([`SharedRegion::create`]); each worker then takes its
/// [`Registry`](crate::Registry) from it with `region.registry(slot)`.
/// Every worker's registry renders the whole server: counters summed,
/// histograms merged, gauges combined by their [`GaugeMode`](crate::GaugeMode);
/// [`Registry::visit_worker`](crate::Registry::visit_worker) shows one worker.
///
/// ```
/// # if vitals::ENABLED {
/// let dir = std::env::temp_dir().join(format!("vitals-doc-{}", std::process::id()));
/// let region = vitals::SharedRegion::create(&dir, 2, vitals::shared::DEFAULT_SLOT_BYTES).unwrap();
/// let a = region.registry(0).unwrap(); // in worker 0
/// let b = region.registry(1).unwrap(); // in worker 1
/// a.counter(("jobs_total", "Jobs")).unwrap().add(2);
/// b.counter(("jobs_total", "Jobs")).unwrap().add(3);
/// let text = String::from_utf8(a.render(vitals::Format::Prometheus)).unwrap();
/// assert!(text.contains("jobs_total 5\n"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct SharedRegion {
    pub(crate) inner: Arc<RegionInner>,
}

pub(crate) struct RegionInner {
    dir: PathBuf,
    maps: Vec<memmap2::MmapRaw>,
    slot_bytes: usize,
}

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegion")
            .field("dir", &self.inner.dir)
            .field("slots", &self.inner.maps.len())
            .finish()
    }
}

/// What a slot's header says about the worker holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    /// A worker is attached and running.
    pub live: bool,
    /// Its process id (the last holder's, once dead).
    pub pid: u32,
    /// How many workers attached to the slot so far.
    pub attaches: u64,
}

fn slot_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("slot-{i:03}.vitals"))
}

fn map(path: &Path, len: usize, create: bool) -> io::Result<memmap2::MmapRaw> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)?;
    if create {
        file.set_len(len as u64)?;
    } else if file.metadata()?.len() != len as u64 {
        return Err(io::Error::other(format!(
            "{} is not {len} bytes long",
            path.display()
        )));
    }
    memmap2::MmapOptions::new().len(len).map_raw(&file)
}

impl SharedRegion {
    /// Creates `dir` (if needed) with `slots` fresh slot files of
    /// `slot_bytes` each (at least header, index and 1 MiB), removing the
    /// slot files a previous run left: the run starts clean.
    pub fn create(dir: &Path, slots: usize, slot_bytes: usize) -> io::Result<Self> {
        if slots == 0 || slots > 4096 {
            return Err(io::Error::other("a shared region has 1 to 4096 slots"));
        }
        let slot_bytes = slot_bytes.max(MIN_SLOT_BYTES).next_multiple_of(4096);
        if slot_bytes > u32::MAX as usize {
            return Err(io::Error::other("a slot is at most 4 GiB"));
        }
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("slot-") && n.ends_with(".vitals"));
            if ours {
                std::fs::remove_file(&path)?;
            }
        }
        let mut maps = Vec::with_capacity(slots);
        for i in 0..slots {
            let m = map(&slot_path(dir, i), slot_bytes, true)?;
            // SAFETY: the mapping is `slot_bytes` long, page-aligned.
            unsafe { layout::u64_cell(m.as_mut_ptr(), field::MAGIC) }
                .store(MAGIC, std::sync::atomic::Ordering::Release);
            maps.push(m);
        }
        Ok(Self::from_maps(dir, maps, slot_bytes))
    }

    /// Maps the slot files of an existing run directory (a process that
    /// was not forked from the one that created it).
    pub fn open(dir: &Path) -> io::Result<Self> {
        let first = slot_path(dir, 0);
        let slot_bytes = std::fs::metadata(&first)?.len() as usize;
        let mut maps = Vec::new();
        while slot_path(dir, maps.len()).exists() {
            let m = map(&slot_path(dir, maps.len()), slot_bytes, false)?;
            // SAFETY: as in `create`.
            let magic = unsafe { layout::u64_cell(m.as_mut_ptr(), field::MAGIC) }
                .load(std::sync::atomic::Ordering::Acquire);
            if magic != MAGIC {
                return Err(io::Error::other(format!(
                    "{} is not a vitals slot file",
                    slot_path(dir, maps.len()).display()
                )));
            }
            maps.push(m);
        }
        Ok(Self::from_maps(dir, maps, slot_bytes))
    }

    fn from_maps(dir: &Path, maps: Vec<memmap2::MmapRaw>, slot_bytes: usize) -> Self {
        SharedRegion {
            inner: Arc::new(RegionInner {
                dir: dir.to_owned(),
                maps,
                slot_bytes,
            }),
        }
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.inner.maps.len()
    }

    /// Size of each slot file.
    pub fn slot_bytes(&self) -> usize {
        self.inner.slot_bytes
    }

    /// The state of slot `slot` (`None` past the last one).
    pub fn slot_state(&self, slot: usize) -> Option<SlotState> {
        let base = self.base(slot)?;
        use std::sync::atomic::Ordering::Acquire;
        // SAFETY: header fields of a live mapping.
        unsafe {
            Some(SlotState {
                live: layout::u32_cell(base, field::STATE).load(Acquire) == LIVE,
                pid: layout::u32_cell(base, field::PID).load(Acquire),
                attaches: layout::u64_cell(base, field::ATTACHES).load(Acquire),
            })
        }
    }

    /// Marks slot `slot` dead (its worker exited): its gauges stop
    /// counting; its counters and histograms stay, and the next worker
    /// attached to the slot goes on from them.
    pub fn mark_dead(&self, slot: usize) {
        if let Some(base) = self.base(slot) {
            // SAFETY: a header field of a live mapping.
            unsafe { layout::u32_cell(base, field::STATE) }
                .store(DEAD, std::sync::atomic::Ordering::Release);
        }
    }

    /// The start of slot `slot`'s mapping.
    pub(crate) fn base(&self, slot: usize) -> Option<*mut u8> {
        self.inner.maps.get(slot).map(memmap2::MmapRaw::as_mut_ptr)
    }
}
