//! Rollback: cancel what is active, deploy the rollback update to every touched group, and
//! follow those devices to the end.

use super::infrastructure::short_name;
use crate::decision_kind::DecisionKind;
use crate::effect::{Effect, EffectKind};
use crate::ids::{DeploymentId, EffectId};
use crate::judge::percent;
use crate::rollout::Rollout;
use crate::state::{Counts, RollbackGroup, RollbackProgress, RolloutState};
use chrono::Duration;

impl Rollout {
    /// Opens the rollback (automatic, or an operator's with `actor`): cancels what is
    /// active, then deploys the rollback update to every group a wave was deployed to.
    pub(super) fn open_rollback(
        &mut self,
        reason: String,
        actor: Option<&str>,
        effects: &mut Vec<Effect>,
    ) {
        self.pause = None;
        self.cancel_running_waves(true, effects);
        let groups = self.touched_groups();
        self.state = if groups.is_empty() {
            RolloutState::RolledBack
        } else {
            RolloutState::RollingBack
        };
        let touched: Vec<String> = groups
            .iter()
            .map(|g| self.wave_plan(g.wave).device_group.clone())
            .collect();
        for group in &groups {
            let kind = EffectKind::CreateRollbackDeployment {
                deployment_id: group.deployment_id.clone(),
                group: self.wave_group(group.wave),
                update: self.plan.rollback_update.clone(),
            };
            self.emit(effects, EffectId::create(&group.deployment_id), kind);
        }
        self.rollback = Some(RollbackProgress {
            started_at: self.now,
            reason: reason.clone(),
            groups,
        });
        let text = if touched.is_empty() {
            format!("rollback: nothing was deployed yet ({reason})")
        } else {
            format!(
                "rollback: deploying {} to group(s) {} ({reason})",
                self.plan.rollback_update,
                touched.join(", ")
            )
        };
        self.decide(effects, DecisionKind::RollbackOpened, None, actor, text);
    }

    /// A rollback group for every wave that was deployed, with its devices still to report.
    fn touched_groups(&self) -> Vec<RollbackGroup> {
        let deployed = self.waves.iter().enumerate();
        deployed
            .filter(|(_, wave)| wave.deployed_at.is_some())
            .map(|(index, wave)| RollbackGroup {
                wave: index,
                deployment_id: DeploymentId::for_rollback(&self.id, index),
                counts: Counts {
                    total: wave.counts.total,
                    ..Default::default()
                },
                timeouts_applied: false,
                passed: None,
            })
            .collect()
    }

    /// RollingBack: judge each group against the rollback's policy once all its devices
    /// finished; the rollout is rolled back when every group is, failed when one is not.
    pub(super) fn advance_rollback(&mut self, effects: &mut Vec<Effect>) -> bool {
        let Some(rollback) = &self.rollback else {
            return false;
        };
        let open: Vec<usize> = (0..rollback.groups.len())
            .filter(|g| rollback.groups[*g].passed.is_none())
            .collect();
        for position in open {
            if self.apply_rollback_timeouts(position, effects)
                || self.conclude_group(position, effects)
            {
                return true;
            }
        }
        let all_passed = self
            .rollback
            .as_ref()
            .is_some_and(|r| r.groups.iter().all(|g| g.passed == Some(true)));
        if all_passed {
            self.state = RolloutState::RolledBack;
            let groups = self
                .rollback
                .as_ref()
                .map(|r| r.groups.clone())
                .unwrap_or_default();
            let reason = format!("rollback finished: {}", self.rollback_summary(&groups));
            self.decide(effects, DecisionKind::RollbackFinished, None, None, reason);
            self.delete_superseded(effects);
            return true;
        }
        false
    }

