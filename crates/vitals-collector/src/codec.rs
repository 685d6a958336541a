//! A compact binary form of a [`Sketch`] for storage: about 2–3 bytes per
//! non-empty bucket instead of ~10 in JSON, and decoded without a parser.
//!
//! Layout: version byte `1`, varint zero count, the sum as 8 bytes
//! little-endian, varint number of buckets, then per bucket (lowest index
//! first) the zigzag varint of the index minus the previous one and the
//! varint count.

use vitals::Sketch;

const VERSION: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated sketch")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("sketch varint too long".into())
}

/// Encodes a sketch (its `rejected` count is not kept).
pub fn encode_sketch(s: &Sketch) -> Vec<u8> {
    let n = s.buckets().count();
    let mut out = Vec::with_capacity(20 + 3 * n);
    out.push(VERSION);
    put_varint(&mut out, s.zero_count());
    out.extend_from_slice(&s.sum().to_le_bytes());
    put_varint(&mut out, n as u64);
    let mut prev = 0i64;
    for (i, c) in s.buckets() {
        let d = i64::from(i) - prev;
        prev = i64::from(i);
        put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        put_varint(&mut out, c);
    }
    out
}

/// Decodes what [`encode_sketch`] wrote; refuses anything malformed.
pub fn decode_sketch(buf: &[u8]) -> Result<Sketch, String> {
    let mut pairs = Vec::new();
    let (zero, sum) = decode_sketch_parts(buf, &mut pairs)?;
    Sketch::from_buckets(zero, sum, pairs).ok_or_else(|| "sketch index out of range".into())
}

/// Decodes what [`encode_sketch`] wrote into its parts: returns the zero
/// count and the sum, and fills `pairs` (cleared first) with the
/// `(index, count)` buckets. Checks the encoding, not the index range
/// ([`decode_sketch`] and [`crate::model::StatsSum::add_encoded`] do).
pub fn decode_sketch_parts(buf: &[u8], pairs: &mut Vec<(i32, u64)>) -> Result<(u64, f64), String> {
    pairs.clear();
    if buf.first() != Some(&VERSION) {
        return Err("unknown sketch encoding".into());
    }
    let mut pos = 1;
    let zero = get_varint(buf, &mut pos)?;
    let sum_bytes: [u8; 8] = buf
        .get(pos..pos + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or("truncated sketch")?;
    pos += 8;
    let n = get_varint(buf, &mut pos)?;
    if n > buf.len() as u64 {
        return Err("sketch bucket count exceeds its size".into());
    }
    let mut prev = 0i64;
    pairs.reserve(n as usize);
    for _ in 0..n {
        let z = get_varint(buf, &mut pos)?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        prev = prev.checked_add(d).ok_or("sketch index overflows")?;
        let i = i32::try_from(prev).map_err(|_| "sketch index out of range")?;
        pairs.push((i, get_varint(buf, &mut pos)?));
    }
    if pos != buf.len() {
        return Err("trailing bytes after sketch".into());
    }
    Ok((zero, f64::from_le_bytes(sum_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let mut s = Sketch::new();
        for v in [0.0, 0.001, 1.0, 1.0, 17.5, 1e6, 3e9] {
            s.record(v);
        }
        let bytes = encode_sketch(&s);
        assert_eq!(decode_sketch(&bytes), Ok(s.clone()));
        assert_eq!(
            decode_sketch(&encode_sketch(&Sketch::new())),
            Ok(Sketch::new())
        );
        for cut in 0..bytes.len() {
            assert!(decode_sketch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_sketch(&extra).is_err());
        assert!(
            decode_sketch(&[
                1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1
            ])
            .is_err()
        );
        assert!(
            decode_sketch(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err()
        );
    }
}
