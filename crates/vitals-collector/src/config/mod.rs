//! The collector's configuration: what `vitals collector` reads from its
//! flags, environment and `--config` TOML file. Every field has a default,
//! so an empty file (or none) is a working configuration; every key has a
//! variable too ([`environment`]).

pub mod alert_rule;
pub mod alerting;
mod duration;
pub mod environment;
mod error;
mod remote_write;

pub use alert_rule::{NameLimits, Op, Rule, RuleSource, RuleSpec, Signal};
pub use alerting::{AlertingConfig, AlertingSettings, AlertmanagerReceiver, WebhookReceiver};
pub use duration::parse_duration_ms;
pub use error::ConfigError;
pub use remote_write::{DEFAULT_BUCKETS_SECONDS, RemoteWriteConfig, RemoteWriteTarget};

use crate::rollup::Retention;
use crate::store::HotTierConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// Default store URL.
pub const DEFAULT_STORE: &str = "sqlite://vitals.db";
/// Longest `stale_after_secs` accepted: the longest query window (400
/// days); a service silent for longer has no data left to show anyway.
pub const MAX_STALE_AFTER_SECS: u64 = 400 * 86_400;

/// Everything the collector can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Address to listen on (`127.0.0.1:7070`).
    pub listen: String,
    /// Store URL: `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
    pub store: String,
    /// Optional shared hot tier, `redis://…`.
    pub cache: Option<String>,
    /// How the hot tier behaves (used only with `cache`).
    pub hot_tier: HotTierSettings,
    /// Seconds between rollup passes.
    pub rollup_interval_secs: u64,
    /// How long each resolution is kept.
    pub retention: RetentionConfig,
    /// Input limits.
    pub limits: Limits,
    /// Health and Apdex defaults for services without their own entry.
    pub defaults: ServicePolicy,
    /// Per-service overrides, by service name.
    pub services: BTreeMap<String, ServicePolicy>,
    /// Prometheus remote-write receivers (`[[remote_write]]`), none by default.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Alert rules, receivers and notification timing.
    pub alerting: AlertingConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: DEFAULT_LISTEN.into(),
            store: DEFAULT_STORE.into(),
            cache: None,
            hot_tier: HotTierSettings::default(),
            rollup_interval_secs: 10,
            retention: RetentionConfig::default(),
            limits: Limits::default(),
            defaults: ServicePolicy::default(),
            services: BTreeMap::new(),
            remote_write: Vec::new(),
            alerting: AlertingConfig::default(),
        }
    }
}

/// Built-in error rate from which a service is degraded.
const DEGRADED_ERROR_RATE: f64 = 0.05;
/// Built-in error rate from which a service is down.
const DOWN_ERROR_RATE: f64 = 0.5;

