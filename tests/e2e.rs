//! End to end over HTTP: the Azure stand-in plays Device Update, Resource Manager, IoT Hub
//! and the Functions host; the handler runs on SQLite; everything goes through the real
//! contract (host envelopes, operator API).

use patchwave::demo::world::LocalWorld;
use patchwave::demo::{machines, MAINTENANCE_CONFIGURATION};
use patchwave_standin::{Faults, GroupConfig, MachineConfig, StandinConfig};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn standin(groups: &[(&str, usize, f64)], faults: Faults) -> StandinConfig {
    StandinConfig {
        seed: 11,
        groups: groups
            .iter()
            .map(|(id, count, rate)| {
                let mut group = GroupConfig::numbered(id, *count, 0.0);
                group.failure_rate_by_version.insert("2.4.1".into(), *rate);
                group
            })
            .collect(),
        machines: machines()
            .into_iter()
            .map(|id| MachineConfig::linux(&id))
            .collect(),
        report_delay_min: Duration::from_millis(20),
        report_delay_max: Duration::from_millis(400),
        patch_duration: Duration::from_millis(300),
        faults,
        ..StandinConfig::default()
    }
}

fn plan(groups: &[(&str, usize, f64)], success: u32) -> Value {
    json!({
        "name": "e2e",
        "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
        "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
        "infrastructure": {"maintenanceConfigurationIds": [MAINTENANCE_CONFIGURATION], "machines": machines(), "onFailure": "block"},
        "waves": groups.iter().map(|(id, count, _)| json!({
            "name": id, "deviceGroup": id, "successThresholdPercent": success, "failureThresholdPercent": 5,
            "minDevicesJudged": (count / 4).max(1), "soakMinutes": 0, "deviceTimeoutMinutes": 10,
            "approvalRequired": false, "onFailure": "rollback"
        })).collect::<Vec<_>>()
    })
}

async fn start(groups: &[(&str, usize, f64)], faults: Faults) -> (LocalWorld, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let world = LocalWorld::start(standin(groups, faults), dir.path())
        .await
        .expect("world");
    (world, dir)
}

async fn create(world: &LocalWorld, plan: Value) -> String {
    let created = world
        .api(Method::POST, "/api/rollouts", Some(plan))
        .await
        .expect("created");
    world
        .run_maintenance(
            MAINTENANCE_CONFIGURATION,
            &machines(),
            Duration::from_millis(200),
        )
        .expect("maintenance");
    created["id"].as_str().expect("id").to_string()
}

const HEALTHY: [(&str, usize, f64); 3] =
    [("canary", 20, 0.0), ("pilot", 60, 0.0), ("fleet", 120, 0.0)];

async fn healthy_run(faults: Faults) -> (Value, Value) {
    let (world, _dir) = start(&HEALTHY, faults).await;
    let id = create(&world, plan(&HEALTHY, 100)).await;
    let last = world.drive(&id, LIMIT, |_| {}).await.expect("finished");
    let compliance = world
        .api(Method::GET, "/api/compliance", None)
        .await
        .expect("compliance");
    (last, compliance)
}

/// The rollout's decision log, oldest first.
async fn decisions(world: &LocalWorld, id: &str) -> Vec<Value> {
    let events = world
        .api(Method::GET, &format!("/api/rollouts/{id}/events"), None)
        .await
        .expect("events");
    events["value"].as_array().expect("events").clone()
}

