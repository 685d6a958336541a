//! Reading every slot as one server: counters summed, histograms merged
//! (classic buckets and sketches), gauges combined by their mode over the
//! live workers. Each process keeps a [`MergeCache`] of the records it has
//! parsed, so a scrape reads only new records and then the cells: its
//! cost follows the number of series times the number of slots, never
//! the number of workers that ever ran.

use super::layout::{self, COUNTER, FLOAT_GAUGE, GAUGE, HISTOGRAM, SHARDED, field};
use super::region::SharedRegion;
use super::slot::read_records;
use crate::metrics::histogram::{
    BucketLayout, CHUNK_COUNT, Chunk, read_classic_parts, sketch_of_parts,
};
use crate::options::GaugeMode;
use crate::sketch::Sketch;
use crate::visit::{FamilyInfo, HistogramView, Labels, SketchSource, Visitor};
use std::collections::HashMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// Where one worker keeps a series: its slot and cells.
#[derive(Debug, Clone, Copy)]
struct Member {
    slot: u32,
    cells_off: u32,
    cells: u32,
}

/// One series of the whole server.
struct Series {
    values: Box<[Box<str>]>,
    overflow: bool,
    kind: u8,
    mode: u8,
    members: Vec<Member>,
}

/// A series' label values and whether it is the overflow series.
type SeriesKey = (Box<[Box<str>]>, bool);

/// The series of one family, in the order they first appeared.
#[derive(Default)]
struct FamilySeries {
    index: HashMap<SeriesKey, usize>,
    series: Vec<Series>,
}

/// What this process has parsed of every slot.
pub(crate) struct MergeCache {
    parsed: Vec<u32>,
    families: HashMap<Box<str>, FamilySeries>,
}

impl MergeCache {
    pub(crate) fn new(slots: usize) -> Self {
        MergeCache {
            parsed: vec![0; slots],
            families: HashMap::new(),
        }
    }

    /// Reads the records published since the last call.
    fn refresh(&mut self, region: &SharedRegion) {
        let len = region.slot_bytes();
        for slot in 0..region.slots() {
            let Some(base) = region.base(slot) else {
                continue;
            };
            let families = &mut self.families;
            let from = self.parsed[slot];
            self.parsed[slot] = read_records(base, len, from, |_, r| {
                let end = r.cells_off as u64 + r.cells as u64 * 8;
                if end > len as u64 {
                    return;
                }
                let fam = families.entry(r.name.clone()).or_default();
                let key = (r.values.clone(), r.overflow);
                let i = *fam.index.entry(key).or_insert_with(|| {
                    fam.series.push(Series {
                        values: r.values.clone(),
                        overflow: r.overflow,
                        kind: r.kind,
                        mode: r.mode,
                        members: Vec::new(),
                    });
                    fam.series.len() - 1
                });
                fam.series[i].members.push(Member {
                    slot: slot as u32,
                    cells_off: r.cells_off,
                    cells: r.cells,
                });
            });
        }
    }
}

/// One slot's header as a read sees it.
#[derive(Clone, Copy)]
struct SlotInfo {
    live: bool,
    started: u64,
}

/// A family as the merged read needs it: what the local registry knows.
pub(crate) struct LocalFamily<'a> {
    pub(crate) info: FamilyInfo<'a>,
    pub(crate) label_names: &'a [Box<str>],
    pub(crate) layout: Option<&'a BucketLayout>,
}

/// The cells of `m`.
fn cells<'a>(region: &'a SharedRegion, m: &Member) -> &'a [std::sync::atomic::AtomicU64] {
    let base = region.base(m.slot as usize).unwrap_or(std::ptr::null_mut());
    // SAFETY: the member was checked to lie inside its slot's mapping when
    // it was parsed; the mapping lives as long as the region.
    unsafe {
        std::slice::from_raw_parts(
            base.add(m.cells_off as usize)
                .cast::<std::sync::atomic::AtomicU64>(),
            m.cells as usize,
        )
    }
}

/// The chunk at offset `off` of slot `slot`, if it lies in the mapping.
fn chunk_at(region: &SharedRegion, slot: u32, off: u64) -> Option<&Chunk> {
    let size = std::mem::size_of::<Chunk>() as u64;
    if off == 0 || off % 64 != 0 || off + size > region.slot_bytes() as u64 {
        return None;
    }
    let base = region.base(slot as usize)?;
    // SAFETY: inside the mapping, aligned; chunk cells are atomics.
    Some(unsafe { &*base.add(off as usize).cast::<Chunk>() })
}

/// The merged sketch of a histogram's members, built when asked.
struct MergedSketch<'a> {
    region: &'a SharedRegion,
    members: Vec<Member>,
    splits: usize,
}

impl SketchSource for MergedSketch<'_> {
    fn sketch(&self) -> Sketch {
        let mut total = Sketch::new();
        for m in &self.members {
            let c = cells(self.region, m);
            if c.len() < 3 + self.splits + CHUNK_COUNT {
                continue;
            }
            let first = 3 + self.splits;
            let s = sketch_of_parts(
                c[0].load(Relaxed),
                f64::from_bits(c[1].load(Relaxed)),
                c[2].load(Relaxed),
                |ci| chunk_at(self.region, m.slot, c[first + ci].load(Acquire)),
            );
            total.merge(&s);
        }
        total
    }
}

fn gauge_mode(code: u8) -> GaugeMode {
    match code {
        1 => GaugeMode::Max,
        2 => GaugeMode::Min,
        3 => GaugeMode::Latest,
        4 => GaugeMode::PerWorker,
        _ => GaugeMode::Sum,
    }
}

