//! Tolerant JSON access for host payloads: double-encoded strings, key casing, loose scalars.
//!
//! The Functions host JSON-encodes every binding value it holds as a .NET string, so a value
//! may arrive as a JSON string that holds JSON (sometimes twice over). Azure's own documents
//! disagree on key casing. These helpers absorb both, so decoders can state what they need.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// How many layers of string encoding are peeled at most; more is treated as plain text.
const MAX_ENCODING_DEPTH: usize = 4;

/// Peels JSON-in-a-string layers: `"\"{\\\"a\\\":1}\""` becomes `{"a":1}`.
///
/// A string that is not itself JSON (plain text) is returned as it is.
pub fn unwrap_encoded(value: &Value) -> Value {
    peel_encoded(value).into_owned()
}

/// [`unwrap_encoded`] without copying a value that was not encoded.
pub fn peel_encoded(value: &Value) -> Cow<'_, Value> {
    let mut current = Cow::Borrowed(value);
    for _ in 0..MAX_ENCODING_DEPTH {
        let Value::String(text) = &*current else {
            break;
        };
        match serde_json::from_str::<Value>(text) {
            Ok(inner) => current = Cow::Owned(inner),
            Err(_) => break,
        }
    }
    current
}

/// Like [`unwrap_encoded`] but stops at a string: used for values that must stay text
/// (ids, names) even when their text happens to parse as a number.
pub fn unwrap_text(value: &Value) -> Value {
    peel_text(value).into_owned()
}

/// [`unwrap_text`] without copying a value that was not encoded.
fn peel_text(value: &Value) -> Cow<'_, Value> {
    let mut current = Cow::Borrowed(value);
    for _ in 0..MAX_ENCODING_DEPTH {
        let Value::String(text) = &*current else {
            break;
        };
        match serde_json::from_str::<Value>(text) {
            Ok(inner @ (Value::String(_) | Value::Object(_) | Value::Array(_))) => {
                current = Cow::Owned(inner)
            }
            _ => break,
        }
    }
    current
}

/// Looks a key up exactly first, then ignoring ASCII case, `$` prefixes, `-` and `_`.
pub fn get_loose<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(found) = object.get(key) {
        return Some(found);
    }
    object
        .iter()
        .find(|(candidate, _)| normalized(candidate).eq(normalized(key)))
        .map(|(_, value)| value)
}

/// The key of `object` that [`get_loose`] would read for `key`.
pub fn loose_key<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a String> {
    if let Some((found, _)) = object.get_key_value(key) {
        return Some(found);
    }
    object
        .keys()
        .find(|candidate| normalized(candidate).eq(normalized(key)))
}

/// Looks up the first of several key spellings, skipping JSON `null`s.
pub fn get_any<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .filter_map(|key| get_loose(object, key))
        .find(|value| !value.is_null())
}

/// A key's bytes without `$` prefixes, `-` and `_`, in lower case (compared, never stored).
fn normalized(key: &str) -> impl Iterator<Item = u8> + '_ {
    key.trim_start_matches('$')
        .bytes()
        .filter(|b| *b != b'-' && *b != b'_')
        .map(|b| b.to_ascii_lowercase())
}

