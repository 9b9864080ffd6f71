//! Waves: starting behind their gates, judging, soaking, passing and failing.

use crate::decision_kind::DecisionKind;
use crate::effect::{Effect, EffectKind};
use crate::ids::{DeploymentId, EffectId};
use crate::judge::{judge, Verdict};
use crate::plan::WaveFailure;
use crate::rollout::Rollout;
use crate::state::{PauseCause, PauseRecord, RolloutState, WaveStatus};
use chrono::Duration;

impl Rollout {
    /// Starts the current wave if its approval and window allow.
    pub(super) fn try_start_wave(&mut self, effects: &mut Vec<Effect>) -> bool {
        let index = self.current_wave;
        let (Some(plan), Some(progress)) = (self.plan.waves.get(index), self.waves.get(index))
        else {
            return false;
        };
        if progress.status != WaveStatus::Waiting {
            return false;
        }
        if plan.approval_required && progress.approved_by.is_none() {
            self.state = RolloutState::AwaitingApproval;
            let reason = format!("wave {}: waiting for an operator's approval", plan.name);
            self.decide(
                effects,
                DecisionKind::WaveAwaitingApproval,
                Some(index),
                None,
                reason,
            );
            return true;
        }
        if let Some(window) = self.plan.window.as_ref().filter(|w| !w.is_open(self.now)) {
            if progress.waiting_for_window && self.state == RolloutState::Pending {
                return false;
            }
            let reason = format!(
                "wave {}: waiting for the window {}",
                plan.name,
                window.describe()
            );
            self.waves[index].waiting_for_window = true;
            self.state = RolloutState::Pending;
            self.decide(
                effects,
                DecisionKind::WaveWaitingForWindow,
                Some(index),
                None,
                reason,
            );
            return true;
        }
        self.start_wave(index, effects);
        true
    }

    fn start_wave(&mut self, index: usize, effects: &mut Vec<Effect>) {
        let group = self.wave_group(index);
        let name = self.wave_name(index).to_string();
        let wave = &mut self.waves[index];
        wave.attempt += 1;
        wave.status = WaveStatus::Deploying;
        wave.started_at = Some(self.now);
        wave.deployed_at = None;
        wave.timeouts_applied = false;
        wave.threshold_met_at = None;
        wave.waiting_for_window = false;
        let attempt = wave.attempt;
        wave.deployment_id = Some(DeploymentId::for_wave(&self.id, index, attempt));
        let members_known = wave.members_known;
        self.state = RolloutState::Deploying;
        let reason = format!("wave {name}: starting on group {group} (attempt {attempt})");
        self.decide(
            effects,
            DecisionKind::WaveStarted,
            Some(index),
            None,
            reason,
        );
        if members_known {
            self.request_deployment(index, effects);
        } else {
            let id = EffectId::fetch_members(&self.id, index, attempt);
            self.emit(
                effects,
                id,
                EffectKind::FetchGroupMembers { wave: index, group },
            );
        }
    }

    /// Asks for the wave's deployment; device deadlines count from now.
    pub(super) fn request_deployment(&mut self, index: usize, effects: &mut Vec<Effect>) {
        let Some(deployment_id) = self.waves[index].deployment_id.clone() else {
            return;
        };
        self.waves[index].deployed_at = Some(self.now);
        let id = EffectId::create(&deployment_id);
        let kind = EffectKind::CreateDeployment {
            deployment_id,
            group: self.wave_group(index),
            update: self.plan.update.clone(),
        };
        self.emit(effects, id, kind);
    }

    /// Deploying / Soaking: timeouts, failure, success threshold, soak.
    pub(super) fn advance_wave(&mut self, effects: &mut Vec<Effect>) -> bool {
        let index = self.current_wave;
        let verdict = match self.judge_current(index, effects) {
            Judged::Changed => return true,
            Judged::NotDeployed => return false,
            Judged::Verdict(verdict) => verdict,
        };
        let plan = self.wave_plan(index);
        let wave = &self.waves[index];
        match verdict {
            Verdict::Failed(reason) => {
                self.fail_wave(index, reason, effects);
                true
            }
            Verdict::ThresholdMet(reason) => match (self.state, wave.threshold_met_at) {
                (RolloutState::Deploying, _) | (_, None) => {
                    let soak = plan.soak_minutes;
                    self.state = RolloutState::Soaking;
                    self.waves[index].status = WaveStatus::Soaking;
                    self.waves[index].threshold_met_at = Some(self.now);
                    self.decide(
                        effects,
                        DecisionKind::WaveThresholdMet,
                        Some(index),
                        None,
                        format!("{reason}; soaking {soak} minutes"),
                    );
                    true
                }
                (_, Some(met))
                    if self.now >= met + Duration::minutes(i64::from(plan.soak_minutes)) =>
                {
                    match self.observation_verdict(index) {
                        Some(Ok(observed)) => {
                            self.pass_wave(index, format!("{reason}; {observed}"), effects)
                        }
                        Some(Err(_waiting)) => return false,
                        None => self.pass_wave(index, reason, effects),
                    }
                    true
                }
                _ => false,
            },
            Verdict::Open if self.state == RolloutState::Soaking => {
                let reason = format!(
                    "wave {}: success fell below its threshold again; soak restarts when it is met",
                    plan.name
                );
                self.state = RolloutState::Deploying;
                self.waves[index].status = WaveStatus::Deploying;
                self.waves[index].threshold_met_at = None;
                self.decide(
                    effects,
                    DecisionKind::WaveThresholdLost,
                    Some(index),
                    None,
                    reason,
                );
                true
            }
            Verdict::Open => false,
        }
    }

