//! The JSON receivers get: Alertmanager's webhook message (version "4"),
//! so anything that takes Alertmanager's webhooks takes ours, and
//! Alertmanager's postable alerts for its `POST /api/v2/alerts`.

use super::labels::{ZERO_TIME, fingerprint, rfc3339};
use super::state::AlertState;
use crate::model::UnixMs;
use serde::Serialize;
use std::collections::BTreeMap;

/// One alert as a notification carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutAlert {
    /// `Firing` or `Resolved`.
    pub state: AlertState,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it began firing.
    pub starts_ms: UnixMs,
    /// When it resolved (resolved alerts).
    pub ends_ms: Option<UnixMs>,
    /// The link back to the collector's alerts page.
    pub generator_url: String,
}

/// An alert of a webhook message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    /// Link to the alert's source.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Hash of the labels.
    pub fingerprint: String,
}

/// Alertmanager's webhook message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    /// Always "4".
    pub version: &'static str,
    /// The group's key: `{}:{alertname="…", service="…", tenant="…"}`.
    pub group_key: String,
    /// Alerts left out by the receiver's `max_alerts`.
    pub truncated_alerts: usize,
    /// `firing` when any alert fires, else `resolved`.
    pub status: &'static str,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is made by.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has with the same value.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has with the same value.
    pub common_annotations: BTreeMap<String, String>,
    /// The collector's address.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// The labels a group is made by: rule, service and tenant.
pub const GROUP_BY: [&str; 3] = ["alertname", "service", "tenant"];

fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn status(state: AlertState) -> &'static str {
    if state == AlertState::Firing {
        "firing"
    } else {
        "resolved"
    }
}

/// The webhook message of one group's `alerts` for `receiver` (at most
/// `max_alerts` of them when not 0, firing ones first).
pub fn webhook_message(
    receiver: &str,
    external_url: &str,
    alerts: &[OutAlert],
    max_alerts: usize,
) -> WebhookMessage {
    let labels: Vec<&BTreeMap<String, String>> = alerts.iter().map(|a| &a.labels).collect();
    let annotations: Vec<&BTreeMap<String, String>> =
        alerts.iter().map(|a| &a.annotations).collect();
    let common_labels = common(&labels);
    let group_labels: BTreeMap<String, String> = common_labels
        .iter()
        .filter(|(k, _)| GROUP_BY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let group_key = format!(
        "{{}}:{{{}}}",
        group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut sorted: Vec<&OutAlert> = alerts.iter().collect();
    sorted.sort_by_key(|a| a.state != AlertState::Firing);
    let keep = if max_alerts == 0 {
        sorted.len()
    } else {
        max_alerts.min(sorted.len())
    };
    WebhookMessage {
        version: "4",
        group_key,
        truncated_alerts: sorted.len() - keep,
        status: if alerts.iter().any(|a| a.state == AlertState::Firing) {
            "firing"
        } else {
            "resolved"
        },
        receiver: receiver.to_owned(),
        group_labels,
        common_labels,
        common_annotations: common(&annotations),
        external_url: external_url.to_owned(),
        alerts: sorted[..keep]
            .iter()
            .map(|a| WebhookAlert {
                status: status(a.state),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: rfc3339(a.starts_ms),
                ends_at: match (a.state, a.ends_ms) {
                    (AlertState::Resolved, Some(e)) => rfc3339(e),
                    _ => ZERO_TIME.to_owned(),
                },
                generator_url: a.generator_url.clone(),
                fingerprint: fingerprint(&a.labels),
            })
            .collect(),
    }
}

/// An alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339: the resolution time, or while firing a time a few
    /// re-sends ahead, after which Alertmanager resolves the alert itself
    /// if the collector went away (as Prometheus does).
    pub ends_at: String,
    /// Link to the alert's source.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// The postable form of `a` at `now`.
pub fn postable(a: &OutAlert, now: UnixMs, resend_interval_ms: i64) -> PostableAlert {
    let ends = match (a.state, a.ends_ms) {
        (AlertState::Resolved, Some(e)) => e,
        _ => now.saturating_add(resend_interval_ms.saturating_mul(4)),
    };
    PostableAlert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: rfc3339(a.starts_ms),
        ends_at: rfc3339(ends),
        generator_url: a.generator_url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(state: AlertState, service: &str) -> OutAlert {
        OutAlert {
            state,
            labels: [
                ("alertname".to_string(), "errors".to_string()),
                ("service".to_string(), service.to_string()),
                ("tenant".to_string(), "acme".to_string()),
                ("severity".to_string(), "page".to_string()),
            ]
            .into(),
            annotations: [("summary".to_string(), format!("{service} fails"))].into(),
            starts_ms: 0,
            ends_ms: (state == AlertState::Resolved).then_some(60_000),
            generator_url: "http://c/#alerts".into(),
        }
    }

    #[test]
    fn webhook_messages_have_alertmanagers_fields() {
        let m = webhook_message(
            "ops",
            "http://c",
            &[alert(AlertState::Firing, "checkout")],
            0,
        );
        let v = serde_json::to_value(&m).expect("json");
        for key in [
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["version"], "4");
        assert_eq!(
            v["groupKey"],
            r#"{}:{alertname="errors", service="checkout", tenant="acme"}"#
        );
        assert_eq!(v["commonLabels"]["severity"], "page");
        assert_eq!(v["groupLabels"].as_object().map(|o| o.len()), Some(3));
        let a = &v["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["startsAt"], "1970-01-01T00:00:00Z");
        assert_eq!(a["generatorURL"], "http://c/#alerts");
        assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn truncation_keeps_firing_alerts_and_counts_the_rest() {
        let alerts = [
            alert(AlertState::Resolved, "a"),
            alert(AlertState::Firing, "b"),
            alert(AlertState::Resolved, "c"),
        ];
        let m = webhook_message("ops", "http://c", &alerts, 1);
        assert_eq!(m.truncated_alerts, 2);
        assert_eq!(m.alerts.len(), 1);
        assert_eq!(m.alerts[0].status, "firing");
        assert_eq!(m.status, "firing");
        assert!(!m.common_labels.contains_key("service"));
        assert!(m.common_annotations.is_empty());
        let resolved = webhook_message("ops", "http://c", &alerts[..1], 0);
        assert_eq!(resolved.status, "resolved");
        assert_eq!(resolved.alerts[0].ends_at, "1970-01-01T00:01:00Z");
    }

    #[test]
    fn postable_alerts_end_ahead_while_firing() {
        let p = postable(&alert(AlertState::Firing, "a"), 60_000, 60_000);
        assert_eq!(p.ends_at, "1970-01-01T00:05:00Z");
        let p = postable(&alert(AlertState::Resolved, "a"), 600_000, 60_000);
        assert_eq!(p.ends_at, "1970-01-01T00:01:00Z");
    }
}
