//! Operator commands: checked against the state first, so a refused command changes nothing.

use super::{command_key, Rejected};
use crate::decision_kind::DecisionKind;
use crate::effect::{Effect, EffectKind};
use crate::ids::{DeploymentId, EffectId, GroupId};
use crate::input::{Command, CommandAction};
use crate::rollout::Rollout;
use crate::state::{PauseCause, PauseRecord, RolloutState, WaveStatus};

impl Rollout {
    /// Why `command` cannot be applied now, if it cannot.
    pub(super) fn check_command(&self, command: &Command) -> Result<(), Rejected> {
        let state = self.state;
        let refuse = |why: String| Err(Rejected(format!("{:?} refused: {why}", command.action)));
        match command.action {
            CommandAction::Pause => match state {
                RolloutState::Pending
                | RolloutState::PatchingInfrastructure
                | RolloutState::Deploying
                | RolloutState::Soaking
                | RolloutState::AwaitingApproval => Ok(()),
                RolloutState::RollingBack => {
                    refuse("a rollback runs to its end; cancel it instead".into())
                }
                _ => refuse(format!("the rollout is {state:?}")),
            },
            CommandAction::Resume if state != RolloutState::Paused => {
                refuse(format!("the rollout is {state:?}, not Paused"))
            }
            CommandAction::Resume => Ok(()),
            CommandAction::Approve if state != RolloutState::AwaitingApproval => {
                refuse(format!("the rollout is {state:?}; nothing awaits approval"))
            }
            CommandAction::Approve
                if !self.plan.allow_self_approval && command.actor == self.created_by =>
            {
                refuse(format!(
                    "{} created this rollout and cannot approve it (separation of duties)",
                    command.actor
                ))
            }
            CommandAction::Approve => Ok(()),
            CommandAction::Cancel => Ok(()),
            CommandAction::Rollback if state == RolloutState::RollingBack => {
                refuse("a rollback is already running".into())
            }
            CommandAction::Rollback if self.waves.iter().all(|w| w.deployed_at.is_none()) => {
                refuse("nothing has been deployed yet; cancel instead".into())
            }
            CommandAction::Rollback => Ok(()),
        }
    }

    /// Applies a checked command (a redelivered one, by id, is a no-op).
    pub(super) fn apply_command(&mut self, command: &Command, effects: &mut Vec<Effect>) {
        if !self.applied.insert(command_key(&command.id)) {
            return;
        }
        let actor = Some(command.actor.as_str());
        let reason = &command.reason;
        match command.action {
            CommandAction::Pause => {
                self.pause = Some(PauseRecord {
                    from: self.state,
                    cause: PauseCause::Operator,
                });
                self.state = RolloutState::Paused;
                self.decide(
                    effects,
                    DecisionKind::RolloutPaused,
                    None,
                    actor,
                    format!("paused by {}: {reason}", command.actor),
                );
            }
            CommandAction::Resume => self.resume(command, effects),
            CommandAction::Approve => {
                let index = self.current_wave;
                self.waves[index].approved_by = Some(command.actor.clone());
                self.state = RolloutState::Pending;
                let text = format!(
                    "wave {}: approved by {}: {reason}",
                    self.wave_name(index),
                    command.actor
                );
                self.decide(
                    effects,
                    DecisionKind::WaveApproved,
                    Some(index),
                    actor,
                    text,
                );
            }
            CommandAction::Cancel => self.cancel(command, effects),
            CommandAction::Rollback => {
                let why = format!("requested by {}: {reason}", command.actor);
                self.open_rollback(why, actor, effects);
            }
        }
    }

    fn resume(&mut self, command: &Command, effects: &mut Vec<Effect>) {
        let Some(pause) = self.pause.take() else {
            return;
        };
        let index = self.current_wave;
        let (next, text) = self.lift_pause(&pause, command);
        self.state = next;
        self.decide(
            effects,
            DecisionKind::RolloutResumed,
            Some(index).filter(|i| *i < self.waves.len()),
            Some(&command.actor),
            text,
        );
        if self.state == RolloutState::Completed {
            let reason = format!(
                "rollout {}: every wave passed or was accepted",
                self.plan.name
            );
            self.decide(effects, DecisionKind::RolloutCompleted, None, None, reason);
        }
    }

