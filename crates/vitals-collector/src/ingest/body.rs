//! Step 1 of ingest: the body's bytes into a batch. The
//! `Content-Encoding` (gzip or identity), gunzipping within the limit on
//! the *decompressed* size (a small gzip body can inflate to gigabytes),
//! and JSON parsing, with strings borrowed from the body where they can be.

use crate::error::ApiError;
use axum::http::{HeaderValue, StatusCode};
use std::borrow::Cow;
use std::io::Read;

/// Whether a body with this `Content-Encoding` header is gzip (`None`: no
/// header, identity); anything but gzip or identity is refused.
pub fn is_gzip(content_encoding: Option<&HeaderValue>) -> Result<bool, ApiError> {
    match content_encoding.map(|v| v.to_str().map(str::trim)) {
        None => Ok(false),
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(Ok(v)) if v.eq_ignore_ascii_case("identity") => Ok(false),
        Some(_) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "Content-Encoding must be gzip or identity",
        )),
    }
}

/// Decodes a request body: gunzips it when `gzip` (refusing anything that
/// inflates past `max`), then parses JSON.
pub fn decode_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    gzip: bool,
    max: usize,
) -> Result<T, ApiError> {
    parse_body(&inflate_body(body, gzip, max)?)
}

/// The JSON text of a request body: the body itself, or when `gzip` its
/// inflated form (refusing anything that inflates past `max`). Borrowed
/// when there is nothing to inflate, so [`parse_body`] can read strings in
/// place.
pub fn inflate_body(body: &[u8], gzip: bool, max: usize) -> Result<Cow<'_, [u8]>, ApiError> {
    if !gzip {
        return Ok(Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
    reader.read_to_end(&mut out).map_err(|e| {
        ApiError::bad_request(
            "invalid_gzip",
            format!("the gzip body could not be read: {e}"),
        )
    })?;
    if out.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed_too_large",
            format!("the body inflates past the {max}-byte limit; send smaller batches"),
        ));
    }
    Ok(Cow::Owned(out))
}

/// Parses a JSON body into `T`, which may borrow from it (see
/// [`RequestBatchRef`](vitals::wire::RequestBatchRef)); a malformed body is an `invalid_json` error.
pub fn parse_body<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(json).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not a valid batch: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gzip_and_identity_are_read() {
        let h = HeaderValue::from_static;
        assert_eq!(is_gzip(None), Ok(false));
        assert_eq!(is_gzip(Some(&h(" GZIP "))), Ok(true));
        assert_eq!(is_gzip(Some(&h("identity"))), Ok(false));
        let err = is_gzip(Some(&h("br"))).expect_err("brotli is refused");
        assert_eq!(err.reason, "unsupported_encoding");
    }

    #[test]
    fn the_limit_is_on_the_inflated_size() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&[b' '; 10_000]).expect("gzip");
        let small = e.finish().expect("gzip");
        assert!(small.len() < 1_000);
        assert!(inflate_body(&small, true, 10_000).is_ok());
        let err = inflate_body(&small, true, 9_999).expect_err("inflates past the limit");
        assert_eq!(err.reason, "decompressed_too_large");
    }
}
