//! Turns one read of a registry into StatsD lines: counters as the
//! difference since the previous read, gauges as they are, histograms as
//! the values recorded since the previous read (one line per sketch
//! bucket, with a sample rate carrying how many values it holds). The
//! state kept between reads is one number or sketch per series, so it is
//! bounded by the registry's cardinality limits.

use super::config::HistogramType;
use std::collections::HashMap;
use std::fmt::Write as _;
use vitals::visit::HistogramView;
use vitals::{FamilyInfo, Labels, MetricKind, Sketch, Unit, Visitor};

/// What the previous read saw of each series, keyed by its line prefix.
#[derive(Default)]
pub(crate) struct Previous {
    counters: HashMap<String, u64>,
    float_counters: HashMap<String, f64>,
    sketches: HashMap<String, Sketch>,
}

/// A [`Visitor`] writing the lines of one read. Each item of `units` is
/// one line, or several that must arrive together and in order (a
/// negative gauge is `0|g` then `-5|g`, since a signed value alone means
/// "add").
pub(crate) struct LineWriter<'a> {
    prefix: &'a str,
    histograms: HistogramType,
    tags: bool,
    previous: &'a mut Previous,
    seen: Previous,
    family: String,
    unit: Option<Unit>,
    pub(crate) units: Vec<String>,
}

/// Replaces what would break a StatsD line (`:`, `|`, `@`, `,`, `#`,
/// newlines, spaces) with `_`.
fn clean(s: &str, out: &mut String) {
    for c in s.chars() {
        out.push(match c {
            ':' | '|' | '@' | ',' | '#' | '\n' | '\r' | ' ' => '_',
            c => c,
        });
    }
}

impl<'a> LineWriter<'a> {
    pub(crate) fn new(
        prefix: &'a str,
        histograms: HistogramType,
        tags: bool,
        previous: &'a mut Previous,
    ) -> Self {
        LineWriter {
            prefix,
            histograms,
            tags,
            previous,
            seen: Previous::default(),
            family: String::new(),
            unit: None,
            units: Vec::new(),
        }
    }

    /// Ends the read: what it saw becomes the previous read (series gone
    /// from the registry are forgotten).
    pub(crate) fn finish(self) -> Vec<String> {
        *self.previous = self.seen;
        self.units
    }

    /// `prefix.name` (the series key without tags).
    fn name(&self) -> String {
        let mut s = String::with_capacity(self.prefix.len() + self.family.len() + 1);
        if !self.prefix.is_empty() {
            clean(self.prefix, &mut s);
            s.push('.');
        }
        clean(&self.family, &mut s);
        s
    }

    /// `|#k:v,k2:v2`, or "" without labels or with tags off.
    fn tag_suffix(&self, labels: &Labels<'_>) -> String {
        let mut s = String::new();
        if !self.tags || labels.is_empty() {
            return s;
        }
        for (i, (k, v)) in labels.iter().enumerate() {
            s.push_str(if i == 0 { "|#" } else { "," });
            clean(k, &mut s);
            s.push(':');
            clean(v, &mut s);
        }
        s
    }

    fn key(&self, labels: &Labels<'_>) -> (String, String) {
        (self.name(), self.tag_suffix(labels))
    }
}

impl Visitor for LineWriter<'_> {
    fn family(&mut self, info: &FamilyInfo<'_>) {
        self.family = info.name.to_owned();
        self.unit = info.unit;
        debug_assert!(matches!(
            info.kind,
            MetricKind::Counter | MetricKind::Gauge | MetricKind::Histogram
        ));
    }

    fn counter(&mut self, labels: &Labels<'_>, value: u64) {
        let (name, tags) = self.key(labels);
        let key = format!("{name}{tags}");
        let before = self.previous.counters.get(&key).copied().unwrap_or(0);
        // A counter that went down was reset: send all of it.
        let delta = if value >= before {
            value - before
        } else {
            value
        };
        if delta > 0 {
            self.units.push(format!("{name}:{delta}|c{tags}"));
        }
        self.seen.counters.insert(key, value);
    }

    fn float_counter(&mut self, labels: &Labels<'_>, value: f64) {
        let (name, tags) = self.key(labels);
        let key = format!("{name}{tags}");
        let before = self
            .previous
            .float_counters
            .get(&key)
            .copied()
            .unwrap_or(0.0);
        let delta = if value >= before {
            value - before
        } else {
            value
        };
        if delta > 0.0 && delta.is_finite() {
            self.units.push(format!("{name}:{delta}|c{tags}"));
        }
        self.seen.float_counters.insert(key, value);
    }

    fn gauge(&mut self, labels: &Labels<'_>, value: i64) {
        let (name, tags) = self.key(labels);
        if value < 0 {
            self.units
                .push(format!("{name}:0|g{tags}\n{name}:{value}|g{tags}"));
        } else {
            self.units.push(format!("{name}:{value}|g{tags}"));
        }
    }

    fn float_gauge(&mut self, labels: &Labels<'_>, value: f64) {
        if !value.is_finite() {
            return;
        }
        let (name, tags) = self.key(labels);
        if value < 0.0 {
            self.units
                .push(format!("{name}:0|g{tags}\n{name}:{value}|g{tags}"));
        } else {
            self.units.push(format!("{name}:{value}|g{tags}"));
        }
    }

    fn histogram(&mut self, labels: &Labels<'_>, view: &HistogramView<'_>) {
        let (name, tags) = self.key(labels);
        let key = format!("{name}{tags}");
        let now = view.sketch();
        let mut recent = now.clone();
        if let Some(before) = self.previous.sketches.get(&key) {
            if now.count() >= before.count() {
                recent.subtract(before);
            }
        }
        // Timers are milliseconds; a histogram in seconds is scaled.
        let scale = if self.histograms == HistogramType::Timer && self.unit == Some(Unit::Seconds) {
            1000.0
        } else {
            1.0
        };
        let suffix = self.histograms.suffix();
        let mut emit = |value: f64, n: u64| {
            if n == 0 {
                return;
            }
            let mut line = format!("{name}:{}|{suffix}", value * scale);
            if n > 1 {
                let _ = write!(line, "|@{}", 1.0 / n as f64);
            }
            line.push_str(&tags);
            self.units.push(line);
        };
        emit(0.0, recent.zero_count());
        for (value, n) in recent.bucket_values() {
            emit(value, n);
        }
        self.seen.sketches.insert(key, now);
    }
}