    /// Marks silent devices timed out once the wave's deadline passed. True if anything changed.
    pub(super) fn apply_wave_timeouts(&mut self, index: usize, effects: &mut Vec<Effect>) -> bool {
        let wave = &self.waves[index];
        let timeout = Duration::minutes(i64::from(self.wave_plan(index).device_timeout_minutes));
        let due = wave.deployed_at.is_some_and(|at| self.now >= at + timeout);
        if wave.timeouts_applied || !wave.members_known || !due {
            return false;
        }
        // Counts only: a device record reads as timed out once its wave's deadline passed
        // (see `effective_outcome`), so no device is visited here.
        let counts = &mut self.waves[index].counts;
        let timed_out = counts.total.saturating_sub(counts.finished());
        counts.timed_out += timed_out;
        counts.in_progress = 0;
        self.waves[index].timeouts_applied = true;
        if timed_out > 0 {
            let plan = self.wave_plan(index);
            let reason = format!(
                "wave {}: {timed_out} device(s) did not finish within {} minutes; counted as timed out",
                plan.name, plan.device_timeout_minutes
            );
            self.decide(
                effects,
                DecisionKind::WaveTimeouts,
                Some(index),
                None,
                reason,
            );
        }
        true
    }

    fn pass_wave(&mut self, index: usize, reason: String, effects: &mut Vec<Effect>) {
        self.waves[index].status = WaveStatus::Passed;
        let soak = self.wave_plan(index).soak_minutes;
        self.current_wave += 1;
        self.state = if self.current_wave < self.plan.waves.len() {
            RolloutState::Pending
        } else {
            RolloutState::Completed
        };
        self.decide(
            effects,
            DecisionKind::WavePassed,
            Some(index),
            None,
            format!("{reason}; soaked {soak} minutes"),
        );
        if self.state == RolloutState::Completed {
            let reason = format!(
                "rollout {}: all {} waves passed",
                self.plan.name,
                self.plan.waves.len()
            );
            self.decide(effects, DecisionKind::RolloutCompleted, None, None, reason);
        }
    }

    /// A wave failed: roll back or pause, as its plan says.
    pub(super) fn fail_wave(&mut self, index: usize, reason: String, effects: &mut Vec<Effect>) {
        self.waves[index].status = WaveStatus::Failed;
        self.pause = None;
        match self.wave_plan(index).on_failure {
            WaveFailure::Rollback => {
                self.decide(
                    effects,
                    DecisionKind::WaveFailed,
                    Some(index),
                    None,
                    format!("{reason}; rolling back"),
                );
                self.open_rollback(reason, None, effects);
            }
            WaveFailure::Pause => {
                self.pause = Some(PauseRecord {
                    from: RolloutState::Deploying,
                    cause: PauseCause::WaveFailed,
                });
                self.state = RolloutState::Paused;
                let reason = format!("{reason}; paused for an operator (onFailure: pause): resume accepts the wave, rollback reverts");
                self.decide(effects, DecisionKind::WaveFailed, Some(index), None, reason);
            }
        }
    }

    /// Paused by an operator mid-wave: failures are still judged, so a pause never hides a
    /// crossed failure threshold.
    pub(super) fn guard_paused_wave(&mut self, effects: &mut Vec<Effect>) -> bool {
        let Some(pause) = &self.pause else {
            return false;
        };
        if pause.cause != PauseCause::Operator
            || !matches!(pause.from, RolloutState::Deploying | RolloutState::Soaking)
        {
            return false;
        }
        let index = self.current_wave;
        match self.judge_current(index, effects) {
            Judged::Changed => true,
            Judged::Verdict(Verdict::Failed(reason)) => {
                self.fail_wave(index, format!("{reason} while paused"), effects);
                true
            }
            _ => false,
        }
    }

    /// Applies the wave's timeouts, then judges its counts.
    fn judge_current(&mut self, index: usize, effects: &mut Vec<Effect>) -> Judged {
        if self.apply_wave_timeouts(index, effects) || self.judge_disconnections(index, effects) {
            return Judged::Changed;
        }
        let (plan, wave) = match self.wave(index) {
            Some((_, wave)) if wave.deployed_at.is_none() => return Judged::NotDeployed,
            Some(found) => found,
            None => return Judged::NotDeployed,
        };
        Judged::Verdict(judge(&plan.name, plan, &wave.counts, wave.members_known))
    }
}

/// What judging the current wave found.
enum Judged {
    /// Timeouts were applied: judge again on the next round.
    Changed,
    /// No deployment yet: nothing to judge.
    NotDeployed,
    /// The counts' verdict.
    Verdict(Verdict),
}

impl Rollout {
    /// For a health-gated wave: whether enough devices finished their observation healthy
    /// for the success threshold (`Ok` with the numbers) or not yet (`Err`); `None` for a
    /// wave without a gate.
    fn observation_verdict(&self, index: usize) -> Option<Result<String, String>> {
        let (plan, wave) = self.wave(index)?;
        let gate = plan.health_gate?;
        let healthy = self.observed_healthy(index, gate);
        let total = wave.counts.total;
        let share = crate::judge::percent(healthy, total);
        let text = format!(
            "{healthy} of {total} healthy after {} min of observation = {share:.1}%",
            gate.observe_minutes
        );
        Some(if share >= plan.success_threshold_percent || total == 0 {
            Ok(text)
        } else {
            Err(text)
        })
    }
}
