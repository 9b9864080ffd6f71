//! HTTP helpers shared by the stand-in's routes: Azure error bodies, api-version checks, fault
//! injection, and formatting of times and query strings.

use super::World;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// An Azure error response: `{"error": {"code", "message"}}`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// A JSON response with `status`.
pub fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// `Ok` when the query's `api-version` is `expected`, else the `400 InvalidApiVersion` answer.
pub fn require_api_version(
    query: &HashMap<String, String>,
    expected: &str,
) -> Result<(), Box<Response>> {
    match query.get("api-version") {
        Some(version) if version == expected => Ok(()),
        Some(version) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersion",
            format!("The api-version '{version}' is invalid. The supported version is '{expected}'."),
        ))),
        None => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersion",
            format!("The api-version query parameter is required; the supported version is '{expected}'."),
        ))),
    }
}

/// Middleware: added latency, then a share of `429` (with `Retry-After: 1`) and `500` answers,
/// drawn before the request is handled (so a faulted request changed nothing).
pub async fn inject_faults(
    State(world): State<Arc<World>>,
    request: Request,
    next: Next,
) -> Response {
    let faults = world.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    match world.draw_fault(&faults) {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request was throttled (stand-in fault injection). Retry after 1 second.",
            );
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
        Some(status) => error(
            status,
            "InternalServerError",
            "The server encountered an internal error (stand-in fault injection).",
        ),
        None => next.run(request).await,
    }
}

/// An ISO 8601 UTC time with 7 fractional digits, as Azure writes them.
pub fn azure_time(time: DateTime<Utc>) -> String {
    format!(
        "{}0Z",
        time.to_rfc3339_opts(SecondsFormat::Micros, true)
            .trim_end_matches('Z')
    )
}

/// An RFC 3339 UTC time with seconds only.
pub fn seconds_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats() {
        let time = Utc
            .with_ymd_and_hms(2024, 5, 14, 3, 41, 12)
            .single()
            .expect("time");
        assert_eq!(azure_time(time), "2024-05-14T03:41:12.0000000Z");
        assert_eq!(seconds_time(time), "2024-05-14T03:41:12Z");
        assert_eq!(
            percent_encode("groupId eq 'a b'"),
            "groupId%20eq%20%27a%20b%27"
        );
    }

    #[test]
    fn api_version_is_checked() {
        let mut query = HashMap::new();
        assert!(require_api_version(&query, "2022-10-01").is_err());
        query.insert("api-version".to_string(), "2021-06-01-preview".to_string());
        assert!(require_api_version(&query, "2022-10-01").is_err());
        query.insert("api-version".to_string(), "2022-10-01".to_string());
        assert!(require_api_version(&query, "2022-10-01").is_ok());
    }
}
