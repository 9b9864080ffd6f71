//! The invocation envelope the Functions host POSTs to `/{FunctionName}`: `{"Data", "Metadata"}`.

use super::json::{as_array, as_object, get_loose, kind_of, loose_key, parse_time, unwrap_encoded};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// A decoded invocation request: the trigger's binding values and its metadata.
#[derive(Debug, Clone)]
pub struct Invocation {
    data: Map<String, Value>,
    metadata: Map<String, Value>,
}

/// What is wrong with an invocation envelope as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not JSON at all.
    #[error("invocation body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("invocation body must be a JSON object with `Data` and `Metadata`, found {0}")]
    NotAnObject(&'static str),
    /// `Data` is missing or not an object.
    #[error("invocation body has no `Data` object (found keys: {0})")]
    MissingData(String),
    /// The trigger's binding is not in `Data`.
    #[error("`Data` has no binding `{wanted}` (found: {found})")]
    MissingBinding {
        /// Binding name from function.json.
        wanted: String,
        /// Keys that were present.
        found: String,
    },
    /// The binding is present but holds nothing usable.
    #[error("binding `{binding}` {problem}")]
    BadBinding {
        /// Binding name.
        binding: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The retry policy's view of this attempt, present when function.json has a `retry` policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryContext {
    /// 0 on the first attempt.
    pub retry_count: i64,
    /// The policy's maximum (-1 = forever).
    pub max_retry_count: i64,
}

impl Invocation {
    /// Parses the raw request body.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let value = match value {
            Value::String(_) => unwrap_encoded(&value),
            other => other,
        };
        let Value::Object(mut root) = value else {
            return Err(EnvelopeError::NotAnObject(kind_of(&value)));
        };
        let keys = key_list(&root);
        let data = take_object(&mut root, "Data").ok_or(EnvelopeError::MissingData(keys))?;
        let metadata = take_object(&mut root, "Metadata").unwrap_or_default();
        Ok(Invocation { data, metadata })
    }

    /// The value of the trigger binding `name`.
    ///
    /// When `name` is absent but `Data` holds exactly one binding, that one is used: the
    /// binding name is a deployment detail and the host only ever sends the trigger's.
    pub fn binding(&self, name: &str) -> Result<&Value, EnvelopeError> {
        if let Some(value) = get_loose(&self.data, name) {
            return Ok(value);
        }
        if self.data.len() == 1 {
            if let Some(value) = self.data.values().next() {
                return Ok(value);
            }
        }
        Err(EnvelopeError::MissingBinding {
            wanted: name.to_string(),
            found: key_list(&self.data),
        })
    }

    /// A metadata value with string encoding peeled, looked up ignoring key casing.
    pub fn metadata(&self, key: &str) -> Option<Value> {
        get_loose(&self.metadata, key)
            .map(unwrap_encoded)
            .filter(|value| !value.is_null())
    }

    /// A metadata array such as `SystemPropertiesArray` (sent as a string holding an array).
    pub fn metadata_array(&self, key: &str) -> Option<Vec<Value>> {
        get_loose(&self.metadata, key).and_then(as_array)
    }

    /// When the host says it invoked the function (`Metadata.sys.UtcNow`).
    pub fn invoked_at(&self) -> Option<DateTime<Utc>> {
        let sys = self.metadata("sys")?;
        let sys = sys.as_object()?;
        parse_time(get_loose(sys, "UtcNow")?).ok()
    }

    /// The retry context, when the function has a retry policy.
    pub fn retry_context(&self) -> Option<RetryContext> {
        let retry = self.metadata("RetryContext")?;
        let retry = retry.as_object()?;
        Some(RetryContext {
            retry_count: get_loose(retry, "RetryCount")
                .and_then(super::json::as_i64)
                .unwrap_or(0),
            max_retry_count: get_loose(retry, "MaxRetryCount")
                .and_then(super::json::as_i64)
                .unwrap_or(0),
        })
    }
}

/// Takes an object out of `root` (key matched loosely, value possibly string-encoded).
fn take_object(root: &mut Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    let found = loose_key(root, key)?.clone();
    match root.remove(&found)? {
        Value::Object(object) => Some(object),
        encoded => as_object(&encoded).map(std::borrow::Cow::into_owned),
    }
}

fn key_list(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "none".to_string();
    }
    object
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_wrong_with_an_envelope() {
        let not_json = Invocation::parse(b"{oops").expect_err("not json");
        assert!(not_json.to_string().contains("not JSON"), "{not_json}");
        let array = Invocation::parse(b"[1]").expect_err("array");
        assert!(array.to_string().contains("found an array"), "{array}");
        let no_data = Invocation::parse(br#"{"Metadata":{}}"#).expect_err("no data");
        assert!(
            no_data.to_string().contains("found keys: Metadata"),
            "{no_data}"
        );
        let two = Invocation::parse(br#"{"Data":{"a":1,"b":2}}"#).expect("valid");
        let missing = two.binding("events").expect_err("ambiguous");
        assert_eq!(
            missing.to_string(),
            "`Data` has no binding `events` (found: a, b)"
        );
    }

    #[test]
    fn single_binding_is_used_whatever_its_name() {
        let one = Invocation::parse(br#"{"Data":{"myTimer":{"IsPastDue":true}}}"#).expect("ok");
        assert_eq!(
            one.binding("tick").expect("fallback"),
            &serde_json::json!({"IsPastDue": true})
        );
    }
}
