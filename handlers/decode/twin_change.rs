//! Event Hubs batches delivered to `TwinChanges`: IoT Hub twin change notifications, with the
//! Device Update agent's report decoded, and every other message recognised as such.
//!
//! Per message the host sends the body (a string with `dataType: string`, an object without
//! a data type, base64 with `dataType: binary`) and, index-aligned in the metadata, the
//! application properties (`PropertiesArray`: `deviceId`, `hubName`, `opType`, …) and the
//! system properties (`SystemPropertiesArray`: `iothub-connection-device-id`,
//! `iothub-message-source`, `iothub-enqueuedtime`, …).

use super::agent_report::{decode_device_update, AgentReport};
use super::ItemError;
use crate::host::json::{
    as_i64, as_object, as_text, clip, get_any, get_loose, kind_of, parse_time, unwrap_encoded,
};
use crate::host::{EnvelopeError, Invocation};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Binding name of the `TwinChanges` trigger in function.json.
pub const BINDING: &str = "events";

/// A decoded batch: one entry per message, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwinBatch {
    /// Which Event Hubs partition the batch came from, when the host says.
    pub partition: Option<PartitionInfo>,
    /// Each message, decoded or with the reason it could not be.
    pub items: Vec<Result<HubMessage, ItemError>>,
    /// Problems with the batch's metadata that did not stop decoding.
    pub notes: Vec<String>,
}

/// The partition context of an Event Hubs batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionInfo {
    /// Event Hubs namespace host name.
    pub namespace: Option<String>,
    /// Event hub name.
    pub event_hub: Option<String>,
    /// Consumer group.
    pub consumer_group: Option<String>,
    /// Partition id.
    pub partition_id: Option<String>,
}

/// One message of the batch.
// Most messages are twin changes, so boxing the large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum HubMessage {
    /// A twin change notification.
    TwinChange(TwinChange),
    /// Anything else on the hub's stream (telemetry, connection state, lifecycle): skipped.
    Other(OtherMessage),
}

/// The kind of twin operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TwinOp {
    /// A patch: only the changed parts are in the body.
    UpdateTwin,
    /// A full replacement: the whole twin is in the body.
    ReplaceTwin,
    /// Another value, kept verbatim.
    Other(String),
}

/// A decoded twin change notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinChange {
    /// Position in the batch.
    pub index: usize,
    /// The device whose twin changed.
    pub device_id: String,
    /// The module, for module twins.
    pub module_id: Option<String>,
    /// The IoT Hub's name.
    pub hub: Option<String>,
    /// `updateTwin` or `replaceTwin`.
    pub op_type: Option<TwinOp>,
    /// The twin's `version` after this change (orders notifications per device).
    pub twin_version: Option<u64>,
    /// `properties.reported.$version`, when reported properties changed.
    pub reported_version: Option<u64>,
    /// When IoT Hub enqueued the notification.
    pub enqueued_time: Option<DateTime<Utc>>,
    /// `operationTimestamp`: when the twin operation happened.
    pub operation_time: Option<DateTime<Utc>>,
    /// Event Hubs sequence number.
    pub sequence_number: Option<i64>,
    /// The Device Update agent's report, when this change carries one.
    pub device_update: Option<AgentReport>,
}

/// A message that is not a twin change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherMessage {
    /// Position in the batch.
    pub index: usize,
    /// `iothub-message-source` (e.g. `Telemetry`) or `iothub-message-schema`.
    pub source: Option<String>,
    /// The device that sent it, when known.
    pub device_id: Option<String>,
}

/// Decodes a `TwinChanges` invocation.
pub fn decode_twin_batch(invocation: &Invocation) -> Result<TwinBatch, EnvelopeError> {
    let binding = invocation.binding(BINDING)?;
    let mut notes = Vec::new();
    let single = invocation.metadata_array("SystemPropertiesArray").is_none()
        && invocation.metadata("SystemProperties").is_some();
    let bodies = match (single, unwrap_encoded(binding)) {
        (_, Value::Null) => {
            return Err(EnvelopeError::BadBinding {
                binding: BINDING.into(),
                problem: "is null".into(),
            })
        }
        (false, Value::Array(items)) => items,
        (_, _) => vec![binding.clone()],
    };
    let columns = MetadataColumns::read(invocation, single, bodies.len(), &mut notes);
    let items = bodies
        .iter()
        .enumerate()
        .map(|(index, body)| {
            decode_message(index, body, columns.for_item(index)).map_err(|reason| ItemError {
                index,
                reason,
                raw: clip(&raw_text(body), super::MAX_RAW_CHARS),
            })
        })
        .collect();
    Ok(TwinBatch {
        partition: partition_info(invocation),
        items,
        notes,
    })
}

