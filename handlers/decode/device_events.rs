//! Event Grid deliveries to `DeviceEvents`: IoT Hub's `Microsoft.Devices.DeviceConnected` and
//! `DeviceDisconnected`, Event Grid schema and CloudEvents 1.0, one event or an array.
//!
//! Event Grid does not keep order, so each event carries
//! `data.deviceConnectionStateEventInfo.sequenceNumber`, a fixed-width hexadecimal string that
//! strictly increases per device: a device's connection state is the one of its highest
//! sequence number ([`ConnectionSequence`] orders them).

use super::event_grid::{
    decode_batch, event_data, event_object, Envelope, EventSchema, OtherEvent,
};
use super::ItemError;
use crate::host::json::{as_text, get_any, parse_time, unwrap_encoded};
use chrono::{DateTime, Utc};
use rollout_core::ConnectionSequence;
use serde::Serialize;
use serde_json::{Map, Value};

/// Event type IoT Hub raises when a device (or module) connects.
pub const DEVICE_CONNECTED: &str = "Microsoft.Devices.DeviceConnected";
/// Event type IoT Hub raises when a device (or module) disconnects.
pub const DEVICE_DISCONNECTED: &str = "Microsoft.Devices.DeviceDisconnected";

/// An event delivered to `DeviceEvents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum DeviceEvent {
    /// A device connected or disconnected.
    Connection(ConnectionEvent),
    /// Any other event type: counted and ignored.
    Other(OtherEvent),
}

/// Connected or disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Connection {
    /// `DeviceConnected`.
    Connected,
    /// `DeviceDisconnected`.
    Disconnected,
}

/// A decoded DeviceConnected / DeviceDisconnected event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEvent {
    /// Envelope the event came in.
    pub schema: EventSchema,
    /// Event id (Event Grid redelivers with the same id).
    pub id: Option<String>,
    /// Connected or disconnected.
    pub connection: Connection,
    /// The hub's name.
    pub hub_name: String,
    /// The device.
    pub device_id: String,
    /// The module, for a module identity's connection.
    pub module_id: Option<String>,
    /// Orders this device's connection events.
    pub sequence_number: ConnectionSequence,
    /// When the event was raised (the envelope's time).
    pub event_time: Option<DateTime<Utc>>,
}

/// Decodes the trigger value: one event, an array of events, or either JSON-encoded; each item
/// on its own, so one bad event never drops the others.
pub fn decode_device_events(binding: &Value) -> Vec<Result<DeviceEvent, ItemError>> {
    decode_batch(binding, decode_device_event)
}

/// Decodes one event in either schema.
pub fn decode_device_event(value: &Value) -> Result<DeviceEvent, String> {
    let event = event_object(value)?;
    let envelope = Envelope::read(&event)?;
    let connection = match envelope.event_type.as_str() {
        t if t.eq_ignore_ascii_case(DEVICE_CONNECTED) => Connection::Connected,
        t if t.eq_ignore_ascii_case(DEVICE_DISCONNECTED) => Connection::Disconnected,
        _ => return Ok(DeviceEvent::Other(OtherEvent::of(envelope))),
    };
    decode_connection(&event, envelope, connection).map(DeviceEvent::Connection)
}

fn decode_connection(
    event: &Map<String, Value>,
    envelope: Envelope,
    connection: Connection,
) -> Result<ConnectionEvent, String> {
    let data = event_data(event)?;
    let text = |key: &str| get_any(&data, &[key]).and_then(as_text);
    let device_id = text("deviceId")
        .or_else(|| device_of_subject(envelope.subject.as_deref()))
        .ok_or("connection event names no device (data.deviceId)")?;
    let sequence = get_any(&data, &["deviceConnectionStateEventInfo"])
        .map(unwrap_encoded)
        .and_then(|info| {
            info.as_object()
                .and_then(|o| get_any(o, &["sequenceNumber"]).and_then(as_text))
        })
        .ok_or("connection event has no data.deviceConnectionStateEventInfo.sequenceNumber")?;
    let event_time = envelope
        .time
        .as_ref()
        .map(|value| parse_time(value).map_err(|e| format!("event time: {e}")))
        .transpose()?;
    Ok(ConnectionEvent {
        schema: envelope.schema,
        id: envelope.id,
        connection,
        hub_name: text("hubName").unwrap_or_default(),
        device_id,
        module_id: text("moduleId").filter(|m| !m.is_empty()),
        sequence_number: ConnectionSequence::parse(&sequence)?,
        event_time,
    })
}

/// `devices/{deviceId}` (or `devices/{deviceId}/modules/{moduleId}`) → the device id.
fn device_of_subject(subject: Option<&str>) -> Option<String> {
    let rest = subject?.strip_prefix("devices/")?;
    let device = rest.split('/').next()?;
    (!device.is_empty()).then(|| device.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connection_event_without_its_sequence_number_is_refused() {
        let event = json!({"eventType": DEVICE_DISCONNECTED, "id": "1", "subject": "devices/d1",
            "eventTime": "2026-01-01T00:00:00Z", "data": {"deviceId": "d1", "hubName": "h"}});
        let error = decode_device_event(&event).expect_err("no sequence");
        assert!(error.contains("sequenceNumber"), "{error}");
    }

    #[test]
    fn the_device_comes_from_the_subject_when_data_lacks_it() {
        assert_eq!(
            device_of_subject(Some("devices/gw-7/modules/adu")).as_deref(),
            Some("gw-7")
        );
        assert_eq!(device_of_subject(Some("other")), None);
    }
}