impl CollectorConfig {
    /// Parses a TOML configuration; unknown keys are errors, so a typo is
    /// reported instead of silently ignored.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: CollectorConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values a type cannot: positive durations, sane limits.
    pub fn validate(&self) -> Result<(), String> {
        self.retention.resolve()?;
        self.hot_tier.resolve()?;
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.remote_write.iter().enumerate() {
            let target = r.resolve(i)?;
            if !names.insert(target.config.name) {
                return Err(format!(
                    "remote_write[{i}]: another receiver has the same name; give each its own `name`"
                ));
            }
        }

        self.alerting_settings()?;
        if !(1..=1_000_000).contains(&self.limits.live_buffer) {
            return Err(format!(
                "limits.live_buffer must be 1 to 1000000, got {}",
                self.limits.live_buffer
            ));
        }
        if self.rollup_interval_secs == 0 || self.rollup_interval_secs > 3600 {
            return Err(format!(
                "rollup_interval_secs must be 1..=3600, got {}",
                self.rollup_interval_secs
            ));
        }
        for (name, p) in std::iter::once(("defaults".to_owned(), &self.defaults)).chain(
            self.services
                .iter()
                .map(|(k, v)| (format!("services.{k}"), v)),
        ) {
            for (what, v) in [
                ("apdex_t_ms", p.apdex_t_ms),
                ("objective_p95_ms", p.objective_p95_ms),
                ("degraded_error_rate", p.degraded_error_rate),
                ("down_error_rate", p.down_error_rate),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v > 0.0)
                {
                    return Err(format!("{name}.{what} must be a positive number, got {v}"));
                }
            }
            for (what, v) in [
                ("degraded_error_rate", p.degraded_error_rate),
                ("down_error_rate", p.down_error_rate),
            ] {
                if let Some(v) = v
                    && v > 1.0
                {
                    return Err(format!(
                        "{name}.{what} is a fraction of requests, at most 1, got {v}"
                    ));
                }
            }
            let (degraded, down) = match name.strip_prefix("services.") {
                Some(service) => {
                    let r = self.policy(service);
                    (r.degraded_error_rate, r.down_error_rate)
                }
                None => (
                    p.degraded_error_rate.unwrap_or(DEGRADED_ERROR_RATE),
                    p.down_error_rate.unwrap_or(DOWN_ERROR_RATE),
                ),
            };
            if degraded > down {
                return Err(format!(
                    "{name}: degraded_error_rate {degraded} is above down_error_rate {down}, \
                     so a service would be down before it is degraded"
                ));
            }
            if let Some(secs) = p.stale_after_secs
                && !(1..=MAX_STALE_AFTER_SECS).contains(&secs)
            {
                return Err(format!(
                    "{name}.stale_after_secs must be 1 to {MAX_STALE_AFTER_SECS} (400 days), got {secs}"
                ));
            }
        }
        Ok(())
    }

    /// The `[alerting]` section checked, with the rules' names bounded by
    /// `[limits]`.
    pub fn alerting_settings(&self) -> Result<AlertingSettings, String> {
        self.alerting.resolve(&self.listen, self.name_limits())
    }

    /// The name limits alert rules are checked against.
    pub fn name_limits(&self) -> NameLimits {
        NameLimits {
            max_name_len: self.limits.max_name_len,
            max_route_len: self.limits.max_route_len,
        }
    }

    /// The policy for `service`: its own entry over the defaults over the
    /// built-in values.
    pub fn policy(&self, service: &str) -> ResolvedPolicy {
        let own = self.services.get(service);
        let pick = |f: fn(&ServicePolicy) -> Option<f64>, builtin: f64| {
            own.and_then(f).or(f(&self.defaults)).unwrap_or(builtin)
        };
        ResolvedPolicy {
            apdex_t_ms: pick(|p| p.apdex_t_ms, vitals::wire::DEFAULT_APDEX_T_MS),
            objective_p95_ms: pick(|p| p.objective_p95_ms, 1000.0),
            degraded_error_rate: pick(|p| p.degraded_error_rate, DEGRADED_ERROR_RATE),
            down_error_rate: pick(|p| p.down_error_rate, DOWN_ERROR_RATE),
            stale_after_secs: own
                .and_then(|p| p.stale_after_secs)
                .or(self.defaults.stale_after_secs)
                .unwrap_or(300),
        }
    }
}

/// Apdex threshold and health objectives of a service; unset fields fall
/// back to `[defaults]`, then to the built-in values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicePolicy {
    /// Apdex threshold T in ms (built-in 500).
    pub apdex_t_ms: Option<f64>,
    /// p95 latency objective in ms; above it the service is degraded (built-in 1000).
    pub objective_p95_ms: Option<f64>,
    /// Error rate (0..1) from which the service is degraded (built-in 0.05).
    pub degraded_error_rate: Option<f64>,
    /// Error rate (0..1) from which the service is down (built-in 0.5).
    pub down_error_rate: Option<f64>,
    /// Seconds without data after which the service is down (built-in 300).
    pub stale_after_secs: Option<u64>,
}

/// A [`ServicePolicy`] with every value decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedPolicy {
    /// Apdex threshold T in ms.
    pub apdex_t_ms: f64,
    /// p95 objective in ms.
    pub objective_p95_ms: f64,
    /// Degraded from this error rate.
    pub degraded_error_rate: f64,
    /// Down from this error rate.
    pub down_error_rate: f64,
    /// Down after this many seconds without data.
    pub stale_after_secs: u64,
}

