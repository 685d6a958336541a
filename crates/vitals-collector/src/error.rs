//! The API's error answer: an HTTP status, a short machine-readable
//! reason (also the `vitals_rejected_total{reason}` label) and a sentence
//! a person can act on, sent as `{"error": "...", "reason": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused or failed API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Short snake_case reason, counted in `vitals_rejected_total{reason}`.
    pub reason: &'static str,
    /// What was wrong, with the value, and what to do.
    pub message: String,
}

impl ApiError {
    /// A 400 Bad Request.
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, message)
    }

    /// Any status.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }

    /// A 503: the store failed, so the sender should retry later. Not a
    /// rejection: nothing was wrong with the request.
    pub fn store_unavailable(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the store failed; retry later: {e}"),
        )
    }

    /// Whether this is the client's fault (and so counted as a rejection)
    /// rather than the collector's.
    pub fn is_rejection(&self) -> bool {
        self.status.is_client_error()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message, "reason": self.reason })),
        )
            .into_response()
    }
}
