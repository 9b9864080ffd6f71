//! Device Update device class subgroups and devices (`api-version=2022-10-01`): listing a
//! group's subgroups, `:cancel` and `:retry` per subgroup, subgroup status, and the device list
//! with `filter` and paging (whose `filter`, `skipToken` and page helpers the device-state list
//! shares).

use super::adu_bodies::{
    api_version, bad_request, classes_of, deployment_body, not_found, subgroup_status_body,
    update_info, API_VERSION, Q,
};
use super::calls::AduAction;
use super::fleet;
use super::http::{azure_time, error, json, percent_encode};
use super::model::*;
use super::world::State as WorldState;
use super::World;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

pub(super) async fn subgroup_status(
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

pub(super) async fn list_subgroups(
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

/// `POST …/deployments/{id}:cancel` or `:retry` on a device class subgroup.
pub(super) async fn subgroup_action(
    State(world): State<Arc<World>>,
    Path((_instance, group, class, action)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Response {
    let arrived = Instant::now();
    let response = answer_subgroup_action(&world, &group, &class, &action, &query);
    let noted = match action.rsplit_once(':') {
        Some((id, "cancel")) => Some((id, AduAction::CancelSubgroup { class })),
        Some((id, "retry")) => Some((id, AduAction::RetrySubgroup { class })),
        _ => None,
    };
    if let Some((id, noted)) = noted {
        let status = response.status().as_u16();
        world.adu_calls.note(arrived, noted, &group, id, status);
    }
    response
}

/// The answer to a subgroup `:cancel` or `:retry`, and what it changed.
fn answer_subgroup_action(
    world: &Arc<World>,
    group: &str,
    class: &str,
    action: &str,
    query: &HashMap<String, String>,
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
        match apply_subgroup_action(&mut guard, group, class, id, verb) {
            Ok(done) => done,
            Err(response) => return *response,
        }
    };
    if let Some((devices, attempt)) = retry {
        fleet::run_devices(world, group, id, devices, attempt);
    }
    response
}

/// Devices to run again and the attempt number, after a `:retry`.
type Retry = (Vec<String>, u32);

/// Applies `cancel` or `retry` to a subgroup of deployment `id`: the answer, any devices to rerun.
fn apply_subgroup_action(
    state: &mut WorldState,
    group: &str,
    class: &str,
    id: &str,
    verb: &str,
) -> Result<(Response, Option<Retry>), Box<Response>> {
    let classes = classes_of(state, group);
    if !classes.iter().any(|c| c == class) {
        return Err(Box::new(not_found("DeviceClassSubgroup", class)));
    }
    let in_class = class_devices(state, group, class);
    let Some(dep) = state.deployment_mut(group, id) else {
        return Err(Box::new(not_found("Deployment", id)));
    };
    let mut retry = None;
    match verb {
        "cancel" => {
            let canceled = cancel_in_deployment(dep, class, &in_class);
            mark_canceled(state, canceled, id);
        }
        "retry" => retry = Some(retry_in_deployment(dep, &in_class)),
        other => {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Unknown action ':{other}'; use :cancel or :retry."),
            )))
        }
    }
    let Some(dep) = state.deployment_mut(group, id) else {
        return Err(Box::new(not_found("Deployment", id)));
    };
    let mut body = deployment_body(dep, &classes);
    body["isCanceled"] = json!(dep.canceled_classes.contains(class));
    Ok((json(StatusCode::OK, body), retry))
}

