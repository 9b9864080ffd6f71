//! The device simulation: a deployment makes each device of its group report state 6, then
//! state 0 with result 700 and the update installed, or state 255 (agent 1.1 result codes), as
//! IoT Hub twin change notifications.

use super::host;
use super::http::azure_time;
use super::model::*;
use super::rng::SplitMix64;
use super::world::{update_id_string, State};
use super::World;
use chrono::{DateTime, Utc};
use rollout_core::UpdateId;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// One step of a device in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Took the deployment: state 6.
    Start,
    /// Finished: state 0/700 when `ok`, else 255.
    Finish { ok: bool },
}

/// Schedules the reports of `devices` for deployment `deployment` of `group`. `attempt` is 0
/// for the deployment itself and counts retries; every choice comes from the seed.
pub(super) fn run_devices(
    world: &Arc<World>,
    group: &str,
    deployment: &str,
    devices: Vec<String>,
    attempt: u32,
) {
    let rate = {
        let state = world.lock();
        let version = state
            .deployments
            .iter()
            .rev()
            .find(|d| d.group == group && d.id == deployment)
            .map(|d| d.update.version.clone())
            .unwrap_or_default();
        state.groups.get(group).map_or(0.0, |g| {
            *g.failure_rate_by_version
                .get(&version)
                .unwrap_or(&g.failure_rate)
        })
    };
    let config = &world.config;
    let mut rng = SplitMix64::derived(config.seed, &format!("{group}/{deployment}/{attempt}"));
    let mut order = devices.clone();
    rng.shuffle(&mut order);
    let failing_count =
        ((rate.clamp(0.0, 1.0) * devices.len() as f64).round() as usize).min(devices.len());
    let failing: HashSet<String> = order.into_iter().take(failing_count).collect();
    let mut plan: Vec<(Duration, String, Step)> = Vec::with_capacity(devices.len() * 2);
    for device in devices {
        let started = rng.duration(config.report_delay_min, config.report_delay_max);
        let finished = started + rng.duration(config.report_delay_min, config.report_delay_max);
        let ok = !failing.contains(&device);
        plan.push((started, device.clone(), Step::Start));
        plan.push((finished, device, Step::Finish { ok }));
    }
    plan.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let (group, deployment) = (group.to_string(), deployment.to_string());
    let runner = world.clone();
    world.spawn(async move {
        let begin = tokio::time::Instant::now();
        for (at, device, step) in plan {
            tokio::time::sleep_until(begin + at).await;
            let faults = runner.faults();
            let dropped = rng.chance(faults.drop_rate);
            let duplicated = !dropped && rng.chance(faults.duplicate_rate);
            runner.device_step(&group, &deployment, &device, step, dropped, duplicated);
        }
    });
}

impl World {
    /// Applies one device step, unless the deployment moved on, the device's subgroup was
    /// cancelled, or the step no longer fits; then queues the twin change notification.
    pub(super) fn device_step(
        &self,
        group: &str,
        deployment: &str,
        device: &str,
        step: Step,
        dropped: bool,
        duplicated: bool,
    ) {
        let now = self.now();
        let partition = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let Some((next, update, workflow)) =
                advance_phase(state, group, deployment, device, step)
            else {
                return;
            };
            let Some(dev) = state.devices.get_mut(device) else {
                return;
            };
            let body = write_report(dev, deployment, step, next, update, &workflow, now);
            state.reports.push(ReportRecord {
                device_id: device.to_string(),
                deployment_id: deployment.to_string(),
                state: match next {
                    DevicePhase::InProgress => 6,
                    DevicePhase::Succeeded => 0,
                    _ => 255,
                },
                twin_version: dev.twin_version,
                dropped,
                duplicated,
            });
            let Some(partition) = self.queue_report(state, device, &body, dropped, duplicated, now)
            else {
                return;
            };
            partition
        };
        if let Some(wake) = self.twin_wake.get(partition) {
            wake.notify_one();
        }
    }

    /// Queues a report's notification (twice if duplicated): its partition, `None` if dropped.
    fn queue_report(
        &self,
        state: &mut State,
        device: &str,
        body: &str,
        dropped: bool,
        duplicated: bool,
        now: DateTime<Utc>,
    ) -> Option<usize> {
        if dropped {
            state.stats.reports_dropped += 1;
            return None;
        }
        let copies = if duplicated {
            state.stats.reports_duplicated += 1;
            2
        } else {
            1
        };
        let mut partition = 0;
        for _ in 0..copies {
            partition = host::enqueue_twin_change(state, &self.config, device, body, now);
        }
        Some(partition)
    }
}

