//! Device Update data plane (`api-version=2022-10-01`) under `/deviceUpdate/{instance}/management`:
//! deployments, device class subgroups (list, `:cancel`, `:retry`, status) and devices.

use super::fleet;
use super::http::{azure_time, error, json, percent_encode, require_api_version};
use super::model::*;
use super::rng::SplitMix64;
use super::world::State as WorldState;
use super::World;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rollout_core::UpdateId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The Device Update api-version served.
pub const API_VERSION: &str = "2022-10-01";

type Q = Query<HashMap<String, String>>;

/// The Device Update routes.
pub fn routes() -> Router<Arc<World>> {
    let groups = "/deviceUpdate/{instance}/management/groups/{group}";
    Router::new()
        .route(
            &format!("{groups}/deployments/{{deployment}}"),
            get(get_deployment)
                .put(put_deployment)
                .delete(delete_deployment),
        )
        .route(
            &format!("{groups}/deployments/{{deployment}}/status"),
            get(deployment_status),
        )
        .route(
            &format!("{groups}/deviceClassSubgroups"),
            get(list_subgroups),
        )
        .route(
            &format!("{groups}/deviceClassSubgroups/{{class}}/deployments/{{action}}"),
            post(subgroup_action),
        )
        .route(
            &format!("{groups}/deviceClassSubgroups/{{class}}/deployments/{{deployment}}/status"),
            get(subgroup_status),
        )
        .route(
            "/deviceUpdate/{instance}/management/devices",
            get(list_devices),
        )
}

macro_rules! api_version {
    ($query:expr) => {
        if let Err(response) = require_api_version(&$query, API_VERSION) {
            return *response;
        }
    };
}

fn update_info(update: &UpdateId) -> Value {
    json!({"updateId": {"provider": update.provider, "name": update.name, "version": update.version},
           "description": format!("{} {} {} (simulated by the stand-in)", update.provider, update.name, update.version),
           "friendlyName": format!("{} {} {}", update.provider, update.name, update.version)})
}