    /// Judges one open group once its devices finished: back (a decision), or failed (the
    /// rollback fails). False while its devices still move.
    fn conclude_group(&mut self, position: usize, effects: &mut Vec<Effect>) -> bool {
        let Some(group) = self.rollback.as_ref().map(|r| r.groups[position].clone()) else {
            return false;
        };
        let Some(passed) = self.judge_rollback_group(&group) else {
            return false;
        };
        self.set_group_result(position, passed);
        let summary = self.rollback_summary(std::slice::from_ref(&group));
        let name = self.wave_name(group.wave).to_string();
        if passed {
            let reason = format!("wave {name} (rollback): {summary}");
            let done = DecisionKind::RollbackGroupDone;
            self.decide(effects, done, Some(group.wave), None, reason);
            return true;
        }
        self.state = RolloutState::Failed;
        let threshold = self.plan.rollback_policy().success_threshold_percent;
        let reason = format!(
            "rollback failed: wave {name}: {summary}, {:.1}% < {threshold}%",
            percent(group.counts.succeeded, group.counts.total)
        );
        let failed = DecisionKind::RollbackFailed;
        self.decide(effects, failed, Some(group.wave), None, reason);
        self.delete_superseded(effects);
        true
    }

    /// A group is judged once every device finished (timeouts count) or all are back:
    /// `Some(passed)` against the policy's success threshold, `None` while devices move.
    fn judge_rollback_group(&self, group: &RollbackGroup) -> Option<bool> {
        let counts = &group.counts;
        if counts.succeeded < counts.total && counts.finished() < counts.total {
            return None;
        }
        let threshold = self.plan.rollback_policy().success_threshold_percent;
        Some(counts.total == 0 || percent(counts.succeeded, counts.total) >= threshold)
    }

    /// "498 of 500 back on U; 2 timed out (listed in compliance)", summed over `groups`.
    fn rollback_summary(&self, groups: &[RollbackGroup]) -> String {
        let mut sum = Counts::default();
        for group in groups {
            sum.total += group.counts.total;
            sum.succeeded += group.counts.succeeded;
            sum.failed += group.counts.failed;
            sum.timed_out += group.counts.timed_out;
        }
        let mut text = format!(
            "{} of {} back on {}",
            sum.succeeded, sum.total, self.plan.rollback_update
        );
        let mut missing = Vec::new();
        if sum.failed > 0 {
            missing.push(format!("{} failed", sum.failed));
        }
        if sum.timed_out > 0 {
            missing.push(format!("{} timed out", sum.timed_out));
        }
        let open = sum.total.saturating_sub(sum.finished());
        if open > 0 {
            missing.push(format!("{open} still reporting"));
        }
        if !missing.is_empty() {
            text.push_str(&format!("; {} (listed in compliance)", missing.join(", ")));
        }
        text
    }

    fn set_group_result(&mut self, position: usize, passed: bool) {
        if let Some(rollback) = self.rollback.as_mut() {
            rollback.groups[position].passed = Some(passed);
        }
    }

    fn apply_rollback_timeouts(&mut self, position: usize, effects: &mut Vec<Effect>) -> bool {
        let Some(rollback) = self.rollback.as_mut() else {
            return false;
        };
        let group = &mut rollback.groups[position];
        let minutes = self.plan.rollback_policy().device_timeout_minutes;
        if group.timeouts_applied
            || self.now < rollback.started_at + Duration::minutes(i64::from(minutes))
        {
            return false;
        }
        let timed_out = group.counts.total.saturating_sub(group.counts.finished());
        group.counts.timed_out += timed_out;
        group.counts.in_progress = 0;
        group.timeouts_applied = true;
        let wave_index = group.wave;
        if timed_out > 0 {
            let reason = format!(
                "wave {} (rollback): {timed_out} device(s) did not finish within {minutes} minutes; counted as timed out",
                self.wave_name(wave_index)
            );
            self.decide(
                effects,
                DecisionKind::RollbackTimeouts,
                Some(wave_index),
                None,
                reason,
            );
        }
        true
    }

