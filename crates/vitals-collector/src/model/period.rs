//! Time: milliseconds since the epoch, the three bucket resolutions, and
//! the dirty periods the rollup job recomputes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch.
pub type UnixMs = i64;

/// How long one bucket lasts: data is ingested per minute and rolled up to
/// five minutes and one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// 1-minute buckets, written by ingest.
    Minute,
    /// 5-minute buckets, rolled up from minutes.
    FiveMinutes,
    /// 1-hour buckets, rolled up from five-minute buckets.
    Hour,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 3] = [
        Resolution::Minute,
        Resolution::FiveMinutes,
        Resolution::Hour,
    ];

    /// Length of one bucket in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::FiveMinutes => 300_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// Start of the bucket that holds `t`.
    pub const fn floor(self, t: UnixMs) -> UnixMs {
        t.div_euclid(self.millis()) * self.millis()
    }

    /// The resolution this one is rolled up from, if any.
    pub const fn source(self) -> Option<Resolution> {
        match self {
            Resolution::Minute => None,
            Resolution::FiveMinutes => Some(Resolution::Minute),
            Resolution::Hour => Some(Resolution::FiveMinutes),
        }
    }

    /// The resolution this one rolls up into, if any.
    pub const fn target(self) -> Option<Resolution> {
        match self {
            Resolution::Minute => Some(Resolution::FiveMinutes),
            Resolution::FiveMinutes => Some(Resolution::Hour),
            Resolution::Hour => None,
        }
    }

    /// A small integer for storage (1, 5, 60: the bucket length in minutes).
    pub const fn code(self) -> i64 {
        match self {
            Resolution::Minute => 1,
            Resolution::FiveMinutes => 5,
            Resolution::Hour => 60,
        }
    }

    /// The resolution stored under [`Resolution::code`].
    pub const fn from_code(code: i64) -> Option<Resolution> {
        match code {
            1 => Some(Resolution::Minute),
            5 => Some(Resolution::FiveMinutes),
            60 => Some(Resolution::Hour),
            _ => None,
        }
    }

    /// A short name: `1m`, `5m`, `1h`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::Hour => "1h",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A period at one resolution whose source data changed since it was last
/// rolled up. `generation` changes every time the period is marked again,
/// so a rollup that raced a newer write does not clear the mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirtyPeriod {
    /// The resolution to (re)compute.
    pub resolution: Resolution,
    /// Whose data.
    pub tenant: String,
    /// Start of the period at `resolution`.
    pub start_ms: UnixMs,
    /// Marker version, opaque to callers.
    pub generation: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_floor_and_chain() {
        assert_eq!(Resolution::FiveMinutes.floor(299_999), 0);
        assert_eq!(Resolution::FiveMinutes.floor(300_000), 300_000);
        assert_eq!(Resolution::Minute.floor(-1), -60_000);
        assert_eq!(Resolution::Hour.source(), Some(Resolution::FiveMinutes));
        assert_eq!(Resolution::Minute.target(), Some(Resolution::FiveMinutes));
        for r in Resolution::ALL {
            assert_eq!(Resolution::from_code(r.code()), Some(r));
        }
    }
}
