//! Running the outbox: execute pending effects in order, feed their results back to the
//! engine, then mark them done. At-least-once: effects are idempotent by their ids.

use super::{RolloutService, ServiceError};
use crate::ports::EffectOutcome;
use crate::store::PendingEffect;
use rollout_core::{DeviceId, Effect, EffectId, EffectKind, Input, Rollout};

/// Rounds of "run pending, which may add more" per call.
const MAX_ROUNDS: usize = 16;

/// What running one pending effect left the rollout's outbox with.
enum Ran {
    /// Carried out (or given up on) and marked done.
    Done,
    /// Left where it is: it is in progress or will be retried, and later effects may depend
    /// on it, so the rest wait too.
    Wait,
}

impl RolloutService {
    /// Runs the pending effects of one rollout until none is left or one must wait.
    /// Returns how many were carried out.
    pub async fn run_effects(&self, rollout_id: &str) -> Result<usize, ServiceError> {
        let mut executed = 0;
        for _ in 0..MAX_ROUNDS {
            let pending = self.store.pending_effects(Some(rollout_id)).await?;
            if pending.is_empty() {
                break;
            }
            let rollout = self.get(rollout_id).await?;
            // lifecycle events go after the round's other effects (in their own order, and
            // before any effect that must wait): a slow or failing event sink never holds a
            // cancel or a rollback, and no event waits on a long-running effect decided later
            let mut events = Vec::new();
            let mut waiting = false;
            for item in pending {
                if matches!(item.effect.kind, EffectKind::PublishEvent { .. }) {
                    events.push(item);
                    continue;
                }
                match self.run_effect(&rollout, item).await? {
                    Ran::Done => executed += 1,
                    Ran::Wait => {
                        waiting = true;
                        break;
                    }
                }
            }
            for item in events {
                match self.run_effect(&rollout, item).await? {
                    Ran::Done => executed += 1,
                    Ran::Wait => return Ok(executed),
                }
            }
            if waiting {
                return Ok(executed);
            }
        }
        Ok(executed)
    }

    /// Runs one pending effect, feeds its outcome back to the engine and marks it done; an
    /// effect that failed after its retries is also kept as a dead letter.
    async fn run_effect(
        &self,
        rollout: &Rollout,
        item: PendingEffect,
    ) -> Result<Ran, ServiceError> {
        let rollout_id = rollout.id().as_str();
        let effect = item.effect;
        let outcome = self
            .execute_paged(rollout, &effect, item.checkpoint)
            .await?;
        let inputs = match outcome {
            EffectOutcome::InProgress { checkpoint, note } => {
                tracing::info!(rollout = rollout_id, effect = %effect.id, "{note}");
                let id = effect.id.as_str();
                self.store
                    .checkpoint_effect(rollout_id, id, &checkpoint)
                    .await?;
                return Ok(Ran::Wait);
            }
            EffectOutcome::Failed { error, .. }
                if matches!(effect.kind, EffectKind::PublishEvent { .. }) =>
            {
                // a lost lifecycle event must not hold the rollout
                tracing::warn!(rollout = rollout_id, effect = %effect.id, error = %error, "lifecycle event not published");
                Vec::new()
            }
            EffectOutcome::Failed {
                error,
                retryable: true,
            } => {
                tracing::warn!(rollout = rollout_id, effect = %effect.id, error = %error, "effect deferred; will retry");
                self.metrics.effects_deferred.add(1);
                return Ok(Ran::Wait);
            }
            outcome => results_as_inputs(&effect.id, &effect.kind, outcome),
        };
        if let Some(Input::EffectFailed { error, .. }) = inputs.first() {
            let raw = serde_json::to_string(&effect).unwrap_or_default();
            let reason = format!("effect failed after retries: {error}");
            self.dead_letter("effects", rollout_id, &reason, &raw)
                .await?;
        }
        if !inputs.is_empty() {
            match self.apply(rollout_id, &inputs).await {
                Ok(_) | Err(ServiceError::Rejected(_)) => {}
                Err(other) => return Err(other),
            }
        }
        self.store
            .complete_effect(rollout_id, effect.id.as_str())
            .await?;
        self.metrics.effects_executed.add(1);
        Ok(Ran::Done)
    }

    /// Executes an effect; while it answers with pages that have more behind them, applies
    /// each page and stores the checkpoint of the next, so a crash resumes from there. The
    /// last page (or any other outcome) is returned.
    async fn execute_paged(
        &self,
        rollout: &Rollout,
        effect: &Effect,
        mut checkpoint: Option<String>,
    ) -> Result<EffectOutcome, ServiceError> {
        let mut previous: Option<u32> = None;
        loop {
            let outcome = self
                .executor
                .execute(rollout, effect, checkpoint.as_deref())
                .await;
            let (wave, devices, page, resume) = match (&effect.kind, outcome) {
                (
                    EffectKind::FetchGroupMembers { wave, .. },
                    EffectOutcome::MembersPage {
                        devices,
                        page,
                        resume: Some(resume),
                    },
                ) => (wave, devices, page, resume),
                (_, outcome) => return Ok(outcome),
            };
            if previous.is_some_and(|before| page <= before) {
                return Ok(EffectOutcome::Failed {
                    error: format!("group lookup went back to page {page}; trying again later"),
                    retryable: true,
                });
            }
            previous = Some(page);
            let input = Input::GroupMembers {
                wave: *wave,
                devices: devices.into_iter().map(DeviceId::from).collect(),
                page,
                last: false,
            };
            match self.apply(rollout.id().as_str(), &[input]).await {
                Ok(_) | Err(ServiceError::Rejected(_)) => {}
                Err(other) => return Err(other),
            }
            self.store
                .checkpoint_effect(rollout.id().as_str(), effect.id.as_str(), &resume)
                .await?;
            checkpoint = Some(resume);
        }
    }

    /// Runs the pending effects of every rollout (the timer's sweep).
    pub async fn run_all_effects(&self) -> Result<usize, ServiceError> {
        let mut rollouts: Vec<String> = self
            .store
            .pending_effects(None)
            .await?
            .into_iter()
            .map(|p| p.rollout)
            .collect();
        rollouts.dedup();
        let mut executed = 0;
        for rollout in rollouts {
            executed += self.run_effects(&rollout).await?;
        }
        Ok(executed)
    }
}

/// The engine inputs that report an effect's outcome back.
fn results_as_inputs(
    effect_id: &EffectId,
    kind: &EffectKind,
    outcome: EffectOutcome,
) -> Vec<Input> {
    let succeeded = Input::EffectSucceeded {
        effect_id: effect_id.clone(),
    };
    match (kind, outcome) {
        (EffectKind::PublishEvent { .. }, _) => Vec::new(),
        (
            EffectKind::FetchGroupMembers { wave, .. },
            EffectOutcome::MembersPage { devices, page, .. },
        ) => {
            vec![
                Input::GroupMembers {
                    wave: *wave,
                    devices: devices.into_iter().map(DeviceId::from).collect(),
                    page,
                    last: true,
                },
                succeeded,
            ]
        }
        (EffectKind::InstallPatches { machine }, EffectOutcome::Patched { outcome, detail }) => {
            vec![
                Input::MachinePatched {
                    machine: machine.clone(),
                    outcome,
                    detail,
                },
                succeeded,
            ]
        }
        (_, EffectOutcome::Failed { error, .. }) => vec![Input::EffectFailed {
            effect_id: effect_id.clone(),
            error,
        }],
        (_, _) => vec![succeeded],
    }
}
