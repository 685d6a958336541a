//! OTLP attributes: reading one by key as text or a number, turning a
//! data point's attributes into custom-metric labels, and the stable text
//! form of an attribute set that stream keys are made of.

use super::super::validate::check_name;
use crate::config::Limits;
use crate::error::ApiError;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Most labels a custom metric from OTLP may carry (as on `/v1/ingest`).
const MAX_LABELS: usize = 32;

/// The attribute `key`'s value, if present.
pub(crate) fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The attribute `key` as text: a string as it is, a number or boolean
/// written out; `None` when absent, empty or structured.
pub(crate) fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    find(attrs, key).and_then(scalar)
}

/// A scalar value written as text; `None` for arrays, maps and bytes.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The attribute `key` as an integer: an int, or a string of digits (some
/// SDKs send the status code as a string).
pub(crate) fn integer(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match find(attrs, key)? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.trim().parse().ok(),
        Value::DoubleValue(d) if d.fract() == 0.0 && d.abs() < 1e15 => Some(*d as i64),
        _ => None,
    }
}

/// A data point's attributes as custom-metric labels, checked like the
/// labels of `/v1/ingest` (at most 32, names and values within their
/// limits, no control characters). Structured values are written as
/// JSON-like text.
pub(crate) fn labels(
    attrs: &[KeyValue],
    limits: &Limits,
) -> Result<BTreeMap<String, String>, ApiError> {
    if attrs.len() > MAX_LABELS {
        return Err(ApiError::bad_request(
            "too_many_labels",
            format!(
                "a data point has {} attributes, over {MAX_LABELS}",
                attrs.len()
            ),
        ));
    }
    let mut out = BTreeMap::new();
    for kv in attrs {
        check_name("attribute name", &kv.key, limits.max_name_len, true)?;
        let value = kv.value.as_ref().map(any_text).unwrap_or_default();
        check_name("attribute value", &value, limits.max_route_len, false)?;
        out.insert(kv.key.clone(), value);
    }
    Ok(out)
}

/// Any value as text (structured ones in a compact, stable form).
fn any_text(v: &AnyValue) -> String {
    let Some(v) = &v.value else {
        return String::new();
    };
    if let Some(s) = scalar(v) {
        return s;
    }
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::StringValue(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::ArrayValue(a) => {
            out.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(x) = &x.value {
                    write_value(out, x);
                }
            }
            out.push(']');
        }
        Value::KvlistValue(kv) => write_set(out, &kv.values),
        Value::BytesValue(b) => {
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        other => out.push_str(&scalar(other).unwrap_or_default()),
    }
}

/// The attributes in a stable text form (sorted by key), for stream keys.
pub(crate) fn canonical(attrs: &[KeyValue]) -> String {
    let mut out = String::new();
    write_set(&mut out, attrs);
    out
}

fn write_set(out: &mut String, attrs: &[KeyValue]) {
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    out.push('{');
    for (i, kv) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{:?}:", kv.key);
        if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            write_value(out, v);
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn attributes_read_as_text_and_numbers_in_a_stable_order() {
        let a = vec![
            kv("b", Value::IntValue(200)),
            kv("a", Value::StringValue("x".into())),
        ];
        assert_eq!(integer(&a, "b"), Some(200));
        assert_eq!(text(&a, "b").as_deref(), Some("200"));
        let s = vec![kv("b", Value::StringValue("503".into()))];
        assert_eq!(integer(&s, "b"), Some(503));
        let reversed: Vec<KeyValue> = a.iter().rev().cloned().collect();
        assert_eq!(canonical(&a), canonical(&reversed));
        assert_eq!(canonical(&a), r#"{"a":"x","b":200}"#);
    }
}
