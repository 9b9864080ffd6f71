//! `patchwave demo`: a rollout of 2,000 simulated devices in three waves behind three
//! gateway VMs, end to end on this machine, with live progress, a compliance table and the
//! decision log; the database and a JSON report stay behind to inspect.

pub mod progress;
pub mod world;

use anyhow::Context;
use patchwave_standin::{GroupConfig, MachineConfig, StandinConfig};
use progress::Progress;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use world::LocalWorld;

/// The maintenance configuration the demo's plan waits for.
pub const MAINTENANCE_CONFIGURATION: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/edge/providers/Microsoft.Maintenance/maintenanceConfigurations/gw-hosts";

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Devices in all (split 5% / 25% / 70% over canary, pilot, fleet).
    pub devices: usize,
    /// Failure rate of the failing wave (pilot).
    pub failure_rate: f64,
    /// No failing wave: the rollout completes.
    pub healthy: bool,
    /// Seed of the simulation.
    pub seed: u64,
    /// Where the database, events and report go.
    pub out: PathBuf,
    /// Longest run before giving up.
    pub limit: Duration,
    /// Keep the handler (and its dashboard) and the stand-in running after the rollout ends,
    /// until Ctrl-C.
    pub serve: bool,
}

/// The dashboard of a handler at `handler` (the demo's API is open: no key needed).
pub fn dashboard_url(handler: &str) -> String {
    format!("{handler}/api/dashboard")
}

/// Gateway VMs patched before the devices.
pub fn machines() -> Vec<String> {
    (1..=3)
        .map(|n| format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/edge/providers/Microsoft.Compute/virtualMachines/gw-0{n}"))
        .collect()
}

/// The three waves' groups and sizes.
pub fn groups(devices: usize) -> Vec<(&'static str, usize)> {
    let canary = (devices / 20).max(1);
    let pilot = (devices / 4).max(1);
    vec![
        ("canary", canary),
        ("pilot", pilot),
        ("fleet", devices.saturating_sub(canary + pilot).max(1)),
    ]
}

/// The stand-in for a demo run.
pub fn standin_config(options: &DemoOptions) -> StandinConfig {
    let pilot_failures = if options.healthy {
        0.0
    } else {
        options.failure_rate
    };
    StandinConfig {
        seed: options.seed,
        groups: groups(options.devices)
            .into_iter()
            .map(|(group, count)| {
                let mut config = GroupConfig::numbered(group, count, 0.0);
                if group == "pilot" {
                    // the new firmware fails on some pilot devices; going back to 2.4.0 works
                    config
                        .failure_rate_by_version
                        .insert("2.4.1".into(), pilot_failures);
                }
                config
            })
            .collect(),
        machines: machines()
            .into_iter()
            .map(|id| MachineConfig::linux(&id))
            .collect(),
        report_delay_min: Duration::from_millis(50),
        report_delay_max: Duration::from_millis(1500),
        patch_duration: Duration::from_millis(800),
        ..StandinConfig::default()
    }
}

/// The rollout plan of the demo (design §4's shape, timings shortened).
pub fn plan(devices: usize) -> Value {
    let waves: Vec<Value> = groups(devices)
        .into_iter()
        .map(|(group, count)| {
            json!({
                "name": group, "deviceGroup": group,
                "successThresholdPercent": if group == "canary" { 100 } else { 95 },
                "failureThresholdPercent": 5, "minDevicesJudged": (count / 5).clamp(1, 50), "soakMinutes": 0,
                "deviceTimeoutMinutes": 10, "approvalRequired": false, "onFailure": "rollback"
            })
        })
        .collect();
    json!({
        "name": "CVE-2026-1234 gateway firmware",
        "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
        "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
        "infrastructure": {"maintenanceConfigurationIds": [MAINTENANCE_CONFIGURATION], "machines": machines(), "onFailure": "block"},
        "waves": waves,
        "rollback": {"successThresholdPercent": 100, "deviceTimeoutMinutes": 10}
    })
}

/// Runs the demo; returns the final rollout view.
pub async fn run(options: DemoOptions) -> anyhow::Result<Value> {
    let world = LocalWorld::start(standin_config(&options), &options.out).await?;
    let mut progress = Progress::new(&groups(options.devices));
    progress.line(&format!(
        "patchwave demo: {} devices in 3 waves behind {} gateway VMs; Azure stand-in at {}, handler at {}",
        options.devices,
        machines().len(),
        world.standin.url(),
        world.handler
    ));
    progress.line(&format!(
        "dashboard: {} (open it in a browser; --serve keeps it up after the rollout ends)",
        dashboard_url(&world.handler)
    ));
    let created = world
        .api(
            reqwest::Method::POST,
            "/api/rollouts",
            Some(plan(options.devices)),
        )
        .await
        .context("creating the rollout")?;
    let id = created["id"].as_str().context("rollout id")?.to_string();
    progress.line(&format!(
        "rollout {id} created; Update Manager runs the gw-hosts maintenance configuration"
    ));
    world.run_maintenance(
        MAINTENANCE_CONFIGURATION,
        &machines(),
        Duration::from_millis(300),
    )?;
    let last = world
        .drive(&id, options.limit, |view| progress.update(view))
        .await?;
    progress.finish(&last);
    let compliance = world
        .api(reqwest::Method::GET, "/api/compliance", None)
        .await?;
    let events = world
        .api(
            reqwest::Method::GET,
            &format!("/api/rollouts/{id}/events"),
            None,
        )
        .await?;
    println!("{}", progress::compliance_table(&compliance));
    println!("{}", progress::decision_log(&events));
    let report = json!({"rollout": last, "compliance": compliance, "events": events["value"], "standin": world.standin.world().snapshot()});
    let path = options.out.join("demo-report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!(
        "database: {}\nreport:   {}\nevents:   {}",
        options.out.join("patchwave.db").display(),
        path.display(),
        options.out.join("events.jsonl").display()
    );
    if options.serve {
        println!(
            "serving until Ctrl-C: dashboard {} (Azure stand-in {})",
            dashboard_url(&world.handler),
            world.standin.url()
        );
        serve(&world).await;
    }
    Ok(last)
}

/// Keeps the world up, firing the timer every few seconds as the Functions host would, until
/// Ctrl-C.
async fn serve(world: &LocalWorld) {
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                if let Err(error) = world.tick().await {
                    eprintln!("timer: {error:#}");
                }
            }
        }
    }
}
