//! What can happen to a rollout: the engine's inputs.

use crate::ids::{DeploymentId, DeviceId, EffectId};
use crate::UpdateId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One thing that happened, to be folded into a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Input {
    /// Time passed: soak, timeouts and windows are re-judged (every input does this too).
    Tick,
    /// Update Manager is about to run a maintenance configuration (PreMaintenanceEvent).
    MaintenanceStarting(MaintenanceRun),
    /// A maintenance run finished (PostMaintenanceEvent).
    MaintenanceFinished {
        /// The run.
        run: MaintenanceRun,
        /// Its outcome.
        outcome: PatchOutcome,
    },
    /// An on-demand `installPatches` on a machine finished.
    MachinePatched {
        /// Machine resource id.
        machine: String,
        /// Its outcome.
        outcome: PatchOutcome,
        /// Counts or error text for the decision log.
        detail: String,
    },
    /// The devices of a wave's group, learned once per wave, in one or more pages.
    GroupMembers {
        /// Wave index.
        wave: usize,
        /// Device ids.
        devices: Vec<DeviceId>,
        /// Which page of the group this is, from 0; a page is counted once, so a page
        /// fetched again after a crash changes nothing.
        #[serde(default)]
        page: u32,
        /// Whether this is the last page: only then are the members known and the wave
        /// deployed.
        #[serde(default = "last_page")]
        last: bool,
    },
    /// A device's agent reported (a twin change with `deviceUpdate.agent`).
    DeviceReport(DeviceReport),
    /// A device connected or disconnected (IoT Hub's connection events).
    DeviceConnection(crate::ConnectionReport),
    /// Devices Device Update counts as finished in a deployment (polled by the timer as a
    /// second source of truth); fills in only devices whose own final report never came.
    DeploymentStates {
        /// The wave's or rollback group's deployment.
        deployment_id: DeploymentId,
        /// Finished devices, by Device Update's account.
        devices: Vec<PolledDevice>,
        /// Whether this is the last part of one poll (a poll comes in parts of bounded size;
        /// the decision that sums them up is recorded with the last).
        #[serde(default = "last_page")]
        last: bool,
    },
    /// Device Update reports a deployment as failed (a device-class subgroup in state
    /// `Failed`, e.g. `ADMConfigurationLimitExceeded`): it will reach no more devices.
    DeploymentFailed {
        /// The wave's or rollback group's deployment.
        deployment_id: DeploymentId,
        /// Device Update's error, code and message.
        error: String,
    },
    /// An operator command.
    Operator(Command),
    /// An effect was carried out.
    EffectSucceeded {
        /// The effect's id.
        effect_id: EffectId,
    },
    /// An effect could not be carried out, after the shell's retries.
    EffectFailed {
        /// The effect's id.
        effect_id: EffectId,
        /// Why.
        error: String,
    },
    /// An Azure Monitor alert (`POST /api/alerts`), offered to every active rollout.
    Alert(AlertInput),
}

/// A scheduled maintenance run of Update Manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRun {
    /// Run id (`CorrelationId`).
    pub run_id: String,
    /// Maintenance configuration id.
    pub configuration_id: String,
    /// Start of the schedule instance.
    pub start: Option<DateTime<Utc>>,
    /// Last moment the run can be cancelled.
    pub cancellation_cutoff: Option<DateTime<Utc>>,
}

/// How a host patch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatchOutcome {
    /// Patched.
    Succeeded,
    /// Patched, with warnings (some patches pending or skipped).
    SucceededWithWarnings,
    /// Not patched.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

/// What a device's agent said, reduced to what the engine judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// Device id (module-qualified ids are the shell's concern).
    pub device: DeviceId,
    /// Twin version of the notification; older or equal versions than seen change nothing.
    pub twin_version: u64,
    /// Agent state: 0 idle, 6 in progress, 255 failed.
    pub agent_state: i64,
    /// `lastInstallResult.resultCode`.
    pub result_code: Option<i64>,
    /// The update installed on the device.
    pub installed_update: Option<UpdateId>,
    /// `workflow.id`: the Device Update workflow (one per deployment a device takes) the
    /// report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// When the device wrote the report (the twin operation's time as IoT Hub recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<DateTime<Utc>>,
}

/// One device's outcome of a deployment as Device Update reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolledDevice {
    /// Device id.
    pub device: DeviceId,
    /// Whether it installed the deployment's update.
    pub succeeded: bool,
}

/// An operator's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Unique per request: a redelivered command with the same id changes nothing.
    pub id: String,
    /// What to do.
    pub action: CommandAction,
    /// Who asks.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// The operator commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandAction {
    /// Stop moving forward; devices already deploying carry on.
    Pause,
    /// Continue after a pause (also accepts a failed wave or a blocked infrastructure gate).
    Resume,
    /// Let the next wave start.
    Approve,
    /// Stop the rollout and cancel its active deployments.
    Cancel,
    /// Roll every touched group back.
    Rollback,
}

/// An Azure Monitor alert, reduced to what the engine judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertInput {
    /// The alert's id; with `fired` it identifies a delivery, so a redelivery changes nothing.
    pub alert_id: String,
    /// The alert rule's name, matched against the plan's `alertRules`.
    pub rule: String,
    /// `Fired` (true) or `Resolved` (false).
    pub fired: bool,
    /// When it fired or resolved, as Azure Monitor says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

fn last_page() -> bool {
    true
}
