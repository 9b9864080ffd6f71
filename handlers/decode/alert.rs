//! Azure Monitor alerts in the common alert schema, as an action group's webhook posts them to
//! `POST /api/alerts`: `{"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials":
//! {…}, "alertContext": {…}}}`. Only `essentials` is read; it is the same for every signal type.

use crate::host::json::{as_text, clip, get_any, kind_of, parse_time};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// The `schemaId` of the common alert schema.
pub const COMMON_ALERT_SCHEMA: &str = "azureMonitorCommonAlertSchema";

/// Fired or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MonitorCondition {
    /// The rule's condition is met.
    Fired,
    /// It no longer is.
    Resolved,
}

/// The essentials of one alert delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// The alert's id; with the condition it identifies a delivery (retries repeat both).
    pub alert_id: String,
    /// The alert rule's name, which plans name in `alertRules`.
    pub alert_rule: String,
    /// Fired or resolved.
    pub monitor_condition: MonitorCondition,
    /// `Sev0`–`Sev4`.
    pub severity: Option<String>,
    /// `Metric`, `Log`, `Activity Log`.
    pub signal_type: Option<String>,
    /// When it fired.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The rule's description.
    pub description: Option<String>,
}

/// Decodes an alert body; the error says what is missing or wrong.
pub fn decode_alert(body: &Value) -> Result<Alert, String> {
    let Value::Object(root) = body else {
        return Err(format!(
            "the alert must be a JSON object, found {}",
            kind_of(body)
        ));
    };
    match get_any(root, &["schemaId"]).and_then(as_text) {
        Some(schema) if schema == COMMON_ALERT_SCHEMA => {}
        Some(other) => {
            return Err(format!(
                "schemaId `{}` is not {COMMON_ALERT_SCHEMA}: turn on the common alert schema in the action group",
                clip(&other, 80)
            ))
        }
        None => return Err(format!("the alert has no schemaId (expected {COMMON_ALERT_SCHEMA})")),
    }
    let essentials = root
        .get("data")
        .and_then(Value::as_object)
        .and_then(|data| data.get("essentials"))
        .and_then(Value::as_object)
        .ok_or("the alert has no data.essentials object")?;
    read_essentials(essentials)
}

fn read_essentials(essentials: &Map<String, Value>) -> Result<Alert, String> {
    let text = |key: &str| {
        get_any(essentials, &[key])
            .and_then(as_text)
            .filter(|t| !t.trim().is_empty())
    };
    let required = |key: &str| text(key).ok_or(format!("data.essentials.{key} is missing"));
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, String> {
        get_any(essentials, &[key])
            .filter(|v| !v.is_null())
            .map(|v| parse_time(v).map_err(|e| format!("data.essentials.{key}: {e}")))
            .transpose()
    };
    let monitor_condition = match required("monitorCondition")?.as_str() {
        c if c.eq_ignore_ascii_case("Fired") => MonitorCondition::Fired,
        c if c.eq_ignore_ascii_case("Resolved") => MonitorCondition::Resolved,
        other => {
            return Err(format!(
                "data.essentials.monitorCondition `{}` is neither Fired nor Resolved",
                clip(other, 40)
            ))
        }
    };
    Ok(Alert {
        alert_id: required("alertId")?,
        alert_rule: required("alertRule")?,
        monitor_condition,
        severity: text("severity"),
        signal_type: text("signalType"),
        fired_at: time("firedDateTime")?,
        resolved_at: time("resolvedDateTime")?,
        description: text("description"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(condition: &str) -> Value {
        json!({"schemaId": COMMON_ALERT_SCHEMA, "data": {"essentials": {
            "alertId": "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1",
            "alertRule": "hub-connected-devices-low", "monitorCondition": condition,
            "firedDateTime": "2026-11-29T08:29:58.872Z", "severity": "Sev2"}, "alertContext": {}}})
    }

    #[test]
    fn fired_and_resolved_are_read() {
        let fired = decode_alert(&alert("Fired")).expect("fired");
        assert_eq!(fired.monitor_condition, MonitorCondition::Fired);
        assert_eq!(fired.alert_rule, "hub-connected-devices-low");
        assert!(fired.fired_at.is_some());
        let resolved = decode_alert(&alert("Resolved")).expect("resolved");
        assert_eq!(resolved.monitor_condition, MonitorCondition::Resolved);
    }

    #[test]
    fn other_schemas_and_missing_fields_are_named() {
        let error = decode_alert(&json!({"schemaId": "Microsoft.Insights/activityLogs"}))
            .expect_err("schema");
        assert!(error.contains("common alert schema"), "{error}");
        let mut body = alert("Fired");
        body["data"]["essentials"]
            .as_object_mut()
            .expect("object")
            .remove("alertRule");
        let error = decode_alert(&body).expect_err("rule");
        assert!(error.contains("alertRule"), "{error}");
        let error = decode_alert(&alert("Acknowledged")).expect_err("condition");
        assert!(error.contains("neither Fired nor Resolved"), "{error}");
        assert!(decode_alert(&json!([1])).is_err());
    }
}
