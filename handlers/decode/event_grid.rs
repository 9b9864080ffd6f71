//! Event Grid deliveries to `PatchEvents`: Event Grid schema and CloudEvents 1.0, one event or
//! an array, with Update Manager's Pre/PostMaintenanceEvent decoded and other types recognised.

use super::ItemError;
use crate::host::json::{
    as_text, clip, get_any, get_loose, kind_of, parse_time, unwrap_encoded, unwrap_text,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Event type of the event Update Manager raises before a scheduled run.
pub const PRE_MAINTENANCE: &str = "Microsoft.Maintenance.PreMaintenanceEvent";
/// Event type of the event Update Manager raises after a scheduled run.
pub const POST_MAINTENANCE: &str = "Microsoft.Maintenance.PostMaintenanceEvent";

/// Which envelope an event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventSchema {
    /// Event Grid's own schema (`eventType`, `topic`, `eventTime`).
    EventGrid,
    /// CloudEvents 1.0 (`type`, `source`, `time`, `specversion`).
    CloudEvents,
}

/// An event delivered to `PatchEvents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PatchEvent {
    /// An Update Manager maintenance run starting or finishing.
    Maintenance(MaintenanceEvent),
    /// Any other event type: recognised, logged and ignored.
    Other(OtherEvent),
}

/// Pre- or post-maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MaintenancePhase {
    /// `PreMaintenanceEvent`: the run is about to start and can still be cancelled.
    Pre,
    /// `PostMaintenanceEvent`: the run has finished.
    Post,
}

/// How a maintenance run ended (Post events only). Azure documents only `Succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RunStatus {
    /// Every machine was patched.
    Succeeded,
    /// At least one machine failed.
    Failed,
    /// The run was cancelled (by API or by the platform).
    Cancelled,
    /// Finished with warnings (some patches pending or not installed).
    CompletedWithWarnings,
    /// The run did not finish inside its window.
    TimedOut,
    /// Any other value, kept verbatim.
    Other(String),
}

impl RunStatus {
    fn parse(text: &str) -> RunStatus {
        match text.trim().to_ascii_lowercase().as_str() {
            "succeeded" | "success" | "completed" => RunStatus::Succeeded,
            "failed" | "failure" => RunStatus::Failed,
            "cancelled" | "canceled" | "cancel" => RunStatus::Cancelled,
            "completedwithwarnings" => RunStatus::CompletedWithWarnings,
            "timedout" | "timeout" => RunStatus::TimedOut,
            _ => RunStatus::Other(text.to_string()),
        }
    }
}

/// A decoded Pre/PostMaintenanceEvent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceEvent {
    /// Envelope the event came in.
    pub schema: EventSchema,
    /// Pre or post.
    pub phase: MaintenancePhase,
    /// Event id (Event Grid redelivers with the same id).
    pub id: String,
    /// The maintenance run: `<configuration id>/providers/microsoft.maintenance/applyupdates/<stamp>`.
    pub correlation_id: String,
    /// The maintenance configuration's resource id.
    pub maintenance_configuration_id: String,
    /// When the event was raised.
    pub event_time: Option<DateTime<Utc>>,
    /// Start of the schedule instance.
    pub start: Option<DateTime<Utc>>,
    /// End of the schedule instance.
    pub end: Option<DateTime<Utc>>,
    /// Last moment the run can be cancelled (Pre events).
    pub cancellation_cutoff: Option<DateTime<Utc>>,
    /// Subscriptions whose machines are in the run.
    pub resource_subscription_ids: Vec<String>,
    /// Outcome (Post events).
    pub status: Option<RunStatus>,
}

/// An event of a type `PatchEvents` does not act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherEvent {
    /// Envelope the event came in.
    pub schema: EventSchema,
    /// Event type.
    pub event_type: String,
    /// Event id, if any.
    pub id: Option<String>,
    /// Subject, if any.
    pub subject: Option<String>,
}

/// Decodes the trigger value: one event, an array of events, or either JSON-encoded.
///
/// An unusable value as a whole (not JSON, not an object/array) is one failed item.
pub fn decode_events(binding: &Value) -> Vec<Result<PatchEvent, ItemError>> {
    decode_batch(binding, decode_event)
}

/// Decodes an Event Grid trigger value (one event, an array, or either JSON-encoded) item by
/// item with `decode`, so one bad item never drops the others.
pub(super) fn decode_batch<T>(
    binding: &Value,
    decode: fn(&Value) -> Result<T, String>,
) -> Vec<Result<T, ItemError>> {
    match unwrap_encoded(binding) {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| decode(item).map_err(|reason| item_error(index, item, reason)))
            .collect(),
        single => vec![decode(&single).map_err(|reason| item_error(0, binding, reason))],
    }
}

/// The event's JSON object, or why the item is not one.
pub(super) fn event_object(value: &Value) -> Result<Map<String, Value>, String> {
    match unwrap_encoded(value) {
        Value::Object(event) => Ok(event),
        Value::String(text) => Err(format!("event is not JSON: `{}`", clip(&text, 60))),
        other => Err(format!(
            "event must be a JSON object, found {}",
            kind_of(&other)
        )),
    }
}

impl OtherEvent {
    /// An event of a type the function does not act on, from its envelope.
    pub(super) fn of(envelope: Envelope) -> Self {
        OtherEvent {
            schema: envelope.schema,
            event_type: envelope.event_type,
            id: envelope.id,
            subject: envelope.subject,
        }
    }
}

