//! Resource Manager: `installPatches` / `assessPatches` on VMs (`Microsoft.Compute`,
//! `2025-04-01`) and Arc machines (`Microsoft.HybridCompute`, `2024-07-10`) as long-running
//! operations (`Location` + `Azure-AsyncOperation` + `Retry-After`), and cancelling a scheduled
//! maintenance run (`applyUpdates`, `2023-10-01-preview`). Provider and type segments match
//! without regard to case, as in ARM.

use super::http::{azure_time, error, json, require_api_version};
use super::maintenance;
use super::model::*;
use super::rng::SplitMix64;
use super::{MachineOs, World};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::Duration as ChronoDuration;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// api-version of `Microsoft.Compute` calls.
pub const COMPUTE_API_VERSION: &str = "2025-04-01";
/// api-version of `Microsoft.HybridCompute` calls.
pub const HYBRID_API_VERSION: &str = "2024-07-10";
/// api-version of `Microsoft.Maintenance/applyUpdates` cancellation.
pub const MAINTENANCE_API_VERSION: &str = "2023-10-01-preview";

const REBOOT_SETTINGS: [&str; 3] = ["IfRequired", "Never", "Always"];

/// Every `/subscriptions/…` request.
pub async fn dispatch(
    State(world): State<Arc<World>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match l.as_slice() {
        ["subscriptions", _, "resourcegroups", _, "providers", provider, kind, _, action]
            if is_machine_type(provider, kind)
                && matches!(*action, "installpatches" | "assesspatches") =>
        {
            if method != Method::POST {
                return method_not_allowed();
            }
            patch_route(&world, &query, &body, &segments, provider, action)
        }
        ["subscriptions", _, "resourcegroups", _, "providers", provider, kind, _]
            if is_machine_type(provider, kind) =>
        {
            if method != Method::GET {
                return method_not_allowed();
            }
            get_machine(&world, &query, &uri, machine_kind_of(provider))
        }
        ["subscriptions", _, "providers", provider, "locations", _, "operations", id]
            if matches!(*provider, "microsoft.compute" | "microsoft.hybridcompute") =>
        {
            if method != Method::GET {
                return method_not_allowed();
            }
            poll_operation(&world, &query, &uri, segments[3], id)
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.maintenance", "maintenanceconfigurations", _, "providers", "microsoft.maintenance", "applyupdates", _] => {
            maintenance_route(&world, &method, &query, &segments, &body)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The stand-in serves no resource at '{}'.", uri.path()),
        ),
    }
}

/// Whether lower-cased `provider` and `kind` name a VM or an Arc machine.
fn is_machine_type(provider: &str, kind: &str) -> bool {
    matches!(
        (provider, kind),
        ("microsoft.compute", "virtualmachines") | ("microsoft.hybridcompute", "machines")
    )
}

/// The kind of machine of a lower-cased machine provider.
fn machine_kind_of(provider: &str) -> MachineKind {
    if provider == "microsoft.compute" {
        MachineKind::VirtualMachine
    } else {
        MachineKind::ArcMachine
    }
}

/// `POST {machine}/installPatches` or `/assessPatches` (lower-cased `provider` and `action`).
fn patch_route(
    world: &Arc<World>,
    query: &HashMap<String, String>,
    body: &[u8],
    segments: &[&str],
    provider: &str,
    action: &str,
) -> Response {
    let machine_kind = machine_kind_of(provider);
    let op_kind = if action == "installpatches" {
        OperationKind::Install
    } else {
        OperationKind::Assess
    };
    let machine_id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/{}/{}",
        segments[1],
        segments[3],
        match machine_kind {
            MachineKind::VirtualMachine => "Microsoft.Compute/virtualMachines",
            MachineKind::ArcMachine => "Microsoft.HybridCompute/machines",
        },
        segments[7]
    );
    start_operation(
        world,
        query,
        body,
        machine_kind,
        op_kind,
        machine_id,
        segments[1],
    )
}

