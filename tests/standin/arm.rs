//! Resource Manager routes: installPatches / assessPatches long-running operations on VMs and
//! Arc machines, validation, case-insensitive paths, and the maintenance-run cancel shape.

use crate::support::*;
use patchwave_standin::{MachineConfig, MachineOs, OperationKind};
use serde_json::{json, Value};
use std::time::Duration;

const VM: &str =
    "/subscriptions/sub-1/resourceGroups/rg-gw/providers/Microsoft.Compute/virtualMachines/gw-01";
const ARC: &str =
    "/subscriptions/sub-1/resourceGroups/rg-gw/providers/Microsoft.HybridCompute/machines/arc-01";

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .expect("text")
        .to_string()
}

/// Follows a 202 to the final body: polls `Azure-AsyncOperation` until terminal, checking
/// the `Location` answers 202 meanwhile, then fetches the result from `Location`.
async fn follow(started: reqwest::Response) -> (String, Value) {
    assert_eq!(started.status(), 202);
    let location = header(&started, "location");
    let status_url = header(&started, "azure-asyncoperation");
    assert_eq!(header(&started, "retry-after"), "1");
    let http = client();
    let mut saw_in_progress = false;
    let mut seen = Vec::new();
    let status = loop {
        let body: Value = http
            .get(&status_url)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        assert_shape(
            &example("arm-azure-asyncoperation-status-response.json"),
            &body,
            "",
        );
        let status = body["status"].as_str().expect("status").to_string();
        if !seen.contains(&status) {
            seen.push(status.clone());
        }
        if matches!(status.as_str(), "Succeeded" | "Failed" | "Canceled") {
            break status;
        }
        if !saw_in_progress {
            saw_in_progress = true;
            let pending = http.get(&location).send().await.expect("location");
            assert_eq!(pending.status(), 202);
            assert!(pending.headers().get("location").is_some());
            assert_eq!(header(&pending, "retry-after"), "1");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(saw_in_progress, "the operation never ran");
    assert!(
        seen.len() >= 2,
        "in-between statuses before the end, as ARM has them: {seen:?}"
    );
    let done = http.get(&location).send().await.expect("result");
    assert_eq!(done.status(), 200);
    (status, done.json().await.expect("json"))
}

#[tokio::test]
async fn install_patches_on_a_vm_is_a_long_running_operation() {
    let standin = start(fast_config(vec![])).await;
    let started = client()
        .post(format!(
            "{}{VM}/installPatches?api-version=2025-04-01",
            standin.url()
        ))
        .bearer_auth("ignored")
        .json(&example("compute-install-patches-request.json"))
        .send()
        .await
        .expect("post");
    let location = header(&started, "location");
    assert!(location.starts_with(&standin.url()), "{location}");
    assert!(
        location.contains("/providers/Microsoft.Compute/locations/westeurope/operations/"),
        "{location}"
    );
    assert!(location.contains("monitor=true") && location.contains("api-version=2025-04-01"));
    assert!(header(&started, "azure-asyncoperation").ends_with("?api-version=2025-04-01"));
    let (status, result) = follow(started).await;
    assert_eq!(status, "Succeeded");
    assert_shape(&example("compute-install-patches-result.json"), &result, "");
    assert_eq!(result["status"], "Succeeded");
    assert_eq!(result["failedPatchCount"], 0);
    let runs = standin.world().install_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].machine_id, VM);
    assert_eq!(
        runs[0].request,
        example("compute-install-patches-request.json")
    );
}

