//! One remote-write request on the wire: the four headers the protocol
//! requires (`Content-Encoding: snappy`, `Content-Type:
//! application/x-protobuf`, `User-Agent`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`), the tenant header and any
//! configured ones, a timeout, and what the answer means: sent, retry
//! (5xx, 429, network), or drop (any other 4xx, never retried).

use crate::config::RemoteWriteTarget;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("vitals-collector/", env!("CARGO_PKG_VERSION"));

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted it (2xx).
    Sent,
    /// Try again later: `reason` for the failures counter, and the
    /// receiver's `Retry-After`, if it gave one.
    Retry {
        /// `http_5xx`, `http_429` or `network`.
        reason: &'static str,
        /// What happened, for the log.
        detail: String,
        /// The receiver's wish, capped at five minutes.
        after: Option<Duration>,
    },
    /// Refused for good (4xx other than 429): drop it and count.
    Drop {
        /// The status and the start of the receiver's answer.
        detail: String,
    },
}

/// Sends requests to one receiver.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    tenant_header: Option<HeaderName>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    timeout: Duration,
}

impl Sender {
    /// A sender for `target` (its settings are checked already).
    pub fn new(target: &RemoteWriteTarget) -> Result<Sender, String> {
        let uri: Uri = target
            .config
            .url
            .parse()
            .map_err(|e| format!("remote_write url: {e}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        let tenant_header = match &target.config.tenant_header {
            Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut headers = Vec::new();
        for (k, v) in &target.config.headers {
            headers.push((
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                HeaderValue::from_str(v).map_err(|e| e.to_string())?,
            ));
        }
        Ok(Sender {
            client,
            uri,
            tenant_header,
            headers: Arc::new(headers),
            timeout: Duration::from_millis(target.timeout_ms as u64),
        })
    }

    /// Sends one body for `tenant` (the tenant header's value; empty: none).
    pub async fn send(&self, tenant: &str, body: Vec<u8>) -> Outcome {
        let mut req = Request::post(self.uri.clone())
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(header::USER_AGENT, USER_AGENT)
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let (Some(h), false) = (&self.tenant_header, tenant.is_empty()) {
            req = req.header(h, tenant);
        }
        for (k, v) in self.headers.iter() {
            req = req.header(k, v);
        }
        let req = match req.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Drop {
                    detail: format!("the request cannot be built: {e}"),
                };
            }
        };
        let answer = tokio::time::timeout(self.timeout, async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(300)));
            // The answer's first bytes, for the log; a body that fails to
            // arrive changes nothing about the status.
            let text = match resp.into_body().collect().await {
                Ok(b) => {
                    let b = b.to_bytes();
                    String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()
                }
                Err(_) => String::new(),
            };
            Ok::<_, hyper_util::client::legacy::Error>((status, after, text))
        })
        .await;
        match answer {
            Err(_) => Outcome::Retry {
                reason: "network",
                detail: format!("no answer within {:?}", self.timeout),
                after: None,
            },
            Ok(Err(e)) => Outcome::Retry {
                reason: "network",
                detail: with_sources(&e),
                after: None,
            },
            Ok(Ok((status, after, text))) => {
                let detail = format!("{status}: {}", text.trim());
                if status.is_success() {
                    Outcome::Sent
                } else if status.as_u16() == 429 {
                    Outcome::Retry {
                        reason: "http_429",
                        detail,
                        after,
                    }
                } else if status.is_server_error() {
                    Outcome::Retry {
                        reason: "http_5xx",
                        detail,
                        after,
                    }
                } else {
                    Outcome::Drop { detail }
                }
            }
        }
    }
}

fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        text = format!("{text}: {s}");
        next = s.source();
    }
    text
}
