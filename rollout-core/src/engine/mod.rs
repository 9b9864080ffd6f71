//! The engine: `Rollout::create` and `Rollout::step` fold inputs into state and effects.
//!
//! `step` takes the rollout by `&mut` so that one device report costs the same for 100 or
//! 1,000,000 devices: nothing per-device is cloned or scanned per input. A rejected command
//! leaves the rollout untouched. After every input, time-driven rules (soak, timeouts,
//! windows) are re-judged until nothing changes, so a `Tick` is just "judge now".

mod commands;
mod devices;
pub use devices::{classify, effective_outcome};
mod infrastructure;
mod reconcile;
pub use reconcile::PollTarget;
mod rollback;
mod waves;

use crate::effect::{Effect, EffectKind};
use crate::input::Input;
use crate::plan::RolloutPlan;
use crate::state::{
    Decision, InfrastructureProgress, Rollout, RolloutState, WaveProgress, WaveStatus,
};
use chrono::{DateTime, Utc};

/// An input the rollout refuses (an operator command invalid in the current state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// Most transitions one input can cause (each wave start, pass, failure is one).
const MAX_TRANSITIONS_PER_STEP: usize = 64;

impl Rollout {
    /// Creates a rollout from a valid plan and takes its first steps.
    pub fn create(
        id: &str,
        plan: RolloutPlan,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<(Rollout, Vec<Effect>), Vec<String>> {
        plan.validate()?;
        let waves = plan.waves.iter().map(|_| WaveProgress::new()).collect();
        let mut rollout = Rollout {
            id: id.to_string(),
            created_by: created_by.to_string(),
            created_at: now,
            now,
            state: RolloutState::Pending,
            current_wave: 0,
            infrastructure: InfrastructureProgress::default(),
            waves,
            pause: None,
            rollback: None,
            devices: Default::default(),
            decisions: Vec::new(),
            decision_count: 0,
            outstanding: Default::default(),
            applied: Default::default(),
            ignored_reports: 0,
            reconciling: Default::default(),
            plan,
        };
        let mut effects = Vec::new();
        let reason = format!(
            "rollout {}: {} to {} wave(s), rollback to {}",
            rollout.plan.name,
            rollout.plan.update,
            rollout.plan.waves.len(),
            rollout.plan.rollback_update
        );
        rollout.decide(
            &mut effects,
            "rollout.created",
            None,
            Some(created_by),
            reason,
        );
        rollout.advance(&mut effects);
        Ok((rollout, effects))
    }

    /// Folds one input at time `now` (an earlier time than seen before counts as the latest).
    pub fn step(&mut self, input: &Input, now: DateTime<Utc>) -> Result<Vec<Effect>, Rejected> {
        let now = now.max(self.now);
        if self.state.is_terminal() {
            return match input {
                Input::Operator(command) => Err(Rejected(format!(
                    "rollout {} is {:?}: {:?} is not possible",
                    self.id, self.state, command.action
                ))),
                // a late report still tells where the device is (compliance); nothing is
                // judged again
                Input::DeviceReport(report) => {
                    self.on_device_report(report, now);
                    Ok(Vec::new())
                }
                _ => Ok(Vec::new()),
            };
        }
        if let Input::Operator(command) = input {
            if !self.applied.contains(&command_key(&command.id)) {
                self.check_command(command)?;
            }
        }
        self.now = now;
        let mut effects = Vec::new();
        match input {
            Input::Tick => {}
            Input::MaintenanceStarting(run) => self.on_maintenance_starting(run, &mut effects),
            Input::MaintenanceFinished { run, outcome } => {
                self.on_maintenance_finished(run, *outcome, &mut effects)
            }
            Input::MachinePatched {
                machine,
                outcome,
                detail,
            } => self.on_machine_patched(machine, *outcome, detail, &mut effects),
            Input::GroupMembers {
                wave,
                devices,
                page,
                last,
            } => self.on_group_members(*wave, devices, (*page, *last), &mut effects),
            Input::DeviceReport(report) => self.on_device_report(report, now),
            Input::DeploymentStates {
                deployment_id,
                devices,
                last,
            } => self.on_deployment_states(deployment_id, devices, *last, &mut effects),
            Input::DeploymentFailed {
                deployment_id,
                error,
            } => self.on_deployment_failed(deployment_id, error, &mut effects),
            Input::Operator(command) => self.apply_command(command, &mut effects),
            Input::EffectSucceeded { effect_id } => {
                self.outstanding.remove(effect_id);
            }
            Input::EffectFailed { effect_id, error } => {
                self.on_effect_failed(effect_id, error, &mut effects)
            }
        }
        self.advance(&mut effects);
        Ok(effects)
    }

    /// Re-judges until no rule fires.
    fn advance(&mut self, effects: &mut Vec<Effect>) {
        for _ in 0..MAX_TRANSITIONS_PER_STEP {
            let changed = match self.state {
                RolloutState::Pending | RolloutState::PatchingInfrastructure => {
                    self.advance_gate(effects)
                }
                RolloutState::Deploying | RolloutState::Soaking => self.advance_wave(effects),
                RolloutState::Paused => self.guard_paused_wave(effects),
                RolloutState::RollingBack => self.advance_rollback(effects),
                _ => false,
            };
            if !changed {
                return;
            }
        }
    }

    /// Records a decision and publishes it as a lifecycle event.
    fn decide(
        &mut self,
        effects: &mut Vec<Effect>,
        kind: &str,
        wave: Option<usize>,
        actor: Option<&str>,
        reason: String,
    ) {
        let index = self.decision_count;
        self.decision_count += 1;
        self.decisions.push(Decision {
            at: self.now,
            kind: kind.to_string(),
            state: self.state,
            wave: wave
                .and_then(|w| self.plan.waves.get(w))
                .map(|w| w.name.clone()),
            actor: actor.map(str::to_string),
            reason: reason.clone(),
        });
        // Lifecycle events are fire-and-forget: nothing waits for them to be reported back.
        effects.push(Effect {
            id: format!("{}:event:{index}", self.id),
            kind: EffectKind::PublishEvent {
                event_type: format!("patchwave.{kind}"),
                summary: reason,
            },
        });
    }

    /// Issues an effect and remembers it until it is reported back.
    fn emit(&mut self, effects: &mut Vec<Effect>, id: String, kind: EffectKind) {
        self.outstanding.insert(id.clone(), kind.clone());
        effects.push(Effect { id, kind });
    }

    /// Whether a forward wave is mid-deployment (devices at risk).
    fn devices_at_risk(&self) -> bool {
        let state = match (&self.state, &self.pause) {
            (RolloutState::Paused, Some(pause)) => pause.from,
            (state, _) => *state,
        };
        matches!(
            state,
            RolloutState::Deploying | RolloutState::Soaking | RolloutState::RollingBack
        )
    }

    /// Counts of every wave, for status views.
    pub fn wave_statuses(&self) -> impl Iterator<Item = (&str, WaveStatus, crate::state::Counts)> {
        self.plan
            .waves
            .iter()
            .zip(&self.waves)
            .map(|(plan, progress)| (plan.name.as_str(), progress.status, progress.counts))
    }
}

fn command_key(id: &str) -> String {
    format!("command:{id}")
}

impl WaveProgress {
    fn new() -> Self {
        WaveProgress {
            status: WaveStatus::Waiting,
            attempt: 0,
            deployment_id: None,
            started_at: None,
            deployed_at: None,
            members_known: false,
            member_pages: 0,
            members_left_out: 0,
            timeouts_applied: false,
            threshold_met_at: None,
            counts: Default::default(),
            approved_by: None,
            waiting_for_window: false,
        }
    }
}
