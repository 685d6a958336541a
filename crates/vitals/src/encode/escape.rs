//! Escaping of label values and help text, exactly as the formats require.

/// Label values (both formats): `\` → `\\`, `"` → `\"`, newline → `\n`.
/// Everything else, control characters and any Unicode included, is kept.
pub(crate) fn label_value(out: &mut Vec<u8>, v: &str) {
    escape(out, v, |b| match b {
        b'\\' => Some(b"\\\\"),
        b'"' => Some(b"\\\""),
        b'\n' => Some(b"\\n"),
        _ => None,
    });
}

/// Prometheus text `# HELP`: `\` → `\\`, newline → `\n`.
pub(crate) fn prometheus_help(out: &mut Vec<u8>, v: &str) {
    escape(out, v, |b| match b {
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        _ => None,
    });
}

/// OpenMetrics `# HELP`: as label values.
pub(crate) fn openmetrics_help(out: &mut Vec<u8>, v: &str) {
    label_value(out, v);
}

#[inline]
fn escape(out: &mut Vec<u8>, v: &str, map: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = v.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(rep) = map(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(rep);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse, as a parser reads it.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(o) => out.push(o),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn label_values_round_trip(v in "\\PC*|[\\\\\"\n\r\t\u{0}-\u{1f}é漢😀]*") {
            let mut out = Vec::new();
            label_value(&mut out, &v);
            let s = String::from_utf8(out).unwrap();
            prop_assert!(!s.contains('\n'));
            // No unescaped quote survives.
            let mut prev_backslashes = 0;
            for c in s.chars() {
                if c == '"' { prop_assert!(prev_backslashes % 2 == 1); }
                prev_backslashes = if c == '\\' { prev_backslashes + 1 } else { 0 };
            }
            prop_assert_eq!(unescape(&s), v);
        }
    }

    #[test]
    fn examples() {
        let mut out = Vec::new();
        label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, b"a\\\\b\\\"c\\nd");
        let mut out = Vec::new();
        prometheus_help(&mut out, "say \"hi\"\n\\");
        assert_eq!(out, b"say \"hi\"\\n\\\\");
    }
}
