//! Shared inputs for the side-by-side benchmarks in `benches/` and the
//! allocation count in `src/bin/alloc_per_series.rs`.
//!
//! Every library is fed exactly the same data: the same latencies, the same
//! classic bucket bounds and the same label values.

use std::time::Duration;

/// Warm-up time per benchmark (the machine is small and shared).
pub const WARM_UP: Duration = Duration::from_secs(1);
/// Measurement time per benchmark.
pub const MEASUREMENT: Duration = Duration::from_millis(2500);
/// Samples per benchmark.
pub const SAMPLES: usize = 40;

/// The criterion settings every bench file uses.
pub fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .sample_size(SAMPLES)
}

/// Classic histogram bucket bounds given to every library: vitals' defaults.
pub const BUCKETS: &[f64] = vitals::DEFAULT_BUCKETS;

/// Number of precomputed latencies (a power of two, for cheap cycling).
pub const LATENCY_COUNT: usize = 1024;

/// `LATENCY_COUNT` latencies in seconds, log-uniform between 100 µs and 2 s,
/// from a fixed seed so every run and every library sees the same values.
pub fn latencies() -> Vec<f64> {
    let (lo, hi) = (100e-6f64.ln(), 2.0f64.ln());
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..LATENCY_COUNT)
        .map(|_| (lo + (hi - lo) * rng.unit()).exp())
        .collect()
}

/// Number of distinct label combinations the dynamic lookups cycle through.
pub const COMBOS: usize = 64;

/// Label names of the one-label families.
pub const LABELS_1: [&str; 1] = ["method"];
/// Label names of the three-label families.
pub const LABELS_3: [&str; 3] = ["method", "status", "route"];

/// The static one-label value.
pub const STATIC_1: [&str; 1] = ["GET"];
/// The static three-label values.
pub const STATIC_3: [&str; 3] = ["GET", "200", "/api/v1/users"];

/// `COMBOS` distinct one-label values, as owned strings (as they would
/// arrive from a request).
pub fn combos_1() -> Vec<[String; 1]> {
    (0..COMBOS).map(|i| [format!("method_{i}")]).collect()
}

/// `COMBOS` distinct three-label value sets, as owned strings.
pub fn combos_3() -> Vec<[String; 3]> {
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    const STATUSES: [&str; 4] = ["200", "404", "500", "503"];
    (0..COMBOS)
        .map(|i| {
            [
                METHODS[i % 4].to_owned(),
                STATUSES[(i / 4) % 4].to_owned(),
                format!("/api/v1/resource_{}", i / 16),
            ]
        })
        .collect()
}

/// Label values for the render and allocation benchmarks: series `i` of `n`
/// gets `("shard_{i % 100}", "key_{i / 100}")`.
pub fn render_labels(n: usize) -> Vec<[String; 2]> {
    (0..n)
        .map(|i| [format!("shard_{}", i % 100), format!("key_{}", i / 100)])
        .collect()
}

/// Label names for [`render_labels`].
pub const RENDER_LABELS: [&str; 2] = ["shard", "key"];

/// A tiny deterministic generator (xorshift64*), enough for test inputs.
struct XorShift(u64);

impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_in_range_and_distinct() {
        let l = latencies();
        assert_eq!(l.len(), LATENCY_COUNT);
        assert!(l.iter().all(|&v| (100e-6..=2.0).contains(&v)));
        let c3 = combos_3();
        let set: std::collections::HashSet<_> = c3.iter().collect();
        assert_eq!(set.len(), COMBOS);
        let r = render_labels(1000);
        let set: std::collections::HashSet<_> = r.iter().collect();
        assert_eq!(set.len(), 1000);
    }
}

/// Label-set types for the peers whose families are keyed by a struct
/// (`prometheus-client` and `fastmetrics`).
pub mod labels {
    use fastmetrics::encoder::{EncodeLabelSet, EncodeLabelValue, LabelSetEncoder};
    use fastmetrics::raw::LabelSetSchema;

    /// prometheus-client: one static label.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
    pub struct PcStatic1 {
        /// The `method` label.
        pub method: &'static str,
    }

    /// prometheus-client: three static labels.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
    pub struct PcStatic3 {
        /// The `method` label.
        pub method: &'static str,
        /// The `status` label.
        pub status: &'static str,
        /// The `route` label.
        pub route: &'static str,
    }

    /// prometheus-client: one owned label.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
    pub struct PcOwned1 {
        /// The `method` label.
        pub method: String,
    }

    /// prometheus-client: three owned labels.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
    pub struct PcOwned3 {
        /// The `method` label.
        pub method: String,
        /// The `status` label.
        pub status: String,
        /// The `route` label.
        pub route: String,
    }

    /// prometheus-client: the two render labels.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
    pub struct PcRender {
        /// The `shard` label.
        pub shard: String,
        /// The `key` label.
        pub key: String,
    }

    /// fastmetrics: one label (`&'static str` or `String` values).
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Fm1<S> {
        /// The `method` label.
        pub method: S,
    }

    /// fastmetrics: three labels.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Fm3<S> {
        /// The `method` label.
        pub method: S,
        /// The `status` label.
        pub status: S,
        /// The `route` label.
        pub route: S,
    }

    /// fastmetrics: the two render labels.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    pub struct FmRender {
        /// The `shard` label.
        pub shard: String,
        /// The `key` label.
        pub key: String,
    }

    impl<S> LabelSetSchema for Fm1<S> {
        fn names() -> Option<&'static [&'static str]> {
            Some(&super::LABELS_1)
        }
    }

    impl<S: EncodeLabelValue> EncodeLabelSet for Fm1<S> {
        fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> fastmetrics::error::Result<()> {
            encoder.encode(&("method", &self.method))
        }
    }

    impl<S> LabelSetSchema for Fm3<S> {
        fn names() -> Option<&'static [&'static str]> {
            Some(&super::LABELS_3)
        }
    }

    impl<S: EncodeLabelValue> EncodeLabelSet for Fm3<S> {
        fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> fastmetrics::error::Result<()> {
            encoder.encode(&("method", &self.method))?;
            encoder.encode(&("status", &self.status))?;
            encoder.encode(&("route", &self.route))
        }
    }

    impl LabelSetSchema for FmRender {
        fn names() -> Option<&'static [&'static str]> {
            Some(&super::RENDER_LABELS)
        }
    }

    impl EncodeLabelSet for FmRender {
        fn encode(&self, encoder: &mut dyn LabelSetEncoder) -> fastmetrics::error::Result<()> {
            encoder.encode(&("shard", &self.shard))?;
            encoder.encode(&("key", &self.key))
        }
    }
}
