//! `GET /v1/live` (read keys): Server-Sent Events telling a tenant's open
//! pages that new data was acknowledged, so they refresh without polling.
//!
//! After a batch (`/v1/ingest`) or records (`/v1/requests`) of the tenant
//! are stored, each of the tenant's streams gets
//!
//! ```text
//! event: batch
//! data: {"service":"checkout","at_ms":1732380000000}
//! ```
//!
//! (`at_ms`: when the store acknowledged it), and a `: keepalive` comment
//! every 15 s. A duplicate batch sends nothing.
//!
//! The hub (channels, client places) is `live_hub.rs`; this file is the
//! handler.
//!
//! - **Per tenant**: one bounded broadcast channel per tenant with open
//!   streams; a tenant's events never reach another tenant's streams.
//! - **Client cap**: at most `limits.max_live_clients` (64) streams per
//!   collector at once; past it a 503 `too_many_live_clients` with
//!   `Retry-After`, counted in
//!   `vitals_rejected_total{reason="too_many_live_clients"}`.
//! - **Slow clients lose events, never block ingest**: each stream may
//!   fall `limits.live_buffer` (256) events behind; past that it gets
//!   `event: lagged` / `data: {"missed":N}` and goes on from the newest
//!   events (counted in `vitals_collector_live_lagged_total`).
//! - **Shutdown**: [`Collector::serve`](super::Collector::serve) ends every
//!   stream when shutdown starts, so open pages do not hold it up.
//! - **One collector's view**: behind a load balancer, a stream hears the
//!   batches its own collector stored.

use super::queries::params;
use super::state::Collector;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::model::Role;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Pause between keepalive comments.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// The 503 past the client cap, counted as a rejection.
fn too_many(c: &Collector, max: usize) -> Response {
    c.inner.registry.count_rejected("too_many_live_clients");
    let mut resp = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_live_clients",
        format!(
            "too many /v1/live streams: at most {max} at once (limits.max_live_clients); \
             retry later or poll the query endpoints"
        ),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

pub(super) async fn live(
    State(c): State<Collector>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let tenant = match c.authorize(&headers, Role::Read).await {
        Ok(key) => key.tenant,
        Err(e) => return c.fail(e),
    };
    if let Err(e) = params(q, &[]) {
        return c.fail(e);
    }
    let hub = c.inner.live.clone();
    let Some((rx, slot)) = hub.subscribe(&tenant) else {
        return too_many(&c, hub.max_clients());
    };
    let stream = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let event = match rx.recv().await {
            Ok(batch) => Event::default()
                .event("batch")
                .json_data(&batch)
                .unwrap_or_else(|_| Event::default().event("batch")),
            Err(RecvError::Lagged(n)) => {
                slot.lagged(n);
                Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}"))
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(event), (rx, slot)))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response();
    // Proxies must pass events through at once.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

impl Collector {
    /// Tells `tenant`'s `/v1/live` streams that a batch of `service` was
    /// stored just now.
    pub(super) fn announce_batch(&self, tenant: &str, service: &str) {
        self.inner.live.publish(tenant, service, now_ms());
    }

    /// Ends every open `/v1/live` stream and refuses new ones; what
    /// [`Collector::serve`] does when shutdown begins. For embedders
    /// serving [`Collector::router`] themselves.
    pub fn end_live_streams(&self) {
        self.inner.live.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CollectorConfig;
    use crate::store::SqliteStore;
    use std::sync::Arc;

    /// A stream that fell behind is told how many events it missed, then
    /// goes on; closing the hub ends it after what it holds.
    #[tokio::test]
    async fn a_slow_stream_is_told_what_it_missed() {
        let store = SqliteStore::open_in_memory().await.expect("store");
        let mut config = CollectorConfig::default();
        config.limits.live_buffer = 2;
        let c = Collector::with_store(config, Arc::new(store)).expect("collector");
        let key = c.create_key("acme", Role::Read).await.expect("key");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).expect("header"),
        );
        let resp = live(State(c.clone()), headers, RawQuery(None)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        // Nobody reads the body yet: five events into a buffer of two.
        for i in 0..5 {
            c.inner.live.publish("acme", &format!("s{i}"), 1000 + i);
        }
        c.inner.live.publish("globex", "other", 1);
        c.end_live_streams();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("the stream ends after what it holds");
        let text = String::from_utf8(body.to_vec()).expect("UTF-8");
        assert_eq!(
            text,
            "event: lagged\ndata: {\"missed\":3}\n\n\
             event: batch\ndata: {\"service\":\"s3\",\"at_ms\":1003}\n\n\
             event: batch\ndata: {\"service\":\"s4\",\"at_ms\":1004}\n\n"
        );
        assert_eq!(c.inner.live.lagged_total(), 3);
        assert_eq!(c.inner.live.open_clients(), 0);
        // After shutdown began, no new stream.
        assert!(c.inner.live.subscribe("acme").is_none());
    }
}
