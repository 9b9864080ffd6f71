//! `DeviceEvents` (eventGridTrigger): IoT Hub's DeviceConnected / DeviceDisconnected, both
//! schemas; other event types are ordinary traffic, bad items become dead letters.

use super::event_grid_invocation;
use crate::decode::device_events::{decode_device_events, DeviceEvent};
use crate::inputs::TriggerInput;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

/// Binding name of the trigger in function.json.
pub const BINDING: &str = super::EVENT_GRID_BINDING;

/// Handles one Event Grid delivery.
pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let function = ("DeviceEvents", "connectionEvents");
    event_grid_invocation(
        &state,
        function,
        &headers,
        body,
        decode_device_events,
        classify,
    )
    .await
}

/// A connection event is an input; other types are counted and ignored.
fn classify(event: DeviceEvent) -> Result<(TriggerInput, String), String> {
    match event {
        DeviceEvent::Connection(event) => {
            let line = format!(
                "{:?}: device {} (sequence {})",
                event.connection, event.device_id, event.sequence_number
            );
            Ok((TriggerInput::Connection(event), line))
        }
        DeviceEvent::Other(other) => Err(format!("ignored event of type {}", other.event_type)),
    }
}
