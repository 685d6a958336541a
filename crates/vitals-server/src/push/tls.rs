//! `https://` for the push client (feature `push-tls`): rustls with the ring
//! provider, Mozilla's roots from `webpki-roots` plus private CAs the user
//! adds, and telling a TLS failure apart from other connection errors.

use super::error::PushError;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;

/// The trusted roots and the client configuration built from them.
///
/// Built once per [`PushConfig`](super::PushConfig) (and again for each
/// added CA), so starting the push loop cannot fail on TLS.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    roots: RootCertStore,
    /// Private CAs added on top of the Mozilla roots.
    added: usize,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ~150 Mozilla roots would drown a printed `PushConfig`.
        f.debug_struct("TlsSettings")
            .field("roots", &self.roots.len())
            .field("added_roots", &self.added)
            .finish()
    }
}

impl TlsSettings {
    pub(crate) fn new() -> Result<Self, PushError> {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = client_config(roots.clone())?;
        Ok(TlsSettings {
            roots,
            added: 0,
            config,
        })
    }

    /// Adds every `CERTIFICATE` in `pem` to the trusted roots.
    pub(crate) fn add_root_pem(&mut self, pem: &[u8]) -> Result<(), PushError> {
        let bad = |reason: String| PushError::InvalidRootCertificate { reason };
        let mut roots = self.roots.clone();
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("unreadable PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable X.509 certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("no CERTIFICATE block found".to_owned()));
        }
        self.config = client_config(roots.clone())?;
        self.roots = roots;
        self.added += added;
        Ok(())
    }

    /// A connector for both `http://` and `https://` URLs.
    pub(crate) fn connector(&self, http: HttpConnector) -> HttpsConnector<HttpConnector> {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }
}

/// The ring provider named explicitly: rustls's process default would
/// panic when an application also enables another provider.
fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, PushError> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| PushError::Tls {
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether a failed request failed in TLS (handshake, certificate).
///
/// rustls's error reaches us inside `io::Error`s (tokio-rustls wraps it,
/// hyper-rustls wraps that again), and `io::Error::source()` skips the
/// error it wraps, so an `io::Error` is opened with `get_ref()` instead.
pub(crate) fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    // Bounded: a chain is never this long, and a cycle would be a bug.
    for _ in 0..16 {
        let Some(e) = next else { break };
        if e.is::<rustls::Error>() {
            return true;
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        let mut tls = TlsSettings::new().unwrap();
        let before = tls.roots.len();
        assert!(before > 50, "Mozilla roots loaded: {before}");
        let err = tls.add_root_pem(b"not a pem at all").unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = tls.add_root_pem(garbage).unwrap_err();
        assert!(
            matches!(err, PushError::InvalidRootCertificate { .. }),
            "{err}"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(tls.add_root_pem(broken).is_err());
        // A refused PEM leaves the roots as they were.
        assert_eq!(tls.roots.len(), before);
        assert_eq!(tls.added, 0);
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        assert!(is_tls_error(&io));
        // As hyper-rustls hands it over: wrapped twice.
        let rustls_err = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let twice = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls_err,
        ));
        assert!(is_tls_error(&twice));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_tls_error(&plain));
    }
}