/// `PUT` (cancel) or `GET` of a maintenance run under `…/applyUpdates/{run}`.
fn maintenance_route(
    world: &World,
    method: &Method,
    query: &HashMap<String, String>,
    segments: &[&str],
    body: &[u8],
) -> Response {
    if let Err(response) = require_api_version(query, MAINTENANCE_API_VERSION) {
        return *response;
    }
    let configuration = format!("/{}", segments[..8].join("/"));
    let run_id = format!("/{}", segments.join("/"));
    match *method {
        Method::PUT => maintenance::cancel_route(world, &configuration, &run_id, body),
        Method::GET => maintenance::get_route(world, &configuration, &run_id),
        _ => method_not_allowed(),
    }
}

fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The method is not allowed on this resource.",
    )
}

fn api_version_for(kind: MachineKind) -> &'static str {
    match kind {
        MachineKind::VirtualMachine => COMPUTE_API_VERSION,
        MachineKind::ArcMachine => HYBRID_API_VERSION,
    }
}

fn provider_of(kind: MachineKind) -> &'static str {
    match kind {
        MachineKind::VirtualMachine => "Microsoft.Compute",
        MachineKind::ArcMachine => "Microsoft.HybridCompute",
    }
}

fn invalid(target: &str, message: String) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": "InvalidParameter", "message": message, "target": target}}),
    )
}

/// `GET` of a VM or Arc machine: where patchwave learns the OS (VM:
/// `properties.storageProfile.osDisk.osType`; Arc: `properties.osType`, lower case).
fn get_machine(
    world: &World,
    query: &HashMap<String, String>,
    uri: &Uri,
    kind: MachineKind,
) -> Response {
    if let Err(response) = require_api_version(query, api_version_for(kind)) {
        return *response;
    }
    let id = uri.path().to_string();
    let name = id.rsplit('/').next().unwrap_or_default().to_string();
    let (_, os) = world.machine_config(&id);
    let location = world.config.location.clone();
    let body = match kind {
        MachineKind::VirtualMachine => json!({
            "id": id, "name": name, "type": "Microsoft.Compute/virtualMachines", "location": location,
            "properties": {"provisioningState": "Succeeded", "storageProfile": {"osDisk": {
                "osType": if os == MachineOs::Windows { "Windows" } else { "Linux" },
                "name": format!("{name}-osdisk"), "createOption": "FromImage"}}}
        }),
        MachineKind::ArcMachine => json!({
            "id": id, "name": name, "type": "Microsoft.HybridCompute/machines", "location": location,
            "properties": {"provisioningState": "Succeeded", "status": "Connected",
                "osType": if os == MachineOs::Windows { "windows" } else { "linux" }}
        }),
    };
    json(StatusCode::OK, body)
}

/// Classifications `installPatches` takes, per OS (Compute and HybridCompute specs:
/// `VMGuestPatchClassificationWindows` / `VMGuestPatchClassificationLinux`).
const WINDOWS_CLASSIFICATIONS: [&str; 8] = [
    "Critical",
    "Security",
    "UpdateRollUp",
    "FeaturePack",
    "ServicePack",
    "Definition",
    "Tools",
    "Updates",
];
const LINUX_CLASSIFICATIONS: [&str; 3] = ["Critical", "Security", "Other"];

