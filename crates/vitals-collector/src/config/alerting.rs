//! The `[alerting]` section: how often rules are evaluated, the built-in
//! health rule, the rules of the configuration (`[[alerting.rules]]`), the
//! receivers (`[[alerting.webhook]]`, `[alerting.alertmanager]`) and the
//! notification timing, Alertmanager's (`group_wait`, `group_interval`,
//! `repeat_interval`). [`AlertingConfig::resolve`] checks it all into
//! [`AlertingSettings`].

use super::alert_rule::{NameLimits, Rule, RuleSource, RuleSpec, parse_span_ms};
use serde::{Deserialize, Serialize};

/// Longest receiver URL, bytes.
pub const MAX_URL_LEN: usize = 2048;

/// The `[alerting]` section as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// Whether this collector evaluates rules and sends notifications
    /// (default true; with several collectors on one store, let one do it).
    pub enabled: bool,
    /// Time between evaluation rounds, `1s` to `10m` (default `15s`).
    pub interval: String,
    /// The built-in health rule (one alert per service while it is
    /// degraded or down); default on.
    pub health_rule: bool,
    /// The window the health rule reads, like the services page's (default `15m`).
    pub health_window: String,
    /// This collector's address as people reach it, for `externalURL` and
    /// each alert's `generatorURL` (default `http://` + `listen`).
    pub external_url: String,
    /// How long a new alert waits before its first notification, so
    /// others of its group go with it (default `30s`).
    pub group_wait: String,
    /// How long after a notification of a group the next one about a
    /// change may go (default `5m`).
    pub group_interval: String,
    /// How long after a notification a still-firing alert is sent again
    /// (default `4h`).
    pub repeat_interval: String,
    /// How often firing alerts are re-sent to Alertmanager (default `1m`).
    pub resend_interval: String,
    /// Timeout of one delivery attempt (default `10s`).
    pub timeout: String,
    /// Attempts per delivery, 1 to 20 (default 5): a 5xx answer, a timeout
    /// or a connection failure is retried, a 4xx is not.
    pub retry_attempts: u32,
    /// Pause before the first retry, doubled for each next one (default `1s`).
    pub retry_backoff: String,
    /// Most rules a tenant may write over the API (default 1000).
    pub max_rules_per_tenant: usize,
    /// The configuration's rules (each with its `tenant`).
    pub rules: Vec<RuleSpec>,
    /// Webhook receivers, sent Alertmanager's webhook JSON.
    pub webhook: Vec<WebhookReceiver>,
    /// A real Alertmanager, sent its `POST /api/v2/alerts`.
    pub alertmanager: Option<AlertmanagerReceiver>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: true,
            interval: "15s".into(),
            health_rule: true,
            health_window: "15m".into(),
            external_url: String::new(),
            group_wait: "30s".into(),
            group_interval: "5m".into(),
            repeat_interval: "4h".into(),
            resend_interval: "1m".into(),
            timeout: "10s".into(),
            retry_attempts: 5,
            retry_backoff: "1s".into(),
            max_rules_per_tenant: 1000,
            rules: Vec::new(),
            webhook: Vec::new(),
            alertmanager: None,
        }
    }
}

/// A webhook receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiver {
    /// Its name (the payload's `receiver`, the metrics' `receiver` label).
    pub name: String,
    /// `http://…` or `https://…`.
    pub url: String,
    /// Most alerts per notification; past it they are counted in
    /// `truncatedAlerts` (default 0: all).
    #[serde(default)]
    pub max_alerts: usize,
}

/// An Alertmanager receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerReceiver {
    /// Its base URL; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
}

/// The `[alerting]` section checked: spans in ms, rules checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingSettings {
    /// Whether rules are evaluated here.
    pub enabled: bool,
    /// Between rounds, ms.
    pub interval_ms: i64,
    /// Whether each service has the built-in health rule.
    pub health_rule: bool,
    /// The health rule's window, ms.
    pub health_window_ms: i64,
    /// `externalURL`, without a trailing `/`.
    pub external_url: String,
    /// Alertmanager's `group_wait`, ms.
    pub group_wait_ms: i64,
    /// Alertmanager's `group_interval`, ms.
    pub group_interval_ms: i64,
    /// Alertmanager's `repeat_interval`, ms.
    pub repeat_interval_ms: i64,
    /// Re-send to Alertmanager while firing, ms.
    pub resend_interval_ms: i64,
    /// Per attempt, ms.
    pub timeout_ms: i64,
    /// Attempts per delivery.
    pub retry_attempts: u32,
    /// First retry pause, ms.
    pub retry_backoff_ms: i64,
    /// Rules per tenant over the API.
    pub max_rules_per_tenant: usize,
    /// The configuration's rules.
    pub rules: Vec<Rule>,
    /// Webhook receivers.
    pub webhooks: Vec<WebhookReceiver>,
    /// The Alertmanager receiver.
    pub alertmanager: Option<AlertmanagerReceiver>,
}

