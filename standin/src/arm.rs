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
            if matches!(
                (*provider, *kind),
                ("microsoft.compute", "virtualmachines") | ("microsoft.hybridcompute", "machines")
            ) && matches!(*action, "installpatches" | "assesspatches") =>
        {
            if method != Method::POST {
                return method_not_allowed();
            }
            let machine_kind = if *provider == "microsoft.compute" {
                MachineKind::VirtualMachine
            } else {
                MachineKind::ArcMachine
            };
            let op_kind = if *action == "installpatches" {
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
                &world,
                &query,
                &body,
                machine_kind,
                op_kind,
                machine_id,
                segments[1],
            )
        }
        ["subscriptions", _, "resourcegroups", _, "providers", provider, kind, _]
            if matches!(
                (*provider, *kind),
                ("microsoft.compute", "virtualmachines") | ("microsoft.hybridcompute", "machines")
            ) =>
        {
            if method != Method::GET {
                return method_not_allowed();
            }
            let machine_kind = if *provider == "microsoft.compute" {
                MachineKind::VirtualMachine
            } else {
                MachineKind::ArcMachine
            };
            get_machine(&world, &query, &uri, machine_kind)
        }
        ["subscriptions", _, "providers", provider, "locations", _, "operations", id]
            if matches!(*provider, "microsoft.compute" | "microsoft.hybridcompute") =>
        {
            if method != Method::GET {
                return method_not_allowed();
            }
            poll_operation(&world, &query, &uri, segments[3], id)
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.maintenance", "maintenanceconfigurations", _, "providers", "microsoft.maintenance", "applyupdates", _] =>
        {
            if let Err(response) = require_api_version(&query, MAINTENANCE_API_VERSION) {
                return *response;
            }
            let configuration = format!("/{}", segments[..8].join("/"));
            let run_id = format!("/{}", segments.join("/"));
            match method {
                Method::PUT => maintenance::cancel_route(&world, &configuration, &run_id, &body),
                Method::GET => maintenance::get_route(&world, &configuration, &run_id),
                _ => method_not_allowed(),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The stand-in serves no resource at '{}'.", uri.path()),
        ),
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
    let request: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => return invalid("body", format!("The request body is not JSON: {e}")),
        }
    };
    if kind == OperationKind::Install {
        let reboot = request.get("rebootSetting").and_then(Value::as_str);
        if !reboot.is_some_and(|r| REBOOT_SETTINGS.contains(&r)) {
            return invalid(
                "rebootSetting",
                format!("rebootSetting is required and must be one of {REBOOT_SETTINGS:?}."),
            );
        }
        let duration = request.get("maximumDuration").and_then(Value::as_str);
        if machine_kind == MachineKind::ArcMachine && duration.is_none() {
            return invalid("maximumDuration", "maximumDuration is required.".into());
        }
        if let Err(response) = check_os_parameters(&request, world.machine_config(&machine_id).1) {
            return *response;
        }
    }
    let fails = kind == OperationKind::Install && world.machine_config(&machine_id).0;
    let now = world.now();
    let (id, activity) = {
        let mut state = world.lock();
        let busy = state.operations.values().any(|op| {
            op.kind == kind && op.machine_id.eq_ignore_ascii_case(&machine_id) && now < op.ends
        });
        if busy {
            return error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!("A patch operation is already in progress on '{machine_id}'."),
            );
        }
        (state.rng.guid(), state.rng.guid())
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
    let base = format!(
        "{}/subscriptions/{subscription}/providers/{}/locations/{}/operations/{id}",
        world.base_url,
        provider_of(machine_kind),
        world.config.location
    );
    let mut response = json(StatusCode::ACCEPTED, Value::Null);
    *response.body_mut() = axum::body::Body::empty();
    let headers = response.headers_mut();
    for (name, value) in [
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
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.remove("content-type");
    response
}

fn poll_operation(
    world: &World,
    query: &HashMap<String, String>,
    uri: &Uri,
    provider_segment: &str,
    id: &str,
) -> Response {
    let Some(operation) = world.lock().operations.get(id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("Operation '{id}' was not found."),
        );
    };
    let api_version = api_version_for(operation.machine_kind);
    if !provider_segment.eq_ignore_ascii_case(provider_of(operation.machine_kind)) {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("Operation '{id}' does not belong to {provider_segment}."),
        );
    }
    if let Err(response) = require_api_version(query, api_version) {
        return *response;
    }
    let now = world.now();
    let status = operation.status_at(now);
    let monitor = query
        .get("monitor")
        .is_some_and(|m| m.eq_ignore_ascii_case("true"));
    let running = !TERMINAL.contains(&status);
    let retry_after = retry_after(world);
    if monitor {
        if running {
            let mut response = json(StatusCode::ACCEPTED, Value::Null);
            *response.body_mut() = axum::body::Body::empty();
            let location = format!("{}{}", world.base_url, uri);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert("location", value);
            }
            response.headers_mut().insert("retry-after", retry_after);
            response.headers_mut().remove("content-type");
            return response;
        }
        return json(StatusCode::OK, operation.result);
    }
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
        response.headers_mut().insert("retry-after", retry_after);
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
