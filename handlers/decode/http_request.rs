//! The HTTP request inside a non-forwarded `Operator` invocation (`Data.req`).
//!
//! patchwave asks the host to forward operator calls raw (`enableForwardingHttpRequest`),
//! but a host or configuration that does not forward sends this envelope instead, so it is
//! understood too and replayed into the same API router.

use crate::host::json::{as_object, as_text, get_loose, unwrap_encoded};
use crate::host::{EnvelopeError, Invocation};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

/// Binding name of the `Operator` trigger in function.json.
pub const BINDING: &str = "req";

/// An HTTP request as the host describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostHttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The original URL.
    pub url: String,
    /// Path and query of the original URL, e.g. `/api/health?x=1`.
    pub path_and_query: String,
    /// Header name and value pairs (a header with several values appears several times).
    pub headers: Vec<(String, String)>,
    /// The body bytes (the host sends text, or base64 for binary content types).
    pub body: Vec<u8>,
}

/// Decodes a non-forwarded HTTP trigger invocation.
pub fn decode_http_request(invocation: &Invocation) -> Result<HostHttpRequest, EnvelopeError> {
    let bad = |problem: String| EnvelopeError::BadBinding {
        binding: BINDING.into(),
        problem,
    };
    let Value::Object(req) = unwrap_encoded(invocation.binding(BINDING)?) else {
        return Err(bad("must be an HTTP request object".into()));
    };
    let text = |key: &str| get_loose(&req, key).and_then(as_text);
    let method = text("Method")
        .ok_or_else(|| bad("has no Method".into()))?
        .to_ascii_uppercase();
    let url = text("Url").ok_or_else(|| bad("has no Url".into()))?;
    let headers = headers(get_loose(&req, "Headers"));
    let content_type = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.to_ascii_lowercase())
        .unwrap_or_default();
    let body = match get_loose(&req, "Body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if is_binary(&content_type) => {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| bad(format!("Body is not base64 for {content_type}: {e}")))?
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(HostHttpRequest {
        method,
        path_and_query: path_and_query(&url)
            .ok_or_else(|| bad(format!("Url `{url}` has no path")))?,
        url,
        headers,
        body,
    })
}

fn is_binary(content_type: &str) -> bool {
    content_type.contains("application/octet-stream") || content_type.contains("multipart")
}

fn headers(value: Option<&Value>) -> Vec<(String, String)> {
    let Some(headers) = value.and_then(as_object) else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    for (name, value) in headers.into_owned() {
        match unwrap_encoded(&value) {
            Value::Array(values) => {
                pairs.extend(values.iter().filter_map(as_text).map(|v| (name.clone(), v)))
            }
            other => pairs.extend(as_text(&other).map(|v| (name.clone(), v))),
        }
    }
    pairs
}

fn path_and_query(url: &str) -> Option<String> {
    if url.starts_with('/') {
        return Some(url.to_string());
    }
    let after_scheme = url.split_once("://").map(|(_, rest)| rest)?;
    let start = after_scheme.find('/').unwrap_or(after_scheme.len());
    let rest = &after_scheme[start..];
    Some(if rest.is_empty() {
        "/".into()
    } else {
        rest.to_string()
    })
}