fn raw_text(body: &Value) -> String {
    match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The per-message metadata columns, index-aligned with the bodies.
struct MetadataColumns {
    system: Vec<Value>,
    application: Vec<Value>,
    enqueued: Vec<Value>,
    sequence: Vec<Value>,
}

/// One message's properties, merged from the metadata columns and (for captured messages)
/// from the message itself.
/// Borrowed from the invocation's metadata; copied only when a captured message adds to it.
#[derive(Default)]
struct MessageMeta<'a> {
    system: Cow<'a, Map<String, Value>>,
    application: Cow<'a, Map<String, Value>>,
    enqueued: Option<&'a Value>,
    sequence: Option<&'a Value>,
}

impl MetadataColumns {
    fn read(inv: &Invocation, single: bool, count: usize, notes: &mut Vec<String>) -> Self {
        let mut column = |array_key: &str, single_key: &str| -> Vec<Value> {
            if single {
                return inv.metadata(single_key).into_iter().collect();
            }
            let values = match inv.metadata_array(array_key) {
                Some(values) => values,
                None if inv.metadata(array_key).is_some() => {
                    notes.push(format!("metadata {array_key} is not a JSON array; ignored"));
                    Vec::new()
                }
                None => Vec::new(),
            };
            if !values.is_empty() && values.len() != count {
                notes.push(format!(
                    "metadata {array_key} has {} entries for {count} events",
                    values.len()
                ));
            }
            values
        };
        MetadataColumns {
            system: column("SystemPropertiesArray", "SystemProperties"),
            application: column("PropertiesArray", "Properties"),
            enqueued: column("EnqueuedTimeUtcArray", "EnqueuedTimeUtc"),
            sequence: column("SequenceNumberArray", "SequenceNumber"),
        }
    }

    fn for_item(&self, index: usize) -> MessageMeta<'_> {
        fn object(column: &[Value], index: usize) -> Cow<'_, Map<String, Value>> {
            column.get(index).and_then(as_object).unwrap_or_default()
        }
        MessageMeta {
            system: object(&self.system, index),
            application: object(&self.application, index),
            enqueued: self.enqueued.get(index).filter(|v| !v.is_null()),
            sequence: self.sequence.get(index).filter(|v| !v.is_null()),
        }
    }
}

fn partition_info(invocation: &Invocation) -> Option<PartitionInfo> {
    let context = invocation
        .metadata("TriggerPartitionContext")
        .or_else(|| invocation.metadata("PartitionContext"))?;
    let context = context.as_object()?;
    let text = |key: &str| get_loose(context, key).and_then(as_text);
    Some(PartitionInfo {
        namespace: text("FullyQualifiedNamespace"),
        event_hub: text("EventHubName"),
        consumer_group: text("ConsumerGroup"),
        partition_id: text("PartitionId"),
    })
}

fn decode_message(
    index: usize,
    body: &Value,
    mut meta: MessageMeta<'_>,
) -> Result<HubMessage, String> {
    let source = message_source(&meta);
    if let Some(source) = source.as_ref().filter(|s| !is_twin_source(s)) {
        return Ok(HubMessage::Other(OtherMessage {
            index,
            source: Some(source.clone()),
            device_id: device_id(&meta, None),
        }));
    }
    let mut body = parse_body(body)?;
    if let Some(payload) = unwrap_capture(&body, &mut meta) {
        body = payload;
        if let Some(source) = message_source(&meta).filter(|s| !is_twin_source(s)) {
            return Ok(HubMessage::Other(OtherMessage {
                index,
                source: Some(source),
                device_id: device_id(&meta, None),
            }));
        }
    }
    let Value::Object(body) = body else {
        return Err(format!(
            "twin change body must be a JSON object, found {}",
            kind_of(&body)
        ));
    };
    if source.is_none() && message_source(&meta).is_none() && !looks_like_twin(&body) {
        return Ok(HubMessage::Other(OtherMessage {
            index,
            source: None,
            device_id: device_id(&meta, Some(&body)),
        }));
    }
    decode_twin_change(index, &body, &meta).map(HubMessage::TwinChange)
}

fn message_source(meta: &MessageMeta<'_>) -> Option<String> {
    get_any(&meta.system, &["iothub-message-source"])
        .or_else(|| get_any(&meta.application, &["iothub-message-schema"]))
        .and_then(as_text)
}

fn is_twin_source(source: &str) -> bool {
    source.eq_ignore_ascii_case("twinChangeEvents")
        || source.eq_ignore_ascii_case("twinChangeNotification")
}

fn looks_like_twin(body: &Map<String, Value>) -> bool {
    get_loose(body, "properties").is_some_and(|p| {
        p.as_object().is_some_and(|p| {
            get_loose(p, "reported").is_some() || get_loose(p, "desired").is_some()
        })
    }) || get_loose(body, "tags").is_some()
}

