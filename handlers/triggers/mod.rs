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

/// Binding name of every Event Grid trigger in its function.json.
pub const EVENT_GRID_BINDING: &str = "event";

/// What an Event Grid function makes of one decoded event: an input with its log line, or
/// the log line of an event type it does not act on.
type Classify<T> = fn(T) -> Result<(crate::inputs::TriggerInput, String), String>;

/// One Event Grid invocation of `function`: the envelope read, its `event` binding decoded
/// item by item, each event classified (inputs delivered, other types counted, bad items
/// dead-lettered), and the counts returned with `inputs_key` naming the delivered ones.
async fn event_grid_invocation<T>(
    state: &AppState,
    (function, inputs_key): (&'static str, &str),
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    decode: fn(&serde_json::Value) -> Vec<Result<T, crate::decode::ItemError>>,
    classify: Classify<T>,
) -> Response {
    let context = context(function, headers);
    let invocation = match parse_envelope(&context, body) {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let binding = match invocation.binding(EVENT_GRID_BINDING) {
        Ok(binding) => binding,
        Err(error) => return reject_envelope(&context, &error),
    };
    let (mut delivery, mut ignored, mut logs) = (Delivery::default(), 0, Vec::new());
    for result in decode(binding) {
        match result.map(classify) {
            Ok(Ok((input, line))) => {
                logs.push(line);
                delivery.inputs.push(input);
            }
            Ok(Err(line)) => {
                tracing::info!("{line}");
                logs.push(line);
                ignored += 1;
            }
            Err(error) => {
                tracing::warn!(index = error.index, reason = %error.reason, "unusable event");
                logs.push(format!("rejected {error}"));
                delivery.rejected.push(error);
            }
        }
    }
    let rejected = delivery.rejected.iter();
    let rejected: Vec<_> = rejected
        .map(|e| serde_json::json!({"index": e.index, "reason": e.reason}))
        .collect();
    let summary = serde_json::json!({"status": "ok", inputs_key: delivery.inputs.len(),
        "ignored": ignored, "rejected": rejected});
    let response = InvokeResponse::new(summary, logs);
    if delivery.inputs.is_empty() && delivery.rejected.is_empty() {
        return response.into_response();
    }
    deliver(state, &context, delivery, response).await
}

/// The invocation context of a function route.
fn context(function: &'static str, headers: &HeaderMap) -> InvocationContext {
    InvocationContext::from_headers(function, headers)
}