/// Moves the device to its phase after `step` (with the update and workflow); `None` if it can't.
fn advance_phase(
    state: &mut State,
    group: &str,
    deployment: &str,
    device: &str,
    step: Step,
) -> Option<(DevicePhase, UpdateId, String)> {
    let class = state.devices.get(device).map(|d| d.device_class.clone())?;
    // Deleting a deployment stops nothing on the devices, so deleted ones still count.
    let dep = state
        .deployments
        .iter_mut()
        .rev()
        .find(|d| d.group == group && d.id == deployment)?;
    if dep.superseded || dep.canceled_classes.contains(&class) {
        return None;
    }
    let phase = dep
        .devices
        .get(device)
        .copied()
        .unwrap_or(DevicePhase::Pending);
    let next = match (step, phase) {
        (Step::Start, DevicePhase::Pending | DevicePhase::Failed) => DevicePhase::InProgress,
        (Step::Finish { ok: true }, DevicePhase::InProgress) => DevicePhase::Succeeded,
        (Step::Finish { ok: false }, DevicePhase::InProgress) => DevicePhase::Failed,
        _ => return None,
    };
    dep.devices.insert(device.to_string(), next);
    Some((next, dep.update.clone(), dep.workflow_id.clone()))
}

/// Writes `step`'s report into the device and returns its twin change notification's body.
fn write_report(
    dev: &mut Device,
    deployment: &str,
    step: Step,
    next: DevicePhase,
    update: UpdateId,
    workflow: &str,
    now: DateTime<Utc>,
) -> String {
    let patch = agent_patch(step, workflow, &update);
    dev.twin_version += 1;
    dev.reported_version += 1;
    if next == DevicePhase::Succeeded {
        dev.installed = update.clone();
    }
    dev.last_attempted = Some(update);
    dev.last_deployment = Some(deployment.to_string());
    dev.status = Some(next);
    if let (Value::Object(agent), Value::Object(patch)) = (&mut dev.agent, &patch) {
        for (key, value) in patch {
            agent.insert(key.clone(), value.clone());
        }
    }
    json!({
        "version": dev.twin_version,
        "properties": {"reported": {
            "deviceUpdate": {"__t": "c", "agent": patch},
            "$metadata": {"$lastUpdated": azure_time(now)},
            "$version": dev.reported_version,
        }}
    })
    .to_string()
}

/// The `deviceUpdate.agent` properties a step writes (agent 1.1, `deviceUpdate;2`).
pub(super) fn agent_patch(step: Step, workflow: &str, update: &UpdateId) -> Value {
    let workflow = json!({"action": 3, "id": workflow});
    match step {
        Step::Start => json!({
            "lastInstallResult": {"resultCode": 400, "extendedResultCodes": "00000000",
                                  "resultDetails": "", "stepResults": null},
            "state": 6,
            "workflow": workflow,
        }),
        Step::Finish { ok: true } => {
            let result =
                json!({"resultCode": 700, "extendedResultCodes": "00000000", "resultDetails": ""});
            json!({
                "lastInstallResult": {"resultCode": 700, "extendedResultCodes": "00000000",
                                      "resultDetails": "", "stepResults": {"step_0": result}},
                "state": 0,
                "workflow": workflow,
                "installedUpdateId": update_id_string(update),
            })
        }
        Step::Finish { ok: false } => {
            let result =
                json!({"resultCode": 0, "extendedResultCodes": "30200002", "resultDetails": ""});
            json!({
                "lastInstallResult": {"resultCode": 0, "extendedResultCodes": "30200002",
                                      "resultDetails": "", "stepResults": {"step_0": result}},
                "state": 255,
                "workflow": workflow,
            })
        }
    }
}