#[tokio::test]
async fn a_failing_arc_machine_reports_failed_patches() {
    let mut config = fast_config(vec![]);
    config.machines = vec![MachineConfig {
        id: "arc-01".into(),
        fails: true,
        os: MachineOs::Windows,
    }];
    let standin = start(config).await;
    let started = client()
        .post(format!(
            "{}{ARC}/installPatches?api-version=2024-07-10",
            standin.url()
        ))
        .json(&example("arc-install-patches-request.json"))
        .send()
        .await
        .expect("post");
    assert!(header(&started, "location").contains("/providers/Microsoft.HybridCompute/"));
    let (status, result) = follow(started).await;
    assert_eq!(status, "Failed");
    assert_shape(&example("arc-install-patches-result.json"), &result, "");
    assert_eq!(result["status"], "Failed");
    assert!(result["failedPatchCount"].as_u64().expect("count") > 0);
}

#[tokio::test]
async fn assess_patches_follows_the_same_pattern() {
    let standin = start(fast_config(vec![])).await;
    for (machine, version) in [(VM, "2025-04-01"), (ARC, "2024-07-10")] {
        let started = client()
            .post(format!(
                "{}{machine}/assessPatches?api-version={version}",
                standin.url()
            ))
            .send()
            .await
            .expect("post");
        let (status, result) = follow(started).await;
        assert_eq!(status, "Succeeded");
        assert_shape(&example("compute-assess-patches-result.json"), &result, "");
    }
    let kinds: Vec<_> = standin
        .world()
        .operations()
        .iter()
        .map(|o| o.kind)
        .collect();
    assert_eq!(kinds, vec![OperationKind::Assess, OperationKind::Assess]);
}

