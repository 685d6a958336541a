//! Fresh reads: every window sees every acknowledged write at once.
//!
//! Ingest writes minute buckets and marks their five-minute period dirty;
//! the rollup job recomputes dirty periods some seconds later. A read at a
//! coarse resolution (five minutes, an hour) would miss what arrived since
//! the last pass, so these reads put the finer data in place of every
//! period whose stored rollup may be behind:
//!
//! - at five minutes, each dirty five-minute period is read as its minutes;
//! - at an hour, each hour that is dirty or holds a dirty five-minute
//!   period is read as its five-minute periods, the dirty ones of those as
//!   their minutes;
//!
//! and the finer parts are merged into the asked resolution
//! ([`crate::model::roll_up`]), so callers see the same shape of answer
//! as before. Only the few recent periods are dirty, so a read is the
//! coarse rows plus a handful of fine ones.
//!
//! Why this is exact: the dirty marks are read first. A period not marked
//! then has a rollup holding every write acknowledged before the read
//! began; a marked one is read from its parts, which every write reaches
//! first. A rollup pass running in between only rewrites a marked period
//! (read from its parts anyway) or the next coarser one (whose mark it
//! sets, but which this read has already chosen to read from parts or not,
//! with the parts it holds being at least as new).

use super::contract::Store;
use super::error::StoreResult;
use crate::model::{
    Bucket, BucketQuery, BucketStats, CustomPoint, CustomQuery, Resolution, RouteSum, UnixMs,
    roll_up, roll_up_custom,
};
use std::collections::BTreeMap;

/// One contiguous span to read at one resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Piece {
    /// The resolution read.
    pub resolution: Resolution,
    /// First bucket start read.
    pub start_ms: UnixMs,
    /// End (exclusive) of the bucket starts read.
    pub end_ms: UnixMs,
}

/// The pieces that answer a read of `tenant`'s buckets starting in
/// `[start_ms, end_ms)` at `resolution` with no rollup lagging behind:
/// the asked resolution where it is up to date, finer ones in place of the
/// periods marked dirty (see the module docs). Adjacent pieces at one
/// resolution are joined.
pub async fn plan(
    store: &dyn Store,
    tenant: &str,
    resolution: Resolution,
    start_ms: UnixMs,
    end_ms: UnixMs,
) -> StoreResult<Vec<Piece>> {
    let whole = |resolution| {
        vec![Piece {
            resolution,
            start_ms,
            end_ms,
        }]
    };
    if resolution == Resolution::Minute || start_ms >= end_ms {
        return Ok(whole(resolution));
    }
    // The periods read at `resolution` cover up to the end of the last one.
    let covered_end = resolution
        .floor(end_ms.saturating_sub(1))
        .saturating_add(resolution.millis());
    let five = Resolution::FiveMinutes;
    let dirty_five = store
        .dirty_starts(tenant.into(), five, start_ms, covered_end)
        .await?;
    let mut pieces = Vec::new();
    if resolution == five {
        replace(&mut pieces, five, start_ms, end_ms, &dirty_five, |p| {
            vec![minutes_of(p, five)]
        });
        return Ok(join(pieces));
    }
    let hour = Resolution::Hour;
    let mut stale: Vec<UnixMs> = store
        .dirty_starts(tenant.into(), hour, start_ms, end_ms)
        .await?;
    stale.extend(dirty_five.iter().map(|s| hour.floor(*s)));
    stale.retain(|h| (start_ms..end_ms).contains(h));
    stale.sort_unstable();
    stale.dedup();
    replace(&mut pieces, hour, start_ms, end_ms, &stale, |h| {
        let inside: Vec<UnixMs> = dirty_five
            .iter()
            .copied()
            .filter(|s| hour.floor(*s) == h)
            .collect();
        let mut parts = Vec::new();
        replace(&mut parts, five, h, h + hour.millis(), &inside, |p| {
            vec![minutes_of(p, five)]
        });
        parts
    });
    Ok(join(pieces))
}

/// The minutes of the `res` period starting at `start`.
fn minutes_of(start: UnixMs, res: Resolution) -> Piece {
    Piece {
        resolution: Resolution::Minute,
        start_ms: start,
        end_ms: start + res.millis(),
    }
}

/// Pushes `[start, end)` at `res` less the `stale` periods (ascending),
/// and `finer(p)` for each stale period `p`.
fn replace(
    out: &mut Vec<Piece>,
    res: Resolution,
    start: UnixMs,
    end: UnixMs,
    stale: &[UnixMs],
    finer: impl Fn(UnixMs) -> Vec<Piece>,
) {
    let mut cursor = start;
    for &p in stale {
        if p > cursor {
            out.push(Piece {
                resolution: res,
                start_ms: cursor,
                end_ms: p,
            });
        }
        out.extend(finer(p));
        cursor = cursor.max(p + res.millis());
    }
    if cursor < end {
        out.push(Piece {
            resolution: res,
            start_ms: cursor,
            end_ms: end,
        });
    }
}

