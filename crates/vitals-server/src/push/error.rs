//! Why a push configuration, a caller name or a root certificate was
//! refused.

use super::limits::MAX_CALLER_LEN;

/// Why a push configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The collector address is not an `http://` or `https://`
    /// `host[:port][/prefix]` URL (`https://` needs the `push-tls` feature).
    #[error("invalid collector URL {url:?}: {reason} (expected e.g. \"http://127.0.0.1:7070\")")]
    InvalidCollectorUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key cannot be sent in an `Authorization` header.
    #[error(
        "invalid push key: it must be visible ASCII (it is sent as `Authorization: Bearer <key>`)"
    )]
    InvalidKey,
    /// A caller name is empty, too long or has characters other than
    /// ASCII letters, digits and `-_.:`.
    #[error(
        "invalid caller name {caller:?}: use 1 to {MAX_CALLER_LEN} ASCII letters, digits or -_.:"
    )]
    InvalidCaller {
        /// The name given.
        caller: String,
    },
    /// A root certificate given to
    /// [`PushConfig::root_certificate_pem`](super::PushConfig::root_certificate_pem)
    /// cannot be used.
    #[error("invalid root certificate: {reason} (expected one or more PEM \"CERTIFICATE\" blocks)")]
    InvalidRootCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client could not be set up (the crypto provider refused the
    /// protocol versions); not expected with the built-in ring provider.
    #[error("cannot set up TLS for the push client: {reason}")]
    Tls {
        /// What rustls said.
        reason: String,
    },
}
