//! `RolloutTick` (timerTrigger, every minute): time moves rollouts on.

use super::{context, deliver, parse_envelope};
use crate::decode::timer::decode_timer;
use crate::host::InvokeResponse;
use crate::inputs::{Delivery, TriggerInput};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

/// Handles one timer firing.
pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let context = context("RolloutTick", &headers);
    let invocation = match parse_envelope(&context, body) {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let tick = match decode_timer(&invocation) {
        Ok(tick) => tick,
        Err(error) => return super::reject_envelope(&context, &error),
    };
    if tick.is_past_due {
        tracing::warn!("timer is past due");
    }
    let summary =
        json!({"status": "ok", "isPastDue": tick.is_past_due, "invokedAt": tick.invoked_at});
    let logs = vec![format!("tick (past due: {})", tick.is_past_due)];
    let delivery = Delivery {
        inputs: vec![TriggerInput::Tick(tick)],
        rejected: Vec::new(),
    };
    deliver(
        &state,
        &context,
        delivery,
        InvokeResponse::new(summary, logs),
    )
    .await
}
