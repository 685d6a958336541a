//! Why an outbound request failed, read off the error's source chain: the
//! `kind` label of `http_client_errors_total`.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong with an outbound request that got no full response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection could not be opened (refused, unreachable, DNS).
    Connect,
    /// The client's timeout elapsed before the response completed.
    Timeout,
    /// The TLS handshake failed or the certificate was refused.
    Tls,
    /// Anything else: the peer broke HTTP, closed mid-response, a body
    /// failed.
    Protocol,
}

impl ErrorKind {
    /// The label value: `connect`, `timeout`, `tls` or `protocol`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
        }
    }

    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Protocol,
    ];

    /// Classifies `error` by walking its source chain (and the errors
    /// inside `std::io::Error`s, which `source()` skips): a timeout
    /// anywhere wins, then a TLS error, then a connect error; the rest is
    /// `protocol`.
    pub fn of(error: &(dyn StdError + 'static)) -> ErrorKind {
        let mut timeout = false;
        let mut tls = false;
        let mut connect = false;
        for_each_cause(error, &mut |e| {
            if e.is::<TimedOut>() {
                timeout = true;
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::TimedOut => timeout = true,
                    std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable => connect = true,
                    _ => {}
                }
            }
            if is_tls(e) {
                tls = true;
            }
            if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
                connect |= h.is_connect();
            }
            #[cfg(feature = "reqwest")]
            if let Some(r) = e.downcast_ref::<reqwest::Error>() {
                timeout |= r.is_timeout();
                connect |= r.is_connect();
            }
        });
        if timeout {
            ErrorKind::Timeout
        } else if tls {
            ErrorKind::Tls
        } else if connect {
            ErrorKind::Connect
        } else {
            ErrorKind::Protocol
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Calls `f` on `error`, each of its sources, and the error inside each
/// `std::io::Error` on the way.
fn for_each_cause(error: &(dyn StdError + 'static), f: &mut dyn FnMut(&(dyn StdError + 'static))) {
    let mut next = Some(error);
    let mut depth = 0;
    while let Some(e) = next {
        f(e);
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let inner: &(dyn StdError + 'static) = inner;
            for_each_cause(inner, f);
        }
        depth += 1;
        // A chain this long is a cycle or hostile; stop reading it.
        if depth > 32 {
            break;
        }
        next = e.source();
    }
}

/// A TLS failure: a rustls error (with the `push-tls` feature), or an
/// error whose text names TLS or a certificate (other TLS stacks).
fn is_tls(e: &(dyn StdError + 'static)) -> bool {
    #[cfg(feature = "push-tls")]
    if e.is::<rustls::Error>() {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("tls") || text.contains("ssl")
}

/// The error the client layer's own timeout fails a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the outbound request timed out")
    }
}

impl StdError for TimedOut {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("client error")
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn kinds_are_read_through_the_chain_and_io_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(ErrorKind::of(&Wrap(Box::new(refused))), ErrorKind::Connect);
        assert_eq!(ErrorKind::of(&Wrap(Box::new(TimedOut))), ErrorKind::Timeout);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, "received corrupt message");
        // Not TLS by its text: a plain protocol error.
        assert_eq!(ErrorKind::of(&Wrap(Box::new(tls))), ErrorKind::Protocol);
        #[cfg(feature = "push-tls")]
        {
            let inner = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            );
            assert_eq!(ErrorKind::of(&Wrap(Box::new(inner))), ErrorKind::Tls);
        }
        assert_eq!(ErrorKind::of(&std::fmt::Error), ErrorKind::Protocol);
        assert_eq!(ErrorKind::Timeout.to_string(), "timeout");
    }
}
