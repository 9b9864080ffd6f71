//! The function routes the Functions host POSTs invocations to, one per function; they decode
//! envelopes and hand inputs to the sink (no store access here).

pub mod device_events;
pub mod operator;
pub mod patch_events;
pub mod rollout_tick;
pub mod twin_changes;

use crate::host::response::invocation_failed;
use crate::host::{EnvelopeError, Invocation, InvocationContext, InvokeResponse};
use crate::inputs::Delivery;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

/// Largest invocation body accepted (a batch of 100 Event Hubs messages of up to 256 KiB,
/// double-encoded, with metadata).
pub const MAX_INVOCATION_BYTES: usize = 64 * 1024 * 1024;

/// The function routes, each answering one function's invocations (mounted by
/// `router.rs` beside the API).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/PatchEvents", post(patch_events::handle))
        .route("/DeviceEvents", post(device_events::handle))
        .route("/TwinChanges", post(twin_changes::handle))
        .route("/RolloutTick", post(rollout_tick::handle))
        .route("/Operator", post(operator::handle_envelope))
        .layer(DefaultBodyLimit::max(MAX_INVOCATION_BYTES))
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