/// Retention per resolution as durations like `2d`, `36h`, `90m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Minute buckets (default `2d`).
    pub minute: String,
    /// Five-minute buckets (default `14d`).
    pub five_minutes: String,
    /// Hour buckets (default `400d`).
    pub hour: String,
    /// Sampled requests (default `2d`).
    pub samples: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            minute: "2d".into(),
            five_minutes: "14d".into(),
            hour: "400d".into(),
            samples: "2d".into(),
        }
    }
}

impl RetentionConfig {
    /// The retention in milliseconds, or what is wrong with it.
    pub fn resolve(&self) -> Result<Retention, String> {
        let parse = |what: &str, v: &str| {
            parse_duration_ms(v).map_err(|e| format!("retention.{what}: {e}"))
        };
        let r = Retention {
            minute_ms: parse("minute", &self.minute)?,
            five_minutes_ms: parse("five_minutes", &self.five_minutes)?,
            hour_ms: parse("hour", &self.hour)?,
            samples_ms: parse("samples", &self.samples)?,
        };
        if r.minute_ms < 3_600_000 {
            return Err(
                "retention.minute must be at least 1h (rollups read minute buckets)".into(),
            );
        }
        if r.five_minutes_ms < 3 * 3_600_000 {
            return Err(
                "retention.five_minutes must be at least 3h (hour rollups read them)".into(),
            );
        }
        Ok(r)
    }
}

/// Settings of the Redis hot tier, as durations like `15m`, `5s`, `1h`
/// (`[hot_tier]` in the TOML file, `--hot-*` flags). Checked even without
/// a cache, so a mistake shows before it matters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotTierSettings {
    /// Recent minutes kept in Redis and read from there: whole minutes,
    /// `1m` to `1d` (default `15m`). Older data goes straight to the store.
    pub window: String,
    /// Pause between background flush passes, `1s` to `10m` (default `5s`).
    pub flush_interval: String,
    /// How long after a minute ends it is flushed, so most of its data
    /// has arrived: `0s` up to, not including, `1m` (default `5s`).
    pub flush_grace: String,
    /// Age at which a sealed snapshot counts as an interrupted flush and
    /// any collector takes it over, `1s` to `1h` (default `30s`).
    pub orphan_after: String,
    /// How long batch ids are remembered for deduplication, `1m` to `30d`
    /// (default `1h`); a retry later than that counts again.
    pub dedup_window: String,
    /// Recent samples kept per service, 1 to 100000 (default 1000).
    pub recent_samples: usize,
}

impl Default for HotTierSettings {
    fn default() -> Self {
        HotTierSettings {
            window: "15m".into(),
            flush_interval: "5s".into(),
            flush_grace: "5s".into(),
            orphan_after: "30s".into(),
            dedup_window: "1h".into(),
            recent_samples: 1000,
        }
    }
}

impl HotTierSettings {
    /// The hot tier configuration these settings make (default key
    /// prefix; the cache URL's `prefix=` sets it), or what is wrong.
    pub fn resolve(&self) -> Result<HotTierConfig, String> {
        const SECOND: i64 = 1_000;
        const MINUTE: i64 = 60 * SECOND;
        const HOUR: i64 = 60 * MINUTE;
        let within = |what: &str, text: &str, min: i64, max: i64, range: &str| {
            let ms = if matches!(text.trim(), "0" | "0s") && min == 0 {
                0
            } else {
                parse_duration_ms(text).map_err(|e| format!("hot_tier.{what}: {e}"))?
            };
            if ms < min || ms > max {
                return Err(format!("hot_tier.{what} must be {range}, got {text:?}"));
            }
            Ok(ms)
        };
        let window = within("window", &self.window, MINUTE, 24 * HOUR, "1m to 1d")?;
        if window % MINUTE != 0 {
            return Err(format!(
                "hot_tier.window must be a whole number of minutes (like 15m), got {:?}",
                self.window
            ));
        }
        let flush_interval = within(
            "flush_interval",
            &self.flush_interval,
            SECOND,
            10 * MINUTE,
            "1s to 10m",
        )?;
        let flush_grace = within(
            "flush_grace",
            &self.flush_grace,
            0,
            MINUTE - 1,
            "less than 1m (0s to 59s)",
        )?;
        let orphan_after = within("orphan_after", &self.orphan_after, SECOND, HOUR, "1s to 1h")?;
        let dedup = within(
            "dedup_window",
            &self.dedup_window,
            MINUTE,
            30 * 24 * HOUR,
            "1m to 30d",
        )?;
        if !(1..=100_000).contains(&self.recent_samples) {
            return Err(format!(
                "hot_tier.recent_samples must be 1 to 100000, got {}",
                self.recent_samples
            ));
        }
        Ok(HotTierConfig {
            window_ms: window,
            flush_interval: Some(std::time::Duration::from_millis(flush_interval as u64)),
            flush_grace_ms: flush_grace,
            orphan_after_ms: orphan_after,
            dedup_ms: Some(dedup),
            recent_cap: self.recent_samples,
            ..HotTierConfig::default()
        })
    }
}