#[tokio::test]
async fn requests_are_validated_and_paths_are_case_insensitive() {
    let standin = start(fast_config(vec![])).await;
    let http = client();
    let url = standin.url();
    let missing_reboot = http
        .post(format!("{url}{VM}/installPatches?api-version=2025-04-01"))
        .json(&json!({"maximumDuration": "PT2H"}))
        .send()
        .await
        .expect("post");
    assert_eq!(missing_reboot.status(), 400);
    let body: Value = missing_reboot.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidParameter");

    let arc_without_duration = http
        .post(format!("{url}{ARC}/installPatches?api-version=2024-07-10"))
        .json(&json!({"rebootSetting": "IfRequired"}))
        .send()
        .await
        .expect("post");
    assert_eq!(arc_without_duration.status(), 400);

    for request in [
        http.post(format!("{url}{ARC}/installPatches?api-version=2025-04-01"))
            .json(&example("arc-install-patches-request.json")),
        http.post(format!("{url}{VM}/installPatches"))
            .json(&example("compute-install-patches-request.json")),
        http.post(format!("{url}{VM}/assessPatches?api-version=2020-12-01")),
        http.put(format!("{url}/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/mc/providers/Microsoft.Maintenance/applyUpdates/20260101010000?api-version=2023-09-01-preview"))
            .json(&json!({"properties": {"status": "Cancel"}})),
    ] {
        assert_invalid_api_version(request.send().await.expect("send")).await;
    }

    let lower = VM
        .to_ascii_lowercase()
        .replace("virtualmachines", "VIRTUALMACHINES");
    let started = http
        .post(format!(
            "{url}{lower}/INSTALLPATCHES?api-version=2025-04-01"
        ))
        .json(&example("compute-install-patches-request.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(started.status(), 202);
    // A second run while the first is in progress is refused.
    let busy = http
        .post(format!("{url}{VM}/installPatches?api-version=2025-04-01"))
        .json(&example("compute-install-patches-request.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(busy.status(), 409);
}

#[tokio::test]
async fn install_patches_takes_only_the_machines_own_os_parameters_and_known_classifications() {
    let mut config = fast_config(vec![]);
    config.machines = vec![MachineConfig::linux("gw-01")];
    let standin = start(config).await;
    let http = client();
    let url = standin.url();
    let machine: Value = http
        .get(format!("{url}{VM}?api-version=2025-04-01"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        machine["properties"]["storageProfile"]["osDisk"]["osType"],
        "Linux"
    );
    let arc: Value = http
        .get(format!("{url}{ARC}?api-version=2024-07-10"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        arc["properties"]["osType"], "windows",
        "a machine not configured runs Windows, as the official examples' do"
    );
    let windows = example("compute-install-patches-request.json");
    let mut both = example("compute-install-patches-request-linux.constructed.json");
    both["windowsParameters"] = windows["windowsParameters"].clone();
    let mut unknown = example("compute-install-patches-request-linux.constructed.json");
    unknown["linuxParameters"]["classificationsToInclude"] =
        json!(["Critical", "Security Updates"]);
    for (body, target) in [
        (windows, "windowsParameters"),
        (both, "windowsParameters"),
        (unknown, "linuxParameters.classificationsToInclude"),
    ] {
        let refused = http
            .post(format!("{url}{VM}/installPatches?api-version=2025-04-01"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(refused.status(), 400, "{body}");
        let error: Value = refused.json().await.expect("json");
        assert_eq!(error["error"]["code"], "InvalidParameter");
        assert_eq!(error["error"]["target"], target, "{error}");
    }
    let accepted = http
        .post(format!("{url}{VM}/installPatches?api-version=2025-04-01"))
        .json(&example(
            "compute-install-patches-request-linux.constructed.json",
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(accepted.status(), 202);
}

#[tokio::test]
async fn cancelling_a_maintenance_run_answers_the_official_shape() {
    let standin = start(fast_config(vec![])).await;
    let run = "/subscriptions/5b4b650e-28b9-4790-b3ab-ddbd88d727c4/resourcegroups/examplerg/providers/microsoft.maintenance/maintenanceconfigurations/maintenanceconfig1/providers/microsoft.maintenance/applyupdates/20230901121200";
    let response = client()
        .put(format!(
            "{}{run}?api-version=2023-10-01-preview",
            standin.url()
        ))
        .json(&example("maintenance-applyupdates-cancel-request.json"))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let official = example("maintenance-applyupdates-cancel-response.json");
    assert_shape(&official, &body, "");
    assert_eq!(body["properties"]["status"], "Cancelled");
    assert_eq!(body["id"], official["id"]);
    assert_eq!(body["type"], official["type"]);
    assert_eq!(
        standin.world().cancelled_maintenance_runs(),
        vec![run.to_string()]
    );

    let wrong = client()
        .put(format!(
            "{}{run}?api-version=2023-10-01-preview",
            standin.url()
        ))
        .json(&json!({"properties": {"status": "Pending"}}))
        .send()
        .await
        .expect("put");
    assert_eq!(wrong.status(), 400);
}

#[tokio::test]
async fn fault_knobs_answer_429_and_500_but_spare_the_control_routes() {
    let mut config = fast_config(vec![]);
    config.faults.throttle_rate = 1.0;
    let standin = start(config).await;
    let http = client();
    let throttled = http
        .post(format!(
            "{}{VM}/installPatches?api-version=2025-04-01",
            standin.url()
        ))
        .json(&example("compute-install-patches-request.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(throttled.status(), 429);
    assert_eq!(header(&throttled, "retry-after"), "1");
    assert!(
        standin.world().operations().is_empty(),
        "a throttled call changes nothing"
    );

    let faults: Value = http
        .put(format!("{}/_standin/faults", standin.url()))
        .json(&json!({"serverErrorRate": 1.0}))
        .send()
        .await
        .expect("faults")
        .json()
        .await
        .expect("json");
    assert_eq!(faults["throttleRate"], 0.0);
    let failing = http
        .post(format!(
            "{}/devices/query?api-version=2021-04-12",
            standin.url()
        ))
        .json(&json!({"query": "SELECT * FROM devices"}))
        .send()
        .await
        .expect("post");
    assert_eq!(failing.status(), 500);
    let world = http
        .get(format!("{}/_standin/world", standin.url()))
        .send()
        .await
        .expect("world");
    assert_eq!(world.status(), 200);
    let stats = standin.world().stats();
    assert_eq!((stats.injected_429, stats.injected_500), (1, 1));
}