fn span_within(what: &str, text: &str, min: i64, max: i64, range: &str) -> Result<i64, String> {
    let ms = parse_span_ms(text).map_err(|e| format!("alerting.{what}: {e}"))?;
    if ms < min || ms > max {
        return Err(format!("alerting.{what} must be {range}, got {text:?}"));
    }
    Ok(ms)
}

fn check_url(what: &str, url: &str) -> Result<(), String> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok || url.len() > MAX_URL_LEN || url.parse::<http::Uri>().is_err() {
        return Err(format!(
            "{what} must be an http:// or https:// URL of at most {MAX_URL_LEN} bytes"
        ));
    }
    Ok(())
}

impl AlertingConfig {
    /// Checks the section. `listen` makes the default external URL;
    /// `limits` bound the rules' names.
    pub fn resolve(&self, listen: &str, limits: NameLimits) -> Result<AlertingSettings, String> {
        const SECOND: i64 = 1_000;
        const MINUTE: i64 = 60 * SECOND;
        const HOUR: i64 = 60 * MINUTE;
        const DAY: i64 = 24 * HOUR;
        let interval = span_within("interval", &self.interval, SECOND, 10 * MINUTE, "1s to 10m")?;
        let health_window = span_within(
            "health_window",
            &self.health_window,
            MINUTE,
            DAY,
            "1m to 1d",
        )?;
        let group_wait = span_within("group_wait", &self.group_wait, 0, HOUR, "0s to 1h")?;
        let group_interval =
            span_within("group_interval", &self.group_interval, 0, DAY, "0s to 1d")?;
        let repeat_interval = span_within(
            "repeat_interval",
            &self.repeat_interval,
            MINUTE,
            30 * DAY,
            "1m to 30d",
        )?;
        let resend_interval = span_within(
            "resend_interval",
            &self.resend_interval,
            SECOND,
            HOUR,
            "1s to 1h",
        )?;
        let timeout = span_within("timeout", &self.timeout, 100, MINUTE, "100ms to 1m")?;
        let retry_backoff =
            span_within("retry_backoff", &self.retry_backoff, 1, MINUTE, "1ms to 1m")?;
        if !(1..=20).contains(&self.retry_attempts) {
            return Err(format!(
                "alerting.retry_attempts must be 1 to 20, got {}",
                self.retry_attempts
            ));
        }
        if !(1..=100_000).contains(&self.max_rules_per_tenant) {
            return Err(format!(
                "alerting.max_rules_per_tenant must be 1 to 100000, got {}",
                self.max_rules_per_tenant
            ));
        }
        let external_url = if self.external_url.is_empty() {
            format!("http://{listen}")
        } else {
            check_url("alerting.external_url", &self.external_url)?;
            self.external_url.trim_end_matches('/').to_owned()
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (i, spec) in self.rules.iter().enumerate() {
            let tenant = spec.tenant.as_deref().ok_or_else(|| {
                format!(
                    "alerting.rules[{i}] ({:?}) needs a tenant",
                    spec.name.chars().take(64).collect::<String>()
                )
            })?;
            crate::auth::validate_tenant(tenant)
                .map_err(|e| format!("alerting.rules[{i}]: {e}"))?;
            let rule = spec
                .check(tenant, RuleSource::Config, limits)
                .map_err(|e| format!("alerting.rules[{i}]: {e}"))?;
            if rules
                .iter()
                .any(|r| r.tenant == rule.tenant && r.name == rule.name)
            {
                return Err(format!(
                    "alerting.rules[{i}]: tenant {:?} has two rules named {:?}",
                    rule.tenant, rule.name
                ));
            }
            rules.push(rule);
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, w) in self.webhook.iter().enumerate() {
            if w.name.is_empty()
                || w.name.len() > 64
                || !w
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(format!(
                    "alerting.webhook[{i}].name must be 1 to 64 of letters, digits, '_', '-', '.'"
                ));
            }
            if w.name == "alertmanager" || !names.insert(w.name.as_str()) {
                return Err(format!(
                    "alerting.webhook[{i}].name {:?} is taken: each receiver needs its own name",
                    w.name
                ));
            }
            check_url(&format!("alerting.webhook[{i}].url"), &w.url)?;
        }
        if let Some(am) = &self.alertmanager {
            check_url("alerting.alertmanager.url", &am.url)?;
        }
        Ok(AlertingSettings {
            enabled: self.enabled,
            interval_ms: interval,
            health_rule: self.health_rule,
            health_window_ms: health_window,
            external_url,
            group_wait_ms: group_wait,
            group_interval_ms: group_interval,
            repeat_interval_ms: repeat_interval,
            resend_interval_ms: resend_interval,
            timeout_ms: timeout,
            retry_attempts: self.retry_attempts,
            retry_backoff_ms: retry_backoff,
            max_rules_per_tenant: self.max_rules_per_tenant,
            rules,
            webhooks: self.webhook.clone(),
            alertmanager: self.alertmanager.clone(),
        })
    }
}
