//! The Prometheus 0.0.4 and OpenMetrics 1.0 text encoders.
//!
//! Both share one visitor; they differ in counter family names (Prometheus
//! names the family `x_total`, OpenMetrics `x`), `# UNIT`, help escaping and
//! the closing `# EOF`.

use super::escape;
use super::format::Format;
use crate::visit::{FamilyInfo, HistogramView, Labels, MetricKind, Visitor};

/// Writes a registry's series as text into a byte buffer.
///
/// Use [`encode`](super::encode) (or [`Registry::render`](crate::Registry::render)) unless
/// you are feeding it from your own [`Collector`](crate::Collector) walk.
#[derive(Debug)]
pub struct TextEncoder<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
    /// Current family name, reused across families to avoid allocating.
    name: String,
    kind: MetricKind,
}

impl<'a> TextEncoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>, format: Format) -> Self {
        TextEncoder {
            out,
            format,
            name: String::new(),
            kind: MetricKind::Gauge,
        }
    }

    /// Writes the trailer (`# EOF` for OpenMetrics).
    pub fn finish(self) {
        if self.format == Format::OpenMetrics {
            self.out.extend_from_slice(b"# EOF\n");
        }
    }

    fn sample_name(&mut self, suffix: &str) {
        self.out.extend_from_slice(self.name.as_bytes());
        self.out.extend_from_slice(suffix.as_bytes());
    }

    /// One sample line: name and suffix, labels, a space, the value.
    #[inline]
    fn sample(
        &mut self,
        suffix: &str,
        labels: &Labels<'_>,
        le: Option<f64>,
        value: impl FnOnce(&mut Vec<u8>),
    ) {
        self.sample_name(suffix);
        self.labels(labels, le);
        self.out.push(b' ');
        value(self.out);
        self.out.push(b'\n');
    }

    /// `{a="1",b="2"}` plus an optional trailing `le`; nothing when empty.
    fn labels(&mut self, labels: &Labels<'_>, le: Option<f64>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push(b'{');
        let mut first = true;
        for (k, v) in labels.iter() {
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape::label_value(self.out, v);
            self.out.push(b'"');
        }
        if let Some(le) = le {
            if !first {
                self.out.push(b',');
            }
            self.out.extend_from_slice(b"le=\"");
            write_f64(self.out, le);
            self.out.push(b'"');
        }
        self.out.push(b'}');
    }
}

impl Visitor for TextEncoder<'_> {
    fn family(&mut self, info: &FamilyInfo<'_>) {
        self.name.clear();
        self.name.push_str(info.name);
        self.kind = info.kind;
        let om = self.format == Format::OpenMetrics;
        let header_suffix = if info.kind == MetricKind::Counter && !om {
            "_total"
        } else {
            ""
        };
        if !info.help.is_empty() {
            self.out.extend_from_slice(b"# HELP ");
            self.sample_name(header_suffix);
            self.out.push(b' ');
            if om {
                escape::openmetrics_help(self.out, info.help);
            } else {
                escape::prometheus_help(self.out, info.help);
            }
            self.out.push(b'\n');
        }
        self.out.extend_from_slice(b"# TYPE ");
        self.sample_name(header_suffix);
        self.out.push(b' ');
        self.out.extend_from_slice(info.kind.as_str().as_bytes());
        self.out.push(b'\n');
        if let (true, Some(unit)) = (om, info.unit) {
            self.out.extend_from_slice(b"# UNIT ");
            self.sample_name("");
            self.out.push(b' ');
            self.out.extend_from_slice(unit.as_str().as_bytes());
            self.out.push(b'\n');
        }
    }

    fn counter(&mut self, labels: &Labels<'_>, value: u64) {
        let suffix = if self.kind == MetricKind::Counter {
            "_total"
        } else {
            ""
        };
        self.sample(suffix, labels, None, |out| write_u64(out, value));
    }

    fn float_counter(&mut self, labels: &Labels<'_>, value: f64) {
        let suffix = if self.kind == MetricKind::Counter {
            "_total"
        } else {
            ""
        };
        self.sample(suffix, labels, None, |out| write_f64(out, value));
    }

    fn gauge(&mut self, labels: &Labels<'_>, value: i64) {
        self.sample("", labels, None, |out| write_i64(out, value));
    }

    fn float_gauge(&mut self, labels: &Labels<'_>, value: f64) {
        self.sample("", labels, None, |out| write_f64(out, value));
    }

    fn histogram(&mut self, labels: &Labels<'_>, view: &HistogramView<'_>) {
        for (le, cumulative) in view.buckets() {
            self.sample("_bucket", labels, Some(le), |out| {
                write_u64(out, cumulative)
            });
        }
        let count = view.count();
        self.sample("_bucket", labels, Some(f64::INFINITY), |out| {
            write_u64(out, count)
        });
        self.sample("_sum", labels, None, |out| write_f64(out, view.sum()));
        self.sample("_count", labels, None, |out| write_u64(out, count));
    }
}

/// Writes an `f64` as both formats accept it: shortest round-trip digits,
/// `NaN`, `+Inf`, `-Inf`.
fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v > 0.0 {
        out.extend_from_slice(b"+Inf");
    } else {
        out.extend_from_slice(b"-Inf");
    }
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        let f = |v| {
            let mut o = Vec::new();
            write_f64(&mut o, v);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(0.005), "0.005");
        assert_eq!(f(1.0), "1.0");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(1e-10).parse::<f64>().ok(), Some(1e-10));
    }
}