/// The `Deployment` body of `dep`.
fn deployment_body(dep: &Deployment, classes: &[String]) -> Value {
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

fn not_found(what: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("{what}NotFound"),
        format!("{what} '{id}' was not found."),
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn read_update_id(value: Option<&Value>, field: &str) -> Result<UpdateId, String> {
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

fn check_deployment_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > 73 {
        return Err("deploymentId must have 1 to 73 characters".into());
    }
    if id
        .chars()
        .any(|c| c.is_ascii_uppercase() || "&^[]{}|<>/\\\"".contains(c))
    {
        return Err(format!(
            "deploymentId '{id}' must be lower-case without & ^ [ ] {{ }} | < > / \\ \""
        ));
    }
    Ok(())
}

/// A validated `Deployment` request body.
struct DeploymentRequest {
    start: String,
    update: UpdateId,
    rollback_policy: Option<Value>,
}

fn read_deployment(body: &[u8], group: &str, id: &str) -> Result<DeploymentRequest, String> {
    check_deployment_id(id)?;
    let body: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    match text("deploymentId") {
        Some(value) if value == id => {}
        Some(value) => {
            return Err(format!(
                "deploymentId '{value}' differs from the path's '{id}'"
            ))
        }
        None => return Err("deploymentId is required".into()),
    }
    match text("groupId") {
        Some(value) if value == group => {}
        Some(value) => {
            return Err(format!(
                "groupId '{value}' differs from the path's '{group}'"
            ))
        }
        None => return Err("groupId is required".into()),
    }
    let start = text("startDateTime").ok_or("startDateTime is required")?;
    chrono::DateTime::parse_from_rfc3339(start)
        .map_err(|e| format!("startDateTime '{start}' is not a date-time: {e}"))?;
    let update = read_update_id(body.get("update"), "update")?;
    let rollback_policy = match body.get("rollbackPolicy") {
        None | Some(Value::Null) => None,
        Some(policy) => {
            read_update_id(policy.get("update"), "rollbackPolicy.update")?;
            let failure = policy.get("failure");
            for key in ["devicesFailedPercentage", "devicesFailedCount"] {
                if failure
                    .and_then(|f| f.get(key))
                    .and_then(Value::as_i64)
                    .is_none()
                {
                    return Err(format!(
                        "rollbackPolicy.failure.{key} is required (integer)"
                    ));
                }
            }
            Some(policy.clone())
        }
    };
    Ok(DeploymentRequest {
        start: start.to_string(),
        update,
        rollback_policy,
    })
}

async fn put_deployment(
    State(world): State<Arc<World>>,
    Path((_instance, group, id)): Path<(String, String, String)>,
    Query(query): Q,
    body: Bytes,
) -> Response {
    api_version!(query);
    let request = match read_deployment(&body, &group, &id) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let now = world.now();
    let (response, devices) = {
        let mut state = world.lock();
        let Some(classes) = state.groups.get(&group).map(|g| g.classes.clone()) else {
            return not_found("Group", &group);
        };
        if let Some(existing) = state.deployment_mut(&group, &id) {
            if existing.update != request.update
                || existing.rollback_policy != request.rollback_policy
            {
                return error(
                    StatusCode::CONFLICT,
                    "DeploymentConflict",
                    format!("Deployment '{id}' already exists with a different update or rollback policy."),
                );
            }
            existing.puts += 1;
            return json(StatusCode::OK, deployment_body(existing, &classes));
        }
        let live = state.deployments.iter().filter(|d| !d.deleted).count();
        if live >= world.config.max_deployments {
            return error(
                StatusCode::CONFLICT,
                "DeploymentLimitExceeded",
                format!("The instance already has {live} deployments, the most Device Update keeps; delete old deployments first."),
            );
        }
        for older in state.deployments.iter_mut().filter(|d| d.group == group) {
            older.superseded = true;
        }
        let devices = state.groups[&group].devices.clone();
        let created = state.deployments.len();
        let deployment = Deployment {
            group: group.clone(),
            id: id.clone(),
            update: request.update,
            start: request.start,
            rollback_policy: request.rollback_policy,
            workflow_id: SplitMix64::derived(world.config.seed, &format!("{group}/{id}/{created}"))
                .guid(),
            created_at: now,
            puts: 1,
            canceled_classes: Default::default(),
            retried: false,
            retries: 0,
            deleted: false,
            superseded: false,
            devices: devices
                .iter()
                .map(|d| (d.clone(), DevicePhase::Pending))
                .collect(),
        };
        let response = json(StatusCode::OK, deployment_body(&deployment, &classes));
        state.deployments.push(deployment);
        (response, devices)
    };
    tracing::info!(%group, deployment = %id, devices = devices.len(), "stand-in: deployment created");
    fleet::run_devices(&world, &group, &id, devices, 0);
    response
}

async fn get_deployment(
    State(world): State<Arc<World>>,
    Path((_instance, group, id)): Path<(String, String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let mut state = world.lock();
    let classes = classes_of(&state, &group);
    match state.deployment_mut(&group, &id) {
        Some(dep) => json(StatusCode::OK, deployment_body(dep, &classes)),
        None => not_found("Deployment", &id),
    }
}

async fn delete_deployment(
    State(world): State<Arc<World>>,
    Path((_instance, group, id)): Path<(String, String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    if let Some(dep) = world.lock().deployment_mut(&group, &id) {
        dep.deleted = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn classes_of(state: &WorldState, group: &str) -> Vec<String> {
    state
        .groups
        .get(group)
        .map(|g| g.classes.clone())
        .unwrap_or_default()
}

fn subgroup_status_body(state: &WorldState, dep: &Deployment, class: &str) -> Value {
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
    } else if dep.canceled_classes.contains(class) {
        "Canceled"
    } else {
        "Active"
    };
    json!({
        "groupId": dep.group, "deviceClassId": class, "deploymentState": state_name,
        "totalDevices": in_class.len(),
        "devicesInProgressCount": count(&|p| !p.is_final()),
        "devicesCompletedFailedCount": count(&|p| p == DevicePhase::Failed),
        "devicesCompletedSucceededCount": count(&|p| p == DevicePhase::Succeeded),
        "devicesCanceledCount": count(&|p| p == DevicePhase::Canceled),
    })
}

async fn deployment_status(
    State(world): State<Arc<World>>,
    Path((_instance, group, id)): Path<(String, String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let mut guard = world.lock();
    let classes = classes_of(&guard, &group);
    let Some(dep) = guard.deployment_mut(&group, &id).map(|d| d.clone()) else {
        return not_found("Deployment", &id);
    };
    let subgroups: Vec<Value> = classes
        .iter()
        .map(|class| subgroup_status_body(&guard, &dep, class))
        .collect();
    let overall = if dep.superseded {
        "Inactive"
    } else if dep.is_canceled(&classes) {
        "Canceled"
    } else {
        "Active"
    };
    json(
        StatusCode::OK,
        json!({"groupId": group, "deploymentState": overall, "subgroupStatus": subgroups}),
    )
}

async fn subgroup_status(
    State(world): State<Arc<World>>,
    Path((_instance, group, class, id)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let mut guard = world.lock();
    if !classes_of(&guard, &group).contains(&class) {
        return not_found("DeviceClassSubgroup", &class);
    }
    let Some(dep) = guard.deployment_mut(&group, &id).map(|d| d.clone()) else {
        return not_found("Deployment", &id);
    };
    json(StatusCode::OK, subgroup_status_body(&guard, &dep, &class))
}

async fn list_subgroups(
    State(world): State<Arc<World>>,
    Path((_instance, group)): Path<(String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let state = world.lock();
    let Some(g) = state.groups.get(&group) else {
        return not_found("Group", &group);
    };
    let latest = state.latest_deployment(&group).map(|d| d.id.clone());
    let value: Vec<Value> = g
        .classes
        .iter()
        .map(|class| {
            let count = g
                .devices
                .iter()
                .filter(|d| {
                    state
                        .devices
                        .get(*d)
                        .is_some_and(|d| &d.device_class == class)
                })
                .count();
            let mut item = json!({"deviceClassId": class, "groupId": group,
                "createdDateTime": azure_time(g.created), "deviceCount": count});
            if let Some(id) = &latest {
                item["deploymentId"] = json!(id);
            }
            item
        })
        .collect();
    json(StatusCode::OK, json!({"value": value}))
}

async fn subgroup_action(
    State(world): State<Arc<World>>,
    Path((_instance, group, class, action)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let Some((id, verb)) = action.rsplit_once(':') else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No action in '{action}'; use :cancel or :retry."),
        );
    };
    let (response, retry) = {
        let mut guard = world.lock();
        let state = &mut *guard;
        let classes = classes_of(state, &group);
        if !classes.contains(&class) {
            return not_found("DeviceClassSubgroup", &class);
        }
        let in_class: Vec<String> = state
            .devices
            .values()
            .filter(|d| d.group == group && d.device_class == class)
            .map(|d| d.id.clone())
            .collect();
        let Some(dep) = state.deployment_mut(&group, id) else {
            return not_found("Deployment", id);
        };
        let mut retry = None;
        match verb {
            "cancel" => {
                dep.canceled_classes.insert(class.clone());
                let mut canceled = Vec::new();
                for device in &in_class {
                    if let Some(phase) = dep.devices.get_mut(device).filter(|p| !p.is_final()) {
                        *phase = DevicePhase::Canceled;
                        canceled.push(device.clone());
                    }
                }
                for device in canceled {
                    if let Some(d) = state.devices.get_mut(&device) {
                        d.status = Some(DevicePhase::Canceled);
                        d.last_deployment = Some(id.to_string());
                    }
                }
            }
            "retry" => {
                dep.retried = true;
                dep.retries += 1;
                let failed: Vec<String> = in_class
                    .iter()
                    .filter(|d| dep.devices.get(*d) == Some(&DevicePhase::Failed))
                    .cloned()
                    .collect();
                retry = Some((failed, dep.retries));
            }
            other => {
                return error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("Unknown action ':{other}'; use :cancel or :retry."),
                )
            }
        }
        let Some(dep) = state.deployment_mut(&group, id) else {
            return not_found("Deployment", id);
        };
        let mut body = deployment_body(dep, &classes);
        body["isCanceled"] = json!(dep.canceled_classes.contains(&class));
        (json(StatusCode::OK, body), retry)
    };
    if let Some((devices, attempt)) = retry {
        fleet::run_devices(&world, &group, id, devices, attempt);
    }
    response
}

/// One `filter` clause: a field and the value it must equal (`None` for `eq null`).
fn parse_filter(filter: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut clauses = Vec::new();
    let (mut current, mut quoted) = (String::new(), false);
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\'' {
            quoted = !quoted;
        }
        let rest: String = chars[i..].iter().take(5).collect();
        if !quoted && rest.eq_ignore_ascii_case(" and ") {
            clauses.push(std::mem::take(&mut current));
            i += 5;
            continue;
        }
        current.push(chars[i]);
        i += 1;
    }
    clauses.push(current);
    clauses
        .iter()
        .map(|clause| {
            let lower = clause.to_ascii_lowercase();
            let at = lower
                .find(" eq ")
                .ok_or_else(|| format!("unsupported filter clause '{clause}'"))?;
            let key = clause[..at].trim().to_ascii_lowercase();
            let value = clause[at + 4..].trim();
            if !["groupid", "deviceclassid", "deploymentstatus"].contains(&key.as_str()) {
                return Err(format!(
                    "unsupported filter field '{}'",
                    clause[..at].trim()
                ));
            }
            if value.eq_ignore_ascii_case("null") {
                return Ok((key, None));
            }
            let inner = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .ok_or_else(|| format!("filter value {value} must be quoted"))?;
            Ok((key, Some(inner.replace("''", "'"))))
        })
        .collect()
}

fn device_body(state: &WorldState, device: &Device) -> Value {
    let latest = state
        .latest_deployment(&device.group)
        .map(|d| d.update.clone());
    let mut body = json!({
        "deviceId": device.id, "deviceClassId": device.device_class, "groupId": device.group,
        "installedUpdate": update_info(&device.installed),
        "onLatestUpdate": latest.is_none_or(|u| u == device.installed),
    });
    if let Some(update) = &device.last_attempted {
        body["lastAttemptedUpdate"] = update_info(update);
    }
    if let Some(status) = device.status {
        body["deploymentStatus"] = json!(status.service_name());
    }
    if let Some(id) = &device.last_deployment {
        body["lastDeploymentId"] = json!(id);
    }
    body
}

async fn list_devices(
    State(world): State<Arc<World>>,
    Path(instance): Path<String>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let filter = query.get("filter").map(String::as_str).unwrap_or_default();
    let clauses = if filter.trim().is_empty() {
        Vec::new()
    } else {
        match parse_filter(filter) {
            Ok(clauses) => clauses,
            Err(message) => return error(StatusCode::BAD_REQUEST, "InvalidFilter", message),
        }
    };
    let skip: usize = match query.get("skipToken").map(|t| t.parse()) {
        None => 0,
        Some(Ok(skip)) => skip,
        Some(Err(_)) => return bad_request("skipToken is not valid"),
    };
    let page = world.config.page_size.max(1);
    let state = world.lock();
    let matching: Vec<&Device> = state
        .devices
        .values()
        .filter(|d| {
            clauses.iter().all(|(key, value)| {
                let actual = match key.as_str() {
                    "groupid" => Some(d.group.clone()),
                    "deviceclassid" => Some(d.device_class.clone()),
                    _ => d.status.map(|s| s.service_name().to_string()),
                };
                actual.as_deref() == value.as_deref()
            })
        })
        .collect();
    let value: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(page)
        .map(|d| device_body(&state, d))
        .collect();
    let mut body = json!({"value": value});
    if skip + page < matching.len() {
        body["nextLink"] = json!(format!(
            "{}/deviceUpdate/{}/management/devices?filter={}&api-version={API_VERSION}&skipToken={}",
            world.base_url,
            percent_encode(&instance),
            percent_encode(filter),
            skip + page
        ));
    }
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        let clauses =
            parse_filter("groupId eq 'can''ary' and deploymentStatus eq null").expect("filter");
        assert_eq!(
            clauses,
            vec![
                ("groupid".to_string(), Some("can'ary".to_string())),
                ("deploymentstatus".to_string(), None)
            ]
        );
        assert!(parse_filter("name gt 'x'").is_err());
        assert!(parse_filter("groupId eq canary").is_err());
    }

    #[test]
    fn deployment_ids_are_checked() {
        assert!(check_deployment_id("pw-roll-out-1-w0a1").is_ok());
        assert!(check_deployment_id("Upper").is_err());
        assert!(check_deployment_id(&"x".repeat(74)).is_err());
        assert!(check_deployment_id("a/b").is_err());
    }
}
