//! patchwave's pure rollout engine: `state + input + now -> new state + effects`.
//!
//! This crate decides; it never acts. It has no I/O, no clock, no async and no randomness:
//! everything it knows arrives as arguments, so a whole rollout can be replayed in a unit
//! test. The shell in `handlers/` loads a [`Rollout`], calls [`Rollout::step`], stores the
//! result together with the [`Effect`]s (an outbox) and then carries the effects out.

#![warn(missing_docs)]

mod effect;
mod engine;
mod input;
mod judge;
mod plan;
mod state;
mod update_id;
mod window;

pub use effect::{deployment_id, Effect, EffectKind, MAX_DEPLOYMENT_ID_CHARS};
pub use engine::{PollTarget, Rejected};
pub use input::{
    Command, CommandAction, DeviceReport, Input, MaintenanceRun, PatchOutcome, PolledDevice,
};
pub use judge::{judge, percent, Verdict};
pub use plan::{
    InfrastructureFailure, InfrastructurePlan, RollbackPolicy, RolloutPlan, WaveFailure, WavePlan,
};
pub use state::{
    Counts, Decision, DeviceRecord, InfrastructureProgress, Installed, Outcome, PauseCause,
    PauseRecord, RollbackGroup, RollbackProgress, Rollout, RolloutState, WaveProgress, WaveStatus,
    ROLLBACK_DEPLOYMENT,
};
pub use update_id::{UpdateId, UpdateIdError};
pub use window::Window;

/// Classifies a device report against a target update (exposed for the shell's views).
pub use engine::{classify, effective_outcome};
