//! The kinds of decision the engine records, and the lifecycle event type each is published as.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a [`crate::Decision`] decided. Stored and served by its name (`wave.failed`);
/// published as the event type [`DecisionKind::event_type`] makes (`patchwave.wave.failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DecisionKind {
    /// An alert was recorded without failing a wave (resolved, not a rule the plan names, or
    /// no wave deploying or soaking).
    #[serde(rename = "alert.recorded")]
    AlertRecorded,
    /// An effect gave up after the shell's retries.
    #[serde(rename = "effect.failed")]
    EffectFailed,
    /// Host patch runs failed and the plan blocks the devices.
    #[serde(rename = "infrastructure.failed")]
    InfrastructureFailed,
    /// A maintenance run is cancelled because devices are deploying.
    #[serde(rename = "infrastructure.hold")]
    InfrastructureHold,
    /// A maintenance run starts while devices deploy, past its cut-off.
    #[serde(rename = "infrastructure.hold_too_late")]
    InfrastructureHoldTooLate,
    /// `installPatches` on a machine finished (or failed).
    #[serde(rename = "infrastructure.machine_patched")]
    InfrastructureMachinePatched,
    /// Every host patch run succeeded.
    #[serde(rename = "infrastructure.passed")]
    InfrastructurePassed,
    /// A maintenance run finished.
    #[serde(rename = "infrastructure.run_finished")]
    InfrastructureRunFinished,
    /// A maintenance run is starting.
    #[serde(rename = "infrastructure.run_starting")]
    InfrastructureRunStarting,
    /// Host patching started.
    #[serde(rename = "infrastructure.started")]
    InfrastructureStarted,
    /// Host patch runs failed and the plan warns and goes on.
    #[serde(rename = "infrastructure.warned")]
    InfrastructureWarned,
    /// The rollback failed.
    #[serde(rename = "rollback.failed")]
    RollbackFailed,
    /// Every touched group is back.
    #[serde(rename = "rollback.finished")]
    RollbackFinished,
    /// One touched group is back.
    #[serde(rename = "rollback.group_done")]
    RollbackGroupDone,
    /// A rollback opened.
    #[serde(rename = "rollback.opened")]
    RollbackOpened,
    /// Polled outcomes filled in a rollback group's missing reports.
    #[serde(rename = "rollback.reconciled")]
    RollbackReconciled,
    /// Devices of a rollback group timed out.
    #[serde(rename = "rollback.timeouts")]
    RollbackTimeouts,
    /// An operator cancelled the rollout.
    #[serde(rename = "rollout.cancelled")]
    RolloutCancelled,
    /// Every wave passed or was accepted.
    #[serde(rename = "rollout.completed")]
    RolloutCompleted,
    /// The rollout was created.
    #[serde(rename = "rollout.created")]
    RolloutCreated,
    /// An operator paused the rollout.
    #[serde(rename = "rollout.paused")]
    RolloutPaused,
    /// An operator resumed the rollout.
    #[serde(rename = "rollout.resumed")]
    RolloutResumed,
    /// An operator approved a wave.
    #[serde(rename = "wave.approved")]
    WaveApproved,
    /// A wave waits for an operator's approval.
    #[serde(rename = "wave.awaiting_approval")]
    WaveAwaitingApproval,
    /// A wave's group lookup or deployment could not be done; paused.
    #[serde(rename = "wave.blocked")]
    WaveBlocked,
    /// A wave failed its thresholds (or Device Update failed it).
    #[serde(rename = "wave.failed")]
    WaveFailed,
    /// A wave's group members are known; deploying.
    #[serde(rename = "wave.members")]
    WaveMembers,
    /// A wave passed its thresholds and soak.
    #[serde(rename = "wave.passed")]
    WavePassed,
    /// Polled outcomes filled in a wave's missing reports.
    #[serde(rename = "wave.reconciled")]
    WaveReconciled,
    /// A wave started.
    #[serde(rename = "wave.started")]
    WaveStarted,
    /// A soaking wave fell below its success threshold.
    #[serde(rename = "wave.threshold_lost")]
    WaveThresholdLost,
    /// A wave met its success threshold; soaking.
    #[serde(rename = "wave.threshold_met")]
    WaveThresholdMet,
    /// Devices of a wave timed out.
    #[serde(rename = "wave.timeouts")]
    WaveTimeouts,
    /// Devices of a health-gated wave were disconnected too long after they installed.
    #[serde(rename = "wave.unhealthy")]
    WaveUnhealthy,
    /// A wave waits for the maintenance window.
    #[serde(rename = "wave.waiting_for_window")]
    WaveWaitingForWindow,
}

/// Every lifecycle event type starts with this.
const EVENT_TYPE_PREFIX: &str = "patchwave.";

