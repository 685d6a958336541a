//! [`StatsdConfig`]: where and how the StatsD exporter sends, with every
//! default. A plain settings type; the exporter (`exporter.rs`) reads it.

use std::time::Duration;

/// Default largest datagram: 1432 bytes, what fits in one Ethernet frame
/// (1500) after the IPv4 and UDP headers with room for tunnels, the size
/// the DogStatsD clients use.
pub const DEFAULT_MAX_DATAGRAM: usize = 1432;
/// Default interval between two sends.
pub const DEFAULT_STATSD_INTERVAL: Duration = Duration::from_secs(10);
/// Smallest datagram limit accepted (a shorter one could hold no line).
pub const MIN_DATAGRAM: usize = 64;

/// How a histogram's values are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistogramType {
    /// `|ms`: a StatsD timer, in milliseconds (a histogram in seconds is
    /// multiplied by 1000). The default: every StatsD server knows it.
    #[default]
    Timer,
    /// `|h`: a DogStatsD histogram, in the histogram's own unit.
    Histogram,
    /// `|d`: a DogStatsD distribution, in the histogram's own unit.
    Distribution,
}

impl HistogramType {
    /// The type's suffix on the wire.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            HistogramType::Timer => "ms",
            HistogramType::Histogram => "h",
            HistogramType::Distribution => "d",
        }
    }
}

/// Settings of a [`StatsdExporter`](crate::statsd::StatsdExporter).
///
/// ```
/// use std::time::Duration;
/// use vitals_server::statsd::{HistogramType, StatsdConfig};
/// let config = StatsdConfig::new("127.0.0.1:8125")
///     .prefix("myapp")
///     .interval(Duration::from_secs(5))
///     .max_datagram(1432)
///     .histograms(HistogramType::Distribution);
/// # drop(config);
/// ```
#[derive(Debug, Clone)]
pub struct StatsdConfig {
    pub(crate) target: String,
    pub(crate) prefix: String,
    pub(crate) interval: Duration,
    pub(crate) max_datagram: usize,
    pub(crate) histograms: HistogramType,
    pub(crate) tags: bool,
}

impl StatsdConfig {
    /// Sends to `target` (`host:port`, resolved when the exporter starts).
    pub fn new(target: impl Into<String>) -> Self {
        StatsdConfig {
            target: target.into(),
            prefix: String::new(),
            interval: DEFAULT_STATSD_INTERVAL,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            histograms: HistogramType::default(),
            tags: true,
        }
    }

    /// Puts `prefix.` before every metric name (empty: none).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Time between two sends (default 10 s, at least 10 ms).
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every.max(Duration::from_millis(10));
        self
    }

    /// Largest UDP payload in bytes (default [`DEFAULT_MAX_DATAGRAM`], at
    /// least [`MIN_DATAGRAM`]). Lines are batched up to it; a line longer
    /// than it is dropped and counted.
    pub fn max_datagram(mut self, bytes: usize) -> Self {
        self.max_datagram = bytes.max(MIN_DATAGRAM);
        self
    }

    /// How histograms are sent (default [`HistogramType::Timer`]).
    pub fn histograms(mut self, kind: HistogramType) -> Self {
        self.histograms = kind;
        self
    }

    /// Whether labels are sent as DogStatsD tags (`|#method:GET`, the
    /// default). Without tags every series of a family is sent under the
    /// one name, which a StatsD server then adds up (counters) or
    /// overwrites (gauges).
    pub fn tags(mut self, on: bool) -> Self {
        self.tags = on;
        self
    }
}
