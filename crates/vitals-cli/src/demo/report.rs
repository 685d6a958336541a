//! What the demo prints every few seconds: the collector's view of the
//! services, with rates over the time the demo has actually run, and a
//! status line per service that says why it is not healthy.

use super::apps::HttpClient;
use anyhow::{Result, anyhow};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Asks the collector for its services overview with the read key.
pub(super) async fn services(
    client: &HttpClient,
    collector: SocketAddr,
    key: &str,
) -> Result<Value> {
    let request = http::Request::get(format!("http://{collector}/v1/services?window=1m"))
        .header(http::header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Empty::new())?;
    let res = client.request(request).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(anyhow!(
            "collector answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// The table of `/v1/services`: requests, rate, errors, p95, Apdex and
/// health per service. The rate divides by the span the answer covers
/// (`window.from_ms` to `window.to_ms`: whole minutes, so up to two of
/// them) or by the time the demo has run (`ran`) when that is shorter, so
/// it is true from the first seconds.
pub(super) fn table(json: &Value, ran: Duration) -> String {
    let span_ms = json["window"]["to_ms"].as_i64().unwrap_or(0)
        - json["window"]["from_ms"].as_i64().unwrap_or(0);
    let span = if span_ms > 0 {
        Duration::from_millis(span_ms as u64)
    } else {
        Duration::from_secs(60)
    };
    let seconds = ran.min(span).as_secs_f64().max(1.0);
    let mut out =
        String::from("  service      requests   req/s   errors   p95 ms   apdex   health\n");
    let mut status = String::new();
    for s in json["services"].as_array().into_iter().flatten() {
        let name = s["service"].as_str().unwrap_or("?");
        let requests = s["requests"].as_u64().unwrap_or(0);
        let health = s["health"].as_str().unwrap_or("?");
        out.push_str(&format!(
            "  {:<10} {:>10} {:>7.1} {:>7.1}% {:>8} {:>7} {}\n",
            name,
            requests,
            requests as f64 / seconds,
            s["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            s["p95_ms"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
            s["apdex"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |v| format!("{v:.2}")),
            health,
        ));
        let reasons: Vec<&str> = s["health_reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if health != "healthy" && !reasons.is_empty() {
            status.push_str(&format!("  {name} is {health}: {}\n", reasons.join("; ")));
        }
    }
    out + &status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_are_over_the_time_run_and_health_says_why() {
        let json = json!({"window": {"from_ms": 1_000_000, "to_ms": 1_090_000}, "services": [
            {"service": "users", "requests": 100, "error_rate": 0.054, "p95_ms": 12.5,
             "apdex": 0.93, "health": "degraded", "health_reasons": ["error rate 5.4 % ≥ 5.0 %"]},
            {"service": "frontend", "requests": 50, "error_rate": 0.0, "p95_ms": null,
             "apdex": null, "health": "healthy", "health_reasons": []},
        ]});
        let text = table(&json, Duration::from_secs(10));
        let users = text
            .lines()
            .find(|l| l.trim_start().starts_with("users "))
            .unwrap();
        assert!(users.contains(" 10.0 "), "100 requests in 10 s: {users}");
        assert!(
            users.contains("5.4%") && users.contains("degraded"),
            "{users}"
        );
        assert!(
            text.contains("users is degraded: error rate 5.4 % ≥ 5.0 %"),
            "{text}"
        );
        assert!(!text.contains("frontend is"), "{text}");
        // Later, the span the answer covers (90 s here).
        let later = table(&json, Duration::from_secs(600));
        assert!(later.contains("    1.1 "), "100 requests in 90 s: {later}");
    }
}