/// Packs `units` into payloads of at most `max` bytes, lines separated by
/// `\n`. A unit longer than `max` is left out; the number left out is
/// returned with the payloads.
pub(crate) fn pack(units: &[String], max: usize) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(max);
    let mut too_long = 0;
    for unit in units {
        if unit.len() > max {
            too_long += 1;
            continue;
        }
        let extra = if current.is_empty() { 0 } else { 1 };
        if current.len() + extra + unit.len() > max {
            out.push(std::mem::replace(&mut current, Vec::with_capacity(max)));
        }
        if !current.is_empty() {
            current.push(b'\n');
        }
        current.extend_from_slice(unit.as_bytes());
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(
        registry: &vitals::Registry,
        previous: &mut Previous,
        kind: HistogramType,
    ) -> Vec<String> {
        let mut w = LineWriter::new("app", kind, true, previous);
        registry.visit(&mut w);
        w.finish()
    }

    #[test]
    fn counters_are_deltas_gauges_values_histograms_recent_values() {
        let r = vitals::Registry::new();
        let c = r.counter_vec(("hits_total", "h"), &["route"]).unwrap();
        let g = r.gauge(("temp", "h")).unwrap();
        let h = r
            .histogram(vitals::Options::new("lat", "h").unit(Unit::Seconds))
            .unwrap();
        c.get(&["/a:b"]).add(3);
        g.set(-4);
        h.record(0.25);
        h.record(0.25);
        let mut prev = Previous::default();
        let first = lines(&r, &mut prev, HistogramType::Timer);
        assert!(
            first.contains(&"app.hits:3|c|#route:/a_b".to_owned()),
            "{first:?}"
        );
        assert!(
            first.contains(&"app.temp:0|g\napp.temp:-4|g".to_owned()),
            "{first:?}"
        );
        let timer = first
            .iter()
            .find(|l| l.starts_with("app.lat_seconds:"))
            .unwrap();
        let value: f64 = timer["app.lat_seconds:".len()..]
            .split('|')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((value - 250.0).abs() < 2.5, "{timer}");
        assert!(timer.ends_with("|ms|@0.5"), "{timer}");
        c.get(&["/a:b"]).add(2);
        g.set(7);
        let second = lines(&r, &mut prev, HistogramType::Distribution);
        assert!(
            second.contains(&"app.hits:2|c|#route:/a_b".to_owned()),
            "{second:?}"
        );
        assert!(second.contains(&"app.temp:7|g".to_owned()), "{second:?}");
        assert!(
            !second.iter().any(|l| l.contains("lat_seconds")),
            "{second:?}"
        );
        h.record(3.0);
        let third = lines(&r, &mut prev, HistogramType::Distribution);
        let d = third.iter().find(|l| l.contains("lat_seconds")).unwrap();
        assert!(
            d.ends_with("|d") && d.starts_with("app.lat_seconds:3"),
            "{d}"
        );
        assert!(
            !third.iter().any(|l| l.starts_with("app.hits")),
            "{third:?}"
        );
    }

    #[test]
    fn packing_never_exceeds_the_limit_and_keeps_units_whole() {
        let units: Vec<String> = (0..500).map(|i| format!("m{i}:{}|c", i * 7)).collect();
        let mut with_pair = units.clone();
        with_pair.push("g:0|g\ng:-1|g".to_owned());
        with_pair.push("x".repeat(300));
        let (payloads, too_long) = pack(&with_pair, 100);
        assert_eq!(too_long, 1);
        let mut seen = Vec::new();
        for p in &payloads {
            assert!(p.len() <= 100, "{}", p.len());
            let text = std::str::from_utf8(p).unwrap();
            seen.extend(text.split('\n').map(str::to_owned));
        }
        let want: Vec<String> = with_pair[..501]
            .iter()
            .flat_map(|u| u.split('\n').map(str::to_owned))
            .collect();
        assert_eq!(seen, want);
        assert!(payloads.iter().any(|p| p.ends_with(b"g:0|g\ng:-1|g")));
    }
}
