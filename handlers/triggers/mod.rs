//! The HTTP surface the Functions host talks to: one route per function, plus `/api`.

pub mod operator;
pub mod patch_events;
pub mod rollout_tick;
pub mod twin_changes;

use crate::config::AuthSettings;
use crate::host::context::INVOCATION_ID_HEADER;
use crate::host::response::invocation_failed;
use crate::host::{EnvelopeError, Invocation, InvocationContext, InvokeResponse};
use crate::inputs::{Delivery, InputSink};
use crate::service::RolloutService;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tracing::Instrument;

/// Largest invocation body accepted (a batch of 100 Event Hubs messages of up to 256 KiB,
/// double-encoded, with metadata).
pub const MAX_INVOCATION_BYTES: usize = 64 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where decoded inputs go.
    pub sink: Arc<dyn InputSink>,
    /// The rollout service, when the handler runs with a store.
    pub service: Option<Arc<RolloutService>>,
    /// Who may call the operator API.
    pub auth: Arc<AuthSettings>,
}

impl AppState {
    /// Inputs go to `sink`; no store behind the API.
    pub fn with_sink(sink: Arc<dyn InputSink>, auth: AuthSettings) -> Self {
        AppState {
            sink,
            service: None,
            auth: Arc::new(auth),
        }
    }

    /// Inputs go to the rollout service, which also serves the API.
    pub fn with_service(service: Arc<RolloutService>, auth: AuthSettings) -> Self {
        AppState {
            sink: service.clone(),
            service: Some(service),
            auth: Arc::new(auth),
        }
    }
}

/// The whole router: function routes, forwarded `/api` routes, readiness probe.
pub fn router(state: AppState) -> Router {
    let functions = Router::new()
        .route("/PatchEvents", post(patch_events::handle))
        .route("/TwinChanges", post(twin_changes::handle))
        .route("/RolloutTick", post(rollout_tick::handle))
        .route("/Operator", post(operator::handle_envelope))
        .layer(DefaultBodyLimit::max(MAX_INVOCATION_BYTES));
    Router::new()
        .route("/", get(ready))
        .merge(functions)
        .nest("/api", crate::api::router())
        .fallback(crate::api::not_found)
        .layer(middleware::from_fn(invocation_span))
        .with_state(state)
}

/// `GET /`: the host polls this until the handler answers, then pings it now and then.
async fn ready() -> Json<serde_json::Value> {
    Json(
        serde_json::json!({"status": "ready", "service": "patchwave", "version": env!("CARGO_PKG_VERSION")}),
    )
}

/// Puts every log line of a request under a span naming the function and invocation id.
async fn invocation_span(request: Request, next: Next) -> Response {
    let function = function_of_path(request.uri().path());
    let invocation_id = request
        .headers()
        .get(INVOCATION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let span = tracing::info_span!("invocation", function, invocation_id = %invocation_id);
    next.run(request).instrument(span).await
}

/// The function a path belongs to (forwarded `/api/...` calls are the `Operator` function).
pub fn function_of_path(path: &str) -> &'static str {
    match path {
        "/PatchEvents" => "PatchEvents",
        "/TwinChanges" => "TwinChanges",
        "/RolloutTick" => "RolloutTick",
        "/Operator" => "Operator",
        p if p == "/api" || p.starts_with("/api/") => "Operator",
        _ => "-",
    }
}

/// Reads the envelope of a non-HTTP invocation, or answers for it when it cannot be read.
// The error is the finished response, returned once per invocation: its size does not matter.
#[allow(clippy::result_large_err)]
fn parse_envelope(
    context: &InvocationContext,
    body: Result<Bytes, BytesRejection>,
) -> Result<Invocation, Response> {
    let body = body.map_err(|rejection| {
        let message = format!("{}: invocation body refused: {rejection}", context.function);
        tracing::error!(status = %rejection.status(), "{message}");
        invocation_failed(rejection.status(), &message)
    })?;
    Invocation::parse(&body).map_err(|error| reject_envelope(context, &error))
}

/// Answers an envelope that cannot be used: logged as an error, `200` so it is not retried.
fn reject_envelope(context: &InvocationContext, error: &EnvelopeError) -> Response {
    tracing::error!(error = %error, "invalid invocation envelope");
    InvokeResponse::rejected(context.function, error).into_response()
}

/// Hands a delivery to the sink; a sink failure fails the invocation so it is retried.
async fn deliver(
    state: &AppState,
    context: &InvocationContext,
    delivery: Delivery,
    response: InvokeResponse,
) -> Response {
    match state.sink.accept(context, delivery).await {
        Ok(()) => response.into_response(),
        Err(error) => {
            let message = format!("{}: could not keep inputs: {error:#}", context.function);
            tracing::error!("{message}");
            invocation_failed(StatusCode::SERVICE_UNAVAILABLE, &message)
        }
    }
}

/// The invocation context of a function route.
fn context(function: &'static str, headers: &HeaderMap) -> InvocationContext {
    InvocationContext::from_headers(function, headers)
}
