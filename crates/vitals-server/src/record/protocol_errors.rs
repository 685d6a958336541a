//! Spotting HTTP protocol errors from the bytes a connection writes.
//!
//! `axum::serve` drops the error hyper returns when a client breaks the
//! protocol, so a listener cannot learn of it directly. What it can see is
//! hyper's answer on the wire: for HTTP/1 a `400`, `414` or `431` head that
//! hyper writes by itself before closing (a malformed request line or
//! header, a URI or header block too large, a TLS hello on a plain port),
//! and for HTTP/2 a `GOAWAY` frame with an error code. [`WriteSniffer`]
//! watches the written bytes for those, at the cost of a few comparisons
//! per write call (HTTP/1) or per frame header (HTTP/2); it never copies or
//! buffers the data.
//!
//! An HTTP/1 error head may also come from the application (a handler
//! answering 400): the layer counts those per connection, and only the
//! heads beyond that count are hyper's own.

/// What a connection's writes told us about how it ended.
#[derive(Debug, Default)]
pub(crate) struct WriteSniffer {
    protocol: Protocol,
    /// HTTP/1 heads with status 400, 414 or 431 seen at the start of a write.
    h1_error_heads: u32,
    /// The first such status, for the failure reason.
    h1_first_status: Option<u16>,
    h2: FrameTracker,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Nothing written yet.
    #[default]
    Unknown,
    Http1,
    Http2,
}

/// HTTP/1 statuses hyper answers by itself on a parse error.
const H1_AUTO_STATUSES: [&[u8; 3]; 3] = [b"400", b"414", b"431"];

/// Why a connection failed, as the sniffer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    /// hyper answered a malformed HTTP/1 request with this status.
    Http1 { status: u16 },
    /// The server ended an HTTP/2 connection with this `GOAWAY` error code.
    Http2 { code: u32 },
}

impl ProtocolError {
    /// A short reason for `ConnectionFailed` events.
    pub(crate) fn reason(self) -> String {
        match self {
            ProtocolError::Http1 { status } => {
                format!("http/1: malformed request, answered {status}")
            }
            ProtocolError::Http2 { code } => {
                format!("http/2: GOAWAY {}", h2_error_name(code))
            }
        }
    }
}

fn h2_error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("error code {code}"), |n| (*n).to_owned())
}

impl WriteSniffer {
    /// Looks at `written`, the bytes one write call just put on the wire.
    #[inline]
    pub(crate) fn wrote(&mut self, written: &[u8]) {
        if written.is_empty() {
            return;
        }
        if self.protocol == Protocol::Unknown {
            // A server's first bytes are a status line (HTTP/1) or its
            // SETTINGS frame (HTTP/2), whose first byte is a small length.
            self.protocol = if written[0] == b'H' {
                Protocol::Http1
            } else {
                Protocol::Http2
            };
        }
        match self.protocol {
            Protocol::Http1 => self.h1_write(written),
            Protocol::Http2 => self.h2.feed(written),
            Protocol::Unknown => {}
        }
    }

