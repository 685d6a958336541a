//! The two text exposition formats, their `Content-Type`, and picking
//! one from an HTTP `Accept` header.

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
}
