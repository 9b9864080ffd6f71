//! Device Update's own deployment status as a second source of truth: which deployments the
//! timer should read, and filling in devices whose final report never came.

use crate::decision_kind::DecisionKind;
use crate::effect::Effect;
use crate::ids::{DeploymentId, EffectId, GroupId};
use crate::input::PolledDevice;
use crate::rollout::Rollout;
use crate::state::{Counts, Outcome, RolloutState, WaveStatus};
use crate::step::WorkingSet;

/// A deployment whose finished devices the shell should read from Device Update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollTarget {
    /// The Device Update group.
    pub group: GroupId,
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Devices already known to have finished (succeeded or failed): Device Update needs to
    /// be listed only when it counts more.
    pub known_finished: u64,
}

/// Which outcome a deployment decides: a wave's forward one or a rollback group's.
#[derive(Debug, Clone, Copy)]
enum Target {
    Forward(usize),
    Rollback(usize),
}

/// Whether devices of these counts are still owed a final report.
fn awaiting_reports(counts: &Counts) -> bool {
    counts.succeeded + counts.failed < counts.total
}

impl Rollout {
    /// The deployments still waiting for device reports: the current wave's while it deploys
    /// or soaks (paused or not) and every rollback group's not yet judged. A deployment whose
    /// creation is still outstanding is left out.
    pub fn deployments_to_poll(&self) -> Vec<PollTarget> {
        let mut targets = Vec::new();
        let state = self.pause.as_ref().map_or(self.state, |pause| pause.from);
        if matches!(state, RolloutState::Deploying | RolloutState::Soaking) {
            let index = self.current_wave;
            if let Some((plan, wave)) = self.wave(index) {
                if let (true, Some(_), Some(id)) =
                    (wave.members_known, wave.deployed_at, &wave.deployment_id)
                {
                    self.push_target(&mut targets, &plan.device_group, id, &wave.counts);
                }
            }
        }
        for group in self.rollback.iter().flat_map(|r| &r.groups) {
            if group.passed.is_none() {
                let name = &self.wave_plan(group.wave).device_group;
                self.push_target(&mut targets, name, &group.deployment_id, &group.counts);
            }
        }
        targets
    }

    fn push_target(
        &self,
        targets: &mut Vec<PollTarget>,
        group: &str,
        id: &DeploymentId,
        counts: &Counts,
    ) {
        let created = !self.outstanding.contains_key(&EffectId::create(id));
        if created && awaiting_reports(counts) {
            targets.push(PollTarget {
                group: GroupId::new(group),
                deployment_id: id.clone(),
                known_finished: counts.succeeded + counts.failed,
            });
        }
    }

    fn reconcile_target(&self, deployment_id: &DeploymentId) -> Option<Target> {
        if let Some(rollback) = &self.rollback {
            if let Some(position) = rollback
                .groups
                .iter()
                .position(|g| g.deployment_id == *deployment_id)
            {
                return Some(Target::Rollback(position));
            }
        }
        let index = self
            .waves
            .iter()
            .position(|w| w.deployment_id.as_ref() == Some(deployment_id))?;
        let rolled_back = self
            .rollback
            .as_ref()
            .is_some_and(|r| r.groups.iter().any(|g| g.wave == index));
        (!rolled_back).then_some(Target::Forward(index))
    }

    /// Device Update failed a deployment (a subgroup it could not serve): the wave fails
    /// with Device Update's error and its `onFailure` decides; a failed rollback deployment
    /// fails the rollback. A deployment of this rollout that is no longer followed changes
    /// nothing.
    pub(super) fn on_deployment_failed(
        &mut self,
        deployment_id: &DeploymentId,
        error: &str,
        effects: &mut Vec<Effect>,
    ) {
        match self.reconcile_target(deployment_id) {
            Some(Target::Forward(index))
                if index == self.current_wave && self.deployment_followed(index) =>
            {
                let reason = format!(
                    "wave {}: Device Update failed deployment {deployment_id}: {error}",
                    self.wave_name(index)
                );
                self.fail_wave(index, reason, effects);
            }
            Some(Target::Rollback(position)) if self.state == RolloutState::RollingBack => {
                let Some(group) = self.rollback.as_mut().map(|r| &mut r.groups[position]) else {
                    return;
                };
                if group.passed.is_some() {
                    return;
                }
                group.passed = Some(false);
                let wave = group.wave;
                self.state = RolloutState::Failed;
                let reason = format!(
                    "rollback failed: wave {}: Device Update failed rollback deployment {deployment_id}: {error}",
                    self.wave_name(wave)
                );
                self.decide(
                    effects,
                    DecisionKind::RollbackFailed,
                    Some(wave),
                    None,
                    reason,
                );
            }
            _ => {}
        }
    }

