//! [`CachedCall`]: the handles of the first successful (method, host,
//! status) a client saw, kept by the client ([`ClientShared`](super::metrics))
//! and read by each call (`call.rs`), so most calls skip the label lookups.

/// The handles of one (method, host, status), resolved once per client.
#[derive(Debug)]
pub(crate) struct CachedCall {
    pub(super) method: &'static str,
    /// The URI authority as the request spelled it (empty with a peer).
    pub(super) authority: Box<str>,
    pub(super) host: Box<str>,
    pub(super) status: http::StatusCode,
    pub(super) requests: vitals::Counter,
    pub(super) duration: vitals::Histogram,
    pub(super) first_byte: vitals::Histogram,
}
