//! `PatchEvents` (eventGridTrigger): Update Manager maintenance events, both schemas.

use super::event_grid_invocation;
use crate::decode::event_grid::{decode_events, PatchEvent};
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
    let function = ("PatchEvents", "maintenanceEvents");
    event_grid_invocation(&state, function, &headers, body, decode_events, classify).await
}

/// A maintenance event is an input; other types are logged and ignored.
fn classify(event: PatchEvent) -> Result<(TriggerInput, String), String> {
    match event {
        PatchEvent::Maintenance(event) => {
            tracing::info!(event_id = %event.id, phase = ?event.phase, run = %event.correlation_id, status = ?event.status, "maintenance event");
            let line = format!(
                "{:?}-maintenance event for run {}",
                event.phase, event.correlation_id
            );
            Ok((TriggerInput::Maintenance(event), line))
        }
        PatchEvent::Other(other) => Err(format!("ignored event of type {}", other.event_type)),
    }
}
