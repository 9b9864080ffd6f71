//! Issue 16's scenario end to end over HTTP: a fleet wave fails inside one TwinChanges batch,
//! the rest of that batch (forward reports) never counts against the rollback, a maintenance
//! run is held while the devices roll back, every device reporting the rollback update ends
//! the rollout `RolledBack`, and the per-device compliance list (followed through its
//! `nextLink`) shows all 40 fleet devices on the rollback update. The stand-in plays Device
//! Update and Resource Manager; its devices stay silent, the test writes their reports.

use chrono::{DateTime, Duration as Span, Utc};
use patchwave::demo::world::LocalWorld;
use patchwave::demo::{machines, MAINTENANCE_CONFIGURATION};
use patchwave_standin::{GroupConfig, MachineConfig, StandinConfig};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const FORWARD: &str = "{\"provider\":\"Contoso\",\"name\":\"Gateway\",\"version\":\"2.4.1\"}";
const ROLLBACK: &str = "{\"provider\":\"Contoso\",\"name\":\"Gateway\",\"version\":\"2.4.0\"}";

/// The wall clock, as the stand-in and the handler read it.
fn now() -> DateTime<Utc> {
    use patchwave::ports::Clock;
    patchwave::ports::SystemClock.now()
}

fn standin() -> StandinConfig {
    StandinConfig {
        seed: 16,
        groups: vec![
            GroupConfig::numbered("canary", 6, 0.0),
            GroupConfig::numbered("fleet", 40, 0.0),
        ],
        machines: machines()
            .into_iter()
            .map(|id| MachineConfig::linux(&id))
            .collect(),
        // the stand-in's own devices never get to report: this test writes every report
        report_delay_min: Duration::from_secs(3600),
        report_delay_max: Duration::from_secs(3600),
        patch_duration: Duration::from_millis(200),
        ..StandinConfig::default()
    }
}

fn plan() -> Value {
    let wave = |name: &str, failure: u32, min: u32| {
        json!({"name": name, "deviceGroup": name, "successThresholdPercent": 100,
               "failureThresholdPercent": failure, "minDevicesJudged": min, "soakMinutes": 0,
               "deviceTimeoutMinutes": 120, "approvalRequired": false, "onFailure": "rollback"})
    };
    json!({
        "name": "issue 16",
        "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
        "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
        "infrastructure": {"maintenanceConfigurationIds": [MAINTENANCE_CONFIGURATION], "onFailure": "block"},
        "waves": [wave("canary", 5, 6), wave("fleet", 10, 10)],
        "rollback": {"successThresholdPercent": 95}
    })
}

/// One agent report: state, installed update (a JSON string), workflow.
struct Report<'a> {
    device: String,
    state: i64,
    installed: Option<&'a str>,
    workflow: &'a str,
}

impl Report<'_> {
    fn body(&self, version: u64) -> String {
        let result = match self.state {
            0 => json!({"resultCode": 700, "extendedResultCodes": "00000000"}),
            _ => json!({"resultCode": 0, "extendedResultCodes": "30200002"}),
        };
        let mut agent = json!({"state": self.state, "workflow": {"action": 3, "id": self.workflow},
                               "lastInstallResult": result});
        if let Some(installed) = self.installed {
            agent["installedUpdateId"] = json!(installed);
        }
        json!({"version": version, "properties": {"reported": {
            "deviceUpdate": {"__t": "c", "agent": agent}, "$version": version}}})
        .to_string()
    }
}

/// Posts one TwinChanges batch, as the Functions host delivers it from Event Hubs; every
/// report written at `written`.
async fn deliver(
    world: &LocalWorld,
    reports: &[Report<'_>],
    version: &mut u64,
    written: DateTime<Utc>,
) {
    let mut bodies = Vec::new();
    let (mut application, mut system) = (Vec::new(), Vec::new());
    for report in reports {
        *version += 1;
        bodies.push(Value::String(report.body(*version)));
        application.push(json!({"deviceId": report.device, "hubName": "hub", "opType": "updateTwin",
            "iothub-message-schema": "twinChangeNotification", "operationTimestamp": written.to_rfc3339()}));
        system.push(json!({"iothub-connection-device-id": report.device,
            "iothub-message-source": "twinChangeEvents", "iothub-enqueuedtime": written.to_rfc3339()}));
    }
    let envelope = json!({
        "Data": {"events": Value::Array(bodies).to_string()},
        "Metadata": {"PropertiesArray": Value::Array(application).to_string(),
                     "SystemPropertiesArray": Value::Array(system).to_string()}
    });
    let answer = reqwest::Client::new()
        .post(format!("{}/TwinChanges", world.handler))
        .json(&envelope)
        .send()
        .await
        .expect("TwinChanges");
    assert_eq!(answer.status(), 200);
}

fn group(name: &str, count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("{name}-{n:04}")).collect()
}

