//! Device Update `ListDeviceStatesForDeviceClassSubgroupDeployment` (`api-version=2022-10-01`):
//! the devices of one device-class subgroup in a deployment and where they stand, with `filter`
//! on `deviceId`, `moduleId` and `deviceState`, and paging.

use super::adu_bodies::{api_version, classes_of, not_found, API_VERSION, Q};
use super::http::{json, percent_encode};
use super::model::*;
use super::subgroups::{filter_clauses, page_body, skip_token, Clause};
use super::World;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

/// The fields the device-state list filters on.
const FIELDS: &[&str] = &["deviceid", "moduleid", "devicestate"];

/// `GET .../groups/{group}/deviceClassSubgroups/{class}/deployments/{deployment}/devicestates`.
pub(super) async fn list_device_states(
    State(world): State<Arc<World>>,
    Path((instance, group, class, id)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let (clauses, skip) = match (filter_clauses(&query, FIELDS), skip_token(&query)) {
        (Ok(clauses), Ok(skip)) => (clauses, skip),
        (Err(response), _) | (_, Err(response)) => return *response,
    };
    let items = match class_items(&world, &group, &class, &id, &clauses) {
        Ok(items) => items,
        Err(response) => return *response,
    };
    let filter = query.get("filter").map(String::as_str).unwrap_or_default();
    let body = page_body(
        &items,
        skip,
        world.config.page_size.max(1),
        Value::clone,
        |next| {
            format!(
                "{}/deviceUpdate/{}/management/groups/{}/deviceClassSubgroups/{}/deployments/{}/devicestates?filter={}&api-version={API_VERSION}&skipToken={next}",
                world.base_url,
                percent_encode(&instance),
                percent_encode(&group),
                percent_encode(&class),
                percent_encode(&id),
                percent_encode(filter),
            )
        },
    );
    json(StatusCode::OK, body)
}

/// The items of the devices of `class` in deployment `id` of `group` that meet `clauses`, in
/// device order; `404` for an unknown subgroup or deployment.
fn class_items(
    world: &World,
    group: &str,
    class: &str,
    id: &str,
    clauses: &[Clause],
) -> Result<Vec<Value>, Box<Response>> {
    let mut state = world.lock();
    if !classes_of(&state, group).iter().any(|c| c == class) {
        return Err(Box::new(not_found("DeviceClassSubgroup", class)));
    }
    let Some(dep) = state.deployment_mut(group, id).map(|d| d.clone()) else {
        return Err(Box::new(not_found("Deployment", id)));
    };
    let in_class = |device: &String| {
        state
            .devices
            .get(device)
            .is_some_and(|d| d.device_class == class)
    };
    Ok(dep
        .devices
        .iter()
        .filter(|(device, _)| in_class(device))
        .map(|(device, phase)| item(&dep, device, *phase))
        .filter(|item| matches(item, clauses))
        .collect())
}

/// One `DeploymentDeviceState` item (`Pending` shows as `InProgress`).
fn item(dep: &Deployment, device: &str, phase: DevicePhase) -> Value {
    json!({
        "deviceId": device,
        "retryCount": dep.retries,
        "movedOnToNewDeployment": dep.superseded,
        "deviceState": phase.service_name(),
    })
}

/// Whether `item` meets every clause (a field it lacks, such as `moduleId`, is null).
fn matches(item: &Value, clauses: &[Clause]) -> bool {
    clauses.iter().all(|(field, value)| {
        let key = match field.as_str() {
            "deviceid" => "deviceId",
            "moduleid" => "moduleId",
            _ => "deviceState",
        };
        item.get(key).and_then(Value::as_str) == value.as_deref()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_match_items() {
        let item = json!({"deviceId": "d1", "deviceState": "Failed"});
        let clause =
            |field: &str, value: Option<&str>| (field.to_string(), value.map(String::from));
        assert!(matches(&item, &[]));
        assert!(matches(
            &item,
            &[
                clause("deviceid", Some("d1")),
                clause("devicestate", Some("Failed"))
            ]
        ));
        assert!(!matches(&item, &[clause("devicestate", Some("Succeeded"))]));
        assert!(matches(&item, &[clause("moduleid", None)]));
        assert!(!matches(&item, &[clause("moduleid", Some("m"))]));
    }
}
