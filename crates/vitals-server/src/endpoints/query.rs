//! The one query-string parser of the endpoints, and their 400 answer.
//!
//! Every endpoint that reads its query string (`/debug/metrics`,
//! `/debug/events`, `/debug/history` and the dashboard) goes through here:
//! at most [`MAX_QUERY_LEN`] bytes, `application/x-www-form-urlencoded`
//! decoding, a name given at most once where that matters. A refused query
//! is answered `400` with `{"error": "…", …}` and counted in
//! `vitals_rejected_total{reason="debug_query_invalid"}`, the same way on
//! every endpoint.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use vitals::Registry;

/// Longest query string the endpoints accept.
pub const MAX_QUERY_LEN: usize = 2048;

/// The rejection reason every refused query string is counted under.
const REJECTED: &str = "debug_query_invalid";

/// Why a query string was refused: a message a person can act on, plus
/// extra JSON fields (the values that would have been accepted).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryError {
    message: String,
    extra: Map<String, Value>,
}

impl QueryError {
    /// A refusal saying `message`.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        QueryError {
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds the field `key` to the JSON body.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The message.
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The `400` answer, counted in `registry`.
    pub(crate) fn respond(self, registry: &Registry) -> Response {
        registry.count_rejected(REJECTED);
        let mut body = Map::new();
        body.insert("error".to_owned(), Value::String(self.message));
        body.extend(self.extra);
        (StatusCode::BAD_REQUEST, axum::Json(Value::Object(body))).into_response()
    }
}

/// Refuses a query string longer than [`MAX_QUERY_LEN`] (for a page that
/// forwards its query string elsewhere rather than reading it).
pub(crate) fn check_len(raw: Option<&str>) -> Result<(), QueryError> {
    let len = raw.map_or(0, str::len);
    if len > MAX_QUERY_LEN {
        return Err(QueryError::new(format!(
            "query string is {len} bytes; at most {MAX_QUERY_LEN} are accepted"
        )));
    }
    Ok(())
}

/// A query string split into its decoded `(name, value)` pairs, in order.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Checks the length of `raw` (the query string without `?`; `None`
    /// when there is none) and decodes it.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
        check_len(raw)?;
        let pairs = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| QueryError::new(format!("query string is not valid: {e}")))?;
        Ok(Query { pairs })
    }

    /// The value of `name`, `None` when absent; refused when given twice.
    pub(crate) fn once(&self, name: &str) -> Result<Option<&str>, QueryError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(QueryError::new(format!("{name:?} is given twice")));
        }
        Ok(first)
    }

    /// Refuses the query when any name is given twice.
    pub(crate) fn each_name_once(&self) -> Result<(), QueryError> {
        for (i, (name, _)) in self.pairs.iter().enumerate() {
            if self.pairs[..i].iter().any(|(k, _)| k == name) {
                return Err(QueryError::new(format!("{name:?} is given twice")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decodes_and_refuses() {
        let q = Query::parse(Some("route=%2Fusers%2F%7Bid%7D&live=1")).unwrap();
        assert_eq!(q.once("route"), Ok(Some("/users/{id}")));
        assert_eq!(q.once("absent"), Ok(None));
        assert!(q.each_name_once().is_ok());
        assert!(Query::parse(None).unwrap().once("x").unwrap().is_none());

        let twice = Query::parse(Some("a=1&b=2&a=3")).unwrap();
        assert_eq!(twice.once("b"), Ok(Some("2")));
        assert_eq!(
            twice.once("a").unwrap_err().message(),
            "\"a\" is given twice"
        );
        assert!(twice.each_name_once().is_err());

        let long = "x".repeat(MAX_QUERY_LEN + 1);
        let err = Query::parse(Some(&long)).unwrap_err();
        assert!(err.message().contains("at most 2048"), "{err:?}");
        assert!(check_len(Some(&long)).is_err());
        assert!(check_len(Some(&long[1..])).is_ok());
    }

    #[test]
    fn the_answer_is_a_counted_json_400() {
        let registry = Registry::new();
        let response = QueryError::new("no")
            .with("known", vec!["a"])
            .respond(&registry);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = String::from_utf8(registry.render(vitals::Format::Prometheus)).unwrap();
        assert!(
            text.contains("vitals_rejected_total{reason=\"debug_query_invalid\"} 1"),
            "{text}"
        );
    }
}
