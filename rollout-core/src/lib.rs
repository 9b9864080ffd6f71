//! patchwave's pure rollout engine: `state + input + now -> new state + effects`.
//!
//! This crate decides; it never acts. It has no I/O, no clock, no async and no randomness:
//! everything it knows arrives as arguments, so a whole rollout can be replayed in a unit
//! test. The shell in `handlers/` loads a [`Rollout`], hands the device records an input
//! names to [`Rollout::step`] in a [`WorkingSet`], stores what the [`Step`] returns (the
//! [`Effect`]s as an outbox, the decisions as the audit log) with the changed records, and
//! then carries the effects out.

#![warn(missing_docs)]

mod alert_rules;
mod connection;
mod decision_kind;
mod effect;
mod engine;
mod ids;
mod input;
mod judge;
mod plan;
mod rollout;
mod state;
mod step;
mod update_id;
mod window;

pub use alert_rules::{MAX_ALERT_RULES, MAX_ALERT_RULE_CHARS};
pub use connection::{ConnectionReport, ConnectionSequence};
pub use decision_kind::DecisionKind;
pub use effect::{Effect, EffectKind};
pub use engine::{PollTarget, Rejected};
pub use ids::{DeploymentId, DeviceId, EffectId, GroupId, RolloutId, MAX_DEPLOYMENT_ID_CHARS};
pub use input::{
    AlertInput, Command, CommandAction, DeviceReport, Input, MaintenanceRun, PatchOutcome,
    PolledDevice,
};
pub use judge::{judge, percent, Verdict};
pub use plan::{
    HealthGate, InfrastructureFailure, InfrastructurePlan, RollbackPolicy, RolloutPlan,
    WaveFailure, WavePlan,
};
pub use rollout::{LoadError, Rollout};
pub use state::{
    ConnectionState, Counts, Decision, DeviceRecord, Disconnection, HealthWatch,
    InfrastructureProgress, Installed, Outcome, PauseCause, PauseRecord, RollbackGroup,
    RollbackProgress, RolloutState, WaveProgress, WaveStatus, ROLLBACK_DEPLOYMENT,
};
pub use step::{DeviceChange, Step, WorkingSet};
pub use update_id::{UpdateId, UpdateIdError};
pub use window::Window;

/// Classifies a device report against a target update (exposed for the shell's views).
pub use engine::{classify, effective_outcome};
