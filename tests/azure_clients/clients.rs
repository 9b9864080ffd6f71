//! Each client's requests against the official examples.

use crate::recorder::*;
use chrono::DateTime;
use patchwave::azure::device_update::{
    DeploymentDeviceState, DeviceDeploymentState, DeviceUpdateClient, RollbackPolicy,
};
use patchwave::azure::iot_hub::IotHubClient;
use patchwave::azure::resource_manager::{PatchRun, ResourceManagerClient};
use rollout_core::{PatchOutcome, UpdateId};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn device_update_create_deployment_sends_the_official_request() {
    let spec = example("adu-create-deployment.x-ms-example.json");
    let response = spec["responses"]["200"]["body"].clone();
    let recorder = Recorder::start(Arc::new(move |_, _| ok(response.clone()))).await;
    let client = DeviceUpdateClient::new(
        client(&recorder, "https://api.adu.microsoft.com/.default"),
        "blue",
    );
    let p = &spec["parameters"];
    let deployment = &p["deployment"];
    let id = |v: &Value| {
        UpdateId::new(
            v["provider"].as_str().expect("p"),
            v["name"].as_str().expect("n"),
            v["version"].as_str().expect("v"),
        )
        .expect("id")
    };
    let start = DateTime::parse_from_rfc3339(deployment["startDateTime"].as_str().expect("start"))
        .expect("time")
        .to_utc();
    let rollback = RollbackPolicy {
        update: id(&deployment["rollbackPolicy"]["update"]["updateId"]),
        devices_failed_percentage: 50,
        devices_failed_count: 100,
    };
    let answer = client
        .create_deployment(
            "TestGroup",
            "deploymentId",
            &id(&deployment["update"]["updateId"]),
            start,
            Some(&rollback),
        )
        .await
        .expect("created");
    assert_eq!(answer, spec["responses"]["200"]["body"]);
    let [request] = <[Recorded; 1]>::try_from(recorder.requests()).expect("one request");
    assert_eq!(request.method, "PUT");
    assert_eq!(
        request.path,
        "/deviceUpdate/blue/management/groups/TestGroup/deployments/deploymentId"
    );
    assert_eq!(
        request.query,
        format!("api-version={}", p["api-version"].as_str().expect("v"))
    );
    let scope = "https://api.adu.microsoft.com/.default";
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer token-for-{}", scope.len()).as_str())
    );
    let mut sent = request.body.clone();
    let mut expected = deployment.clone();
    let sent_start =
        DateTime::parse_from_rfc3339(sent["startDateTime"].as_str().expect("start")).expect("time");
    assert_eq!(sent_start, start, "same instant");
    sent["startDateTime"] = Value::Null;
    expected["startDateTime"] = Value::Null;
    assert_eq!(sent, expected, "body equals the spec example");
}