    /// Whether the wave's deployment is live: deploying or soaking, paused or not.
    fn deployment_followed(&self, index: usize) -> bool {
        let state = self.pause.as_ref().map_or(self.state, |pause| pause.from);
        matches!(state, RolloutState::Deploying | RolloutState::Soaking)
            && self.waves.get(index).is_some_and(|wave| {
                wave.deployed_at.is_some()
                    && matches!(wave.status, WaveStatus::Deploying | WaveStatus::Soaking)
            })
    }

    /// Fills in the devices Device Update counts as finished and whose own final report
    /// never came; a device with a reported final outcome keeps it. One decision sums up a
    /// poll, with its `last` part, and only when it filled in a device.
    pub(super) fn on_deployment_states<V>(
        &mut self,
        records: &mut WorkingSet<V>,
        deployment_id: &DeploymentId,
        devices: &[PolledDevice],
        last: bool,
        effects: &mut Vec<Effect>,
    ) {
        let Some(target) = self.reconcile_target(deployment_id) else {
            self.ignored_reports += devices.len() as u64;
            return;
        };
        let (mut succeeded, mut failed) = (0u64, 0u64);
        for polled in devices {
            if self.fill_polled(records, target, polled) {
                *if polled.succeeded {
                    &mut succeeded
                } else {
                    &mut failed
                } += 1;
            }
        }
        if succeeded + failed > 0 {
            // only what was filled in is remembered: a part that changed nothing leaves no trace
            let sum = self.reconciling.entry(deployment_id.clone()).or_default();
            (sum.0, sum.1) = (sum.0 + succeeded, sum.1 + failed);
        }
        if !last {
            return;
        }
        let (succeeded, failed) = self.reconciling.remove(deployment_id).unwrap_or_default();
        if succeeded + failed == 0 {
            return;
        }
        let (kind, wave, what) = match target {
            Target::Forward(index) => (DecisionKind::WaveReconciled, index, "wave"),
            Target::Rollback(position) => (
                DecisionKind::RollbackReconciled,
                self.rollback
                    .as_ref()
                    .map_or(0, |r| r.groups[position].wave),
                "rollback of wave",
            ),
        };
        let reason = format!(
            "{what} {}: Device Update counts {} device(s) finished whose reports never came \
             ({succeeded} succeeded, {failed} failed); taken from deployment {deployment_id}",
            self.wave_name(wave),
            succeeded + failed
        );
        self.decide(effects, kind, Some(wave), None, reason);
    }

    /// Applies one polled outcome; true if it changed the device.
    fn fill_polled<V>(
        &mut self,
        records: &mut WorkingSet<V>,
        target: Target,
        polled: &PolledDevice,
    ) -> bool {
        let Some(record) = records.get_mut(polled.device.as_str()) else {
            return false;
        };
        let outcome = if polled.succeeded {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        };
        let (wave, current, reported_itself, counts, deadline_passed) = match target {
            Target::Forward(index) => {
                let wave = &mut self.waves[index];
                (
                    index,
                    record.forward,
                    record.forward_reported,
                    &mut wave.counts,
                    wave.timeouts_applied,
                )
            }
            Target::Rollback(position) => {
                let Some(group) = self.rollback.as_mut().map(|r| &mut r.groups[position]) else {
                    return false;
                };
                (
                    group.wave,
                    record.rollback,
                    record.rollback_reported,
                    &mut group.counts,
                    group.timeouts_applied,
                )
            }
        };
        // a device that reported a final outcome itself is left to its own reports, even once
        // it is in progress again: the poll may be older than its latest report
        let reported = matches!(current, Outcome::Succeeded | Outcome::Failed);
        if record.wave as usize != wave || reported || reported_itself {
            return false;
        }
        let recorded = super::devices::move_outcome(counts, current, outcome, deadline_passed);
        match target {
            Target::Forward(_) => {
                (record.forward, record.forward_polled) = (recorded, true);
                let now = self.now;
                self.note_forward_change(polled.device.as_str(), record, current, now);
            }
            Target::Rollback(_) => (record.rollback, record.rollback_polled) = (recorded, true),
        }
        true
    }
}