/// A scalar as text: strings as they are, numbers and booleans printed; `None` otherwise.
pub fn as_text(value: &Value) -> Option<String> {
    match &*peel_text(value) {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A whole number from a JSON number or a string holding one.
pub fn as_i64(value: &Value) -> Option<i64> {
    match &*peel_encoded(value) {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean from JSON `true`/`false` or the strings .NET writes (`"True"`, `"false"`).
pub fn as_bool(value: &Value) -> Option<bool> {
    match &*peel_encoded(value) {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON array, also when it arrives as a string holding one.
pub fn as_array(value: &Value) -> Option<Vec<Value>> {
    match unwrap_encoded(value) {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// A JSON object, also when it arrives as a string holding one (borrowed when it does not).
pub fn as_object(value: &Value) -> Option<Cow<'_, Map<String, Value>>> {
    match peel_encoded(value) {
        Cow::Borrowed(Value::Object(object)) => Some(Cow::Borrowed(object)),
        Cow::Owned(Value::Object(object)) => Some(Cow::Owned(object)),
        _ => None,
    }
}

/// Parses the timestamps Azure sends: RFC 3339 with an offset, a naive ISO time (taken as
/// UTC, as the Functions host drops the offset), or milliseconds since the Unix epoch.
pub fn parse_time(value: &Value) -> Result<DateTime<Utc>, String> {
    match unwrap_text(value) {
        Value::String(text) => parse_time_text(&text),
        Value::Number(number) => number
            .as_i64()
            .and_then(|millis| Utc.timestamp_millis_opt(millis).single())
            .ok_or_else(|| format!("{number} is not a time in epoch milliseconds")),
        other => Err(format!("expected a time, found {}", kind_of(&other))),
    }
}

fn parse_time_text(text: &str) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(naive.and_utc());
    }
    // .NET invariant culture as used for binding metadata: 01/23/2018 17:02:19
    if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, "%m/%d/%Y %H:%M:%S") {
        return Ok(naive.and_utc());
    }
    if let Ok(millis) = trimmed.parse::<i64>() {
        if let Some(time) = Utc.timestamp_millis_opt(millis).single() {
            return Ok(time);
        }
    }
    Err(format!("`{}` is not a recognised time", clip(trimmed, 40)))
}

/// Names a JSON value's kind for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shortens text for an error message without splitting a character.
pub fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max_chars).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peels_double_encoding_but_keeps_plain_text() {
        let doubled = json!("\"{\\\"a\\\":1}\"");
        assert_eq!(unwrap_encoded(&doubled), json!({"a": 1}));
        assert_eq!(unwrap_encoded(&json!("plain text")), json!("plain text"));
        assert_eq!(unwrap_text(&json!("\"0042\"")), json!("0042"));
        assert_eq!(as_text(&json!("\"0042\"")).as_deref(), Some("0042"));
    }

    #[test]
    fn keys_match_across_casings_and_spellings() {
        let object = json!({"CorrelationId": 1, "$iothub-enqueuedtime": 2, "content_type": 3});
        let object = object.as_object().expect("object");
        assert_eq!(get_loose(object, "correlationId"), Some(&json!(1)));
        assert_eq!(get_loose(object, "iothub-enqueuedtime"), Some(&json!(2)));
        assert_eq!(get_loose(object, "content-type"), Some(&json!(3)));
        assert_eq!(get_loose(object, "missing"), None);
    }

    #[test]
    fn times_in_every_shape_azure_sends() {
        let expected = Utc
            .with_ymd_and_hms(2023, 3, 13, 1, 25, 2)
            .single()
            .expect("time");
        for value in [
            json!("2023-03-13T01:25:02Z"),
            json!("2023-03-13T01:25:02+00:00"),
            json!("2023-03-13T01:25:02"),
            json!("03/13/2023 01:25:02"),
            json!(1678670702000_i64),
        ] {
            assert_eq!(parse_time(&value), Ok(expected), "{value}");
        }
        assert!(parse_time(&json!("yesterday")).is_err());
        assert_eq!(
            parse_time(&json!("2023-03-13T01:25:02.25")).map(|t| t.timestamp_subsec_millis()),
            Ok(250)
        );
    }

    #[test]
    fn loose_scalars() {
        assert_eq!(as_i64(&json!("59")), Some(59));
        assert_eq!(as_i64(&json!(59)), Some(59));
        assert_eq!(as_i64(&json!("x")), None);
        assert_eq!(as_bool(&json!("True")), Some(true));
        assert_eq!(as_array(&json!("[1,2]")), Some(vec![json!(1), json!(2)]));
    }
}
