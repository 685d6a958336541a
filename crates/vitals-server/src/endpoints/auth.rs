//! Optional access control for `/metrics` and `/debug/*`: a bearer token
//! and/or HTTP basic credentials, compared in constant time.
//!
//! Off unless [`ServerMetricsBuilder::auth_bearer`] or
//! [`ServerMetricsBuilder::auth_basic`] is set. With both set, either
//! credential is accepted. A refused request gets `401` with a
//! `WWW-Authenticate` challenge for each configured scheme and a JSON error,
//! and is counted in `vitals_rejected_total{reason="debug_auth_missing"}`
//! (no `Authorization` header) or `{reason="debug_auth_invalid"}`.
//!
//! [`ServerMetricsBuilder::auth_bearer`]: crate::ServerMetricsBuilder::auth_bearer
//! [`ServerMetricsBuilder::auth_basic`]: crate::ServerMetricsBuilder::auth_basic

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use vitals::Registry;

/// Longest `Authorization` header looked at; longer ones are refused.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// The configured credentials. `Debug` never shows them.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    /// The bearer token's bytes.
    pub(crate) bearer: Option<Vec<u8>>,
    /// `user:password`, as a basic-auth header decodes to.
    pub(crate) basic: Option<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("basic", &self.basic.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    pub(crate) fn is_enabled(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some()
    }

    /// Whether `authorization` (the header value) carries a configured
    /// credential. The comparison of secret bytes takes the same time
    /// wherever they differ (only their length can show).
    fn accepts(&self, authorization: &[u8]) -> bool {
        let text = match std::str::from_utf8(authorization) {
            Ok(t) => t.trim(),
            Err(_) => return false,
        };
        let Some((scheme, value)) = text.split_once(' ') else {
            return false;
        };
        let value = value.trim().as_bytes();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(token) = &self.bearer {
                return !token.is_empty() && bool::from(value.ct_eq(token));
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            if let Some(pair) = &self.basic {
                return match base64::engine::general_purpose::STANDARD.decode(value) {
                    Ok(decoded) => bool::from(decoded.as_slice().ct_eq(pair)),
                    Err(_) => false,
                };
            }
        }
        false
    }

    /// The challenges a 401 carries, one per configured scheme.
    fn challenges(&self) -> Vec<HeaderValue> {
        let mut out = Vec::new();
        if self.bearer.is_some() {
            out.push(HeaderValue::from_static("Bearer realm=\"vitals\""));
        }
        if self.basic.is_some() {
            out.push(HeaderValue::from_static(
                "Basic realm=\"vitals\", charset=\"UTF-8\"",
            ));
        }
        out
    }
}

/// Puts the credential check in front of every route `router` holds now
/// (`route_layer`: unmatched paths still fall through to the app's own
/// fallback, as a 404, rather than asking for credentials). Refusals are
/// counted in `registry`.
pub(crate) fn protect(
    router: axum::Router,
    credentials: &Credentials,
    registry: &Registry,
) -> axum::Router {
    if !credentials.is_enabled() {
        return router;
    }
    let guard = Arc::new(Guard {
        credentials: credentials.clone(),
        registry: registry.clone(),
    });
    router.route_layer(axum::middleware::from_fn_with_state(guard, check))
}

/// What the check needs: the credentials, and the registry that counts
/// what it refuses.
struct Guard {
    credentials: Credentials,
    registry: Registry,
}

async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let creds = &guard.credentials;
    let (reason, message) = match req.headers().get(header::AUTHORIZATION) {
        None => (
            "debug_auth_missing",
            "authentication required: send an Authorization header",
        ),
        Some(v) if v.len() > MAX_AUTHORIZATION_LEN => {
            ("debug_auth_invalid", "the Authorization header is too long")
        }
        Some(v) if creds.accepts(v.as_bytes()) => return next.run(req).await,
        Some(_) => ("debug_auth_invalid", "invalid credentials"),
    };
    guard.registry.count_rejected(reason);
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response();
    for challenge in creds.challenges() {
        response
            .headers_mut()
            .append(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            bearer: Some(b"s3cret".to_vec()),
            basic: Some(b"ops:pa:ss".to_vec()),
        }
    }

    #[test]
    fn accepts_only_the_configured_credentials() {
        let c = creds();
        assert!(c.accepts(b"Bearer s3cret"));
        assert!(c.accepts(b"bearer   s3cret "));
        assert!(!c.accepts(b"Bearer s3cre"));
        assert!(!c.accepts(b"Bearer s3cret2"));
        assert!(!c.accepts(b"Bearer"));
        assert!(!c.accepts(b"Token s3cret"));
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:pa:ss");
        assert!(c.accepts(format!("Basic {basic}").as_bytes()));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:pass");
        assert!(!c.accepts(format!("Basic {wrong}").as_bytes()));
        assert!(!c.accepts(b"Basic !!!not-base64"));
        assert!(!c.accepts(b"Bearer \xff\xfe"));
        // Only bearer configured: basic is refused even if it decodes.
        let only_bearer = Credentials {
            bearer: Some(b"t".to_vec()),
            basic: None,
        };
        assert!(!only_bearer.accepts(format!("Basic {basic}").as_bytes()));
        assert!(format!("{c:?}").contains("redacted"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn an_empty_token_never_matches() {
        let c = Credentials {
            bearer: Some(Vec::new()),
            basic: None,
        };
        assert!(!c.accepts(b"Bearer "));
        assert!(!c.accepts(b"Bearer  x"));
    }
}