/// Sorts pieces and joins those at one resolution that touch.
fn join(mut pieces: Vec<Piece>) -> Vec<Piece> {
    pieces.sort();
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.resolution == p.resolution && last.end_ms >= p.start_ms => {
                last.end_ms = last.end_ms.max(p.end_ms);
            }
            _ => out.push(p),
        }
    }
    out
}

/// [`Store::read_buckets`], fresh: the same answer the store would give
/// had every dirty period been rolled up just now.
pub async fn buckets(store: &dyn Store, q: BucketQuery) -> StoreResult<Vec<Bucket>> {
    let pieces = plan(store, &q.tenant, q.resolution, q.start_ms, q.end_ms).await?;
    let mut out = Vec::new();
    let mut finer = Vec::new();
    for p in pieces {
        let part = store
            .read_buckets(BucketQuery {
                resolution: p.resolution,
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                ..q.clone()
            })
            .await?;
        if p.resolution == q.resolution {
            out.extend(part);
        } else {
            finer.extend(part);
        }
    }
    if !finer.is_empty() {
        out.extend(roll_up(&q.tenant, q.resolution, finer));
    }
    Ok(out)
}

/// [`Store::route_sums`], fresh (see [`buckets`]): the sums of each piece
/// added up per (method, route).
pub async fn route_sums(store: &dyn Store, q: BucketQuery) -> StoreResult<Vec<RouteSum>> {
    let pieces = plan(store, &q.tenant, q.resolution, q.start_ms, q.end_ms).await?;
    let mut by: BTreeMap<(String, String), BucketStats> = BTreeMap::new();
    let one = pieces.len() == 1;
    for p in pieces {
        let sums = store
            .route_sums(BucketQuery {
                resolution: p.resolution,
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                ..q.clone()
            })
            .await?;
        if one {
            return Ok(sums);
        }
        for s in sums {
            match by.entry((s.method, s.route)) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&s.stats),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(s.stats);
                }
            }
        }
    }
    Ok(by
        .into_iter()
        .map(|((method, route), stats)| RouteSum {
            method,
            route,
            stats,
        })
        .collect())
}

/// [`Store::read_custom`], fresh (see [`buckets`]).
pub async fn custom(store: &dyn Store, q: CustomQuery) -> StoreResult<Vec<CustomPoint>> {
    let pieces = plan(store, &q.tenant, q.resolution, q.start_ms, q.end_ms).await?;
    let mut out = Vec::new();
    let mut finer = Vec::new();
    for p in pieces {
        let part = store
            .read_custom(CustomQuery {
                resolution: p.resolution,
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                ..q.clone()
            })
            .await?;
        if p.resolution == q.resolution {
            out.extend(part);
        } else {
            finer.extend(part);
        }
    }
    if !finer.is_empty() {
        out.extend(roll_up_custom(&q.tenant, q.resolution, finer));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const F: i64 = 300_000;
    const H: i64 = 3_600_000;

    fn piece(resolution: Resolution, start_ms: i64, end_ms: i64) -> Piece {
        Piece {
            resolution,
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn stale_periods_are_cut_out_and_read_finer() {
        let mut out = Vec::new();
        replace(
            &mut out,
            Resolution::FiveMinutes,
            0,
            H,
            &[F, 2 * F, 6 * F],
            |p| vec![minutes_of(p, Resolution::FiveMinutes)],
        );
        assert_eq!(
            join(out),
            vec![
                piece(Resolution::Minute, F, 3 * F),
                piece(Resolution::Minute, 6 * F, 7 * F),
                piece(Resolution::FiveMinutes, 0, F),
                piece(Resolution::FiveMinutes, 3 * F, 6 * F),
                piece(Resolution::FiveMinutes, 7 * F, H),
            ]
        );
        // A stale period at the very end leaves no coarse piece after it.
        let mut out = Vec::new();
        replace(&mut out, Resolution::Hour, 0, 2 * H, &[H], |h| {
            vec![piece(Resolution::FiveMinutes, h, h + H)]
        });
        assert_eq!(
            join(out),
            vec![
                piece(Resolution::FiveMinutes, H, 2 * H),
                piece(Resolution::Hour, 0, H),
            ]
        );
        assert_eq!(minutes_of(F, Resolution::FiveMinutes).end_ms, F + 5 * M);
    }
}
