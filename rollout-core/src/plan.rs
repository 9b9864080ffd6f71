//! The rollout plan (design §4) and its validation, which lists every problem at once.

use crate::window::Window;
use crate::UpdateId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What an operator submits: the update, the rollback update, infrastructure first, waves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutPlan {
    /// A name for people.
    pub name: String,
    /// The update to deploy.
    pub update: UpdateId,
    /// The update deployed to every touched group on rollback.
    pub rollback_update: UpdateId,
    /// Hosts to patch before any device wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<InfrastructurePlan>,
    /// Device waves, in order.
    pub waves: Vec<WavePlan>,
    /// When waves may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Whether the creator may also approve gates (separation of duties is the default).
    #[serde(default)]
    pub allow_self_approval: bool,
    /// The rollback's own policy (defaults: every device back, 240 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackPolicy>,
    /// Azure Monitor alert rules whose `Fired` alert fails the current wave (`POST /api/alerts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub alert_rules: Vec<String>,
}

/// When a rollback counts as done: the share of every touched group that must be back on
/// the rollback update, and how long a device has to get there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollbackPolicy {
    /// Share of each touched group that must be back on the rollback update (default 100).
    #[serde(default = "RollbackPolicy::default_success")]
    pub success_threshold_percent: f64,
    /// Minutes a device has to report the rollback update before it counts as timed out
    /// (default 240).
    #[serde(default = "RollbackPolicy::default_timeout")]
    pub device_timeout_minutes: u32,
}

impl RollbackPolicy {
    fn default_success() -> f64 {
        100.0
    }

    fn default_timeout() -> u32 {
        240
    }
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        RollbackPolicy {
            success_threshold_percent: Self::default_success(),
            device_timeout_minutes: Self::default_timeout(),
        }
    }
}

/// Hosts patched by Azure Update Manager before the devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InfrastructurePlan {
    /// Maintenance configurations whose scheduled run must succeed.
    #[serde(default)]
    pub maintenance_configuration_ids: Vec<String>,
    /// Machines (VM or Arc resource ids) patched on demand with `installPatches`.
    #[serde(default)]
    pub machines: Vec<String>,
    /// What a failed host patch does to the device phase.
    #[serde(default)]
    pub on_failure: InfrastructureFailure,
}

/// `block` holds the devices until an operator resumes; `warn` records it and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InfrastructureFailure {
    /// Hold the device phase.
    #[default]
    Block,
    /// Record a warning and continue.
    Warn,
}

/// One wave of devices: a Device Update group and its gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WavePlan {
    /// Wave name.
    pub name: String,
    /// Device Update group (`ADUGroup` tag value).
    pub device_group: String,
    /// Share of the group that must succeed for the wave to pass.
    pub success_threshold_percent: f64,
    /// Share of finished devices that, once exceeded, fails the wave.
    pub failure_threshold_percent: f64,
    /// Finished devices needed before the failure threshold is judged.
    pub min_devices_judged: u32,
    /// Minutes to wait after the success threshold before the next wave.
    pub soak_minutes: u32,
    /// Minutes a device has to finish before it counts as timed out.
    pub device_timeout_minutes: u32,
    /// Whether an operator must approve before this wave starts.
    #[serde(default)]
    pub approval_required: bool,
    /// What a failed wave does.
    pub on_failure: WaveFailure,
    /// Watch installed devices' connections before the wave passes (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_gate: Option<HealthGate>,
}

/// A wave's health gate: a device that installed is observed for `observeMinutes`; one
/// disconnected for longer than `maxDisconnectedMinutes` within that time (`0`: any
/// disconnect) is unhealthy, which counts as a failure. The wave passes only when its success
/// threshold is met by devices that finished their observation healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthGate {
    /// Minutes a device is observed after it installed the update (1 to 10,080).
    pub observe_minutes: u32,
    /// Longest disconnection tolerated within the observation, in minutes (0: none).
    pub max_disconnected_minutes: u32,
}

/// Longest observation a health gate may ask for (a week).
const MAX_OBSERVE_MINUTES: u32 = 7 * 24 * 60;

/// `pause` waits for an operator; `rollback` rolls every touched group back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WaveFailure {
    /// Pause the rollout.
    Pause,
    /// Open a rollback.
    Rollback,
}

/// Longest device group id Device Update accepts in a deployment id.
const MAX_GROUP_CHARS: usize = 64;

impl RolloutPlan {
    /// Checks the plan; every problem found is listed.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name must not be empty".to_string());
        }
        check_update("update", &self.update, &mut problems);
        check_update("rollbackUpdate", &self.rollback_update, &mut problems);
        if self.update == self.rollback_update {
            problems.push(format!(
                "rollbackUpdate must differ from update (both are {})",
                self.update
            ));
        }
        if let Some(infrastructure) = &self.infrastructure {
            check_infrastructure(infrastructure, &mut problems);
        }
        if self.waves.is_empty() {
            problems.push("waves must list at least one wave".to_string());
        }
        let mut names = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for (index, wave) in self.waves.iter().enumerate() {
            check_wave(index, wave, &mut problems);
            if !wave.name.trim().is_empty() && !names.insert(wave.name.trim().to_lowercase()) {
                problems.push(format!(
                    "waves[{index}].name `{}` is used by another wave",
                    wave.name
                ));
            }
            if !wave.device_group.trim().is_empty()
                && !groups.insert(wave.device_group.trim().to_lowercase())
            {
                problems.push(format!(
                    "waves[{index}].deviceGroup `{}` is used by another wave",
                    wave.device_group
                ));
            }
        }
        if let Some(rollback) = &self.rollback {
            check_rollback(rollback, &mut problems);
        }
        crate::alert_rules::check_alert_rules(&self.alert_rules, &mut problems);
        if let Some(window) = &self.window {
            problems.extend(window.problems().into_iter().map(|p| format!("window.{p}")));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The rollback's policy, with its defaults when the plan names none.
    pub fn rollback_policy(&self) -> RollbackPolicy {
        self.rollback.unwrap_or_default()
    }

    /// Device groups this plan deploys to.
    pub fn device_groups(&self) -> impl Iterator<Item = &str> {
        self.waves.iter().map(|wave| wave.device_group.as_str())
    }
}