fn summary(view: &Value) -> Vec<(String, String, u64, u64)> {
    view["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap_or_default().to_string(),
                w["status"].as_str().unwrap_or_default().to_string(),
                w["counts"]["succeeded"].as_u64().unwrap_or(0),
                w["counts"]["total"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infrastructure_then_three_healthy_waves_complete_and_everything_is_on_target() {
    let (last, compliance) = healthy_run(Faults::default()).await;
    assert_eq!(last["state"], "Completed", "{last}");
    let entry = &compliance["rollouts"][0];
    assert_eq!(entry["target"]["version"], "2.4.1");
    for host in entry["hosts"].as_array().expect("hosts") {
        assert_eq!(host["result"], "succeeded", "{host}");
    }
    assert_eq!(
        entry["hosts"].as_array().map(Vec::len),
        Some(4),
        "1 schedule + 3 machines"
    );
    for (group, count, _) in HEALTHY {
        let devices = entry["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .find(|d| d["deviceGroup"] == group)
            .expect("group");
        assert_eq!(
            (devices["total"].as_u64(), devices["onTarget"].as_u64()),
            (Some(count as u64), Some(count as u64)),
            "{devices}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rollout_under_429s_500s_and_duplicated_reordered_reports_ends_the_same() {
    let faults = Faults {
        throttle_rate: 0.1,
        server_error_rate: 0.1,
        duplicate_rate: 0.2,
        reorder: true,
        ..Faults::default()
    };
    let (clean, _) = healthy_run(Faults::default()).await;
    let (faulty, compliance) = healthy_run(faults).await;
    assert_eq!(faulty["state"], clean["state"]);
    assert_eq!(summary(&faulty), summary(&clean));
    let on_target: u64 = compliance["rollouts"][0]["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["onTarget"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(on_target, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_that_never_came_are_read_from_device_update_status() {
    // a third of the twin notifications are lost; device timeouts (10 min) are far away,
    // so only the timer's polling of Device Update can finish the rollout within LIMIT
    let faults = Faults {
        drop_rate: 0.3,
        ..Faults::default()
    };
    let (world, _dir) = start(&HEALTHY, faults).await;
    let id = create(&world, plan(&HEALTHY, 100)).await;
    let last = world.drive(&id, LIMIT, |_| {}).await.expect("finished");
    assert_eq!(last["state"], "Completed", "{last}");
    for (name, status, succeeded, total) in summary(&last) {
        assert_eq!(
            (status.as_str(), succeeded),
            ("Passed", total),
            "wave {name}"
        );
    }
    let events = decisions(&world, &id).await;
    let reconciled: Vec<&str> = events
        .iter()
        .filter(|d| d["kind"] == "wave.reconciled")
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(!reconciled.is_empty(), "no wave was reconciled");
    assert!(
        reconciled
            .iter()
            .all(|r| r.contains("whose reports never came") && r.contains(" succeeded, 0 failed)")),
        "{reconciled:?}"
    );
    assert!(world.service.metrics().snapshot().devices_polled > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_in_the_second_wave_roll_back_the_first_two_groups() {
    let groups = [
        ("canary", 20, 0.0),
        ("pilot", 100, 0.2),
        ("fleet", 100, 0.0),
    ];
    let (world, _dir) = start(&groups, Faults::default()).await;
    let id = create(&world, plan(&groups, 95)).await;
    let last = world.drive(&id, LIMIT, |_| {}).await.expect("finished");
    assert_eq!(last["state"], "RolledBack", "{last}");
    let rolled: Vec<&str> = last["rollback"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["deviceGroup"].as_str().expect("group"))
        .collect();
    assert_eq!(rolled, ["canary", "pilot"]);
    let events = decisions(&world, &id).await;
    let failed = events
        .iter()
        .find(|d| d["kind"] == "wave.failed")
        .expect("wave.failed");
    let reason = failed["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("wave pilot: ")
            && reason.contains(" of 100 failed = ")
            && reason.contains("> 5%, judged after"),
        "{reason}"
    );
    let standin = world.standin.world();
    // the rollback passes at the wave's threshold; stragglers finish installing 2.4.0 after
    let mut back = false;
    for _ in 0..100 {
        back = (1..=20).all(|n| {
            standin
                .installed_update(&format!("canary-{n:04}"))
                .map(|u| u.version)
                == Some("2.4.0".into())
        });
        if back {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "every canary device ends on 2.4.0");
    assert!(
        standin.deployments().iter().all(|d| d.group != "fleet"),
        "the fleet was never touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_run_starting_while_devices_roll_back_is_cancelled() {
    let groups = [("canary", 30, 0.5)];
    let mut config = standin(&groups, Faults::default());
    config.report_delay_min = Duration::from_millis(800);
    config.report_delay_max = Duration::from_millis(2500);
    let dir = tempfile::tempdir().expect("dir");
    let world = LocalWorld::start(config, dir.path()).await.expect("world");
    let id = create(&world, plan(&groups, 100)).await;
    let mut asked = false;
    let mut saw_rolling_back = false;
    let last = world
        .drive(&id, LIMIT, |view| {
            if view["state"] == "RollingBack" && !asked {
                saw_rolling_back = true;
                #[allow(clippy::disallowed_methods)] // the next schedule instance, in an hour
                let next = chrono::Utc::now() + chrono::Duration::hours(1);
                let scheduled = world.run_maintenance_at(
                    MAINTENANCE_CONFIGURATION,
                    &machines(),
                    Duration::from_secs(60),
                    Some(next),
                );
                asked = scheduled.is_ok();
                assert!(asked, "{scheduled:?}");
            }
        })
        .await
        .expect("finished");
    assert!(saw_rolling_back && asked, "the rollout rolled back: {last}");
    // the hold happens on the Pre event, which may land just after the rollback finished:
    // wait for its decision, then look at what Resource Manager was asked
    let held = |events: &[Value]| events.iter().any(|d| d["kind"] == "infrastructure.hold");
    let mut events = decisions(&world, &id).await;
    let mut cancelled = world.standin.world().cancelled_maintenance_runs();
    for _ in 0..100 {
        if held(&events) && !cancelled.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        events = decisions(&world, &id).await;
        cancelled = world.standin.world().cancelled_maintenance_runs();
    }
    assert!(held(&events), "decision log: {events:?}");
    assert_eq!(
        cancelled.len(),
        1,
        "the run was cancelled through Resource Manager: {cancelled:?}"
    );
}