/// The parameter set of the machine's OS, and only it, with known classifications.
fn check_os_parameters(request: &Value, os: MachineOs) -> Result<(), Box<Response>> {
    let (own, other, allowed): (&str, &str, &[&str]) = match os {
        MachineOs::Windows => (
            "windowsParameters",
            "linuxParameters",
            &WINDOWS_CLASSIFICATIONS,
        ),
        MachineOs::Linux => (
            "linuxParameters",
            "windowsParameters",
            &LINUX_CLASSIFICATIONS,
        ),
    };
    if request.get(other).is_some_and(|v| !v.is_null()) {
        return Err(Box::new(invalid(
            other,
            format!("{other} cannot be used on a {os:?} machine; send {own}."),
        )));
    }
    let Some(parameters) = request.get(own).filter(|v| v.is_object()) else {
        return Err(Box::new(invalid(
            own,
            format!("{own} is required for a {os:?} machine."),
        )));
    };
    let classifications = parameters
        .get("classificationsToInclude")
        .and_then(Value::as_array);
    for value in classifications.into_iter().flatten() {
        let known = value.as_str().is_some_and(|c| allowed.contains(&c));
        if !known {
            return Err(Box::new(invalid(
                &format!("{own}.classificationsToInclude"),
                format!("{value} is not a valid classification; valid values: {allowed:?}."),
            )));
        }
    }
    Ok(())
}

/// Starts an installPatches / assessPatches operation on `machine_id`: `202` with its status URLs.
fn start_operation(
    world: &Arc<World>,
    query: &HashMap<String, String>,
    body: &[u8],
    machine_kind: MachineKind,
    kind: OperationKind,
    machine_id: String,
    subscription: &str,
) -> Response {
    let api_version = api_version_for(machine_kind);
    if let Err(response) = require_api_version(query, api_version) {
        return *response;
    }
    let request = match read_operation_request(world, body, machine_kind, kind, &machine_id) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let fails = kind == OperationKind::Install && world.machine_config(&machine_id).0;
    let now = world.now();
    let (id, activity) = match new_operation_ids(world, kind, &machine_id, now) {
        Ok(ids) => ids,
        Err(response) => return *response,
    };
    let ends = now
        + ChronoDuration::from_std(world.config.patch_duration).unwrap_or(ChronoDuration::zero());
    let result = match kind {
        OperationKind::Install => install_result(machine_kind, fails, &activity, now, ends),
        OperationKind::Assess => assess_result(machine_kind, &activity, now, ends),
    };
    let operation = Operation {
        id: id.clone(),
        kind,
        machine_kind,
        machine_id: machine_id.clone(),
        request,
        started: now,
        ends,
        succeeds: !fails,
        result,
    };
    world.lock().operations.insert(id.clone(), operation);
    tracing::info!(machine = %machine_id, operation = %id, ?kind, "stand-in: patch operation started");
    operation_accepted(world, subscription, machine_kind, &id, api_version)
}

/// The operation's request body (`null` when empty), checked when it installs patches.
fn read_operation_request(
    world: &World,
    body: &[u8],
    machine_kind: MachineKind,
    kind: OperationKind,
    machine_id: &str,
) -> Result<Value, Box<Response>> {
    let request: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Box::new(invalid(
                "body",
                format!("The request body is not JSON: {e}"),
            ))
        })?
    };
    if kind == OperationKind::Install {
        check_install_request(world, &request, machine_kind, machine_id)?;
    }
    Ok(request)
}

/// Checks an installPatches body: `rebootSetting`, Arc's `maximumDuration`, the OS's parameters.
fn check_install_request(
    world: &World,
    request: &Value,
    machine_kind: MachineKind,
    machine_id: &str,
) -> Result<(), Box<Response>> {
    let reboot = request.get("rebootSetting").and_then(Value::as_str);
    if !reboot.is_some_and(|r| REBOOT_SETTINGS.contains(&r)) {
        return Err(Box::new(invalid(
            "rebootSetting",
            format!("rebootSetting is required and must be one of {REBOOT_SETTINGS:?}."),
        )));
    }
    let duration = request.get("maximumDuration").and_then(Value::as_str);
    if machine_kind == MachineKind::ArcMachine && duration.is_none() {
        return Err(Box::new(invalid(
            "maximumDuration",
            "maximumDuration is required.".into(),
        )));
    }
    check_os_parameters(request, world.machine_config(machine_id).1)
}