/// Visits `families` as the whole server held in `region` (or only slot
/// `only`), with what this process parsed before in `cache`.
pub(crate) fn visit_merged(
    region: &SharedRegion,
    cache: &std::sync::Mutex<MergeCache>,
    families: &[LocalFamily<'_>],
    only: Option<usize>,
    visitor: &mut dyn Visitor,
) {
    {
        let this = region;
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.refresh(this);
        let slots: Vec<SlotInfo> = (0..this.slots())
            .map(|s| {
                let base = this.base(s).unwrap_or(std::ptr::null_mut());
                // SAFETY: header fields of a live mapping.
                unsafe {
                    SlotInfo {
                        live: layout::u32_cell(base, field::STATE).load(Acquire) == layout::LIVE,
                        started: layout::u64_cell(base, field::STARTED).load(Acquire),
                    }
                }
            })
            .collect();
        let mut scratch = Vec::new();
        let mut cumulative = Vec::new();
        for f in families {
            visitor.family(&f.info);
            let Some(fam) = cache.families.get(f.info.name) else {
                continue;
            };
            for s in &fam.series {
                let wanted = |m: &&Member| only.is_none_or(|o| o == m.slot as usize);
                let labels = if s.overflow {
                    Labels::overflow()
                } else if s.values.len() == f.label_names.len() {
                    Labels::new(f.label_names, &s.values)
                } else {
                    continue;
                };
                match s.kind {
                    COUNTER | SHARDED => {
                        let mut total = 0u64;
                        let mut any = false;
                        for m in s.members.iter().filter(wanted) {
                            any = true;
                            for c in cells(this, m) {
                                total = total.wrapping_add(c.load(Relaxed));
                            }
                        }
                        if any {
                            visitor.counter(&labels, total);
                        }
                    }
                    GAUGE | FLOAT_GAUGE => {
                        let live: Vec<(&Member, f64, i64)> = s
                            .members
                            .iter()
                            .filter(wanted)
                            .filter(|m| slots[m.slot as usize].live)
                            .filter_map(|m| {
                                let bits = cells(this, m).first()?.load(Relaxed);
                                Some((m, f64::from_bits(bits), bits as i64))
                            })
                            .collect();
                        if live.is_empty() {
                            continue;
                        }
                        let float = s.kind == FLOAT_GAUGE;
                        let emit = |v: &mut dyn Visitor, labels: &Labels<'_>, f: f64, i: i64| {
                            if float {
                                v.float_gauge(labels, f);
                            } else {
                                v.gauge(labels, i);
                            }
                        };
                        match gauge_mode(s.mode) {
                            GaugeMode::Sum => {
                                let f = live.iter().map(|x| x.1).sum();
                                let i = live.iter().fold(0i64, |a, x| a.wrapping_add(x.2));
                                emit(visitor, &labels, f, i);
                            }
                            GaugeMode::Max => {
                                let f = live.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
                                let i = live.iter().map(|x| x.2).max().unwrap_or(0);
                                emit(visitor, &labels, f, i);
                            }
                            GaugeMode::Min => {
                                let f = live.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
                                let i = live.iter().map(|x| x.2).min().unwrap_or(0);
                                emit(visitor, &labels, f, i);
                            }
                            GaugeMode::Latest => {
                                if let Some(x) =
                                    live.iter().max_by_key(|x| slots[x.0.slot as usize].started)
                                {
                                    emit(visitor, &labels, x.1, x.2);
                                }
                            }
                            GaugeMode::PerWorker => {
                                let mut names: Vec<Box<str>> = f.label_names.to_vec();
                                names.push("worker".into());
                                for x in &live {
                                    let mut values: Vec<Box<str>> = if s.overflow {
                                        Vec::new()
                                    } else {
                                        s.values.to_vec()
                                    };
                                    values.push(x.0.slot.to_string().into());
                                    let n = if s.overflow {
                                        &names[names.len() - 1..]
                                    } else {
                                        &names[..]
                                    };
                                    emit(visitor, &Labels::new(n, &values), x.1, x.2);
                                }
                            }
                        }
                    }
                    HISTOGRAM => {
                        let Some(layout) = f.layout else {
                            continue;
                        };
                        let splits = layout.bounds.len();
                        let members: Vec<Member> =
                            s.members.iter().filter(wanted).copied().collect();
                        if members.is_empty() {
                            continue;
                        }
                        cumulative.clear();
                        cumulative.resize(splits, 0u64);
                        let (mut count, mut sum) = (0u64, 0.0f64);
                        for m in &members {
                            let c = cells(this, m);
                            if c.len() < 3 + splits + CHUNK_COUNT {
                                continue;
                            }
                            let first = 3 + splits;
                            let (n, s) = read_classic_parts(
                                layout,
                                c[0].load(Relaxed),
                                f64::from_bits(c[1].load(Relaxed)),
                                |ci| chunk_at(this, m.slot, c[first + ci].load(Acquire)),
                                |j| c[3 + j].load(Relaxed),
                                &mut scratch,
                            );
                            count += n;
                            sum += s;
                            for (acc, v) in cumulative.iter_mut().zip(&scratch) {
                                *acc += v;
                            }
                        }
                        let source = MergedSketch {
                            region: this,
                            members,
                            splits,
                        };
                        let view =
                            HistogramView::new(&layout.bounds, &cumulative, count, sum, &source);
                        visitor.histogram(&labels, &view);
                    }
                    _ => {}
                }
            }
        }
    }
}
