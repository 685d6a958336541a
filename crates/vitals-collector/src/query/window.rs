//! Time windows of a query: the `window=` and `step=` parameters read
//! and bounded, and the resolution that answers them.

use crate::config::parse_duration_ms;
use crate::error::ApiError;
use crate::model::{Resolution, UnixMs};
use crate::rollup::Retention;

/// Longest query window.
pub const MAX_WINDOW_MS: i64 = 400 * 86_400_000;

/// Most points one timeseries answer holds.
pub const MAX_POINTS: i64 = 1_500;

/// A validated time window ending now, with the resolution that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Length asked for, ms.
    pub window_ms: i64,
    /// Resolution read.
    pub resolution: Resolution,
    /// First bucket start read (the window start, floored to the resolution).
    pub from_ms: UnixMs,
    /// The end (now).
    pub to_ms: UnixMs,
}

impl Window {
    /// Parses `window` (`15m`, `24h`, `7d`; 1 minute to 400 days) and
    /// picks the coarsest resolution that answers it: one with at least 12
    /// buckets in the window whose retention still covers the window start.
    pub fn parse(text: &str, now: UnixMs, retention: &Retention) -> Result<Window, ApiError> {
        let window_ms = parse_duration_ms(text)
            .map_err(|e| ApiError::bad_request("invalid_window", format!("window: {e}")))?;
        if !(60_000..=MAX_WINDOW_MS).contains(&window_ms) {
            return Err(ApiError::bad_request(
                "invalid_window",
                format!("window {text:?} must be between 1m and 400d"),
            ));
        }
        if window_ms > retention.hour_ms {
            return Err(ApiError::bad_request(
                "invalid_window",
                format!(
                    "window {text:?} is longer than the data is kept ({} days)",
                    retention.hour_ms / 86_400_000
                ),
            ));
        }
        let resolution = [
            Resolution::Hour,
            Resolution::FiveMinutes,
            Resolution::Minute,
        ]
        .into_iter()
        .find(|r| window_ms >= 12 * r.millis())
        .unwrap_or(Resolution::Minute);
        // Too long for what the finer resolution still keeps: go coarser.
        let resolution = Resolution::ALL
            .into_iter()
            .filter(|r| *r >= resolution)
            .find(|r| window_ms + r.millis() <= retention.of(*r))
            .unwrap_or(Resolution::Hour);
        Ok(Window::with_resolution(window_ms, resolution, now))
    }

    /// The window at a given resolution.
    pub fn with_resolution(window_ms: i64, resolution: Resolution, now: UnixMs) -> Window {
        Window {
            window_ms,
            resolution,
            from_ms: resolution.floor(now - window_ms),
            to_ms: now,
        }
    }

    /// Seconds the read buckets span (for rates).
    pub fn span_secs(&self) -> f64 {
        ((self.to_ms - self.from_ms).max(1)) as f64 / 1000.0
    }
}

/// Points a sparkline aims at.
pub const SPARKLINE_POINTS: i64 = 30;

/// The step of a window's sparkline: about [`SPARKLINE_POINTS`] steps, a
/// whole number of the window's resolution (so fewer points for short
/// windows read at a coarse resolution: 12 for `1h`).
pub fn sparkline_step(w: &Window) -> i64 {
    let res = w.resolution.millis();
    ((w.window_ms / SPARKLINE_POINTS) / res).max(1) * res
}

/// Parses `step` for a window: a whole number of minutes, at least the
/// resolution picked for the window would need to stay under [`MAX_POINTS`].
pub fn parse_step(text: Option<&str>, window_ms: i64) -> Result<i64, ApiError> {
    let step = match text {
        Some(t) => parse_duration_ms(t)
            .map_err(|e| ApiError::bad_request("invalid_step", format!("step: {e}")))?,
        None => {
            // About 60 points, rounded to a whole resolution.
            let raw = (window_ms / 60).max(60_000);
            [
                Resolution::Hour,
                Resolution::FiveMinutes,
                Resolution::Minute,
            ]
            .into_iter()
            .find(|r| raw >= r.millis())
            .map_or(60_000, |r| raw / r.millis() * r.millis())
        }
    };
    if step % 60_000 != 0 {
        return Err(ApiError::bad_request(
            "invalid_step",
            format!("step {step} ms must be a whole number of minutes"),
        ));
    }
    if step > window_ms {
        return Err(ApiError::bad_request(
            "invalid_step",
            "step must not be longer than the window",
        ));
    }
    if window_ms / step > MAX_POINTS {
        return Err(ApiError::bad_request(
            "invalid_step",
            format!(
                "window / step gives {} points, over the limit of {MAX_POINTS}; use a longer step",
                window_ms / step
            ),
        ));
    }
    Ok(step)
}

/// The resolution to read for `step`: the coarsest one that divides it,
/// no coarser than what answers the window.
pub fn resolution_for_step(step: i64, window: Resolution) -> Resolution {
    [
        Resolution::Hour,
        Resolution::FiveMinutes,
        Resolution::Minute,
    ]
    .into_iter()
    .filter(|r| *r <= window)
    .find(|r| step % r.millis() == 0)
    .unwrap_or(Resolution::Minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_picks_the_coarsest_resolution_that_answers() {
        let r = Retention::default();
        let now = 10_000_000_000;
        let w = |s: &str| Window::parse(s, now, &r).map(|w| w.resolution);
        assert_eq!(w("15m"), Ok(Resolution::Minute));
        assert_eq!(w("59m"), Ok(Resolution::Minute));
        assert_eq!(w("1h"), Ok(Resolution::FiveMinutes));
        assert_eq!(w("12h"), Ok(Resolution::Hour));
        assert_eq!(w("30d"), Ok(Resolution::Hour));
        assert!(w("30s").is_err());
        assert!(w("401d").is_err());
        assert!(w("abc").is_err());
        // A minute retention shorter than the window moves to a coarser one.
        let short = Retention {
            minute_ms: 3_600_000,
            ..r
        };
        assert_eq!(
            Window::parse("50m", now, &short).map(|w| w.resolution),
            Ok(Resolution::Minute)
        );
        assert_eq!(
            Window::parse("1h", now, &short).map(|w| w.resolution),
            Ok(Resolution::FiveMinutes)
        );
    }

    #[test]
    fn sparklines_have_about_30_points_of_whole_buckets() {
        let r = Retention::default();
        let now = 10_000_000_000;
        for (window, step) in [
            ("15m", 60_000),
            ("1h", 300_000),
            ("6h", 600_000),
            ("24h", 3_600_000),
            ("7d", 5 * 3_600_000),
        ] {
            let w = Window::parse(window, now, &r).expect("window");
            assert_eq!(sparkline_step(&w), step, "{window}");
            assert_eq!(step % w.resolution.millis(), 0);
        }
    }

    #[test]
    fn steps_are_validated() {
        assert_eq!(parse_step(None, 3_600_000), Ok(60_000));
        assert_eq!(
            parse_step(None, 86_400_000),
            Ok(1_440_000 / 300_000 * 300_000)
        );
        assert_eq!(parse_step(Some("5m"), 3_600_000), Ok(300_000));
        assert!(parse_step(Some("30s"), 3_600_000).is_err());
        assert!(parse_step(Some("2h"), 3_600_000).is_err());
        assert!(parse_step(Some("1m"), 400 * 86_400_000).is_err());
        assert_eq!(
            resolution_for_step(600_000, Resolution::Hour),
            Resolution::FiveMinutes
        );
        assert_eq!(
            resolution_for_step(7_200_000, Resolution::FiveMinutes),
            Resolution::FiveMinutes
        );
    }
}
