//! Alerting's series in the collector's own `/metrics`: evaluation
//! rounds, alerts by state, state changes, and notifications delivered
//! and failed per receiver.

use super::state::AlertState;
use vitals::{CounterVec, FloatGauge, GaugeVec, Registry};

/// The alerting series, registered once per collector.
#[derive(Clone)]
pub struct AlertMetrics {
    /// Rounds by outcome (`ok`, `failed`).
    pub rounds: CounterVec,
    /// The last round's duration, seconds.
    pub round_seconds: FloatGauge,
    /// Alerts by state after the last round.
    pub alerts: GaugeVec,
    /// State changes, by the state entered.
    pub transitions: CounterVec,
    /// Notifications by receiver and outcome (`delivered`, `failed`).
    pub notifications: CounterVec,
    /// Failed delivery attempts (each retry too), by receiver.
    pub delivery_failures: CounterVec,
}

impl AlertMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &Registry) -> Result<AlertMetrics, vitals::Error> {
        let m = AlertMetrics {
            rounds: registry.counter_vec(
                (
                    "vitals_collector_alert_rounds_total",
                    "Alert evaluation rounds, by outcome (ok, failed)",
                ),
                &["outcome"],
            )?,
            round_seconds: registry.float_gauge((
                "vitals_collector_alert_round_seconds",
                "How long the last alert evaluation round took",
            ))?,
            alerts: registry.gauge_vec(
                (
                    "vitals_collector_alerts",
                    "Alerts by state (inactive, pending, firing, resolved) after the last round",
                ),
                &["state"],
            )?,
            transitions: registry.counter_vec(
                (
                    "vitals_collector_alert_transitions_total",
                    "Alert state changes, by the state entered",
                ),
                &["to"],
            )?,
            notifications: registry.counter_vec(
                (
                    "vitals_collector_alert_notifications_total",
                    "Alert notifications by receiver and outcome (delivered, failed after every attempt)",
                ),
                &["receiver", "outcome"],
            )?,
            delivery_failures: registry.counter_vec(
                (
                    "vitals_collector_alert_delivery_failures_total",
                    "Failed alert delivery attempts (each retry counts), by receiver",
                ),
                &["receiver"],
            )?,
        };
        for s in [
            AlertState::Inactive,
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
        ] {
            m.alerts.get(&[s.as_str()]).set(0);
        }
        Ok(m)
    }
}
