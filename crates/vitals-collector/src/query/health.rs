//! A service's health: healthy, degraded or down, from its window's
//! figures, its policy (error rates, p95 objective) and when data last
//! arrived, with the reasons in words.

use super::figures::Figures;
use crate::config::{CollectorConfig, ResolvedPolicy};
use crate::model::UnixMs;
use serde::Serialize;

/// Health of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Within objectives.
    Healthy,
    /// Error rate or latency over the objective.
    Degraded,
    /// Most requests fail, or no data arrived for too long.
    Down,
}

/// Health from the window's figures, the service's policy and when data
/// last arrived; with the reasons in words.
pub fn health(
    f: &Figures,
    last_seen_ms: Option<UnixMs>,
    policy: &ResolvedPolicy,
    now: UnixMs,
) -> (Health, Vec<String>) {
    let mut reasons = Vec::new();
    let stale_ms = i64::try_from(policy.stale_after_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let stale = last_seen_ms.is_none_or(|t| now.saturating_sub(t) > stale_ms);
    if stale {
        reasons.push(format!("no data for over {} s", policy.stale_after_secs));
    }
    if f.requests > 0 && f.error_rate >= policy.down_error_rate {
        reasons.push(format!(
            "error rate {:.1} % ≥ {:.1} %",
            f.error_rate * 100.0,
            policy.down_error_rate * 100.0
        ));
        return (Health::Down, reasons);
    }
    if stale {
        return (Health::Down, reasons);
    }
    if f.requests > 0 && f.error_rate >= policy.degraded_error_rate {
        reasons.push(format!(
            "error rate {:.1} % ≥ {:.1} %",
            f.error_rate * 100.0,
            policy.degraded_error_rate * 100.0
        ));
    }
    if let Some(p95) = f.p95_ms
        && p95 > policy.objective_p95_ms
    {
        reasons.push(format!(
            "p95 {p95:.1} ms > objective {} ms",
            policy.objective_p95_ms
        ));
    }
    if reasons.is_empty() {
        (Health::Healthy, reasons)
    } else {
        (Health::Degraded, reasons)
    }
}

/// The policy of `service` (re-exported for handlers).
pub fn policy(config: &CollectorConfig, service: &str) -> ResolvedPolicy {
    config.policy(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BucketStats;

    const NOW: UnixMs = 1_700_000_000_000;

    /// Degraded from 10 % errors or a p95 over 200 ms, down from 40 %
    /// errors or after 60 s without data.
    fn policy() -> ResolvedPolicy {
        ResolvedPolicy {
            apdex_t_ms: 100.0,
            objective_p95_ms: 200.0,
            degraded_error_rate: 0.1,
            down_error_rate: 0.4,
            stale_after_secs: 60,
        }
    }

    /// Figures of `requests` requests with `errors` errors and a p95.
    fn figures(requests: u64, errors: u64, p95_ms: Option<f64>) -> Figures {
        let stats = BucketStats {
            count: requests,
            errors,
            last_seen_ms: NOW,
            ..BucketStats::default()
        };
        Figures {
            p95_ms,
            ..Figures::of(&stats, 60.0)
        }
    }

    /// Health of `f`, last seen `ago_ms` before now.
    fn health_of(f: &Figures, ago_ms: Option<i64>) -> (Health, Vec<String>) {
        health(f, ago_ms.map(|a| NOW - a), &policy(), NOW)
    }

    #[test]
    fn health_is_healthy_within_every_objective() {
        for f in [
            figures(1000, 0, Some(10.0)),
            figures(1000, 99, Some(199.9)),
            // Exactly at the objective is within it: only above degrades.
            figures(1000, 0, Some(200.0)),
            // No requests in the window, but data arrived recently.
            figures(0, 0, None),
        ] {
            assert_eq!(health_of(&f, Some(0)), (Health::Healthy, vec![]), "{f:?}");
        }
    }

    #[test]
    fn health_degrades_from_the_degraded_error_rate() {
        // Below: 9.9 %.
        assert_eq!(
            health_of(&figures(1000, 99, Some(10.0)), Some(0)).0,
            Health::Healthy
        );
        // At: 10 % (the rate is "from which", so at counts).
        let (h, reasons) = health_of(&figures(1000, 100, Some(10.0)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(reasons, ["error rate 10.0 % ≥ 10.0 %"]);
        // Above, up to just below the down rate.
        let (h, reasons) = health_of(&figures(1000, 399, Some(10.0)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(reasons, ["error rate 39.9 % ≥ 10.0 %"]);
    }

    #[test]
    fn health_is_down_from_the_down_error_rate() {
        for (errors, text) in [(400, "40.0"), (401, "40.1"), (1000, "100.0")] {
            let (h, reasons) = health_of(&figures(1000, errors, Some(10.0)), Some(0));
            assert_eq!(h, Health::Down, "{errors}");
            // Only the worse threshold is named.
            assert_eq!(reasons, [format!("error rate {text} % ≥ 40.0 %")]);
        }
    }

    #[test]
    fn health_degrades_above_the_p95_objective() {
        let (h, reasons) = health_of(&figures(1000, 0, Some(200.5)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(reasons, ["p95 200.5 ms > objective 200 ms"]);
        // Both causes are named.
        let (h, reasons) = health_of(&figures(1000, 150, Some(900.0)), Some(0));
        assert_eq!(h, Health::Degraded);
        assert_eq!(
            reasons,
            [
                "error rate 15.0 % ≥ 10.0 %",
                "p95 900.0 ms > objective 200 ms"
            ]
        );
    }

    #[test]
    fn health_is_down_when_data_stops() {
        let fine = figures(1000, 0, Some(10.0));
        // Fresh up to and including stale_after.
        for ago in [0, 59_999, 60_000] {
            assert_eq!(
                health_of(&fine, Some(ago)).0,
                Health::Healthy,
                "{ago} ms ago"
            );
        }
        for (f, ago) in [
            (fine.clone(), Some(60_001)),
            (fine.clone(), Some(86_400_000)),
            (fine.clone(), None),
            // Stale outranks a degraded error rate or latency.
            (figures(1000, 200, Some(900.0)), Some(60_001)),
            (figures(0, 0, None), None),
        ] {
            let (h, reasons) = health_of(&f, ago);
            assert_eq!(h, Health::Down, "{f:?} {ago:?}");
            assert_eq!(reasons, ["no data for over 60 s"], "{f:?} {ago:?}");
        }
        // Stale and failing: both causes.
        let (h, reasons) = health_of(&figures(10, 5, None), Some(120_000));
        assert_eq!(h, Health::Down);
        assert_eq!(
            reasons,
            ["no data for over 60 s", "error rate 50.0 % ≥ 40.0 %"]
        );
    }

    #[test]
    fn health_survives_extreme_times_and_policies() {
        let f = figures(1, 0, Some(1.0));
        let forever = ResolvedPolicy {
            stale_after_secs: u64::MAX,
            ..policy()
        };
        assert_eq!(health(&f, Some(i64::MIN), &forever, NOW).0, Health::Healthy);
        assert_eq!(health(&f, Some(i64::MIN), &policy(), NOW).0, Health::Down);
        // Data stamped in the future (a skewed clock) is fresh.
        assert_eq!(
            health(&f, Some(i64::MAX), &policy(), NOW).0,
            Health::Healthy
        );
    }
}