/// The ids of `group`'s devices of `class`, in id order (read through the group, so a
/// subgroup action costs what its group's size costs, not the world's).
fn class_devices(state: &WorldState, group: &str, class: &str) -> Vec<String> {
    let members = state.groups.get(group).map(|g| g.devices.as_slice());
    let mut ids: Vec<String> = members
        .unwrap_or_default()
        .iter()
        .filter(|id| {
            state
                .devices
                .get(*id)
                .is_some_and(|d| d.group == group && d.device_class == class)
        })
        .cloned()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Cancels `class` and its unfinished devices (of `in_class`) in `dep`; returns those devices.
fn cancel_in_deployment(dep: &mut Deployment, class: &str, in_class: &[String]) -> Vec<String> {
    dep.canceled_classes.insert(class.to_string());
    let mut canceled = Vec::new();
    for device in in_class {
        if let Some(phase) = dep.devices.get_mut(device).filter(|p| !p.is_final()) {
            *phase = DevicePhase::Canceled;
            canceled.push(device.clone());
        }
    }
    canceled
}

/// Records on each of `devices` that deployment `id` was cancelled for it.
fn mark_canceled(state: &mut WorldState, devices: Vec<String>, id: &str) {
    for device in devices {
        if let Some(d) = state.devices.get_mut(&device) {
            d.status = Some(DevicePhase::Canceled);
            d.last_deployment = Some(id.to_string());
        }
    }
}

/// Counts a retry of `dep`: its devices (of `in_class`) that failed, and the attempt number.
fn retry_in_deployment(dep: &mut Deployment, in_class: &[String]) -> Retry {
    dep.retried = true;
    dep.retries += 1;
    let failed: Vec<String> = in_class
        .iter()
        .filter(|d| dep.devices.get(*d) == Some(&DevicePhase::Failed))
        .cloned()
        .collect();
    (failed, dep.retries)
}

/// A `filter` clause: a lower-cased field and the value it must equal (`None` for `eq null`).
pub(super) type Clause = (String, Option<String>);

/// The clauses of the query's `filter` (none when absent), allowing the lower-cased `fields`;
/// `400 InvalidFilter` for anything else.
pub(super) fn filter_clauses(
    query: &HashMap<String, String>,
    fields: &[&str],
) -> Result<Vec<Clause>, Box<Response>> {
    match query.get("filter").map(|f| f.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(filter) => parse_filter(filter, fields)
            .map_err(|message| Box::new(error(StatusCode::BAD_REQUEST, "InvalidFilter", message))),
    }
}

/// The query's `skipToken` (0 when absent); `400` when it is not a number.
pub(super) fn skip_token(query: &HashMap<String, String>) -> Result<usize, Box<Response>> {
    match query.get("skipToken").map(|t| t.parse()) {
        None => Ok(0),
        Some(Ok(skip)) => Ok(skip),
        Some(Err(_)) => Err(Box::new(bad_request("skipToken is not valid"))),
    }
}

/// `{"value": [...]}` with the `page` items of `matching` from `skip` on, rendered, plus a
/// `nextLink` (made by `next_link` from the next skip) when more remain.
pub(super) fn page_body<T>(
    matching: &[T],
    skip: usize,
    page: usize,
    render: impl Fn(&T) -> Value,
    next_link: impl FnOnce(usize) -> String,
) -> Value {
    let value: Vec<Value> = matching.iter().skip(skip).take(page).map(render).collect();
    let mut body = json!({ "value": value });
    if skip + page < matching.len() {
        body["nextLink"] = json!(next_link(skip + page));
    }
    body
}

/// Splits `filter` into `field eq value` clauses joined by `and`; fields must be among the
/// lower-cased `fields`.
fn parse_filter(filter: &str, fields: &[&str]) -> Result<Vec<Clause>, String> {
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
            if !fields.contains(&key.as_str()) {
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

/// The fields `ListDevices` filters on.
const DEVICE_FIELDS: &[&str] = &["groupid", "deviceclassid", "deploymentstatus"];

pub(super) async fn list_devices(
    State(world): State<Arc<World>>,
    Path(instance): Path<String>,
    Query(query): Q,
) -> Response {
    api_version!(query);
    let (clauses, skip) = match (filter_clauses(&query, DEVICE_FIELDS), skip_token(&query)) {
        (Ok(clauses), Ok(skip)) => (clauses, skip),
        (Err(response), _) | (_, Err(response)) => return *response,
    };
    let filter = query.get("filter").map(String::as_str).unwrap_or_default();
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
    let body = page_body(
        &matching,
        skip,
        world.config.page_size.max(1),
        |d| device_body(&state, d),
        |next| {
            format!(
                "{}/deviceUpdate/{}/management/devices?filter={}&api-version={API_VERSION}&skipToken={next}",
                world.base_url,
                percent_encode(&instance),
                percent_encode(filter),
            )
        },
    );
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GroupConfig, StandinConfig};

    #[test]
    fn a_subgroups_devices_are_its_groups_devices_of_its_class_in_id_order() {
        let mut shuffled = GroupConfig::numbered("b", 9, 0.0);
        shuffled.devices.reverse();
        shuffled.device_classes = 2;
        let config = StandinConfig {
            groups: vec![GroupConfig::numbered("a", 5, 0.0), shuffled],
            ..StandinConfig::default()
        };
        let world = World::new(config, "http://127.0.0.1:1".into()).expect("world");
        let state = world.lock();
        for (group, g) in &state.groups {
            for class in &g.classes {
                let everywhere: Vec<String> = (state.devices.values())
                    .filter(|d| &d.group == group && &d.device_class == class)
                    .map(|d| d.id.clone())
                    .collect();
                assert!(!everywhere.is_empty());
                assert_eq!(class_devices(&state, group, class), everywhere);
            }
        }
        assert!(class_devices(&state, "nope", "x").is_empty());
    }

    #[test]
    fn filters_parse() {
        let clauses = parse_filter(
            "groupId eq 'can''ary' and deploymentStatus eq null",
            DEVICE_FIELDS,
        )
        .expect("filter");
        assert_eq!(
            clauses,
            vec![
                ("groupid".to_string(), Some("can'ary".to_string())),
                ("deploymentstatus".to_string(), None)
            ]
        );
        assert!(parse_filter("name gt 'x'", DEVICE_FIELDS).is_err());
        assert!(parse_filter("groupId eq canary", DEVICE_FIELDS).is_err());
        assert!(parse_filter("deviceState eq 'Failed'", DEVICE_FIELDS).is_err());
        assert!(parse_filter("deviceState eq 'Failed'", &["devicestate"]).is_ok());
    }
}
