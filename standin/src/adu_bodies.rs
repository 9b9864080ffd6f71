//! What Device Update's routes share: the api-version check, the bodies of deployments and
//! subgroup statuses, update ids, and its error answers.

use super::http::error;
use super::model::*;
use super::world::State as WorldState;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use rollout_core::UpdateId;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The Device Update api-version served.
pub const API_VERSION: &str = "2022-10-01";

pub(super) type Q = Query<HashMap<String, String>>;

/// Returns the `400 InvalidApiVersion` answer unless the query has this api-version.
macro_rules! api_version {
    ($query:expr) => {
        if let Err(response) =
            $crate::http::require_api_version(&$query, $crate::adu_bodies::API_VERSION)
        {
            return *response;
        }
    };
}

pub(super) use api_version;

pub(super) fn update_info(update: &UpdateId) -> Value {
    json!({"updateId": {"provider": update.provider, "name": update.name, "version": update.version},
           "description": format!("{} {} {} (simulated by the stand-in)", update.provider, update.name, update.version),
           "friendlyName": format!("{} {} {}", update.provider, update.name, update.version)})
}

/// The `Deployment` body of `dep`.
pub(super) fn deployment_body(dep: &Deployment, classes: &[String]) -> Value {
    let mut body = json!({
        "deploymentId": dep.id, "groupId": dep.group, "deviceClassSubgroups": classes,
        "startDateTime": dep.start, "update": update_info(&dep.update),
        "isCanceled": dep.is_canceled(classes), "isRetried": dep.retried,
        "isCloudInitiatedRollback": false,
    });
    if let Some(policy) = &dep.rollback_policy {
        let mut policy = policy.clone();
        if let Ok(update) = read_update_id(policy.get("update"), "rollbackPolicy.update") {
            policy["update"] = update_info(&update);
        }
        body["rollbackPolicy"] = policy;
    }
    body
}

pub(super) fn not_found(what: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("{what}NotFound"),
        format!("{what} '{id}' was not found."),
    )
}

pub(super) fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub(super) fn read_update_id(value: Option<&Value>, field: &str) -> Result<UpdateId, String> {
    let id = value.and_then(|v| v.get("updateId"));
    let part = |key: &str| {
        id.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("{field}.updateId.{key} is required"))
    };
    Ok(UpdateId {
        provider: part("provider")?,
        name: part("name")?,
        version: part("version")?,
    })
}

pub(super) fn classes_of(state: &WorldState, group: &str) -> Vec<String> {
    state
        .groups
        .get(group)
        .map(|g| g.classes.clone())
        .unwrap_or_default()
}

pub(super) fn subgroup_status_body(state: &WorldState, dep: &Deployment, class: &str) -> Value {
    let in_class: Vec<DevicePhase> = dep
        .devices
        .iter()
        .filter(|(device, _)| {
            state
                .devices
                .get(*device)
                .is_some_and(|d| d.device_class == class)
        })
        .map(|(_, phase)| *phase)
        .collect();
    let count = |f: &dyn Fn(DevicePhase) -> bool| in_class.iter().filter(|p| f(**p)).count();
    let state_name = if dep.superseded {
        "Inactive"
    } else if dep.over_limit {
        "Failed"
    } else if dep.canceled_classes.contains(class) {
        "Canceled"
    } else {
        "Active"
    };
    let mut body = json!({
        "groupId": dep.group, "deviceClassId": class, "deploymentState": state_name,
        "totalDevices": in_class.len(),
        "devicesInProgressCount": count(&|p| !p.is_final()),
        "devicesCompletedFailedCount": count(&|p| p == DevicePhase::Failed),
        "devicesCompletedSucceededCount": count(&|p| p == DevicePhase::Succeeded),
        "devicesCanceledCount": count(&|p| p == DevicePhase::Canceled),
    });
    if dep.over_limit && !dep.superseded {
        body["error"] = limit_error();
    }
    body
}

/// The error of a subgroup deployment past the configuration limit, as the official
/// `DeviceManagement_GetDeploymentStatus` example shows it.
pub(super) fn limit_error() -> Value {
    json!({
        "code": "ADMConfigurationLimitExceeded",
        "message": "The subgroup deployment failed to be created due to hitting the ADM configuration limit"
    })
}