fn reports<'a>(
    devices: &[String],
    state: i64,
    installed: Option<&'a str>,
    workflow: &'a str,
) -> Vec<Report<'a>> {
    devices
        .iter()
        .map(|device| Report {
            device: device.clone(),
            state,
            installed,
            workflow,
        })
        .collect()
}

async fn view(world: &LocalWorld, id: &str) -> Value {
    world
        .api(Method::GET, &format!("/api/rollouts/{id}"), None)
        .await
        .expect("rollout")
}

/// Ticks until `done` holds for the rollout's view (at most 30 s).
async fn until(world: &LocalWorld, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        world.tick().await.expect("tick");
        let current = view(world, id).await;
        if done(&current) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {what}: {current:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn deploying(wave: usize) -> impl Fn(&Value) -> bool {
    move |v: &Value| {
        v["waves"][wave]["status"] == "Deploying"
            && v["waves"][wave]["counts"]["total"].as_u64() > Some(0)
            && v["pendingEffects"] == 0
    }
}

/// Waits (at most 20 s) for a decision of `kind` in the rollout's audit trail.
async fn decision(world: &LocalWorld, id: &str, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        world.tick().await.expect("tick");
        let events = world
            .api(Method::GET, &format!("/api/rollouts/{id}/events"), None)
            .await
            .expect("events");
        let found = events["value"]
            .as_array()
            .expect("events")
            .iter()
            .find(|d| d["kind"] == kind)
            .cloned();
        if let Some(found) = found {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind}: {events:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every device of the fleet group, following `nextLink` pages of 15.
async fn fleet_devices(world: &LocalWorld, id: &str) -> (Vec<Value>, usize) {
    let mut next = Some(format!(
        "/api/compliance/devices?rollout={id}&group=fleet&limit=15"
    ));
    let (mut devices, mut pages) = (Vec::new(), 0);
    while let Some(path) = next.take() {
        let page = world.api(Method::GET, &path, None).await.expect("page");
        pages += 1;
        devices.extend(page["value"].as_array().expect("value").iter().cloned());
        next = page["nextLink"].as_str().map(str::to_string);
    }
    (devices, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fleet_wave_rolls_back_on_the_rollbacks_own_reports() {
    let dir = tempfile::tempdir().expect("dir");
    let world = LocalWorld::start(standin(), dir.path())
        .await
        .expect("world");
    let created = world
        .api(Method::POST, "/api/rollouts", Some(plan()))
        .await
        .expect("created");
    let id = created["id"].as_str().expect("id").to_string();
    world
        .run_maintenance(MAINTENANCE_CONFIGURATION, &[], Duration::from_millis(100))
        .expect("maintenance");
    let mut version = 0;

    until(&world, &id, "canary deploying", deploying(0)).await;
    let canary = group("canary", 6);
    let written = now();
    deliver(
        &world,
        &reports(&canary, 0, Some(FORWARD), "wf-canary"),
        &mut version,
        written,
    )
    .await;
    until(&world, &id, "fleet deploying", deploying(1)).await;

    // one batch: 7 successes, then 20 failures written before the rollback opened; the 5th
    // failure crosses 10% of 40 after 10 finished
    let fleet = group("fleet", 40);
    let mut batch = reports(&fleet[..7], 0, Some(FORWARD), "wf-fleet");
    batch.extend(reports(&fleet[7..27], 255, None, "wf-fleet"));
    deliver(&world, &batch, &mut version, now() - Span::seconds(2)).await;
    let rolling = view(&world, &id).await;
    assert_eq!(rolling["state"], "RollingBack", "{rolling:#}");
    let fleet_rollback = &rolling["rollback"]["groups"][1];
    assert_eq!(fleet_rollback["deviceGroup"], "fleet");
    assert_eq!(
        (
            fleet_rollback["counts"]["failed"].as_u64(),
            fleet_rollback["counts"]["inProgress"].as_u64()
        ),
        (Some(0), Some(0)),
        "forward reports counted against the rollback: {fleet_rollback:#}"
    );
    assert_eq!(
        rolling["waves"][1]["counts"]["failed"], 20,
        "the forward deployment keeps its failures"
    );

    // a maintenance run starting while the devices roll back is held
    let start = now() + Span::hours(1);
    world
        .run_maintenance_at(
            MAINTENANCE_CONFIGURATION,
            &[],
            Duration::from_secs(3600),
            Some(start),
        )
        .expect("second run");
    decision(&world, &id, "infrastructure.hold").await;
    assert_eq!(view(&world, &id).await["state"], "RollingBack");

    // every device but one reports the rollback update installed; fleet-0001 (which had
    // installed the forward update) fails the rollback
    let everyone: Vec<String> = canary.iter().chain(&fleet[1..]).cloned().collect();
    let mut last = reports(&everyone, 0, Some(ROLLBACK), "wf-rollback");
    last.extend(reports(&fleet[..1], 255, None, "wf-rollback"));
    deliver(&world, &last, &mut version, now()).await;
    let done = until(&world, &id, "rolled back", |v: &Value| {
        v["state"] != "RollingBack"
    })
    .await;
    assert_eq!(done["state"], "RolledBack", "{done:#}");
    let finished = decision(&world, &id, "rollback.finished").await;
    assert_eq!(
        finished["reason"],
        "rollback finished: 45 of 46 back on Contoso/Gateway/2.4.0; 1 failed (listed in compliance)"
    );
    let failed = world
        .api(
            Method::GET,
            &format!("/api/compliance/devices?rollout={id}&status=failed"),
            None,
        )
        .await
        .expect("failed devices");
    let failed: Vec<&str> = failed["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        failed,
        [fleet[0].as_str()],
        "the decision's failed device is listed"
    );

    // its report after the end updates its compliance, and reopens nothing
    deliver(
        &world,
        &reports(&fleet[..1], 0, Some(ROLLBACK), "wf-retry"),
        &mut version,
        now(),
    )
    .await;
    assert_eq!(view(&world, &id).await["state"], "RolledBack");
    let (devices, pages) = fleet_devices(&world, &id).await;
    assert_eq!((devices.len(), pages), (40, 3));
    let mut names: Vec<&str> = devices
        .iter()
        .map(|d| d["deviceId"].as_str().expect("id"))
        .collect();
    names.dedup();
    assert_eq!(names.len(), 40, "no device listed twice");
    for device in &devices {
        assert_eq!(device["status"], "onTarget", "{device}");
        assert_eq!(device["installedUpdate"]["version"], "2.4.0", "{device}");
        assert!(device["lastReportAt"].is_string(), "{device}");
    }
    let summary = world
        .api(Method::GET, "/api/compliance", None)
        .await
        .expect("compliance");
    let entry = summary["rollouts"]
        .as_array()
        .expect("rollouts")
        .iter()
        .find(|r| r["rolloutId"] == id.as_str())
        .expect("entry");
    let fleet_numbers = entry["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|g| g["deviceGroup"] == "fleet")
        .expect("fleet");
    assert_eq!(
        (
            fleet_numbers["onTarget"].as_u64(),
            fleet_numbers["behind"].as_u64(),
            fleet_numbers["failed"].as_u64()
        ),
        (Some(40), Some(0), Some(0)),
        "the group's numbers agree with the device list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgroup_device_update_failed_fails_the_wave_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = standin();
    // every deployment is past the hub's configuration limit: Device Update accepts it,
    // then reports its subgroups Failed
    config.max_deployments = 0;
    let world = LocalWorld::start(config, dir.path()).await.expect("world");
    let mut plan = plan();
    plan.as_object_mut().expect("plan").remove("infrastructure");
    let created = world
        .api(Method::POST, "/api/rollouts", Some(plan))
        .await
        .expect("created");
    let id = created["id"].as_str().expect("id").to_string();
    let failed = decision(&world, &id, "wave.failed").await;
    let reason = failed["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("wave canary: Device Update failed deployment")
            && reason.contains("ADMConfigurationLimitExceeded"),
        "{reason}"
    );
    let end = until(&world, &id, "the end", |v: &Value| {
        v["state"] != "RollingBack"
    })
    .await;
    assert_eq!(
        end["state"], "Failed",
        "the rollback deployment failed too: {end:#}"
    );
}
