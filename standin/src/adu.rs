//! Device Update data plane (`api-version=2022-10-01`) under `/deviceUpdate/{instance}/management`:
//! deployments, device class subgroups (list, `:cancel`, `:retry`, status, device states) and
//! devices.

pub use super::adu_bodies::API_VERSION;
use super::adu_bodies::*;
use super::calls::AduAction;
use super::device_states;
use super::fleet;
use super::http::{error, json};
use super::model::*;
use super::rng::SplitMix64;
use super::subgroups;
use super::world::State as WorldState;
use super::World;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use rollout_core::UpdateId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

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
            get(subgroups::list_subgroups),
        )
        .route(
            &format!("{groups}/deviceClassSubgroups/{{class}}/deployments/{{action}}"),
            post(subgroups::subgroup_action),
        )
        .route(
            &format!("{groups}/deviceClassSubgroups/{{class}}/deployments/{{deployment}}/status"),
            get(subgroups::subgroup_status),
        )
        .route(
            &format!(
                "{groups}/deviceClassSubgroups/{{class}}/deployments/{{deployment}}/devicestates"
            ),
            get(device_states::list_device_states),
        )
        .route(
            "/deviceUpdate/{instance}/management/devices",
            get(subgroups::list_devices),
        )
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
    DateTime::parse_from_rfc3339(start)
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

/// `PUT` of a deployment: creates it and starts its devices, or answers again for the same one.
async fn put_deployment(
    State(world): State<Arc<World>>,
    Path((_instance, group, id)): Path<(String, String, String)>,
    Query(query): Q,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let response = answer_put(&world, &group, &id, &query, &body);
    let status = response.status().as_u16();
    let action = AduAction::PutDeployment;
    world.adu_calls.note(arrived, action, &group, &id, status);
    response
}

/// The answer to a deployment `PUT`, and what it changed.
fn answer_put(
    world: &Arc<World>,
    group: &str,
    id: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    api_version!(query);
    let request = match read_deployment(body, group, id) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let now = world.now();
    let (response, devices) = {
        let mut state = world.lock();
        let Some(classes) = state.groups.get(group).map(|g| g.classes.clone()) else {
            return not_found("Group", group);
        };
        if let Some(existing) = state.deployment_mut(group, id) {
            return put_again(existing, &request, &classes);
        }
        let deployment = create_deployment(world, &mut state, group, id, request, now);
        let response = json(StatusCode::OK, deployment_body(&deployment, &classes));
        let devices = if deployment.over_limit {
            Vec::new()
        } else {
            state.groups[group].devices.clone()
        };
        state.deployments.push(deployment);
        (response, devices)
    };
    tracing::info!(%group, deployment = %id, devices = devices.len(), "stand-in: deployment created");
    fleet::run_devices(world, group, id, devices, 0);
    response
}

/// A repeated `PUT` of a deployment: counted if it asks for the same update and policy, else `409`.
fn put_again(
    existing: &mut Deployment,
    request: &DeploymentRequest,
    classes: &[String],
) -> Response {
    if existing.update != request.update || existing.rollback_policy != request.rollback_policy {
        return error(
            StatusCode::CONFLICT,
            "DeploymentConflict",
            format!(
                "Deployment '{}' already exists with a different update or rollback policy.",
                existing.id
            ),
        );
    }
    existing.puts += 1;
    json(StatusCode::OK, deployment_body(existing, classes))
}

/// A new deployment `id` of `group`, superseding the group's older ones (and maybe over the limit).
fn create_deployment(
    world: &World,
    state: &mut WorldState,
    group: &str,
    id: &str,
    request: DeploymentRequest,
    now: DateTime<Utc>,
) -> Deployment {
    // Device Update accepts a deployment past the hub's configuration limit, then reports
    // its subgroups failed (the official GetDeploymentStatus example)
    let live = state.deployments.iter().filter(|d| !d.deleted).count();
    let over_limit = live >= world.config.max_deployments;
    for older in state.deployments.iter_mut().filter(|d| d.group == group) {
        older.superseded = true;
    }
    let devices = &state.groups[group].devices;
    let created = state.deployments.len();
    Deployment {
        group: group.to_string(),
        id: id.to_string(),
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
        over_limit,
    }
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
    let arrived = Instant::now();
    let response = answer_delete(&world, &group, &id, &query);
    let status = response.status().as_u16();
    let action = AduAction::DeleteDeployment;
    world.adu_calls.note(arrived, action, &group, &id, status);
    response
}

fn answer_delete(
    world: &World,
    group: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> Response {
    api_version!(query);
    if let Some(dep) = world.lock().deployment_mut(group, id) {
        dep.deleted = true;
    }
    StatusCode::NO_CONTENT.into_response()
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
    } else if dep.over_limit {
        "Failed"
    } else if dep.is_canceled(&classes) {
        "Canceled"
    } else {
        "Active"
    };
    let mut body =
        json!({"groupId": group, "deploymentState": overall, "subgroupStatus": subgroups});
    if overall == "Failed" {
        body["error"] = limit_error();
    }
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_checked() {
        assert!(check_deployment_id("pw-roll-out-1-w0a1").is_ok());
        assert!(check_deployment_id("Upper").is_err());
        assert!(check_deployment_id(&"x".repeat(74)).is_err());
        assert!(check_deployment_id("a/b").is_err());
    }
}
