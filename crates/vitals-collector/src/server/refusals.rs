//! The router's own refusals: requests no handler takes (unknown path,
//! wrong method) and path segments that cannot be read. axum answers these
//! with an empty or `text/plain` body and counts nothing; here each one is
//! the API's JSON error, counted in `vitals_rejected_total{reason}` like
//! every other refusal (see `Collector::fail`).

use super::state::Collector;
use crate::error::ApiError;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde::de::DeserializeOwned;

/// How much of a client's path or method an error message repeats.
const ECHO_CHARS: usize = 128;

fn head(text: &str) -> String {
    text.chars().take(ECHO_CHARS).collect()
}

/// The fallback for paths no route matches: a counted 404 `not_found`.
pub(super) async fn not_found(State(c): State<Collector>) -> Response {
    c.fail(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/services, /v1/ingest, /v1/requests",
    ))
}

/// The fallback for a known path asked with a method it does not take
/// (`GET /v1/ingest`): a counted 405 `method_not_allowed`. axum adds the
/// `Allow` header listing the methods the path takes.
pub(super) async fn method_not_allowed(
    State(c): State<Collector>,
    method: Method,
    uri: Uri,
) -> Response {
    c.fail(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; the Allow header lists the methods it takes",
            head(method.as_str()),
            head(uri.path())
        ),
    ))
}

/// axum's [`Path`] whose refusal is the API's counted JSON error instead
/// of axum's `text/plain` one: a segment that does not percent-decode to
/// UTF-8 (`/v1/services/%FF/stats`) is a 400 `bad_path`. Every handler
/// reads its path segments through this, so none can answer in text.
pub(super) struct ApiPath<T>(pub T);

impl<T> FromRequestParts<Collector> for ApiPath<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Collector) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, c).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(c.fail(path_error(&rejection))),
        }
    }
}

/// The API error for a path rejection: the client's fault (bad encoding) is
/// a 400 `bad_path`; the rest means a handler and its route disagree, a
/// collector bug, answered 500 and counted as a failure.
fn path_error(rejection: &PathRejection) -> ApiError {
    let status = rejection.status();
    let detail = head(&rejection.body_text());
    if status.is_client_error() {
        ApiError::bad_request(
            "bad_path",
            format!(
                "the URL path could not be read ({detail}); percent-encode each segment as UTF-8"
            ),
        )
    } else {
        ApiError::new(status, "path_params", detail)
    }
}

/// Checks the `{service}` segment of a query path before it is looked up:
/// 1 to `max` bytes (the longest name ingest accepts), no control
/// characters. Such a name can hold no data, and a 400 tells the client
/// its URL is wrong where a 404 would say the service is merely unknown.
pub(super) fn check_path_service(service: &str, max: usize) -> Result<(), ApiError> {
    if service.len() > max {
        return Err(ApiError::bad_request(
            "service_too_long",
            format!(
                "the service name in the path is {} bytes, over the {max}-byte limit (starts {:?})",
                service.len(),
                service.chars().take(32).collect::<String>()
            ),
        ));
    }
    if service.is_empty() || service.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_service",
            format!(
                "the service name in the path, {:?}, must be non-empty without control characters",
                head(service)
            ),
        ));
    }
    Ok(())
}