    /// Like [`wrote`](Self::wrote) for a vectored write of `n` bytes.
    pub(crate) fn wrote_vectored(&mut self, bufs: &[std::io::IoSlice<'_>], mut n: usize) {
        for buf in bufs {
            if n == 0 {
                break;
            }
            let take = buf.len().min(n);
            if take == 0 {
                continue;
            }
            self.wrote(&buf[..take]);
            if self.protocol == Protocol::Http1 {
                // HTTP/1 heads are looked for at the start of a write only.
                return;
            }
            n -= take;
        }
    }

    fn h1_write(&mut self, written: &[u8]) {
        // "HTTP/1.1 400 " — version, space, three-digit status, space.
        let Some(head) = written.get(..13) else {
            return;
        };
        // Nearly every head is not a 4xx: one comparison settles it.
        if head[9] != b'4' {
            return;
        }
        if !head.starts_with(b"HTTP/1.") || head[8] != b' ' || head[12] != b' ' {
            return;
        }
        let status = &head[9..12];
        if H1_AUTO_STATUSES.iter().any(|s| &s[..] == status) {
            self.h1_error_heads = self.h1_error_heads.saturating_add(1);
            if self.h1_first_status.is_none() {
                self.h1_first_status = std::str::from_utf8(status)
                    .ok()
                    .and_then(|s| s.parse().ok());
            }
        }
    }

    /// The protocol error this connection ended with, if any, given how
    /// many 400/414/431 answers the application itself sent on it.
    pub(crate) fn error(&self, app_error_heads: u32) -> Option<ProtocolError> {
        match self.protocol {
            Protocol::Http1 if self.h1_error_heads > app_error_heads => {
                Some(ProtocolError::Http1 {
                    status: self.h1_first_status.unwrap_or(400),
                })
            }
            Protocol::Http2 => self
                .h2
                .goaway_error
                .map(|code| ProtocolError::Http2 { code }),
            _ => None,
        }
    }
}

/// Follows HTTP/2 frame boundaries across writes, reading only frame
/// headers and the error code of `GOAWAY` frames.
#[derive(Debug, Default)]
struct FrameTracker {
    /// Bytes of the current frame header collected so far.
    header: [u8; 9],
    header_len: u8,
    /// Payload bytes of the current frame still to come.
    remaining: u32,
    /// Position within the current payload (for GOAWAY's error code).
    offset: u32,
    in_goaway: bool,
    code: [u8; 4],
    /// The first non-zero `GOAWAY` error code written.
    goaway_error: Option<u32>,
}

const GOAWAY: u8 = 0x7;

impl FrameTracker {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining == 0 && self.header_len < 9 {
                let take = (9 - self.header_len as usize).min(bytes.len());
                let at = self.header_len as usize;
                self.header[at..at + take].copy_from_slice(&bytes[..take]);
                self.header_len += take as u8;
                bytes = &bytes[take..];
                if self.header_len == 9 {
                    self.start_frame();
                }
                continue;
            }
            let take = (self.remaining as usize).min(bytes.len());
            if self.in_goaway {
                // The error code is payload bytes 4..8.
                for (i, b) in bytes[..take].iter().enumerate() {
                    let pos = self.offset as usize + i;
                    if (4..8).contains(&pos) {
                        self.code[pos - 4] = *b;
                    }
                }
            }
            self.offset += take as u32;
            self.remaining -= take as u32;
            bytes = &bytes[take..];
            if self.remaining == 0 {
                self.end_frame();
            }
        }
    }

    fn start_frame(&mut self) {
        let h = self.header;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        self.in_goaway = h[3] == GOAWAY;
        self.remaining = len;
        self.offset = 0;
        self.code = [0; 4];
        if len == 0 {
            self.end_frame();
        }
    }

    fn end_frame(&mut self) {
        if self.in_goaway && self.offset >= 8 {
            let code = u32::from_be_bytes(self.code);
            if code != 0 && self.goaway_error.is_none() {
                self.goaway_error = Some(code);
            }
        }
        self.in_goaway = false;
        self.header_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            0,
        ];
        f.extend_from_slice(payload);
        f
    }

    fn goaway(code: u32) -> Vec<u8> {
        let mut p = vec![0, 0, 0, 1];
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(b"debug data");
        frame(GOAWAY, &p)
    }

    #[test]
    fn http1_auto_answers_beyond_the_apps_own_are_errors() {
        let mut s = WriteSniffer::default();
        s.wrote(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(s.error(0), None);
        s.wrote(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        // The application sent one 400 itself: not a protocol error.
        assert_eq!(s.error(1), None);
        assert_eq!(s.error(0), Some(ProtocolError::Http1 { status: 400 }));
        let mut s = WriteSniffer::default();
        s.wrote(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        assert_eq!(s.error(0), Some(ProtocolError::Http1 { status: 431 }));
        // Other statuses, and a 400 in the middle of a body, are not.
        let mut s = WriteSniffer::default();
        s.wrote(b"HTTP/1.1 404 Not Found\r\n\r\n");
        s.wrote(b"xxHTTP/1.1 400 ");
        assert_eq!(s.error(0), None);
    }

    #[test]
    fn http2_goaway_with_an_error_code_is_found_across_split_writes() {
        let mut bytes = frame(0x4, &[0, 3, 0, 0, 0, 100]); // SETTINGS
        bytes.extend(frame(0x0, &[b'x'; 40])); // DATA
        bytes.extend(goaway(1));
        for split in [1, 3, 9, 10, 17, bytes.len() - 1] {
            let mut s = WriteSniffer::default();
            for chunk in bytes.chunks(split) {
                s.wrote(chunk);
            }
            assert_eq!(
                s.error(0),
                Some(ProtocolError::Http2 { code: 1 }),
                "split {split}"
            );
        }
        let err = ProtocolError::Http2 { code: 1 };
        assert_eq!(err.reason(), "http/2: GOAWAY PROTOCOL_ERROR");
    }

    #[test]
    fn graceful_http2_goaway_is_not_an_error() {
        let mut s = WriteSniffer::default();
        let mut bytes = frame(0x4, &[]);
        bytes.extend(goaway(0));
        s.wrote(&bytes);
        assert_eq!(s.error(0), None);
    }

    #[test]
    fn vectored_writes_are_read_up_to_what_was_written() {
        let mut s = WriteSniffer::default();
        let a = frame(0x4, &[]);
        let b = goaway(2);
        let bufs = [std::io::IoSlice::new(&a), std::io::IoSlice::new(&b)];
        // Only the SETTINGS frame and part of the GOAWAY went out.
        s.wrote_vectored(&bufs, a.len() + 12);
        assert_eq!(s.error(0), None);
        s.wrote(&b[12..]);
        assert_eq!(s.error(0), Some(ProtocolError::Http2 { code: 2 }));
    }

    #[test]
    fn payload_bytes_are_not_read_as_frames() {
        let mut s = WriteSniffer::default();
        // A DATA frame announcing 131 071 bytes, then bytes that look like a
        // GOAWAY but are still inside that payload.
        s.wrote(&[0x01, 0xff, 0xff, 0x00, 0, 0, 0, 0, 1]);
        s.wrote(&goaway(1));
        assert_eq!(s.error(0), None);
    }
}
