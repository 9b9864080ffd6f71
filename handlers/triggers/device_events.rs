//! `DeviceEvents` (eventGridTrigger): IoT Hub's DeviceConnected / DeviceDisconnected, both
//! schemas; other event types are ordinary traffic, bad items become dead letters.

use super::{context, deliver, parse_envelope};
use crate::decode::device_events::{decode_device_events, DeviceEvent};
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
    let context = context("DeviceEvents", &headers);
    let invocation = match parse_envelope(&context, body) {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let binding = match invocation.binding(BINDING) {
        Ok(binding) => binding,
        Err(error) => return super::reject_envelope(&context, &error),
    };
    let (delivery, ignored, logs) = sort(decode_device_events(binding));
    let summary = json!({
        "status": "ok",
        "connectionEvents": delivery.inputs.len(),
        "ignored": ignored,
        "rejected": delivery.rejected.iter().map(|e| json!({"index": e.index, "reason": e.reason})).collect::<Vec<_>>(),
    });
    let response = InvokeResponse::new(summary, logs);
    if delivery.inputs.is_empty() && delivery.rejected.is_empty() {
        return response.into_response();
    }
    deliver(&state, &context, delivery, response).await
}

/// Connection events to deliver, other types counted, bad items kept for dead letters.
fn sort(
    decoded: Vec<Result<DeviceEvent, crate::decode::ItemError>>,
) -> (Delivery, usize, Vec<String>) {
    let mut delivery = Delivery {
        inputs: Vec::new(),
        rejected: Vec::new(),
    };
    let (mut ignored, mut logs) = (0, Vec::new());
    for result in decoded {
        match result {
            Ok(DeviceEvent::Connection(event)) => {
                logs.push(format!(
                    "{:?}: device {} (sequence {})",
                    event.connection, event.device_id, event.sequence_number
                ));
                delivery.inputs.push(TriggerInput::Connection(event));
            }
            Ok(DeviceEvent::Other(other)) => {
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
    (delivery, ignored, logs)
}
