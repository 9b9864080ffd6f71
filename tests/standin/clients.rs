//! patchwave's own Azure clients against the stand-in: the routes they call are the ones it
//! serves, including under injected throttling.

use crate::support::*;
use patchwave::azure::credential::NoCredential;
use patchwave::azure::device_update::{self, DeviceUpdateClient, RollbackPolicy};
use patchwave::azure::iot_hub::{self, IotHubClient};
use patchwave::azure::resource_manager::{self, PatchRun, ResourceManagerClient};
use patchwave::azure::rest::{RestClient, RetryPolicy};
use patchwave_standin::{Faults, GroupConfig, MachineConfig, MachineOs};
use rollout_core::{PatchOutcome, UpdateId};
use std::sync::Arc;
use std::time::Duration;

fn rest(base: &str, scope: &str) -> RestClient {
    let policy = RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(1500),
        timeout: Duration::from_secs(5),
    };
    RestClient::new(base, scope, Arc::new(NoCredential), policy).expect("client")
}

fn update(version: &str) -> UpdateId {
    UpdateId {
        provider: "Contoso".into(),
        name: "Gateway".into(),
        version: version.into(),
    }
}

#[tokio::test]
async fn the_clients_work_against_the_stand_in() {
    let mut group = GroupConfig::numbered("canary", 120, 0.0);
    group.device_classes = 2;
    let mut config = fast_config(vec![group]);
    config.machines = vec![MachineConfig {
        id: "gw-bad".into(),
        fails: true,
        os: MachineOs::Linux,
    }];
    let standin = start(config).await;
    let url = standin.url();
    let world = standin.world();

    let hub = IotHubClient::new(rest(&url, iot_hub::SCOPE));
    let mut devices = hub.group_devices("canary").await.expect("group devices");
    devices.sort();
    assert_eq!(devices.len(), 120);

    let adu = DeviceUpdateClient::new(rest(&url, device_update::SCOPE), "blue");
    let rollback = RollbackPolicy {
        update: update("2.4.0"),
        devices_failed_percentage: 10,
        devices_failed_count: 5,
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .expect("time")
        .to_utc();
    for _ in 0..2 {
        adu.create_deployment(
            "canary",
            "pw-r1-w0a1",
            &update("2.4.1"),
            now,
            Some(&rollback),
        )
        .await
        .expect("create");
    }
    assert_eq!(world.deployments().len(), 1);
    deployment_finishes(&world, 0).await;
    let (state, counts) = adu
        .deployment_status("canary", "pw-r1-w0a1")
        .await
        .expect("status");
    assert_eq!(state, "Active");
    assert_eq!((counts.total, counts.succeeded), (120, 120));
    assert_eq!(adu.subgroups("canary").await.expect("subgroups").len(), 2);
    assert_eq!(
        adu.cancel_deployment("canary", "pw-r1-w0a1")
            .await
            .expect("cancel"),
        2
    );
    assert_eq!(
        adu.retry_deployment("canary", "pw-r1-w0a1")
            .await
            .expect("retry"),
        2
    );
    adu.delete_deployment("canary", "pw-r1-w0a1")
        .await
        .expect("delete");
    adu.delete_deployment("canary", "pw-r1-w0a1")
        .await
        .expect("delete again");
    assert!(world.deployments()[0].deleted);

    // Some requests throttled, some failing: the clients wait it out.
    world.set_faults(Faults {
        throttle_rate: 0.1,
        server_error_rate: 0.1,
        ..Faults::default()
    });
    let arm = ResourceManagerClient::new(rest(&url, resource_manager::SCOPE));
    for (machine, outcome) in [
        (
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw-01",
            PatchOutcome::Succeeded,
        ),
        (
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/gw-bad",
            PatchOutcome::Failed,
        ),
    ] {
        let run = arm.start_install_patches(machine).await.expect("install");
        assert!(matches!(run, PatchRun::Running(_)), "{run:?}");
        let run = arm
            .follow(run, Duration::from_secs(15), Duration::from_millis(100))
            .await
            .expect("follow");
        match run {
            PatchRun::Finished(result) => assert_eq!(result.outcome, outcome, "{}", result.detail),
            PatchRun::Running(_) => panic!("{machine} did not finish"),
        }
    }
    let run = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/gw-hosts/providers/microsoft.maintenance/applyupdates/20261123010000";
    assert_eq!(
        arm.cancel_maintenance_run(run).await.expect("cancel run"),
        "Cancelled"
    );
    assert_eq!(world.cancelled_maintenance_runs(), vec![run.to_string()]);
    let stats = world.stats();
    assert!(stats.injected_429 + stats.injected_500 > 0, "{stats:?}");
}

#[tokio::test]
async fn device_update_lists_a_groups_devices_and_arm_assesses_patches_against_the_standin() {
    use patchwave::azure::credential::NoCredential;
    use patchwave::azure::device_update::DeviceUpdateClient;
    use patchwave::azure::resource_manager::{PatchRun, ResourceManagerClient};
    use patchwave::azure::rest::{RestClient, RetryPolicy};
    use patchwave_standin::{GroupConfig, Standin, StandinConfig};
    use std::sync::Arc;
    let config = StandinConfig {
        groups: vec![GroupConfig::numbered("canary", 150, 0.0)],
        patch_duration: Duration::from_millis(200),
        ..StandinConfig::default()
    };
    let standin = Standin::start(config).await.expect("stand-in");
    let rest = RestClient::new(
        &standin.url(),
        "s",
        Arc::new(NoCredential),
        RetryPolicy::default(),
    )
    .expect("client");
    let du = DeviceUpdateClient::new(rest.clone(), "demo");
    let devices = du.group_devices("canary").await.expect("devices");
    assert_eq!(devices.len(), 150, "all pages followed");
    let arm = ResourceManagerClient::new(rest);
    let vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw-01";
    let run = arm.start_assess_patches(vm).await.expect("assess");
    let done = arm
        .follow(run, Duration::from_secs(10), Duration::from_millis(50))
        .await
        .expect("followed");
    assert!(matches!(done, PatchRun::Finished(_)), "{done:?}");
}

#[tokio::test]
async fn finished_devices_are_the_devices_the_stand_in_finished() {
    use patchwave::azure::device_update::DeploymentDeviceState;
    use patchwave_standin::DevicePhase;
    use std::collections::BTreeMap;
    let mut group = GroupConfig::numbered("fleet", 30, 0.2);
    group.device_classes = 3;
    let mut config = fast_config(vec![group]);
    config.page_size = 4;
    let standin = start(config).await;
    let world = standin.world();
    let adu = DeviceUpdateClient::new(rest(&standin.url(), device_update::SCOPE), "blue");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .expect("time")
        .to_utc();
    adu.create_deployment("fleet", "wave1", &update("2.4.1"), now, None)
        .await
        .expect("create");
    let all_known = adu
        .finished_devices("fleet", "wave1", 30)
        .await
        .expect("status");
    assert_eq!(
        all_known, None,
        "no more than 30 can finish: nothing listed"
    );
    deployment_finishes(&world, 0).await;

    let finished = adu
        .finished_devices("fleet", "wave1", 0)
        .await
        .expect("finished")
        .expect("listed");
    let got: BTreeMap<String, DeploymentDeviceState> = finished
        .iter()
        .map(|d| (d.device_id.clone(), d.state))
        .collect();
    assert_eq!(got.len(), finished.len(), "each device once");
    assert!(finished
        .iter()
        .all(|d| d.retry_count == 0 && !d.moved_on_to_new_deployment && d.module_id.is_none()));
    let expected: BTreeMap<String, DeploymentDeviceState> = world.deployments()[0]
        .devices
        .iter()
        .filter_map(|(device, phase)| {
            let state = match phase {
                DevicePhase::Succeeded => DeploymentDeviceState::Succeeded,
                DevicePhase::Failed => DeploymentDeviceState::Failed,
                _ => return None,
            };
            Some((device.clone(), state))
        })
        .collect();
    assert_eq!(got, expected);
    let failed = got
        .values()
        .filter(|s| **s == DeploymentDeviceState::Failed)
        .count();
    assert_eq!((got.len(), failed), (30, 6));
    assert_eq!(
        adu.finished_devices("fleet", "wave1", 30)
            .await
            .expect("status"),
        None
    );
}

/// The executor learns a group larger than a twin query page one page per call: each page
/// names its number and the checkpoint that fetches the next, until the last.
#[tokio::test]
async fn the_executor_reads_a_large_group_page_by_page() {
    use patchwave::azure::events::JsonLinesSink;
    use patchwave::azure::AzureExecutor;
    use patchwave::ports::{EffectExecutor, EffectOutcome};
    use rollout_core::{Effect, EffectKind, Rollout};
    let standin = start(fast_config(vec![GroupConfig::numbered(
        "fleet", 2_500, 0.0,
    )]))
    .await;
    let hub = IotHubClient::new(rest(&standin.url(), iot_hub::SCOPE));
    let executor = AzureExecutor::new(None, None, Some(hub), Arc::new(JsonLinesSink::stdout()));
    let plan = serde_json::from_value(serde_json::json!({
        "name": "paged", "update": {"provider": "C", "name": "G", "version": "2"},
        "rollbackUpdate": {"provider": "C", "name": "G", "version": "1"},
        "waves": [{"name": "fleet", "deviceGroup": "fleet", "successThresholdPercent": 100,
                   "failureThresholdPercent": 5, "minDevicesJudged": 1, "soakMinutes": 0,
                   "deviceTimeoutMinutes": 60, "onFailure": "rollback"}]
    }))
    .expect("plan");
    let (rollout, _) = Rollout::create(
        "ro-paged".into(),
        plan,
        "alice",
        chrono::DateTime::UNIX_EPOCH,
    )
    .expect("rollout");
    let effect = Effect {
        id: "ro-paged:members:w0a1".into(),
        kind: EffectKind::FetchGroupMembers {
            wave: 0,
            group: "fleet".into(),
        },
    };
    let (mut seen, mut sizes, mut checkpoint) = (Vec::new(), Vec::new(), None::<String>);
    for expected_page in 0..3 {
        let outcome = executor
            .execute(&rollout, &effect, checkpoint.as_deref())
            .await;
        let EffectOutcome::MembersPage {
            devices,
            page,
            resume,
        } = outcome
        else {
            panic!("expected a page, got {outcome:?}")
        };
        assert_eq!(page, expected_page);
        sizes.push(devices.len());
        seen.extend(devices);
        checkpoint = resume;
    }
    assert_eq!(sizes, [1_000, 1_000, 500]);
    assert!(checkpoint.is_none(), "the last page has no checkpoint");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2_500, "every device once");
}
