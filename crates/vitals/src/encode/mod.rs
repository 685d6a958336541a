//! Exposition formats: Prometheus text 0.0.4, OpenMetrics 1.0 and JSON.
//!
//! The text encoders are [`Visitor`](crate::Visitor)s that write straight
//! into a byte buffer as the registry walks its series: no intermediate
//! structure and no allocation per series.

mod escape;
mod json;
mod text;

pub use json::encode_json;
pub use text::{TextEncoder, encode, encode_openmetrics, encode_prometheus};

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text format.
    OpenMetrics,
}

/// Longest `Accept` header considered; longer ones get the default format.
pub const MAX_ACCEPT_LEN: usize = 4096;

impl Format {
    /// The HTTP `Content-Type` for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format an HTTP `Accept` header asks for: OpenMetrics when
    /// `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) has the
    /// highest quality, otherwise Prometheus text. Ties go to the type listed
    /// first; anything unparsable or over [`MAX_ACCEPT_LEN`] gets Prometheus text.
    ///
    /// ```
    /// use vitals::Format;
    /// let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::from_accept(prom), Format::OpenMetrics);
    /// assert_eq!(Format::from_accept("text/plain"), Format::Prometheus);
    /// assert_eq!(Format::from_accept(""), Format::Prometheus);
    /// ```
    pub fn from_accept(accept: &str) -> Format {
        if accept.len() > MAX_ACCEPT_LEN {
            return Format::Prometheus;
        }
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version_ok = true;
            for param in parts {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => {
                        q = v
                            .parse()
                            .ok()
                            .filter(|q: &f32| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version_ok = matches!(v, "1.0.0" | "0.0.1" | "0.0.4"),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/openmetrics-text" if version_ok => Format::OpenMetrics,
                "text/plain" | "*/*" | "text/*" => Format::Prometheus,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Prometheus, |(_, f)| f)
    }
}

/// Writes an `f64` as both formats accept it: shortest round-trip digits,
/// `NaN`, `+Inf`, `-Inf`.
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
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

pub(crate) fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        use Format::*;
        assert_eq!(
            Format::from_accept("application/openmetrics-text"),
            OpenMetrics
        );
        assert_eq!(
            Format::from_accept("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
            Prometheus
        );
        assert_eq!(
            Format::from_accept("application/openmetrics-text; version=2.0.0"),
            Prometheus
        );
        assert_eq!(
            Format::from_accept("application/openmetrics-text;q=0"),
            Prometheus
        );
        assert_eq!(Format::from_accept("application/json"), Prometheus);
        assert_eq!(Format::from_accept(";;;,,,=;q=abc"), Prometheus);
        let huge = format!("application/openmetrics-text,{}", "x".repeat(5000));
        assert_eq!(Format::from_accept(&huge), Prometheus);
    }

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