/// Parses a message body: JSON text, a JSON value, or base64 of JSON (`dataType: binary`).
fn parse_body(body: &Value) -> Result<Value, String> {
    let Value::String(text) = body else {
        return Ok(body.clone());
    };
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return Ok(peeled(value));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(text.trim());
    if let Some(value) = decoded
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
    {
        return Ok(peeled(value));
    }
    Err(format!("message body is not JSON: `{}`", clip(text, 60)))
}

/// A parsed value with any further layers of string encoding peeled (copied only then).
fn peeled(value: Value) -> Value {
    match value {
        Value::String(_) => unwrap_encoded(&value),
        other => other,
    }
}

/// A message captured whole (as `az iot hub monitor-events` prints it, or forwarded by a
/// tool): `{"properties":{"system","application"},"annotations",…,"payload"}`, optionally
/// inside `{"event": …}`. Its properties join the message's; its payload is the body.
fn unwrap_capture(body: &Value, meta: &mut MessageMeta<'_>) -> Option<Value> {
    let mut message = body.as_object()?;
    if let Some(Value::Object(inner)) = get_loose(message, "event") {
        message = inner;
    }
    let payload = get_loose(message, "payload")?;
    if get_loose(message, "annotations").is_none() && get_loose(message, "properties").is_none() {
        return None;
    }
    let properties = get_loose(message, "properties")
        .and_then(as_object)
        .unwrap_or_default();
    let merge = |into: &mut Map<String, Value>, from: Option<&Value>| {
        for (key, value) in from.and_then(as_object).unwrap_or_default().into_owned() {
            into.entry(key).or_insert(value);
        }
    };
    merge(
        meta.application.to_mut(),
        get_loose(&properties, "application"),
    );
    merge(meta.system.to_mut(), get_loose(&properties, "system"));
    merge(meta.system.to_mut(), get_loose(message, "annotations"));
    Some(unwrap_encoded(payload))
}

fn device_id(meta: &MessageMeta<'_>, body: Option<&Map<String, Value>>) -> Option<String> {
    get_any(&meta.application, &["deviceId"])
        .or_else(|| get_any(&meta.system, &["iothub-connection-device-id"]))
        .or_else(|| body.and_then(|b| get_any(b, &["deviceId"])))
        .and_then(as_text)
        .filter(|id| !id.is_empty())
}

fn decode_twin_change(
    index: usize,
    body: &Map<String, Value>,
    meta: &MessageMeta<'_>,
) -> Result<TwinChange, String> {
    let device_id = device_id(meta, Some(body)).ok_or(
        "twin change names no device (no deviceId property, iothub-connection-device-id or body deviceId)",
    )?;
    let properties = get_loose(body, "properties").and_then(as_object);
    let reported = properties
        .as_deref()
        .and_then(|properties| get_loose(properties, "reported"))
        .and_then(as_object);
    let device_update = match reported.as_ref().and_then(|r| get_loose(r, "deviceUpdate")) {
        Some(component) => decode_device_update(component)?,
        None => None,
    };
    let text = |object: &Map<String, Value>, keys: &[&str]| get_any(object, keys).and_then(as_text);
    let time = |value: Option<&Value>| value.and_then(|v| parse_time(v).ok());
    Ok(TwinChange {
        index,
        device_id,
        module_id: text(&meta.application, &["moduleId"])
            .or_else(|| text(&meta.system, &["iothub-connection-module-id"]))
            .or_else(|| text(body, &["moduleId"]))
            .filter(|id| !id.is_empty()),
        hub: text(&meta.application, &["hubName"]).or_else(|| text(&meta.system, &["user-id"])),
        op_type: text(&meta.application, &["opType"]).map(|op| match op.as_str() {
            o if o.eq_ignore_ascii_case("updateTwin") => TwinOp::UpdateTwin,
            o if o.eq_ignore_ascii_case("replaceTwin") => TwinOp::ReplaceTwin,
            _ => TwinOp::Other(op),
        }),
        twin_version: get_any(body, &["version"]).and_then(as_u64),
        reported_version: reported
            .as_ref()
            .and_then(|r| r.get("$version"))
            .and_then(as_u64),
        enqueued_time: time(get_any(&meta.system, &["iothub-enqueuedtime"]))
            .or_else(|| time(meta.enqueued))
            .or_else(|| {
                time(get_any(
                    &meta.system,
                    &["x-opt-enqueued-time", "EnqueuedTimeUtc"],
                ))
            }),
        operation_time: time(get_any(&meta.application, &["operationTimestamp"])),
        sequence_number: meta
            .sequence
            .or_else(|| get_any(&meta.system, &["x-opt-sequence-number", "SequenceNumber"]))
            .and_then(as_i64),
        device_update,
    })
}

fn as_u64(value: &Value) -> Option<u64> {
    as_i64(value).and_then(|v| u64::try_from(v).ok())
}
