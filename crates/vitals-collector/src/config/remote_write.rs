//! `[[remote_write]]`: where the collector sends its per-route aggregates
//! and custom metrics as Prometheus remote-write 1.0, one table per
//! receiver (Prometheus, Grafana Mimir, Thanos Receive, VictoriaMetrics,
//! Cortex). The exporter itself is [`crate::remote_write`].

use super::duration::parse_duration_ms;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The classic histogram bounds exported by default, in seconds: the
/// Prometheus client default, with 1 ms and 2.5 ms below it.
pub const DEFAULT_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One remote-write receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's write endpoint, `http://` or `https://`
    /// (Prometheus: `…/api/v1/write`; Mimir: `…/api/v1/push`; Thanos
    /// Receive: `…/api/v1/receive`; VictoriaMetrics: `…/api/v1/write`).
    pub url: String,
    /// A short name for the queue's folder and the `remote` label of the
    /// collector's own metrics; default `remote<N>` by position.
    pub name: String,
    /// The collector tenants whose data goes to this receiver (at least one).
    pub tenants: Vec<String>,
    /// The receiver's tenant header, if it is multi-tenant:
    /// `X-Scope-OrgID` (Mimir, Cortex), `THANOS-TENANT` (Thanos Receive).
    pub tenant_header: Option<String>,
    /// The header's value; by default the collector tenant's own name.
    pub tenant_id: Option<String>,
    /// Further headers on every request (`Authorization = "Bearer …"`).
    pub headers: BTreeMap<String, String>,
    /// Folder of the on-disk queue and the export state; default
    /// `vitals-remote-write/<name>` under the working directory.
    pub queue_dir: Option<String>,
    /// Most bytes the queue keeps on disk; past it the oldest requests are
    /// dropped and counted (counters stay cumulative, so a later sample
    /// still carries every request).
    pub max_queue_bytes: u64,
    /// How long after a minute ends it is exported, so late batches of
    /// that minute are in (default `1m`).
    pub delay: String,
    /// On the first start (no state yet), how far back export begins
    /// (default `15m`).
    pub backfill: String,
    /// Timeout of one request (default `30s`).
    pub timeout: String,
    /// Classic histogram bounds, seconds, increasing.
    pub buckets: Vec<f64>,
    /// Also send the durations as a native histogram (the receiver must
    /// accept them: Prometheus `--enable-feature=native-histograms`).
    pub native_histograms: bool,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            name: String::new(),
            tenants: Vec::new(),
            tenant_header: None,
            tenant_id: None,
            headers: BTreeMap::new(),
            queue_dir: None,
            max_queue_bytes: 256 << 20,
            delay: "1m".into(),
            backfill: "15m".into(),
            timeout: "30s".into(),
            buckets: DEFAULT_BUCKETS_SECONDS.to_vec(),
            native_histograms: false,
        }
    }
}

/// A [`RemoteWriteConfig`] checked, with its durations in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteTarget {
    /// The settings as given, `name` filled in.
    pub config: RemoteWriteConfig,
    /// The queue's folder.
    pub queue_dir: std::path::PathBuf,
    /// `delay` in ms.
    pub delay_ms: i64,
    /// `backfill` in ms.
    pub backfill_ms: i64,
    /// `timeout` in ms.
    pub timeout_ms: i64,
}

impl RemoteWriteConfig {
    /// Checks the settings of the `index`-th receiver and fills in the
    /// defaults that depend on it.
    pub fn resolve(&self, index: usize) -> Result<RemoteWriteTarget, String> {
        let at = format!("remote_write[{index}]");
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("{at}.url {:?} is not a URL: {e}", self.url))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "{at}.url must be an http:// or https:// URL with a host, got {:?}",
                self.url
            ));
        }
        let name = if self.name.is_empty() {
            format!("remote{index}")
        } else {
            self.name.clone()
        };
        if name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{at}.name must be 1 to 64 letters, digits, '-' or '_', got {name:?}"
            ));
        }
        if self.tenants.is_empty() {
            return Err(format!(
                "{at}.tenants must name at least one collector tenant to export"
            ));
        }
        for (k, v) in self
            .headers
            .iter()
            .chain(self.tenant_header.iter().map(|h| (h, h)))
        {
            http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("{at}: {k:?} is not a valid header name"))?;
            http::HeaderValue::from_str(v)
                .map_err(|_| format!("{at}: the value of header {k:?} is not valid"))?;
        }
        if let Some(id) = &self.tenant_id {
            http::HeaderValue::from_str(id)
                .map_err(|_| format!("{at}.tenant_id is not a valid header value"))?;
        }
        if self.max_queue_bytes < 1 << 20 {
            return Err(format!("{at}.max_queue_bytes must be at least 1048576"));
        }
        let duration = |what: &str, text: &str| {
            parse_duration_ms(text).map_err(|e| format!("{at}.{what}: {e}"))
        };
        let delay_ms = duration("delay", &self.delay)?;
        let backfill_ms = duration("backfill", &self.backfill)?;
        let timeout_ms = duration("timeout", &self.timeout)?;
        if self.buckets.is_empty()
            || self.buckets.len() > 64
            || !self.buckets.iter().all(|b| b.is_finite() && *b > 0.0)
            || !self.buckets.windows(2).all(|w| w[0] < w[1])
        {
            return Err(format!(
                "{at}.buckets must be 1 to 64 increasing positive numbers of seconds"
            ));
        }
        let queue_dir = self
            .queue_dir
            .clone()
            .unwrap_or_else(|| format!("vitals-remote-write/{name}"))
            .into();
        Ok(RemoteWriteTarget {
            config: RemoteWriteConfig {
                name,
                ..self.clone()
            },
            queue_dir,
            delay_ms,
            backfill_ms,
            timeout_ms,
        })
    }
}
