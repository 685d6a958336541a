//! Closing connections that send no request head in time (slowloris).
//!
//! `axum::serve` gives hyper no timer, so hyper waits forever for a request
//! head: a client that connects and sends nothing, or half a head, holds
//! the connection (and its file descriptor) as long as it likes. The IO
//! wrapper therefore watches a new connection's first bytes itself: once
//! they hold an empty line (`\r\n\r\n`, the end of an HTTP/1 head; the
//! HTTP/2 preface contains one too) or the server writes anything (an
//! answer, or the handshake of a TLS layer above the wrapper), the
//! deadline is dropped and costs nothing more. Until then, a read that
//! finds the deadline passed fails with `TimedOut`, which makes hyper close
//! the connection. One timer per connection, none per request.
//!
//! Later heads on a kept-alive connection are covered by hyper's own
//! header-read timeout where the server is ours (`TrackedIo::serve`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The deadline of a connection's first request head.
#[derive(Debug)]
pub(crate) struct HeadDeadline {
    deadline: Instant,
    /// Made on the first read that has to wait (inside the runtime).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes of `\r\n\r\n` matched at the end of what was read so far.
    matched: u8,
}

impl HeadDeadline {
    /// A deadline `timeout` after `opened`.
    pub(crate) fn new(opened: Instant, timeout: Duration) -> Self {
        HeadDeadline {
            deadline: opened + timeout,
            sleep: None,
            matched: 0,
        }
    }

    /// Looks at bytes just read; true once they complete a request head.
    pub(crate) fn saw(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.matched = match (self.matched, b) {
                (0 | 2, b'\r') => self.matched + 1,
                (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.matched == 4 {
                return true;
            }
        }
        false
    }

    /// `Ready` once the deadline has passed; otherwise wakes the task then.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        self.sleep
            .get_or_insert_with(|| {
                Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                    deadline,
                )))
            })
            .as_mut()
            .poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_complete_at_its_empty_line_even_across_reads() {
        let mut d = HeadDeadline::new(Instant::now(), Duration::from_secs(1));
        assert!(!d.saw(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!d.saw(b"\r"));
        assert!(d.saw(b"\n"));
        let mut d = HeadDeadline::new(Instant::now(), Duration::from_secs(1));
        assert!(!d.saw(b"GET / HTTP/1.1\r\n\r\r\n"));
        assert!(!d.saw(b"\n\n\r\n"));
        assert!(d.saw(b"\r\n"));
        let mut d = HeadDeadline::new(Instant::now(), Duration::from_secs(1));
        assert!(
            d.saw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            "the HTTP/2 preface"
        );
    }
}