impl DecisionKind {
    /// Every kind, in the order declared.
    pub const ALL: [DecisionKind; 35] = [
        DecisionKind::AlertRecorded,
        DecisionKind::EffectFailed,
        DecisionKind::InfrastructureFailed,
        DecisionKind::InfrastructureHold,
        DecisionKind::InfrastructureHoldTooLate,
        DecisionKind::InfrastructureMachinePatched,
        DecisionKind::InfrastructurePassed,
        DecisionKind::InfrastructureRunFinished,
        DecisionKind::InfrastructureRunStarting,
        DecisionKind::InfrastructureStarted,
        DecisionKind::InfrastructureWarned,
        DecisionKind::RollbackFailed,
        DecisionKind::RollbackFinished,
        DecisionKind::RollbackGroupDone,
        DecisionKind::RollbackOpened,
        DecisionKind::RollbackReconciled,
        DecisionKind::RollbackTimeouts,
        DecisionKind::RolloutCancelled,
        DecisionKind::RolloutCompleted,
        DecisionKind::RolloutCreated,
        DecisionKind::RolloutPaused,
        DecisionKind::RolloutResumed,
        DecisionKind::WaveApproved,
        DecisionKind::WaveAwaitingApproval,
        DecisionKind::WaveBlocked,
        DecisionKind::WaveFailed,
        DecisionKind::WaveMembers,
        DecisionKind::WavePassed,
        DecisionKind::WaveReconciled,
        DecisionKind::WaveStarted,
        DecisionKind::WaveThresholdLost,
        DecisionKind::WaveThresholdMet,
        DecisionKind::WaveTimeouts,
        DecisionKind::WaveUnhealthy,
        DecisionKind::WaveWaitingForWindow,
    ];

    /// The name stored and served, e.g. `wave.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::AlertRecorded => "alert.recorded",
            DecisionKind::EffectFailed => "effect.failed",
            DecisionKind::InfrastructureFailed => "infrastructure.failed",
            DecisionKind::InfrastructureHold => "infrastructure.hold",
            DecisionKind::InfrastructureHoldTooLate => "infrastructure.hold_too_late",
            DecisionKind::InfrastructureMachinePatched => "infrastructure.machine_patched",
            DecisionKind::InfrastructurePassed => "infrastructure.passed",
            DecisionKind::InfrastructureRunFinished => "infrastructure.run_finished",
            DecisionKind::InfrastructureRunStarting => "infrastructure.run_starting",
            DecisionKind::InfrastructureStarted => "infrastructure.started",
            DecisionKind::InfrastructureWarned => "infrastructure.warned",
            DecisionKind::RollbackFailed => "rollback.failed",
            DecisionKind::RollbackFinished => "rollback.finished",
            DecisionKind::RollbackGroupDone => "rollback.group_done",
            DecisionKind::RollbackOpened => "rollback.opened",
            DecisionKind::RollbackReconciled => "rollback.reconciled",
            DecisionKind::RollbackTimeouts => "rollback.timeouts",
            DecisionKind::RolloutCancelled => "rollout.cancelled",
            DecisionKind::RolloutCompleted => "rollout.completed",
            DecisionKind::RolloutCreated => "rollout.created",
            DecisionKind::RolloutPaused => "rollout.paused",
            DecisionKind::RolloutResumed => "rollout.resumed",
            DecisionKind::WaveApproved => "wave.approved",
            DecisionKind::WaveAwaitingApproval => "wave.awaiting_approval",
            DecisionKind::WaveBlocked => "wave.blocked",
            DecisionKind::WaveFailed => "wave.failed",
            DecisionKind::WaveMembers => "wave.members",
            DecisionKind::WavePassed => "wave.passed",
            DecisionKind::WaveReconciled => "wave.reconciled",
            DecisionKind::WaveStarted => "wave.started",
            DecisionKind::WaveThresholdLost => "wave.threshold_lost",
            DecisionKind::WaveThresholdMet => "wave.threshold_met",
            DecisionKind::WaveTimeouts => "wave.timeouts",
            DecisionKind::WaveUnhealthy => "wave.unhealthy",
            DecisionKind::WaveWaitingForWindow => "wave.waiting_for_window",
        }
    }

    /// The lifecycle event type, e.g. `patchwave.wave.failed`: the one place the prefix is
    /// added.
    pub fn event_type(self) -> String {
        format!("{EVENT_TYPE_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for DecisionKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for DecisionKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_name_is_the_serde_name_and_the_event_type_adds_the_prefix() {
        for kind in DecisionKind::ALL {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: DecisionKind = serde_json::from_str(&json).expect("json");
            assert_eq!(back, kind);
            assert_eq!(kind.event_type(), format!("patchwave.{kind}"));
        }
        assert_eq!(
            DecisionKind::WaveFailed.event_type(),
            "patchwave.wave.failed"
        );
    }
}
