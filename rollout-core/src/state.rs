//! The rollout's state: where it is, what each wave and device did, and why.

use crate::decision_kind::DecisionKind;
use crate::ids::DeploymentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The rollout states of design §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RolloutState {
    /// Created; waiting for a gate (window, approval given, first step).
    Pending,
    /// Waiting for the hosts to be patched.
    PatchingInfrastructure,
    /// A wave's deployment is running.
    Deploying,
    /// A wave met its success threshold; waiting out its soak time.
    Soaking,
    /// The next wave needs an operator's approval.
    AwaitingApproval,
    /// Stopped by an operator or by a failure that asks for one.
    Paused,
    /// Rolling every touched group back.
    RollingBack,
    /// Every wave passed.
    Completed,
    /// The rollback finished.
    RolledBack,
    /// Cancelled by an operator.
    Cancelled,
    /// The rollback itself failed, or nothing more can be done.
    Failed,
}

impl RolloutState {
    /// Whether no input changes the rollout any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RolloutState::Completed
                | RolloutState::RolledBack
                | RolloutState::Cancelled
                | RolloutState::Failed
        )
    }
}

/// Where one wave is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WaveStatus {
    /// Not started.
    Waiting,
    /// Started: learning the group's devices, then deploying.
    Deploying,
    /// Success threshold met; soaking.
    Soaking,
    /// Passed its thresholds and soak.
    Passed,
    /// Failed; an operator accepted it and the rollout went on.
    Accepted,
    /// Failed its thresholds.
    Failed,
    /// Its deployment was cancelled.
    Cancelled,
}

/// Per-outcome device counts of a wave (or of its rollback).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// Devices in the group.
    pub total: u64,
    /// Reported in progress.
    pub in_progress: u64,
    /// Installed the target update.
    pub succeeded: u64,
    /// Reported failure.
    pub failed: u64,
    /// Did not finish before the deadline.
    pub timed_out: u64,
    /// Installed, then disconnected for too long while observed (a wave's `healthGate`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub unhealthy: u64,
}

impl Counts {
    /// Devices with a final outcome.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.timed_out + self.unhealthy
    }

    /// Failures for judgement: reported failures, timeouts and unhealthy devices.
    pub fn failures(&self) -> u64 {
        self.failed + self.timed_out + self.unhealthy
    }

    pub(crate) fn add(&mut self, outcome: Outcome, delta: i64) {
        let slot = match outcome {
            Outcome::NotReported => return,
            Outcome::InProgress => &mut self.in_progress,
            Outcome::Succeeded => &mut self.succeeded,
            Outcome::Failed => &mut self.failed,
            Outcome::TimedOut => &mut self.timed_out,
            Outcome::Unhealthy => &mut self.unhealthy,
        };
        *slot = slot.saturating_add_signed(delta);
    }
}

/// A device's outcome for one target update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing heard yet.
    #[default]
    NotReported,
    /// Working on it.
    InProgress,
    /// Installed the target.
    Succeeded,
    /// Failed.
    Failed,
    /// Silent past the deadline.
    TimedOut,
    /// Installed the target, then was disconnected for longer than its wave's health gate
    /// allows while observed: counts as a failure.
    Unhealthy,
}

impl Outcome {
    /// Whether this is a final outcome.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::Failed | Outcome::TimedOut | Outcome::Unhealthy
        )
    }
}

/// What is known of one device of the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    /// Index of the wave whose group holds the device.
    pub wave: u32,
    /// Highest twin version seen.
    pub version: u64,
    /// Outcome for the plan's update.
    pub forward: Outcome,
    /// Outcome for the rollback update.
    pub rollback: Outcome,
    /// The forward outcome came from Device Update's deployment status, not a report: a
    /// report still in progress is older than it and changes nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_polled: bool,
    /// The same for the rollback outcome.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback_polled: bool,
    /// The device itself reported a final outcome for the plan's update at some point: its
    /// own reports reach us, so a poll (which may predate its latest report) no longer
    /// changes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_reported: bool,
    /// The same for the rollback update.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback_reported: bool,
    /// The update the device last said it runs (`installedUpdateId`).
    #[serde(default, skip_serializing_if = "Installed::is_unknown")]
    pub installed: Installed,
    /// Fingerprint of the last Device Update workflow (`workflow.id`) attributed to one of
    /// the group's deployments; 0 when none was.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub workflow: u32,
    /// Which deployment that workflow belongs to: the forward attempt's number, or
    /// [`ROLLBACK_DEPLOYMENT`].
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub workflow_deployment: u8,
    /// When the device last reported (the report's own time, else when it was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report_at: Option<DateTime<Utc>>,
    /// When it installed the target in a wave with a health gate: its observation starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_at: Option<DateTime<Utc>>,
    /// Its connection as IoT Hub's connection event with the highest sequence number says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionState>,
}

/// A device's connection, from the connection event with the highest sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionState {
    /// Connected (else disconnected).
    pub connected: bool,
    /// That event's time.
    pub at: DateTime<Utc>,
    /// That event's sequence number.
    pub sequence: crate::ConnectionSequence,
}

