//! `reqwest` (feature `reqwest`): [`TrackedReqwest`] wraps a
//! `reqwest::Client` and records each call as the tower layer does, until
//! the response body is read to its end (or dropped).

use super::call::Call;
use super::error_kind::ErrorKind;
use super::layer::ClientBody;
use super::metrics::ClientMetrics;

/// A `reqwest::Client` whose calls are recorded in the `http_client_*`
/// families of one declared client (errors by kind from
/// `reqwest::Error`'s `is_connect`/`is_timeout` and its source chain).
/// Connections opened and reused are not counted: reqwest does not expose
/// them.
///
/// The returned `reqwest::Response` is the real one (status, headers,
/// body, extensions), except that its `url()` is not the request's:
/// reqwest offers no way to keep it through the body wrapper.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let metrics = vitals_server::ServerMetrics::new()?;
/// let client = vitals_server::client::reqwest::TrackedReqwest::new(
///     reqwest::Client::new(),
///     metrics.client("billing")?,
/// );
/// let res = client.get("http://billing.internal:8080/invoices").await?;
/// let body = res.text().await?; // recorded when the body has been read
/// # drop(body); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TrackedReqwest {
    client: reqwest::Client,
    metrics: ClientMetrics,
}

impl TrackedReqwest {
    /// Records the calls of `client` into `metrics`' client (its timeout
    /// setting is not used: give reqwest its own with
    /// `ClientBuilder::timeout`).
    pub fn new(client: reqwest::Client, metrics: ClientMetrics) -> Self {
        TrackedReqwest { client, metrics }
    }

    /// The wrapped client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `GET url`.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, reqwest::Error> {
        let req = self.client.get(url).build()?;
        self.execute(req).await
    }

    /// Sends `req` (built with [`inner`](Self::inner)`().get(…).build()`),
    /// recording the call.
    pub async fn execute(
        &self,
        req: reqwest::Request,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut head = http::Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.url().as_str().parse().unwrap_or_default();
        let mut req = req;
        let mut call = Call::start(&self.metrics, &mut head);
        for (name, value) in head.headers() {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        match self.client.execute(req).await {
            Ok(res) => {
                let res: http::Response<reqwest::Body> = res.into();
                call.headers(&res);
                let res = res.map(|body| reqwest::Body::wrap(ClientBody::new(body, call)));
                Ok(reqwest::Response::from(res))
            }
            Err(e) => {
                call.finish(Err(ErrorKind::of(&e)));
                Err(e)
            }
        }
    }
}
