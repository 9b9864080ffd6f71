//! Event Hubs' REST send (`POST /{hub}/messages?api-version=2014-01`) as the service answers
//! it, so the lifecycle publisher is tested through its HTTP layer: `201` with an empty body,
//! errors as Service Bus writes them (`<Error><Code>…</Code><Detail>…</Detail></Error>`).
//!
//! Refused as Event Hubs refuses: no `Authorization` (`Bearer <JWT>` or
//! `SharedAccessSignature …`) is 401, an unknown hub 404, a body over 1 MiB (the Standard tier's
//! event limit) 413, an empty body 400. Also refused, so our client keeps to the documented
//! form: an `api-version` other than `2014-01` and a `Content-Type` other than the documented
//! `application/atom+xml;type=entry;charset=utf-8` (400).

use super::World;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The one api-version of the Event Hubs runtime REST API.
pub const API_VERSION: &str = "2014-01";
/// The content type the runtime REST API documents for sending an event.
pub const CONTENT_TYPE: &str = "application/atom+xml;type=entry;charset=utf-8";
/// Largest event body taken (Standard tier: 1 MB).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The send route and the control route that reads what was sent.
pub fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/{hub}/messages", post(send))
        .route("/_standin/eventhubs/{hub}", get(read))
}

/// Service Bus's error body.
fn error(status: StatusCode, detail: &str) -> Response {
    let body = format!(
        "<Error><Code>{}</Code><Detail>{}</Detail></Error>",
        status.as_u16(),
        detail.replace('&', "&amp;").replace('<', "&lt;")
    );
    (
        status,
        [("content-type", "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn send(
    State(world): State<Arc<World>>,
    Path(hub): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refusal) = check_request(&query, &headers, &body) {
        return *refusal;
    }
    let event = match std::str::from_utf8(&body) {
        Ok(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    if !world.event_hubs.push(&hub, event) {
        let detail = format!("The messaging entity '{hub}' could not be found. To know more visit https://aka.ms/sbResourceMgrExceptions.");
        return error(StatusCode::NOT_FOUND, &detail);
    }
    StatusCode::CREATED.into_response()
}

fn check_request(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorized = header("authorization").is_some_and(|value| {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("SharedAccessSignature "));
        token.is_some_and(|t| !t.trim().is_empty())
    });
    if !authorized {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "MalformedToken: The credentials contained in the authorization header are not in the WRAP format.",
        )));
    }
    match query.get("api-version").map(String::as_str) {
        Some(API_VERSION) => {}
        other => {
            let detail = format!(
                "The api-version '{}' is not supported; use {API_VERSION}.",
                other.unwrap_or_default()
            );
            return Err(Box::new(error(StatusCode::BAD_REQUEST, &detail)));
        }
    }
    let content_type = header("content-type").unwrap_or_default().replace(' ', "");
    if !content_type.eq_ignore_ascii_case(CONTENT_TYPE) {
        let detail = format!("Content-Type must be {CONTENT_TYPE}.");
        return Err(Box::new(error(StatusCode::BAD_REQUEST, &detail)));
    }
    if body.is_empty() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "The event body is empty.",
        )));
    }
    if body.len() > MAX_EVENT_BYTES {
        let detail = format!(
            "The received message (size {} bytes) exceeds the limit ({MAX_EVENT_BYTES} bytes).",
            body.len()
        );
        return Err(Box::new(error(StatusCode::PAYLOAD_TOO_LARGE, &detail)));
    }
    Ok(())
}

async fn read(State(world): State<Arc<World>>, Path(hub): Path<String>) -> Response {
    match world.event_hubs.received(&hub) {
        Some(events) => Json(json!({"hub": hub, "events": events})).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such event hub"),
    }
}