#[tokio::test]
async fn device_update_cancel_goes_to_every_subgroup_and_status_sums_them() {
    let subgroups = example("adu-list-device-class-subgroups-response.json");
    let cancelled = example("adu-cancel-deployment-response.json");
    let status = example("adu-deployment-status-response.json");
    let recorder = Recorder::start(Arc::new(move |r, _| {
        if r.path.ends_with("/deviceClassSubgroups") {
            ok(subgroups.clone())
        } else if r.path.ends_with(":cancel") {
            ok(cancelled.clone())
        } else {
            ok(status.clone())
        }
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    let expected_classes: Vec<String> = example("adu-list-device-class-subgroups-response.json")
        ["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|v| v["deviceClassId"].as_str().expect("id").to_string())
        .collect();
    let count = client
        .cancel_deployment("TestGroup", "pw-ro-1-w0a1")
        .await
        .expect("cancel");
    assert_eq!(count, expected_classes.len());
    let posts: Vec<String> = recorder
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.clone())
        .collect();
    let expected: Vec<String> = expected_classes
        .iter()
        .map(|class| format!("/deviceUpdate/blue/management/groups/TestGroup/deviceClassSubgroups/{class}/deployments/pw-ro-1-w0a1:cancel"))
        .collect();
    assert_eq!(posts, expected);
    assert!(recorder
        .requests()
        .iter()
        .all(|r| r.query == "api-version=2022-10-01"));

    let (state, counts) = client
        .deployment_status("TestGroup", "pw-ro-1-w0a1")
        .await
        .expect("status");
    let example_status = example("adu-deployment-status-response.json");
    assert_eq!(
        state,
        example_status["deploymentState"].as_str().expect("state")
    );
    let sum = |key: &str| {
        example_status["subgroupStatus"]
            .as_array()
            .expect("subgroups")
            .iter()
            .map(|s| s[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(counts.total, sum("totalDevices"));
    assert_eq!(counts.failed, sum("devicesCompletedFailedCount"));
    assert_eq!(counts.succeeded, sum("devicesCompletedSucceededCount"));
}

/// The items of the official device-state list, read field by field.
fn official_device_states() -> Vec<DeviceDeploymentState> {
    example("adu-list-deployment-device-states-response.json")["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|v| DeviceDeploymentState {
            device_id: v["deviceId"].as_str().expect("id").to_string(),
            module_id: v["moduleId"].as_str().map(String::from),
            state: DeploymentDeviceState::parse(v["deviceState"].as_str().expect("state"))
                .expect("documented state"),
            moved_on_to_new_deployment: v["movedOnToNewDeployment"].as_bool().expect("moved"),
            retry_count: v["retryCount"].as_u64().expect("retries") as u32,
        })
        .collect()
}

const DEVICE_STATES_PATH: &str =
    "/deviceUpdate/blue/management/groups/TestGroup/deviceClassSubgroups/deviceClassId1/deployments/dep1/devicestates";

#[tokio::test]
async fn device_states_sends_the_filter_and_follows_next_links() {
    let first = example("adu-list-deployment-device-states-response.json");
    let recorder = Recorder::start(Arc::new(move |r, _| {
        if r.query.contains("skipToken=2") {
            return ok(json!({"value": [
                {"deviceId": "deviceId3", "moduleId": "agent", "retryCount": 0,
                 "movedOnToNewDeployment": true, "deviceState": "Succeeded"},
                {"deviceId": "deviceId4", "retryCount": 0,
                 "movedOnToNewDeployment": false, "deviceState": "Paused"}
            ]}));
        }
        let base = r
            .header("host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        let mut page = first.clone();
        page["nextLink"] = json!(format!("{base}{}?{}&skipToken=2", r.path, r.query));
        ok(page)
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    let states = client
        .device_states(
            "TestGroup",
            "deviceClassId1",
            "dep1",
            Some(DeploymentDeviceState::Succeeded),
        )
        .await
        .expect("device states");
    let mut expected = official_device_states();
    expected.push(DeviceDeploymentState {
        device_id: "deviceId3".into(),
        module_id: Some("agent".into()),
        state: DeploymentDeviceState::Succeeded,
        moved_on_to_new_deployment: true,
        retry_count: 0,
    });
    assert_eq!(states, expected, "the unknown state 'Paused' is skipped");
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2, "both pages read");
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.path == DEVICE_STATES_PATH));
    assert_eq!(
        requests[0].query,
        "filter=deviceState%20eq%20%27Succeeded%27&api-version=2022-10-01"
    );

    client
        .device_states("TestGroup", "deviceClassId1", "dep1", None)
        .await
        .expect("unfiltered");
    assert_eq!(recorder.requests()[2].query, "api-version=2022-10-01");
}

#[tokio::test]
async fn finished_devices_lists_each_subgroup_by_its_counts_unless_already_known() {
    let status = example("adu-deployment-status-response.json");
    let listed = example("adu-list-deployment-device-states-response.json");
    let recorder = Recorder::start(Arc::new(move |r, _| {
        let succeeded = r.query.contains("Succeeded");
        match (
            r.path.ends_with("/devicestates"),
            r.path.contains("deviceClassId1"),
        ) {
            (false, _) => ok(status.clone()),
            (true, true) => ok(listed.clone()),
            (true, false) if succeeded => ok(json!({"value": [{"deviceId": "moved",
                "retryCount": 0, "movedOnToNewDeployment": true, "deviceState": "Succeeded"}]})),
            (true, false) => ok(json!({"value": [{"deviceId": "broken", "retryCount": 2,
                "movedOnToNewDeployment": false, "deviceState": "Failed"}]})),
        }
    }))
    .await;
    let client = DeviceUpdateClient::new(client(&recorder, "s"), "blue");
    let finished = client
        .finished_devices("TestGroup", "dep1", 0)
        .await
        .expect("finished")
        .expect("listed");
    let mut expected = official_device_states();
    expected.push(DeviceDeploymentState {
        device_id: "broken".into(),
        module_id: None,
        state: DeploymentDeviceState::Failed,
        moved_on_to_new_deployment: false,
        retry_count: 2,
    });
    assert_eq!(finished, expected, "moved-on devices are left out");
    let asked: Vec<(String, String)> = recorder
        .requests()
        .iter()
        .map(|r| {
            (
                r.path.rsplit('/').nth(3).unwrap_or_default().to_string(),
                r.query.clone(),
            )
        })
        .collect();
    let query =
        |state: &str| format!("filter=deviceState%20eq%20%27{state}%27&api-version=2022-10-01");
    assert_eq!(
        asked,
        vec![
            (
                "TestGroup".to_string(),
                "api-version=2022-10-01".to_string()
            ),
            ("deviceClassId1".to_string(), query("Succeeded")),
            ("deviceClassId2".to_string(), query("Succeeded")),
            ("deviceClassId2".to_string(), query("Failed")),
        ],
        "no Failed list where the status counts none"
    );
    assert_eq!(
        recorder.requests()[0].path,
        "/deviceUpdate/blue/management/groups/TestGroup/deployments/dep1/status"
    );

    // The status counts 3 finished devices: knowing 3 already, nothing is listed.
    let before = recorder.requests().len();
    let known = client
        .finished_devices("TestGroup", "dep1", 3)
        .await
        .expect("status");
    assert_eq!(known, None);
    assert_eq!(
        recorder.requests().len(),
        before + 1,
        "only the status read"
    );
    assert!(client
        .finished_devices("TestGroup", "dep1", 2)
        .await
        .expect("status")
        .is_some());
}

/// A VM (`storageProfile.osDisk.osType`) or Arc machine (`osType`, lower case) of `os`.
fn machine_body(path: &str, os: &str) -> Value {
    if path.contains("/Microsoft.HybridCompute/") {
        json!({"id": path, "properties": {"osType": os.to_ascii_lowercase(), "status": "Connected"}})
    } else {
        json!({"id": path, "properties": {"storageProfile": {"osDisk": {"osType": os}}}})
    }
}

#[tokio::test]
async fn install_patches_sends_the_machines_os_parameters_and_follows_every_in_between_status() {
    let result = example("compute-install-patches-result.json");
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = polls.clone();
    let recorder = Recorder::start(Arc::new(move |r, _| {
        if r.method == "GET" && r.path.ends_with("/virtualMachines/myVMName") {
            return ok(machine_body(&r.path, "Windows"));
        }
        if r.path.ends_with("/installPatches") {
            let base = r.header("host").map(|h| format!("http://{h}")).unwrap_or_default();
            return (
                202,
                vec![
                    ("Location".into(), format!("{base}/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/op1?monitor=true&api-version=2025-04-01")),
                    ("Azure-AsyncOperation".into(), format!("{base}/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/op1?api-version=2025-04-01")),
                    ("Retry-After".into(), "1".into()),
                ],
                Value::Null,
            );
        }
        if r.query.contains("monitor=true") {
            return ok(result.clone());
        }
        // ARM: any status but Succeeded, Failed and Canceled means still running
        let status = ["Accepted", "Updating", "Succeeded"]
            [seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst).min(2)];
        let mut reply = ok(json!({"status": status, "name": "op1"}));
        reply.1.push(("Retry-After".into(), "1".into()));
        reply
    }))
    .await;
    let arm =
        ResourceManagerClient::new(client(&recorder, "https://management.azure.com/.default"));
    let spec = example("compute-install-patches.x-ms-example.json");
    let vm = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
        spec["parameters"]["subscriptionId"].as_str().expect("sub"),
        spec["parameters"]["resourceGroupName"]
            .as_str()
            .expect("rg"),
        spec["parameters"]["vmName"].as_str().expect("vm")
    );
    let started = arm.start_install_patches(&vm).await.expect("started");
    assert!(matches!(started, PatchRun::Running(_)), "{started:?}");
    let begin = tokio::time::Instant::now();
    let finished = arm
        .follow(started, Duration::from_secs(10), Duration::from_millis(20))
        .await
        .expect("followed");
    let PatchRun::Finished(outcome) = finished else {
        panic!("not finished")
    };
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(
        begin.elapsed() >= Duration::from_secs(3),
        "Retry-After: 1 before each of the 3 polls, not the 20 ms asked for"
    );
    let expected = example("compute-install-patches-result.json");
    let expected_outcome = if expected["status"] == "Succeeded" {
        PatchOutcome::Succeeded
    } else {
        PatchOutcome::Failed
    };
    assert_eq!(outcome.outcome, expected_outcome, "{}", outcome.detail);
    assert!(
        outcome
            .detail
            .contains(&format!("{} installed", expected["installedPatchCount"])),
        "{}",
        outcome.detail
    );
    let requests = recorder.requests();
    let escaped = vm.replace("{subscription-id}", "%7Bsubscription-id%7D");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", escaped.as_str())
    );
    let post = &requests[1];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, format!("{escaped}/installPatches"));
    assert_eq!(
        post.query,
        format!(
            "api-version={}",
            spec["parameters"]["api-version"].as_str().expect("v")
        )
    );
    let input = &spec["parameters"]["installPatchesInput"];
    assert_eq!(post.body["maximumDuration"], input["maximumDuration"]);
    assert_eq!(post.body["rebootSetting"], input["rebootSetting"]);
    assert_eq!(
        post.body["windowsParameters"]["classificationsToInclude"],
        input["windowsParameters"]["classificationsToInclude"]
    );
    assert!(
        post.body.get("linuxParameters").is_none(),
        "only the Windows machine's own parameter set: {}",
        post.body
    );
}

#[tokio::test]
async fn arc_machines_use_their_own_api_version_and_a_200_is_a_finished_run() {
    let result = example("arc-install-patches-result.json");
    let recorder = Recorder::start(Arc::new(move |r, _| {
        if r.method == "GET" {
            return ok(machine_body(&r.path, "Linux"));
        }
        ok(result.clone())
    }))
    .await;
    let arm = ResourceManagerClient::new(client(&recorder, "s"));
    let machine =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/edge-01";
    let run = arm.start_install_patches(machine).await.expect("run");
    assert!(matches!(run, PatchRun::Finished(_)), "{run:?}");
    arm.start_install_patches(machine).await.expect("again");
    let requests = recorder.requests();
    let version = format!(
        "api-version={}",
        example("arc-install-patches.x-ms-example.json")["parameters"]["api-version"]
            .as_str()
            .expect("v")
    );
    assert_eq!(
        requests.iter().filter(|r| r.method == "GET").count(),
        1,
        "the OS is learned once and kept"
    );
    let request = &requests[1];
    assert_eq!(request.query, version);
    assert_eq!(request.path, format!("{machine}/installPatches"));
    let linux = example("compute-install-patches-request-linux.constructed.json");
    assert_eq!(
        request.body["linuxParameters"]["classificationsToInclude"],
        linux["linuxParameters"]["classificationsToInclude"]
    );
    assert!(
        request.body.get("windowsParameters").is_none(),
        "{}",
        request.body
    );
    assert!(arm
        .start_install_patches("/subscriptions/s/something/else")
        .await
        .is_err());
}

#[tokio::test]
async fn cancel_maintenance_run_puts_status_cancel() {
    let spec = example("maintenance-applyupdates-cancel.x-ms-example.json");
    let response = example("maintenance-applyupdates-cancel-response.json");
    let recorder = Recorder::start(Arc::new(move |_, _| ok(response.clone()))).await;
    let arm = ResourceManagerClient::new(client(&recorder, "s"));
    let run_id = "/subscriptions/5b4b650e-28b9-4790-b3ab-ddbd88d727c4/resourceGroups/examplerg/providers/Microsoft.Maintenance/maintenanceConfigurations/maintenanceConfig1/providers/Microsoft.Maintenance/applyUpdates/20230901121200";
    let status = arm.cancel_maintenance_run(run_id).await.expect("cancel");
    assert_eq!(
        status,
        example("maintenance-applyupdates-cancel-response.json")["properties"]["status"]
            .as_str()
            .expect("status")
    );
    let request = &recorder.requests()[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, run_id);
    assert_eq!(
        request.query,
        format!(
            "api-version={}",
            spec["parameters"]["api-version"].as_str().expect("v")
        )
    );
    assert_eq!(
        request.body,
        example("maintenance-applyupdates-cancel-request.json")
    );
}

#[tokio::test]
async fn iot_hub_twin_query_pages_with_continuation() {
    let recorder = Recorder::start(Arc::new(|r, _| {
        if r.body["query"]
            .as_str()
            .is_some_and(|q| q.contains("devices.modules"))
        {
            ok(json!([]))
        } else if r.header("x-ms-continuation") == Some("page-2") {
            ok(json!([{"deviceId": "d3", "tags": {"ADUGroup": "canary"}}]))
        } else {
            (
                200,
                vec![("x-ms-continuation".into(), "page-2".into())],
                json!([{"deviceId": "d1"}, {"deviceId": "d2"}]),
            )
        }
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, "https://iothubs.azure.net/.default"));
    assert_eq!(
        hub.group_devices("can'ary").await.expect("devices"),
        ["d1", "d2", "d3"]
    );
    let requests = recorder.requests();
    assert_eq!(
        requests.len(),
        3,
        "two device-twin pages, then the module twins"
    );
    assert_eq!(
        requests[2].body,
        json!({"query": "SELECT * FROM devices.modules WHERE tags.ADUGroup = 'can''ary'"})
    );
    assert_eq!(
        (
            requests[0].method.as_str(),
            requests[0].path.as_str(),
            requests[0].query.as_str()
        ),
        ("POST", "/devices/query", "api-version=2021-04-12")
    );
    assert_eq!(
        requests[0].body,
        json!({"query": "SELECT * FROM devices WHERE tags.ADUGroup = 'can''ary'"})
    );
    assert!(requests[0].header("x-ms-max-item-count").is_some());
}