    /// Undoes what the pause's cause holds back; returns the state to go on in and why.
    fn lift_pause(&mut self, pause: &PauseRecord, command: &Command) -> (RolloutState, String) {
        let (actor, reason) = (&command.actor, &command.reason);
        let index = self.current_wave;
        match pause.cause {
            PauseCause::Operator => (pause.from, format!("resumed by {actor}: {reason}")),
            PauseCause::WaveFailed => {
                self.waves[index].status = WaveStatus::Accepted;
                self.current_wave += 1;
                let next = if self.current_wave < self.waves.len() {
                    RolloutState::Pending
                } else {
                    RolloutState::Completed
                };
                let name = self.wave_name(index);
                let text = format!("wave {name} accepted despite its failure by {actor}: {reason}");
                (next, text)
            }
            PauseCause::InfrastructureFailed => {
                self.infrastructure.gate_open = true;
                let text = format!("failed infrastructure overridden by {actor}: {reason}");
                (RolloutState::Pending, text)
            }
            PauseCause::EffectFailed => {
                self.waves[index].status = WaveStatus::Waiting;
                let text = format!("resumed by {actor}: retrying the wave: {reason}");
                (RolloutState::Pending, text)
            }
        }
    }

    fn cancel(&mut self, command: &Command, effects: &mut Vec<Effect>) {
        let mut cancelled = self.cancel_running_waves(false, effects);
        if let Some(rollback) = &self.rollback {
            let pending: Vec<_> = rollback
                .groups
                .iter()
                .filter(|g| g.passed.is_none())
                .map(|g| (g.deployment_id.clone(), self.wave_group(g.wave)))
                .collect();
            for (id, group) in pending {
                self.emit_cancel(id.clone(), group, effects);
                cancelled.push(id);
            }
        }
        self.pause = None;
        self.state = RolloutState::Cancelled;
        let what = if cancelled.is_empty() {
            "no active deployment".to_string()
        } else {
            let ids: Vec<&str> = cancelled.iter().map(|id| id.as_str()).collect();
            format!("cancelling {}", ids.join(", "))
        };
        let text = format!(
            "cancelled by {}: {} ({what})",
            command.actor, command.reason
        );
        self.decide(
            effects,
            DecisionKind::RolloutCancelled,
            None,
            Some(&command.actor),
            text,
        );
    }

    /// Cancels the deployments of the waves deploying or soaking (and of a failed wave's,
    /// with `failed_too`), marks those waves cancelled and returns the deployments.
    pub(super) fn cancel_running_waves(
        &mut self,
        failed_too: bool,
        effects: &mut Vec<Effect>,
    ) -> Vec<DeploymentId> {
        let mut cancelled = Vec::new();
        for index in 0..self.waves.len() {
            let wave = &self.waves[index];
            let running = matches!(wave.status, WaveStatus::Deploying | WaveStatus::Soaking);
            let active = running || (failed_too && wave.status == WaveStatus::Failed);
            if let (true, Some(_), Some(id)) =
                (active, wave.deployed_at, wave.deployment_id.clone())
            {
                self.emit_cancel(id.clone(), self.wave_group(index), effects);
                cancelled.push(id);
            }
            if running {
                self.waves[index].status = WaveStatus::Cancelled;
            }
        }
        cancelled
    }

    /// Asks for a deployment to be cancelled.
    pub(super) fn emit_cancel(
        &mut self,
        deployment_id: DeploymentId,
        group: GroupId,
        effects: &mut Vec<Effect>,
    ) {
        let id = EffectId::cancel(&deployment_id);
        let kind = EffectKind::CancelDeployment {
            deployment_id,
            group,
        };
        self.emit(effects, id, kind);
    }
}
