//! Alerting data as the store keeps it: rules written over the API
//! ([`StoredRule`]), the state of each alert between evaluation rounds
//! ([`StoredAlert`]) and the history of state changes ([`AlertEvent`],
//! read with an [`AlertHistoryQuery`]). Rule specs and alert states are
//! kept as JSON text, so the store needs no column per field and a new
//! field needs no migration; the alerting layer owns their meaning.

use super::period::UnixMs;
use serde::{Deserialize, Serialize};

/// An alert rule created over the API, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRule {
    /// The tenant whose admin key wrote it.
    pub tenant: String,
    /// Its name, unique per tenant.
    pub name: String,
    /// The rule's spec as JSON (`alerting::RuleSpec`).
    pub spec: String,
    /// When it was last written, ms since the epoch.
    pub updated_ms: UnixMs,
}

/// One alert's state between evaluation rounds: one per (tenant, rule,
/// service), so a restart continues where the last round stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// The tenant.
    pub tenant: String,
    /// The rule's name.
    pub rule: String,
    /// The service the alert is about.
    pub service: String,
    /// The state as JSON (`alerting::Tracked`).
    pub state: String,
}

/// One state change of one alert, kept as history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The tenant.
    pub tenant: String,
    /// The rule's name.
    pub rule: String,
    /// The service.
    pub service: String,
    /// When the change happened (the evaluation time), ms since the epoch.
    pub at_ms: UnixMs,
    /// The state before: `inactive`, `pending`, `firing` or `resolved`.
    pub from: String,
    /// The state after.
    pub to: String,
    /// The rule's signal value at the change, if it had one.
    pub value: Option<f64>,
    /// The alert's labels as a JSON object.
    pub labels: String,
}

/// What `Store::alert_history` reads: one tenant's changes at or after
/// `since_ms`, optionally of one resulting state and one service, newest
/// first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertHistoryQuery {
    /// The tenant.
    pub tenant: String,
    /// Only changes into this state.
    pub state: Option<String>,
    /// Only this service's changes.
    pub service: Option<String>,
    /// Only changes at or after this time.
    pub since_ms: UnixMs,
    /// At most this many, newest first.
    pub limit: usize,
}
