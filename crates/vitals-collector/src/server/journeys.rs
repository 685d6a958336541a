//! `GET /v1/traces/{trace_id}` (read keys): a request journey, every
//! sampled request of the tenant carrying one W3C trace id, across
//! services, oldest first. The trace id is 32 lowercase hex digits, else a
//! counted 400 `invalid_trace_id`. A journey is whole when the services'
//! push clients sample by trace id (the same decision in every service).

use super::queries::{answer, parse_limit};
use super::refusals::ApiPath;
use super::state::Collector;
use crate::error::ApiError;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

/// Most requests one journey answer holds (and its default).
pub const MAX_JOURNEY: usize = 1000;

/// Whether `id` is a W3C trace id as the API takes it: 32 lowercase hex
/// digits.
pub fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) async fn trace(
    State(c): State<Collector>,
    headers: HeaderMap,
    ApiPath(trace_id): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(&c, &headers, q, &["limit"], |c, tenant, p| async move {
        if !is_trace_id(&trace_id) {
            return Err(ApiError::bad_request(
                "invalid_trace_id",
                format!(
                    "trace id {:?} must be 32 lowercase hex digits (a W3C trace id)",
                    trace_id.chars().take(64).collect::<String>()
                ),
            ));
        }
        let limit = parse_limit(&p, MAX_JOURNEY, MAX_JOURNEY)?;
        let requests = c
            .inner
            .store
            .trace_samples(tenant, trace_id.clone(), limit)
            .await
            .map_err(ApiError::store_unavailable)?;
        Ok(json!({ "trace_id": trace_id, "requests": requests }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_32_lowercase_hex_digits() {
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "4bf92f3577b34da6a3ce929d0e0e47361",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "4bf92f3577b34da6a3ce929d0e0e473g",
            "4bf92f3577b34da6a3ce929d0e0e47\u{e9}",
        ] {
            assert!(!is_trace_id(bad), "{bad:?}");
        }
    }
}
