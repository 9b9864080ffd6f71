//! `POST /api/alerts`: Azure Monitor alerts in the common alert schema, as an action group's
//! webhook sends them (with the function key). The body is checked against the documented
//! schema ([`AlertNotification`]) and decoded with [`decode_alert`]; every rollout that is
//! not finished is then stepped with the alert.

use super::authorized::{Authorized, AuthorizedBody, Operate};
use crate::decode::alert::{decode_alert, Alert, MonitorCondition};
use crate::problem::Problem;
use crate::service::ServiceError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rollout_core::AlertInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::service::AlertAction;

/// An alert notification in the Azure Monitor common alert schema (only the fields patchwave
/// reads are described; every other field is accepted and ignored).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertNotification {
    /// Always `azureMonitorCommonAlertSchema` (turn on the common alert schema in the action
    /// group).
    pub schema_id: AlertSchemaId,
    /// The alert.
    pub data: AlertData,
}

/// The one schema accepted.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum AlertSchemaId {
    /// The common alert schema.
    #[serde(rename = "azureMonitorCommonAlertSchema")]
    AzureMonitorCommonAlertSchema,
}

/// `data` of a notification.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertData {
    /// What every signal type has in common.
    pub essentials: AlertEssentials,
}

/// `data.essentials`: the fields patchwave reads.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertEssentials {
    /// The alert's id; with the condition it identifies a delivery (a redelivery changes
    /// nothing).
    #[schema(min_length = 1)]
    pub alert_id: String,
    /// The alert rule's name, matched against the plans' `alertRules`.
    #[schema(min_length = 1)]
    pub alert_rule: String,
    /// `Fired` or `Resolved`.
    pub monitor_condition: AlertCondition,
    /// When it fired (RFC 3339).
    #[serde(default)]
    pub fired_date_time: Option<String>,
    /// When it resolved (RFC 3339).
    #[serde(default)]
    pub resolved_date_time: Option<String>,
    /// `Sev0` … `Sev4`.
    #[serde(default)]
    pub severity: Option<String>,
    /// `Metric`, `Log`, `Activity Log`.
    #[serde(default)]
    pub signal_type: Option<String>,
    /// The rule's description.
    #[serde(default)]
    pub description: Option<String>,
}

/// An alert's monitor condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AlertCondition {
    /// The rule's condition is met.
    Fired,
    /// It no longer is.
    Resolved,
}

/// What an alert did: to every rollout that was not finished.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertAnswer {
    /// The alert's id.
    pub alert_id: String,
    /// The alert rule.
    pub rule: String,
    /// `Fired` or `Resolved`.
    pub monitor_condition: AlertCondition,
    /// Each rollout that was not finished, newest first, and what the alert did to it.
    pub affected: Vec<AffectedRollout>,
}

/// One rollout an alert was offered to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AffectedRollout {
    /// Rollout id.
    pub rollout: String,
    /// `waveFailed` (the rollout names the rule and a wave was deploying or soaking),
    /// `recorded` (in the audit trail only) or `ignored` (the same delivery came before).
    pub action: AlertAction,
}

/// Take an Azure Monitor alert (common alert schema).
///
/// A `Fired` alert of a rule a deploying or soaking rollout names in `alertRules` fails that
/// rollout's current wave (its `onFailure` then pauses or rolls back); `Resolved` alerts and
/// alerts of other rules are recorded in the audit trail only. A redelivered alert changes
/// nothing. Azure Monitor action groups call it with the function key.
#[utoipa::path(post, path = "/api/alerts", tag = "alerts", operation_id = "postAlert",
    request_body(content = AlertNotification, description = "an Azure Monitor alert in the common alert schema"),
    responses(
        (status = 202, description = "taken; what it did to each rollout that is not finished", body = AlertAnswer),
        (status = 400, description = "not JSON, or not an alert in the common alert schema; the detail says what is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store is unavailable or too busy; send it again (action groups retry a 503)", body = Problem, content_type = "application/problem+json")))]
pub async fn post(request: AuthorizedBody<Operate>) -> Response {
    let AuthorizedBody {
        authorized: Authorized { service, .. },
        body,
    } = request;
    let alert = match read_alert(&body) {
        Ok(alert) => alert,
        Err(problem) => return problem.into_response(),
    };
    let condition = match alert.monitor_condition {
        MonitorCondition::Fired => AlertCondition::Fired,
        MonitorCondition::Resolved => AlertCondition::Resolved,
    };
    let fired = condition == AlertCondition::Fired;
    let input = AlertInput {
        alert_id: alert.alert_id.clone(),
        rule: alert.alert_rule.clone(),
        fired,
        at: if fired {
            alert.fired_at
        } else {
            alert.resolved_at
        },
    };
    match service.alert(&input).await {
        Ok(affected) => {
            let answer = AlertAnswer {
                alert_id: alert.alert_id,
                rule: alert.alert_rule,
                monitor_condition: condition,
                affected: affected
                    .into_iter()
                    .map(|(id, action)| AffectedRollout {
                        rollout: id.as_str().to_string(),
                        action,
                    })
                    .collect(),
            };
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        // action groups retry a 503, not a 409
        Err(ServiceError::Conflict(reason)) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Busy")
                .detail(reason)
                .into_response()
        }
        Err(error) => Problem::from(error).into_response(),
    }
}

/// The alert in `body`, or `400` naming what is wrong: not JSON, what [`decode_alert`]
/// refuses, or a field of another type than the documented schema's.
fn read_alert(body: &[u8]) -> Result<Alert, Problem> {
    let invalid =
        |detail: String| Problem::new(StatusCode::BAD_REQUEST, "Invalid alert").detail(detail);
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let alert = decode_alert(&value).map_err(invalid)?;
    serde_json::from_value::<AlertNotification>(value).map_err(|e| {
        invalid(format!(
            "the alert does not follow the common alert schema: {e}"
        ))
    })?;
    Ok(alert)
}
