//! Sending one notification: an HTTP `POST` of JSON, over `http://` or
//! `https://` (rustls, the webpki roots), with a timeout per attempt, and
//! retried with doubling pauses on what may pass (a 5xx answer, a
//! timeout, a connection failure), never on a 4xx (the receiver refused
//! the message itself; sending it again would not help).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Most of an error answer's body kept for the error message.
const MAX_ERROR_BODY: usize = 512;

/// What became of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer, after this many attempts.
    Delivered {
        /// Attempts made (1 when the first one passed).
        attempts: u32,
    },
    /// Every attempt failed, or one failed for good (a 4xx).
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last failure, in words.
        error: String,
    },
}

/// One attempt's failure: whether another attempt may pass.
struct Failure {
    retry: bool,
    error: String,
}

/// Posts JSON with timeouts and retries (cheap to clone).
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender with `timeout` per attempt, `attempts` in all, and a first
    /// pause of `backoff` between attempts, doubled each time.
    pub fn new(timeout: Duration, attempts: u32, backoff: Duration) -> Sender {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Sender {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
            attempts: attempts.max(1),
            backoff,
        }
    }

    async fn attempt(&self, url: &str, body: &Bytes) -> Result<(), Failure> {
        let request = hyper::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "vitals-collector")
            .body(Full::new(body.clone()))
            .map_err(|e| Failure {
                retry: false,
                error: format!("cannot build the request: {e}"),
            })?;
        let answer = tokio::time::timeout(self.timeout, async {
            let resp = self.client.request(request).await.map_err(|e| Failure {
                retry: true,
                error: format!("cannot reach the receiver: {e}"),
            })?;
            let status = resp.status();
            let text = match Limited::new(resp.into_body(), 64 * 1024).collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            Ok::<_, Failure>((status, text))
        })
        .await
        .map_err(|_| Failure {
            retry: true,
            error: format!("no answer within {:?}", self.timeout),
        })??;
        let (status, text) = answer;
        if status.is_success() {
            return Ok(());
        }
        let text: String = text.chars().take(MAX_ERROR_BODY).collect();
        Err(Failure {
            retry: status.is_server_error(),
            error: format!("answered {status}: {}", text.trim()),
        })
    }

    /// Posts `body` to `url`, retrying as the module says.
    pub async fn post_json(&self, url: &str, body: Vec<u8>) -> Outcome {
        let body = Bytes::from(body);
        let mut pause = self.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(url, &body).await {
                Ok(()) => return Outcome::Delivered { attempts },
                Err(f) if !f.retry || attempts >= self.attempts => {
                    return Outcome::Failed {
                        attempts,
                        error: f.error,
                    };
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
            }
        }
    }
}
