//! The engine: `Rollout::create` and `Rollout::step` fold inputs into state and effects.
//!
//! `step` takes the rollout by `&mut` and only the device records the input names (a
//! [`WorkingSet`]), so that one device report costs the same for 100 or 1,000,000 devices:
//! nothing per-device is cloned or scanned per input. A rejected command leaves the rollout
//! untouched. After every input, time-driven rules (soak, timeouts,
//! windows) are re-judged until nothing changes, so a `Tick` is just "judge now".

mod alerts;
mod commands;
mod devices;
pub use devices::{classify, effective_outcome};
mod health;
mod infrastructure;
mod reconcile;
pub use reconcile::PollTarget;
mod rollback;
mod waves;

use crate::decision_kind::DecisionKind;
use crate::effect::{Effect, EffectKind};
use crate::ids::{EffectId, RolloutId};
use crate::input::Input;
use crate::plan::RolloutPlan;
use crate::rollout::Rollout;
use crate::state::{Decision, InfrastructureProgress, RolloutState, WaveProgress, WaveStatus};
use crate::step::{Step, WorkingSet};
use chrono::{DateTime, Utc};

/// An input the rollout refuses (an operator command invalid in the current state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// Most transitions one input can cause (each wave start, pass, failure is one).
const MAX_TRANSITIONS_PER_STEP: usize = 64;

impl Rollout {
    /// Creates a rollout from a valid plan and takes its first steps (the shell makes the
    /// id: the engine has no randomness).
    pub fn create(
        id: RolloutId,
        plan: RolloutPlan,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<(Rollout, Step), Vec<String>> {
        plan.validate()?;
        let waves = plan.waves.iter().map(|_| WaveProgress::new()).collect();
        let mut rollout = Rollout {
            id,
            created_by: created_by.to_string(),
            created_at: now,
            now,
            state: RolloutState::Pending,
            current_wave: 0,
            infrastructure: InfrastructureProgress::default(),
            waves,
            pause: None,
            rollback: None,
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
        let created = DecisionKind::RolloutCreated;
        rollout.decide(&mut effects, created, None, Some(created_by), reason);
        rollout.advance(&mut effects);
        let decisions = rollout.take_decisions();
        Ok((rollout, Step { effects, decisions }))
    }

    /// Folds one input at time `now` (an earlier time than seen before counts as the
    /// latest). `devices` holds the records of the devices the input names, as loaded by the
    /// shell; the step changes them there and adds new members, and the shell stores what
    /// [`WorkingSet::into_changes`] lists. A refused input changes nothing.
    pub fn step<V>(
        &mut self,
        devices: &mut WorkingSet<V>,
        input: &Input,
        now: DateTime<Utc>,
    ) -> Result<Step, Rejected> {
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
                    self.on_device_report(devices, report, now);
                    Ok(Step::default())
                }
                _ => Ok(Step::default()),
            };
        }
        if let Input::Operator(command) = input {
            if !self.applied.contains(&command_key(&command.id)) {
                self.check_command(command)?;
            }
        }
        self.now = now;
        let mut effects = Vec::new();
        self.dispatch(devices, input, &mut effects);
        self.advance(&mut effects);
        let decisions = self.take_decisions();
        Ok(Step { effects, decisions })
    }

    /// Applies one input's own rule (the time-driven rules follow in `advance`).
    fn dispatch<V>(
        &mut self,
        devices: &mut WorkingSet<V>,
        input: &Input,
        effects: &mut Vec<Effect>,
    ) {
        match input {
            Input::Tick => {}
            Input::MaintenanceStarting(run) => self.on_maintenance_starting(run, effects),
            Input::MaintenanceFinished { run, outcome } => {
                self.on_maintenance_finished(run, *outcome, effects)
            }
            Input::MachinePatched {
                machine,
                outcome,
                detail,
            } => self.on_machine_patched(machine, *outcome, detail, effects),
            Input::GroupMembers {
                wave,
                devices: members,
                page,
                last,
            } => self.on_group_members(devices, *wave, members, (*page, *last), effects),
            Input::DeviceReport(report) => {
                let now = self.now;
                self.on_device_report(devices, report, now)
            }
            Input::DeviceConnection(report) => self.on_device_connection(devices, report),
            Input::DeploymentStates {
                deployment_id,
                devices: polled,
                last,
            } => self.on_deployment_states(devices, deployment_id, polled, *last, effects),
            Input::DeploymentFailed {
                deployment_id,
                error,
            } => self.on_deployment_failed(deployment_id, error, effects),
            Input::Operator(command) => self.apply_command(command, effects),
            Input::EffectSucceeded { effect_id } => {
                self.outstanding.remove(effect_id);
            }
            Input::EffectFailed { effect_id, error } => {
                self.on_effect_failed(effect_id, error, effects)
            }
            Input::Alert(alert) => self.on_alert(alert, effects),
        }
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
        kind: DecisionKind,
        wave: Option<usize>,
        actor: Option<&str>,
        reason: String,
    ) {
        let index = self.decision_count;
        self.decision_count += 1;
        self.decisions.push(Decision {
            at: self.now,
            kind,
            state: self.state,
            wave: wave
                .and_then(|w| self.wave(w))
                .map(|(plan, _)| plan.name.clone()),
            actor: actor.map(str::to_string),
            reason: reason.clone(),
        });
        // Lifecycle events are fire-and-forget: nothing waits for them to be reported back.
        effects.push(Effect {
            id: EffectId::event(&self.id, index),
            kind: EffectKind::PublishEvent {
                event_type: kind.event_type(),
                summary: reason,
            },
        });
    }

    /// Issues an effect and remembers it until it is reported back.
    fn emit(&mut self, effects: &mut Vec<Effect>, id: EffectId, kind: EffectKind) {
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
        self.waves()
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
            health: None,
        }
    }
}