/// [`DeviceRecord::workflow_deployment`] of the rollback deployment.
pub const ROLLBACK_DEPLOYMENT: u8 = u8::MAX;

/// The update a device last said it runs, against the rollout's two updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Installed {
    /// Not reported.
    #[default]
    Unknown,
    /// The plan's update.
    Update,
    /// The rollback update.
    RollbackUpdate,
    /// Some other update.
    Other,
}

impl Installed {
    /// Whether nothing was reported.
    pub fn is_unknown(&self) -> bool {
        *self == Installed::Unknown
    }
}

impl DeviceRecord {
    /// A member of wave `wave` that has not reported yet.
    pub fn new(wave: u32) -> Self {
        DeviceRecord {
            wave,
            version: 0,
            forward: Outcome::NotReported,
            rollback: Outcome::NotReported,
            forward_polled: false,
            rollback_polled: false,
            forward_reported: false,
            rollback_reported: false,
            installed: Installed::Unknown,
            workflow: 0,
            workflow_deployment: 0,
            last_report_at: None,
            succeeded_at: None,
            connection: None,
        }
    }
}

/// One wave's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveProgress {
    /// Status.
    pub status: WaveStatus,
    /// Attempts started (deployment ids carry it).
    pub attempt: u32,
    /// Deployment of the current attempt.
    pub deployment_id: Option<DeploymentId>,
    /// When the current attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the deployment was requested (device deadlines count from here).
    pub deployed_at: Option<DateTime<Utc>>,
    /// Whether the group's devices are known.
    pub members_known: bool,
    /// Pages of the group's members counted so far (members come in pages).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub member_pages: u32,
    /// Members left out so far because an earlier wave holds them.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub members_left_out: u64,
    /// Whether devices past the deadline were marked timed out.
    pub timeouts_applied: bool,
    /// When the success threshold was first met.
    pub threshold_met_at: Option<DateTime<Utc>>,
    /// Counts for the plan's update.
    pub counts: Counts,
    /// Who approved the wave's start.
    pub approved_by: Option<String>,
    /// Whether a "waiting for the window" decision was recorded for this wave.
    pub waiting_for_window: bool,
    /// Devices under observation, for a wave with a health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthWatch>,
}

/// What a health-gated wave keeps to judge its devices' health without visiting them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthWatch {
    /// Succeeded devices not (yet) found unhealthy nor disconnected now, by the minute they
    /// installed (Unix minutes): those whose minute plus the observation lies in the past
    /// finished their observation healthy.
    pub healthy_by_minute: BTreeMap<i64, u64>,
    /// Devices disconnected during their observation and not back yet.
    pub disconnected: BTreeMap<crate::DeviceId, Disconnection>,
}

/// A device disconnected during its observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disconnection {
    /// When it disconnected.
    pub since: DateTime<Utc>,
    /// When it had installed the target.
    pub succeeded_at: DateTime<Utc>,
    /// Already counted unhealthy (disconnected past the limit with no event since).
    pub counted: bool,
}

/// A touched group being rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackGroup {
    /// Wave index.
    pub wave: usize,
    /// Rollback deployment id.
    pub deployment_id: DeploymentId,
    /// Counts for the rollback update.
    pub counts: Counts,
    /// Whether devices past the deadline were marked timed out.
    pub timeouts_applied: bool,
    /// Done: threshold met (`Some(true)`) or failed (`Some(false)`).
    pub passed: Option<bool>,
}

/// The rollback, once opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackProgress {
    /// When it opened.
    pub started_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// The touched groups.
    pub groups: Vec<RollbackGroup>,
}

/// Why the rollout is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseCause {
    /// An operator paused it.
    Operator,
    /// A wave failed and its plan says pause.
    WaveFailed,
    /// The hosts failed to patch and the plan says block.
    InfrastructureFailed,
    /// A deployment or group lookup could not be done.
    EffectFailed,
}

/// A pause: from which state, why, by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseRecord {
    /// State to return to.
    pub from: RolloutState,
    /// Why.
    pub cause: PauseCause,
}

/// Host patching progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureProgress {
    /// Whether the infrastructure phase has started.
    pub started: bool,
    /// Maintenance configuration (lower-case id) to its last run's result, `None` while waiting.
    pub configurations: BTreeMap<String, Option<crate::PatchOutcome>>,
    /// Machine to its result, `None` while patching.
    pub machines: BTreeMap<String, Option<crate::PatchOutcome>>,
    /// The gate let the devices go (passed, warned or overridden).
    pub gate_open: bool,
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// When.
    pub at: DateTime<Utc>,
    /// What kind, e.g. `wave.failed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: DecisionKind,
    /// The state after the decision.
    pub state: RolloutState,
    /// The wave concerned.
    pub wave: Option<String>,
    /// Who, for operator commands.
    pub actor: Option<String>,
    /// The reason, with the numbers.
    pub reason: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}
