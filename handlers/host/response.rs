//! The reply the Functions host expects: `200` + `{"Outputs":{…},"Logs":[…],"ReturnValue":…}`.
//!
//! The host fails an invocation on any non-2xx status, on a non-JSON content type and on an
//! empty body (it then waits until the function times out), so every reply is built here.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// One invocation's result for the host.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeResponse {
    /// Output binding values by binding name (none of our functions has output bindings
    /// except the non-forwarded HTTP fallback's `res`).
    pub outputs: Map<String, Value>,
    /// Lines the host logs at Information level under the function (App Insights `traces`).
    pub logs: Vec<String>,
    /// A summary of what the invocation did.
    pub return_value: Value,
}

impl InvokeResponse {
    /// A response with a summary and log lines.
    pub fn new(summary: Value, logs: Vec<String>) -> Self {
        InvokeResponse {
            outputs: Map::new(),
            logs,
            return_value: summary,
        }
    }

    /// The reply for an envelope that could not be used at all. It is still a `200`: the
    /// host would otherwise retry (and, for Event Hubs, hold the partition) on input that
    /// can never succeed. The error is logged and named in `Logs` and `ReturnValue`.
    pub fn rejected(function: &str, error: &impl std::fmt::Display) -> Self {
        let message = format!("{function}: invalid invocation: {error}");
        InvokeResponse::new(
            serde_json::json!({"status": "rejected", "error": message}),
            vec![message],
        )
    }
}

impl IntoResponse for InvokeResponse {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

/// A JSON reply for an invocation that really failed (a retry could succeed): the host
/// counts it as a failure and its retry policy or the event source tries again.
pub fn invocation_failed(status: StatusCode, message: &str) -> Response {
    let body = InvokeResponse::new(
        serde_json::json!({"status": "failed", "error": message}),
        vec![message.to_string()],
    );
    let mut response = body.into_response();
    *response.status_mut() = status;
    response
}