/// Draws a new operation's id and activity id; `409` while one of its kind runs on the machine.
fn new_operation_ids(
    world: &World,
    kind: OperationKind,
    machine_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, String), Box<Response>> {
    let mut state = world.lock();
    let busy = state.operations.values().any(|op| {
        op.kind == kind && op.machine_id.eq_ignore_ascii_case(machine_id) && now < op.ends
    });
    if busy {
        return Err(Box::new(error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("A patch operation is already in progress on '{machine_id}'."),
        )));
    }
    Ok((state.rng.guid(), state.rng.guid()))
}

/// The `202` of a started operation, with `Location`, `Azure-AsyncOperation` and `Retry-After`.
fn operation_accepted(
    world: &World,
    subscription: &str,
    machine_kind: MachineKind,
    id: &str,
    api_version: &str,
) -> Response {
    let base = format!(
        "{}/subscriptions/{subscription}/providers/{}/locations/{}/operations/{id}",
        world.base_url,
        provider_of(machine_kind),
        world.config.location
    );
    accepted(vec![
        (
            "location",
            format!("{base}?monitor=true&api-version={api_version}"),
        ),
        (
            "azure-asyncoperation",
            format!("{base}?api-version={api_version}"),
        ),
        (
            "retry-after",
            retry_after(world).to_str().unwrap_or("1").to_string(),
        ),
    ])
}

/// A `202 Accepted` without body or content type, with those `headers` that are valid values.
fn accepted(headers: Vec<(&'static str, String)>) -> Response {
    let mut response = json(StatusCode::ACCEPTED, Value::Null);
    *response.body_mut() = axum::body::Body::empty();
    let map = response.headers_mut();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            map.insert(name, value);
        }
    }
    map.remove("content-type");
    response
}

/// `GET` of an operation: its status, or with `monitor=true` its result once it has ended.
fn poll_operation(
    world: &World,
    query: &HashMap<String, String>,
    uri: &Uri,
    provider_segment: &str,
    id: &str,
) -> Response {
    let operation = match find_operation(world, provider_segment, id) {
        Ok(operation) => operation,
        Err(response) => return *response,
    };
    if let Err(response) = require_api_version(query, api_version_for(operation.machine_kind)) {
        return *response;
    }
    let status = operation.status_at(world.now());
    let monitor = query
        .get("monitor")
        .is_some_and(|m| m.eq_ignore_ascii_case("true"));
    let running = !TERMINAL.contains(&status);
    if monitor {
        if running {
            let location = format!("{}{}", world.base_url, uri);
            let retry = retry_after(world).to_str().unwrap_or("1").to_string();
            return accepted(vec![("location", location), ("retry-after", retry)]);
        }
        return json(StatusCode::OK, operation.result);
    }
    operation_status(world, &operation, status, running)
}

/// Operation `id`, if it exists under `provider_segment`; else `404`.
fn find_operation(
    world: &World,
    provider_segment: &str,
    id: &str,
) -> Result<Operation, Box<Response>> {
    let Some(operation) = world.lock().operations.get(id).cloned() else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("Operation '{id}' was not found."),
        )));
    };
    if !provider_segment.eq_ignore_ascii_case(provider_of(operation.machine_kind)) {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("Operation '{id}' does not belong to {provider_segment}."),
        )));
    }
    Ok(operation)
}

/// The `Azure-AsyncOperation` status body of `operation`, with `Retry-After` while it runs.
fn operation_status(world: &World, operation: &Operation, status: &str, running: bool) -> Response {
    let mut body =
        json!({"startTime": azure_time(operation.started), "status": status, "name": operation.id});
    if !running {
        body["endTime"] = json!(azure_time(operation.ends));
    }
    if status == "Failed" {
        body["error"] = json!({"code": "PatchInstallationFailure",
            "message": format!("Patches failed to install on '{}'.", operation.machine_id)});
    }
    let mut response = json(StatusCode::OK, body);
    if running {
        response
            .headers_mut()
            .insert("retry-after", retry_after(world));
    }
    response
}