/// Limits on what ingest accepts; each refusal is a clear error and a
/// counted `vitals_rejected_total{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body as sent (compressed or not), bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes.
    pub max_decompressed_bytes: usize,
    /// Most route aggregates in one `/v1/ingest` batch.
    pub max_routes_per_batch: usize,
    /// Most sampled requests in one `/v1/ingest` batch.
    pub max_samples_per_batch: usize,
    /// Most custom metrics in one `/v1/ingest` batch.
    pub max_custom_per_batch: usize,
    /// Most records in one `/v1/requests` body.
    pub max_records_per_batch: usize,
    /// How many records of a `/v1/requests` body are also kept as samples.
    pub samples_per_request_batch: usize,
    /// Distinct routes per service; more are folded into `__overflow__`.
    pub max_routes_per_service: usize,
    /// Distinct services per tenant; data for more is refused.
    pub max_services_per_tenant: usize,
    /// Distinct custom series (name and label set; instances not counted)
    /// per service; values of further series are dropped and counted in
    /// `vitals_rejected_total{reason="custom_series_limit"}`.
    pub max_custom_series_per_service: usize,
    /// Longest service, instance, caller or metric name, bytes.
    pub max_name_len: usize,
    /// Longest route template or path, bytes.
    pub max_route_len: usize,
    /// Largest request count in one aggregate.
    pub max_count: u64,
    /// Largest duration, ms (default one hour).
    pub max_duration_ms: u64,
    /// How far in the future a timestamp may be (clock skew), ms.
    pub max_future_ms: u64,
    /// Most `GET /v1/live` streams open at once, per collector; more are
    /// refused with a 503 `too_many_live_clients`.
    pub max_live_clients: usize,
    /// How many events a `GET /v1/live` stream may fall behind before it
    /// misses some (it is told how many).
    pub live_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_decompressed_bytes: 16 << 20,
            max_routes_per_batch: 10_000,
            max_samples_per_batch: 1_000,
            max_custom_per_batch: 1_000,
            max_records_per_batch: 10_000,
            samples_per_request_batch: 100,
            max_routes_per_service: 1_000,
            max_services_per_tenant: 1_000,
            max_custom_series_per_service: 1_000,
            max_name_len: 128,
            max_route_len: 256,
            max_count: 1_000_000_000,
            max_duration_ms: 3_600_000,
            max_future_ms: 300_000,
            max_live_clients: 64,
            live_buffer: 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse_clearly() {
        assert_eq!(parse_duration_ms("15m"), Ok(900_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        for bad in [
            "",
            "m",
            "15",
            "15x",
            "-1m",
            "0s",
            "99999999999999999999m",
            "1.5h",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hot_tier_settings_default_to_the_hot_tier_defaults_and_are_checked() {
        assert_eq!(
            HotTierSettings::default().resolve(),
            Ok(HotTierConfig::default())
        );
        let c = CollectorConfig::from_toml(
            r#"
            [hot_tier]
            window = "2m"
            flush_interval = "1s"
            flush_grace = "0s"
            orphan_after = "10s"
            dedup_window = "2h"
            recent_samples = 50
            "#,
        )
        .expect("valid config");
        let hot = c.hot_tier.resolve().expect("resolves");
        assert_eq!(hot.window_ms, 120_000);
        assert_eq!(hot.flush_interval, Some(std::time::Duration::from_secs(1)));
        assert_eq!(hot.flush_grace_ms, 0);
        assert_eq!(hot.orphan_after_ms, 10_000);
        assert_eq!(hot.dedup_ms, Some(7_200_000));
        assert_eq!(hot.recent_cap, 50);
        for (toml, want) in [
            ("window = \"90s\"", "whole number of minutes"),
            ("window = \"30s\"", "1m to 1d"),
            ("window = \"2d\"", "1m to 1d"),
            ("window = \"15\"", "no unit"),
            ("flush_grace = \"1m\"", "less than 1m"),
            ("flush_grace = \"-1s\"", "flush_grace"),
            ("flush_interval = \"0s\"", "flush_interval"),
            ("orphan_after = \"2h\"", "1s to 1h"),
            ("dedup_window = \"30s\"", "1m to 30d"),
            ("recent_samples = 0", "1 to 100000"),
            ("windw = \"15m\"", "windw"),
        ] {
            let err = CollectorConfig::from_toml(&format!("[hot_tier]\n{toml}")).expect_err(toml);
            assert!(err.contains(want), "{toml}: {err}");
        }
    }

    #[test]
    fn toml_config_overrides_defaults_and_refuses_typos() {
        let c = CollectorConfig::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            [retention]
            minute = "3d"
            [services.checkout]
            apdex_t_ms = 200.0
            "#,
        )
        .expect("valid config");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.store, DEFAULT_STORE);
        assert_eq!(
            c.retention.resolve().map(|r| r.minute_ms),
            Ok(3 * 86_400_000)
        );
        assert_eq!(c.policy("checkout").apdex_t_ms, 200.0);
        assert_eq!(c.policy("other").apdex_t_ms, 500.0);
        let err = CollectorConfig::from_toml("listne = \"x\"").expect_err("typo");
        assert!(err.contains("listne"), "{err}");
        let err =
            CollectorConfig::from_toml("[retention]\nminute = \"5m\"").expect_err("too short");
        assert!(err.contains("at least 1h"), "{err}");
        let err =
            CollectorConfig::from_toml("[defaults]\napdex_t_ms = -1.0").expect_err("negative");
        assert!(err.contains("positive"), "{err}");
        for bad in ["0", "34560001", "9223372036854775807"] {
            let err =
                CollectorConfig::from_toml(&format!("[services.api]\nstale_after_secs = {bad}"))
                    .expect_err(bad);
            assert!(err.contains("api.stale_after_secs must be 1 to"), "{err}");
        }
        let c = CollectorConfig::from_toml(
            "[defaults]\nstale_after_secs = 60\n[services.api]\nstale_after_secs = 34560000",
        )
        .expect("in range");
        assert_eq!(c.policy("api").stale_after_secs, MAX_STALE_AFTER_SECS);
        assert_eq!(c.policy("other").stale_after_secs, 60);
    }

    #[test]
    fn error_rates_are_fractions_and_degraded_comes_before_down() {
        for (toml, want) in [
            (
                "[defaults]\ndown_error_rate = 1.5",
                "defaults.down_error_rate is a fraction of requests, at most 1, got 1.5",
            ),
            (
                "[services.api]\ndegraded_error_rate = 2.0",
                "services.api.degraded_error_rate is a fraction of requests",
            ),
            // Above the built-in down rate (0.5).
            (
                "[defaults]\ndegraded_error_rate = 0.6",
                "defaults: degraded_error_rate 0.6 is above down_error_rate 0.5",
            ),
            // A service's own rate against the defaults' other one.
            (
                "[defaults]\ndown_error_rate = 0.2\n[services.api]\ndegraded_error_rate = 0.3",
                "services.api: degraded_error_rate 0.3 is above down_error_rate 0.2",
            ),
        ] {
            let err = CollectorConfig::from_toml(toml).expect_err(toml);
            assert!(err.contains(want), "{toml}: {err}");
        }
        let c = CollectorConfig::from_toml(
            "[defaults]\ndegraded_error_rate = 0.5\ndown_error_rate = 0.5\n\
             [services.api]\ndegraded_error_rate = 0.01\ndown_error_rate = 1.0",
        )
        .expect("equal rates and a rate of 1 are fine");
        assert_eq!(c.policy("api").down_error_rate, 1.0);
    }
}