/// A batch item that could not be used, with its raw text clipped.
pub(super) fn item_error(index: usize, raw: &Value, reason: String) -> ItemError {
    let raw = match raw {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    ItemError {
        index,
        reason,
        raw: clip(&raw, super::MAX_RAW_CHARS),
    }
}

/// Decodes one event in either schema.
pub fn decode_event(value: &Value) -> Result<PatchEvent, String> {
    let event = event_object(value)?;
    let envelope = Envelope::read(&event)?;
    let phase = match envelope.event_type.as_str() {
        t if t.eq_ignore_ascii_case(PRE_MAINTENANCE) => MaintenancePhase::Pre,
        t if t.eq_ignore_ascii_case(POST_MAINTENANCE) => MaintenancePhase::Post,
        _ => return Ok(PatchEvent::Other(OtherEvent::of(envelope))),
    };
    decode_maintenance(&event, envelope, phase).map(PatchEvent::Maintenance)
}

/// The schema-independent envelope fields.
pub(super) struct Envelope {
    pub schema: EventSchema,
    pub event_type: String,
    pub id: Option<String>,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub time: Option<Value>,
}

impl Envelope {
    /// Reads the envelope of an event in either schema.
    pub(super) fn read(event: &Map<String, Value>) -> Result<Envelope, String> {
        let text = |keys: &[&str]| get_any(event, keys).and_then(as_text);
        let cloud = get_loose(event, "specversion").is_some()
            || (get_loose(event, "eventType").is_none() && get_loose(event, "type").is_some());
        let (schema, event_type) = if cloud {
            (EventSchema::CloudEvents, text(&["type"]))
        } else {
            (EventSchema::EventGrid, text(&["eventType"]))
        };
        let event_type = event_type.ok_or_else(|| {
            "event has no type (neither Event Grid `eventType` nor CloudEvents `type`)".to_string()
        })?;
        Ok(Envelope {
            schema,
            event_type,
            id: text(&["id"]),
            subject: text(&["subject"]),
            source: text(if cloud { &["source"] } else { &["topic"] }),
            time: get_any(event, if cloud { &["time"] } else { &["eventTime"] }).cloned(),
        })
    }
}

fn decode_maintenance(
    event: &Map<String, Value>,
    envelope: Envelope,
    phase: MaintenancePhase,
) -> Result<MaintenanceEvent, String> {
    let data = event_data(event)?;
    let text = |key: &str| get_any(&data, &[key]).and_then(as_text);
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, String> {
        get_any(&data, &[key])
            .map(|value| parse_time(value).map_err(|e| format!("data.{key}: {e}")))
            .transpose()
    };
    let correlation_id = text("CorrelationId")
        .or_else(|| envelope.id.clone())
        .ok_or("maintenance event has neither data.CorrelationId nor an event id")?;
    let maintenance_configuration_id = text("MaintenanceConfigurationId")
        .or_else(|| envelope.source.clone())
        .or_else(|| configuration_of_run(&correlation_id))
        .ok_or("maintenance event names no maintenance configuration")?;
    let event_time = envelope
        .time
        .as_ref()
        .map(|value| parse_time(value).map_err(|e| format!("event time: {e}")))
        .transpose()?;
    Ok(MaintenanceEvent {
        schema: envelope.schema,
        phase,
        id: envelope.id.unwrap_or_else(|| correlation_id.clone()),
        correlation_id,
        maintenance_configuration_id,
        event_time,
        start: time("StartDateTime")?,
        end: time("EndDateTime")?,
        cancellation_cutoff: time("CancellationCutOffDateTime")?,
        resource_subscription_ids: subscription_ids(get_any(&data, &["ResourceSubscriptionIds"])),
        status: text("Status").map(|status| RunStatus::parse(&status)),
    })
}

/// The event's `data` object (JSON-encoded text is unwrapped).
pub(super) fn event_data(event: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    match get_any(event, &["data"]).map(unwrap_encoded) {
        Some(Value::Object(data)) => Ok(data),
        Some(other) => Err(format!(
            "event data must be an object, found {}",
            kind_of(&other)
        )),
        None => Err("event has no data".to_string()),
    }
}

/// The configuration id is the run id without its `/providers/microsoft.maintenance/applyupdates/…` tail.
fn configuration_of_run(run_id: &str) -> Option<String> {
    let lower = run_id.to_ascii_lowercase();
    let at = lower.find("/providers/microsoft.maintenance/applyupdates/")?;
    Some(run_id[..at].to_string())
}

fn subscription_ids(value: Option<&Value>) -> Vec<String> {
    match value.map(unwrap_text) {
        Some(Value::Array(items)) => items.iter().filter_map(as_text).collect(),
        Some(Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_id_yields_its_configuration() {
        assert_eq!(
            configuration_of_run("/s/x/providers/Microsoft.Maintenance/maintenanceConfigurations/mc/providers/microsoft.maintenance/applyupdates/20230509150000").as_deref(),
            Some("/s/x/providers/Microsoft.Maintenance/maintenanceConfigurations/mc")
        );
    }

    #[test]
    fn unknown_status_is_kept_verbatim() {
        assert_eq!(RunStatus::parse("Canceled"), RunStatus::Cancelled);
        assert_eq!(RunStatus::parse("Weird"), RunStatus::Other("Weird".into()));
    }

    #[test]
    fn bad_times_are_named() {
        let event = json!({"eventType": PRE_MAINTENANCE, "id": "x", "topic": "t",
            "data": {"CorrelationId": "c", "StartDateTime": "soon"}});
        let error = decode_event(&event).expect_err("bad time");
        assert!(error.contains("data.StartDateTime"), "{error}");
    }

    #[test]
    fn missing_type_is_an_error_not_a_panic() {
        let error = decode_event(&json!({"id": "1"})).expect_err("no type");
        assert!(error.contains("no type"), "{error}");
        let error = decode_event(&json!(42)).expect_err("number");
        assert!(error.contains("found a number"), "{error}");
    }
}
