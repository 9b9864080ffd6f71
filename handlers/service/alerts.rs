//! Azure Monitor alerts (`POST /api/alerts`): one alert is offered to every rollout that is
//! not finished, each in its own load-step-commit; the engine decides what it does to each.

use super::{RolloutService, ServiceError};
use rollout_core::{AlertInput, DecisionKind, EffectKind, Input, RolloutId};
use serde::Serialize;

/// What an alert did to one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertAction {
    /// The rollout names the rule and a wave was deploying or soaking: the wave failed (its
    /// `onFailure` paused the rollout or opened a rollback).
    WaveFailed,
    /// Recorded in the rollout's audit trail only.
    Recorded,
    /// Nothing changed (the same delivery was applied before).
    Ignored,
}

impl RolloutService {
    /// Steps every rollout that is not in a final state with `alert` and runs the effects
    /// that produced; returns what it did to each, newest rollout first. A rollout gone
    /// between the listing and its step is left out.
    pub async fn alert(
        &self,
        alert: &AlertInput,
    ) -> Result<Vec<(RolloutId, AlertAction)>, ServiceError> {
        let active: Vec<RolloutId> = self
            .store
            .list_rollouts()
            .await?
            .into_iter()
            .filter(|rollout| !rollout.state().is_terminal())
            .map(|rollout| rollout.id().clone())
            .collect();
        let input = [Input::Alert(alert.clone())];
        let mut affected = Vec::with_capacity(active.len());
        for id in active {
            let applied = match self.apply(id.as_str(), &input).await {
                Ok(applied) => applied,
                Err(ServiceError::NotFound(_)) => continue,
                Err(error) => return Err(error),
            };
            let action = action_of(&applied.effects);
            if !applied.effects.is_empty() {
                self.run_effects(id.as_str()).await?;
            }
            affected.push((id, action));
        }
        Ok(affected)
    }
}

/// What a step did, read from the lifecycle events of its decisions: an alert recorded, a
/// wave failed, or nothing.
fn action_of(effects: &[rollout_core::Effect]) -> AlertAction {
    let published = |kind: DecisionKind| {
        let event_type = kind.event_type();
        effects.iter().any(|effect| {
            matches!(&effect.kind, EffectKind::PublishEvent { event_type: t, .. } if *t == event_type)
        })
    };
    if published(DecisionKind::AlertRecorded) {
        AlertAction::Recorded
    } else if published(DecisionKind::WaveFailed) {
        AlertAction::WaveFailed
    } else {
        AlertAction::Ignored
    }
}
