//! `TwinChanges` (eventHubTrigger, many): IoT Hub twin change notifications in batches.

use super::{context, deliver, parse_envelope};
use crate::decode::twin_change::{decode_twin_batch, HubMessage};
use crate::host::InvokeResponse;
use crate::inputs::{Delivery, TriggerInput};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Handles one Event Hubs batch.
pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let context = context("TwinChanges", &headers);
    let invocation = match parse_envelope(&context, body) {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let batch = match decode_twin_batch(&invocation) {
        Ok(batch) => batch,
        Err(error) => return super::reject_envelope(&context, &error),
    };
    let received = batch.items.len();
    let (delivery, skipped) = sort(batch.items);
    let response = reply(received, &delivery, &skipped, &batch.notes);
    if delivery.inputs.is_empty() && delivery.rejected.is_empty() {
        return response.into_response();
    }
    deliver(&state, &context, delivery, response).await
}

/// Messages counted and skipped: twin changes without a Device Update report, and others.
#[derive(Debug, Default)]
struct Skipped {
    twin_changes: usize,
    messages: usize,
}

/// Device Update reports to deliver, unusable messages to reject, the rest counted.
fn sort(items: Vec<Result<HubMessage, crate::decode::ItemError>>) -> (Delivery, Skipped) {
    let mut delivery = Delivery {
        inputs: Vec::new(),
        rejected: Vec::new(),
    };
    let mut skipped = Skipped::default();
    for item in items {
        match item {
            Ok(HubMessage::TwinChange(change)) if change.device_update.is_some() => {
                delivery.inputs.push(TriggerInput::DeviceReport(change));
            }
            Ok(HubMessage::TwinChange(_)) => skipped.twin_changes += 1,
            Ok(HubMessage::Other(_)) => skipped.messages += 1,
            Err(error) => delivery.rejected.push(error),
        }
    }
    (delivery, skipped)
}

/// The invocation's answer: what it did in `Logs`, every rejected item named, and the counts
/// as the return value.
fn reply(
    received: usize,
    delivery: &Delivery,
    skipped: &Skipped,
    notes: &[String],
) -> InvokeResponse {
    let reports = delivery.inputs.len();
    let (other_twin_changes, other_messages) = (skipped.twin_changes, skipped.messages);
    let skipped = other_twin_changes + other_messages;
    tracing::info!(
        received,
        reports,
        skipped,
        rejected = delivery.rejected.len(),
        "twin change batch decoded"
    );
    let mut logs = vec![format!(
        "{received} messages: {reports} device update reports, {other_twin_changes} other twin changes and {other_messages} other messages skipped, {} rejected",
        delivery.rejected.len()
    )];
    for note in notes {
        tracing::warn!("{note}");
        logs.push(note.clone());
    }
    for error in &delivery.rejected {
        tracing::warn!(index = error.index, reason = %error.reason, "unusable message");
        logs.push(format!("rejected {error}"));
    }
    let summary = json!({
        "status": "ok",
        "received": received,
        "deviceUpdateReports": reports,
        "skipped": skipped,
        "rejected": delivery.rejected.iter().map(|e| json!({"index": e.index, "reason": e.reason})).collect::<Vec<_>>(),
    });
    InvokeResponse::new(summary, logs)
}