fn check_update(field: &str, update: &UpdateId, problems: &mut Vec<String>) {
    for (part, value) in [
        ("provider", &update.provider),
        ("name", &update.name),
        ("version", &update.version),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("{field}.{part} must not be empty"));
        }
    }
}

fn check_rollback(policy: &RollbackPolicy, problems: &mut Vec<String>) {
    let success = policy.success_threshold_percent;
    if !(success > 0.0 && success <= 100.0) {
        problems.push(format!(
            "rollback.successThresholdPercent must be above 0 and at most 100 (got {success})"
        ));
    }
    if policy.device_timeout_minutes == 0 {
        problems.push("rollback.deviceTimeoutMinutes must be at least 1".into());
    }
}

fn check_infrastructure(plan: &InfrastructurePlan, problems: &mut Vec<String>) {
    if plan.maintenance_configuration_ids.is_empty() && plan.machines.is_empty() {
        problems.push(
            "infrastructure must name maintenanceConfigurationIds or machines (or be left out)"
                .into(),
        );
    }
    for (index, id) in plan.maintenance_configuration_ids.iter().enumerate() {
        if !id
            .to_ascii_lowercase()
            .contains("/providers/microsoft.maintenance/maintenanceconfigurations/")
        {
            problems.push(format!(
                "infrastructure.maintenanceConfigurationIds[{index}] `{id}` is not a maintenance configuration resource id"
            ));
        }
    }
    for (index, id) in plan.machines.iter().enumerate() {
        let lower = id.to_ascii_lowercase();
        if !lower.contains("/providers/microsoft.compute/virtualmachines/")
            && !lower.contains("/providers/microsoft.hybridcompute/machines/")
        {
            problems.push(format!(
                "infrastructure.machines[{index}] `{id}` is neither a virtual machine nor an Arc machine resource id"
            ));
        }
    }
    let unique: BTreeSet<String> = plan
        .machines
        .iter()
        .map(|m| m.to_ascii_lowercase())
        .collect();
    if unique.len() != plan.machines.len() {
        problems.push("infrastructure.machines lists a machine twice".into());
    }
}

fn check_wave(index: usize, wave: &WavePlan, problems: &mut Vec<String>) {
    let field = |name: &str| format!("waves[{index}].{name}");
    if wave.name.trim().is_empty() {
        problems.push(format!("{} must not be empty", field("name")));
    }
    let group = wave.device_group.trim();
    if group.is_empty() {
        problems.push(format!("{} must not be empty", field("deviceGroup")));
    } else if group.chars().count() > MAX_GROUP_CHARS {
        problems.push(format!(
            "{} is longer than {MAX_GROUP_CHARS} characters",
            field("deviceGroup")
        ));
    }
    let success = wave.success_threshold_percent;
    if !(success > 0.0 && success <= 100.0) {
        problems.push(format!(
            "{} must be above 0 and at most 100 (got {success})",
            field("successThresholdPercent")
        ));
    }
    let failure = wave.failure_threshold_percent;
    if !(0.0..100.0).contains(&failure) {
        problems.push(format!(
            "{} must be at least 0 and below 100 (got {failure}): a share above 100% can never be reached",
            field("failureThresholdPercent")
        ));
    }
    if success.is_finite() && failure.is_finite() && failure >= success {
        // A wave that may fail only once more than `failure`% failed, yet passes with `success`%
        // succeeded, would tolerate more failures than the share that must succeed.
        problems.push(format!(
            "{} {failure}% and {} {success}% cannot both hold: the failure threshold must be below the success threshold",
            field("failureThresholdPercent"),
            field("successThresholdPercent"),
        ));
    }
    if wave.device_timeout_minutes == 0 {
        problems.push(format!(
            "{} must be at least 1",
            field("deviceTimeoutMinutes")
        ));
    }
    if let Some(gate) = &wave.health_gate {
        check_health_gate(gate, &field, problems);
    }
}

fn check_health_gate(
    gate: &HealthGate,
    field: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    let observe = gate.observe_minutes;
    if observe == 0 || observe > MAX_OBSERVE_MINUTES {
        problems.push(format!(
            "{} must be 1 to {MAX_OBSERVE_MINUTES}, not {observe}",
            field("healthGate.observeMinutes")
        ));
    }
    if gate.max_disconnected_minutes >= observe.max(1) {
        problems.push(format!(
            "{} must be below {} ({observe}): a longer disconnection could never be seen within the observation",
            field("healthGate.maxDisconnectedMinutes"),
            field("healthGate.observeMinutes")
        ));
    }
}
