//! `PatchEvents` (eventGridTrigger): Update Manager maintenance events, both schemas.

use super::{context, deliver, parse_envelope};
use crate::decode::event_grid::{decode_events, PatchEvent};
use crate::host::InvokeResponse;
use crate::inputs::{Delivery, TriggerInput};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Binding name of the trigger in function.json.
pub const BINDING: &str = "event";

/// Handles one Event Grid delivery.
pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let context = context("PatchEvents", &headers);
    let invocation = match parse_envelope(&context, body) {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let binding = match invocation.binding(BINDING) {
        Ok(binding) => binding,
        Err(error) => return super::reject_envelope(&context, &error),
    };
    let mut logs = Vec::new();
    let mut delivery = Delivery {
        inputs: Vec::new(),
        rejected: Vec::new(),
    };
    let mut ignored = 0;
    for result in decode_events(binding) {
        match result {
            Ok(PatchEvent::Maintenance(event)) => {
                tracing::info!(event_id = %event.id, phase = ?event.phase, run = %event.correlation_id, status = ?event.status, "maintenance event");
                logs.push(format!(
                    "{:?}-maintenance event for run {}",
                    event.phase, event.correlation_id
                ));
                delivery.inputs.push(TriggerInput::Maintenance(event));
            }
            Ok(PatchEvent::Other(other)) => {
                tracing::info!(event_type = %other.event_type, "event type not used by patchwave; ignored");
                logs.push(format!("ignored event of type {}", other.event_type));
                ignored += 1;
            }
            Err(error) => {
                tracing::warn!(index = error.index, reason = %error.reason, "unusable event");
                logs.push(format!("rejected {error}"));
                delivery.rejected.push(error);
            }
        }
    }
    let summary = json!({
        "status": "ok",
        "maintenanceEvents": delivery.inputs.len(),
        "ignored": ignored,
        "rejected": delivery.rejected.iter().map(|e| json!({"index": e.index, "reason": e.reason})).collect::<Vec<_>>(),
    });
    let response = InvokeResponse::new(summary, logs);
    if delivery.inputs.is_empty() && delivery.rejected.is_empty() {
        return response.into_response();
    }
    deliver(&state, &context, delivery, response).await
}
