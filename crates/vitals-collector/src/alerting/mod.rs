//! Alerting: rules over the query API's numbers, alert states,
//! notifications to webhooks and to a real Alertmanager, and history.
//!
//! - Rules are checked in `config/alert_rule.rs` ([`crate::config::Rule`]);
//!   they come from the configuration (`[[alerting.rules]]`), from the
//!   API (stored, [`crate::Store::alert_rules`]) and, per service, the
//!   built-in health rule.
//! - `signals.rs`: a rule's value, read as the query API reads it.
//! - `state.rs`: one alert's state machine (inactive → pending → firing →
//!   resolved, `for`, `keep_firing_for`), pure.
//! - `due.rs`: which notification a receiver is owed, pure.
//! - `labels.rs`: alert labels, fingerprints, annotation templates, times.
//! - `payload.rs`: Alertmanager's webhook JSON and postable alerts.
//! - `delivery.rs`: one HTTP post with timeouts and retries.
//! - `metrics.rs`: the series in the collector's `/metrics`.
//! - `engine.rs`: [`Alerting`]: rounds, notification passes, persistence.

mod delivery;
mod due;
mod engine;
mod labels;
mod metrics;
mod payload;
mod signals;
mod state;

pub use due::{ReceiverKind, Timing, due};
pub use engine::{AlertKey, Alerting, ReceiverStatus, RoundReport, RuleView};
pub use labels::{alert_labels, fingerprint, render, rfc3339};
pub use metrics::AlertMetrics;
pub use payload::{
    OutAlert, PostableAlert, WebhookAlert, WebhookMessage, postable, webhook_message,
};
pub use signals::{Reading, TenantReader};
pub use state::{AlertState, Change, Sent, Tracked};
