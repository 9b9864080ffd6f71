//! `Operator` (httpTrigger, forwarded raw): the operator API under `/api`.
//!
//! With `enableForwardingHttpRequest` the host sends operator calls as they came, at their
//! original `/api/...` path. Without it, it POSTs an envelope to `/Operator`; that envelope
//! is replayed into the same router and the answer returned as the `res` output binding.

use super::{context, parse_envelope};
use crate::decode::http_request::{decode_http_request, HostHttpRequest};
use crate::host::InvokeResponse;
use crate::state::AppState;
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

/// `POST /Operator`: a non-forwarded HTTP invocation, replayed into the API router.
pub async fn handle_envelope(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let context = context("Operator", &headers);
    let invocation = match parse_envelope(&context, body) {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let request = match decode_http_request(&invocation) {
        Ok(request) => request,
        Err(error) => return super::reject_envelope(&context, &error),
    };
    let log = format!("{} {}", request.method, request.path_and_query);
    match replay(state, request, &headers).await {
        Ok(res) => {
            let mut response = InvokeResponse::new(Value::Null, vec![log]);
            response.outputs.insert("res".into(), res);
            response.into_response()
        }
        Err(error) => super::reject_envelope(&context, &error),
    }
}

async fn replay(
    state: AppState,
    request: HostHttpRequest,
    host_headers: &HeaderMap,
) -> Result<Value, crate::host::EnvelopeError> {
    let bad = |problem: String| crate::host::EnvelopeError::BadBinding {
        binding: "req".into(),
        problem,
    };
    let method =
        Method::from_bytes(request.method.as_bytes()).map_err(|e| bad(format!("Method: {e}")))?;
    let mut builder = Request::builder()
        .method(method)
        .uri(&request.path_and_query);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(id) = host_headers.get(crate::host::context::INVOCATION_ID_HEADER) {
        builder = builder.header(crate::host::context::INVOCATION_ID_HEADER, id);
    }
    let replayed = builder
        .body(Body::from(request.body))
        .map_err(|e| bad(format!("not a valid request: {e}")))?;
    let router = crate::api::mounted().with_state(state);
    let response = router
        .oneshot(replayed)
        .await
        .unwrap_or_else(|never| match never {});
    Ok(http_output(response).await)
}

/// Renders a response as the host's HTTP output binding: `{statusCode, headers, body}`.
async fn http_output(response: Response) -> Value {
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str().to_string(), Value::String(value.to_string()));
        }
    }
    let body = to_bytes(response.into_body(), crate::api::MAX_API_BODY_BYTES * 16)
        .await
        .unwrap_or_default();
    json!({"statusCode": status, "headers": headers, "body": String::from_utf8_lossy(&body)})
}