/// The statuses that end an operation; any other means it still runs.
const TERMINAL: [&str; 3] = ["Succeeded", "Failed", "Canceled"];

/// `Retry-After` of a running operation: a third of how long patching takes, whole seconds,
/// at least 1.
fn retry_after(world: &World) -> HeaderValue {
    let seconds = (world.config.patch_duration.as_secs_f64() / 3.0)
        .ceil()
        .max(1.0) as u64;
    HeaderValue::from_str(&seconds.to_string()).unwrap_or(HeaderValue::from_static("1"))
}

fn install_result(
    kind: MachineKind,
    fails: bool,
    activity: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Value {
    let status = if fails { "Failed" } else { "Succeeded" };
    let (installed, failed) = if fails { (2, 1) } else { (3, 0) };
    let mut result = json!({
        "status": status, "installationActivityId": activity,
        "rebootStatus": if fails { "NotNeeded" } else { "Completed" },
        "maintenanceWindowExceeded": false, "excludedPatchCount": 0,
        "notSelectedPatchCount": 0, "pendingPatchCount": 0,
        "installedPatchCount": installed, "failedPatchCount": failed,
        "startDateTime": azure_time(start),
    });
    let error = fails.then(|| {
        json!({"code": "PatchInstallationFailure",
               "message": "1 patch failed to install (stand-in simulation).", "details": []})
    });
    match kind {
        MachineKind::VirtualMachine => {
            let mut rng = SplitMix64::derived(0, activity);
            result["patches"] = json!([
                {"patchId": rng.guid(), "name": "Security Update for Contoso Gateway Runtime (KB5030001)",
                 "version": "", "kbId": "5030001", "classifications": ["Security Updates"],
                 "installationState": if fails { "Failed" } else { "Installed" }},
                {"patchId": rng.guid(), "name": "Cumulative Update for Contoso Gateway OS (KB5030002)",
                 "version": "", "kbId": "5030002", "classifications": ["Critical Updates"],
                 "installationState": "Installed"}
            ]);
            result["error"] = error.unwrap_or(Value::Null);
        }
        MachineKind::ArcMachine => {
            result["lastModifiedDateTime"] = json!(azure_time(end));
            result["startedBy"] = json!("User");
            result["patchServiceUsed"] = json!("APT");
            result["osType"] = json!("Linux");
            result["errorDetails"] = error.unwrap_or(Value::Null);
        }
    }
    result
}

fn assess_result(
    kind: MachineKind,
    activity: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut rng = SplitMix64::derived(1, activity);
    let mut result = json!({
        "status": "Succeeded", "assessmentActivityId": activity, "rebootPending": false,
        "criticalAndSecurityPatchCount": 1, "otherPatchCount": 1,
        "startDateTime": azure_time(start),
        "availablePatches": [
            {"patchId": rng.guid(), "name": "Security Update for Contoso Gateway Runtime (KB5030001)",
             "version": "", "kbId": "5030001", "classifications": ["Security Updates"],
             "rebootBehavior": "CanRequestReboot", "activityId": activity,
             "publishedDate": azure_time(start), "lastModifiedDateTime": azure_time(start),
             "assessmentState": "Available"},
            {"patchId": rng.guid(), "name": "Definition Update for Contoso Defender (KB2267602)",
             "version": "", "kbId": "2267602", "classifications": ["Definition Updates"],
             "rebootBehavior": "NeverReboots", "activityId": activity,
             "publishedDate": azure_time(start), "lastModifiedDateTime": azure_time(start),
             "assessmentState": "Available"}
        ],
        "error": null,
    });
    if kind == MachineKind::ArcMachine {
        result["lastModifiedDateTime"] = json!(azure_time(end));
        result["startedBy"] = json!("User");
        result["osType"] = json!("Linux");
    }
    result
}