    /// Once a rollback ends, the forward deployments it superseded are deleted (Device
    /// Update keeps at most 100 deployments).
    fn delete_superseded(&mut self, effects: &mut Vec<Effect>) {
        let Some(rollback) = &self.rollback else {
            return;
        };
        let superseded: Vec<_> = rollback
            .groups
            .iter()
            .filter_map(|g| {
                let id = self.waves[g.wave].deployment_id.clone()?;
                Some((id, self.wave_group(g.wave)))
            })
            .collect();
        for (deployment_id, group) in superseded {
            let id = EffectId::delete(&deployment_id);
            let kind = EffectKind::DeleteDeployment {
                deployment_id,
                group,
            };
            self.emit(effects, id, kind);
        }
    }

    /// An effect gave up after the shell's retries.
    pub(super) fn on_effect_failed(
        &mut self,
        effect_id: &EffectId,
        error: &str,
        effects: &mut Vec<Effect>,
    ) {
        let Some(kind) = self.outstanding.remove(effect_id) else {
            return;
        };
        match kind {
            EffectKind::FetchGroupMembers { wave, .. } if self.state == RolloutState::Deploying => {
                self.pause_for_failed_effect(wave, effect_id, error, effects);
            }
            EffectKind::CreateDeployment { .. } if self.state == RolloutState::Deploying => {
                self.pause_for_failed_effect(self.current_wave, effect_id, error, effects);
            }
            EffectKind::CreateRollbackDeployment { group, .. } => {
                if let Some(rollback) = self.rollback.as_mut() {
                    for g in rollback.groups.iter_mut().filter(|g| g.passed.is_none()) {
                        g.passed = Some(false);
                    }
                }
                self.state = RolloutState::Failed;
                let reason = format!("rollback deployment on group {group} could not be created: {error}; the rollback failed");
                self.decide(effects, DecisionKind::RollbackFailed, None, None, reason);
            }
            EffectKind::InstallPatches { machine } => {
                if let Some(slot) = self.infrastructure.machines.get_mut(&machine) {
                    if slot.is_none() {
                        *slot = Some(crate::PatchOutcome::Failed);
                        let reason = format!(
                            "infrastructure: installPatches on {} failed: {error}",
                            short_name(&machine)
                        );
                        self.decide(
                            effects,
                            DecisionKind::InfrastructureMachinePatched,
                            None,
                            None,
                            reason,
                        );
                    }
                }
            }
            EffectKind::PublishEvent { .. } => {}
            other => {
                let reason = format!(
                    "effect {effect_id} failed: {error} ({})",
                    effect_label(&other)
                );
                self.decide(effects, DecisionKind::EffectFailed, None, None, reason);
            }
        }
    }

    fn pause_for_failed_effect(
        &mut self,
        index: usize,
        effect_id: &EffectId,
        error: &str,
        effects: &mut Vec<Effect>,
    ) {
        let attempt_matches = self
            .waves
            .get(index)
            .is_some_and(|w| effect_id.is_for_attempt(index, w.attempt));
        if !attempt_matches || index != self.current_wave {
            return;
        }
        self.pause = Some(crate::state::PauseRecord {
            from: RolloutState::Deploying,
            cause: crate::state::PauseCause::EffectFailed,
        });
        self.state = RolloutState::Paused;
        let reason = format!(
            "wave {}: {effect_id} failed: {error}; paused — resume retries the wave with a new deployment",
            self.wave_name(index)
        );
        self.decide(
            effects,
            DecisionKind::WaveBlocked,
            Some(index),
            None,
            reason,
        );
    }
}

fn effect_label(kind: &EffectKind) -> &'static str {
    match kind {
        EffectKind::FetchGroupMembers { .. } => "fetch group members",
        EffectKind::CreateDeployment { .. } => "create deployment",
        EffectKind::CreateRollbackDeployment { .. } => "create rollback deployment",
        EffectKind::CancelDeployment { .. } => "cancel deployment",
        EffectKind::DeleteDeployment { .. } => "delete deployment",
        EffectKind::InstallPatches { .. } => "install patches",
        EffectKind::CancelMaintenanceRun { .. } => "cancel maintenance run",
        EffectKind::PublishEvent { .. } => "publish event",
    }
}
