//! Group members and device reports: the hot path, constant cost per report.

use crate::effect::Effect;
use crate::input::DeviceReport;
use crate::state::{Counts, DeviceRecord, Outcome, Rollout, WaveStatus};
use crate::UpdateId;

/// Agent states the cloud sees (`ADUCITF_State`).
const STATE_IDLE: i64 = 0;
const STATE_FAILED: i64 = 255;
/// `ADUC_Result_Apply_Success`.
const RESULT_APPLY_SUCCESS: i64 = 700;

/// What a report means for a target update.
///
/// Success is state 0 with result 700 and the target installed; failure is state 255; an
/// idle report with another update installed says nothing about this target (a device that
/// rebooted before taking the deployment) and leaves the outcome as it was.
pub fn classify(report: &DeviceReport, target: &UpdateId) -> Option<Outcome> {
    match report.agent_state {
        STATE_FAILED => Some(Outcome::Failed),
        STATE_IDLE => {
            let installed = report.installed_update.as_ref() == Some(target);
            (installed && report.result_code == Some(RESULT_APPLY_SUCCESS))
                .then_some(Outcome::Succeeded)
        }
        _ => Some(Outcome::InProgress),
    }
}

/// A recorded outcome as it counts: once the deadline passed, anything unfinished is timed
/// out, and only a final outcome (success or failure) replaces that.
pub fn effective_outcome(outcome: Outcome, deadline_passed: bool) -> Outcome {
    if deadline_passed && !outcome.is_finished() {
        Outcome::TimedOut
    } else {
        outcome
    }
}

impl Rollout {
    /// A page of the wave's devices arrived: record and count them; after the last page,
    /// request the deployment. `(page, last)`: pages are counted in order and once each.
    pub(super) fn on_group_members(
        &mut self,
        index: usize,
        devices: &[String],
        (page, last): (u32, bool),
        effects: &mut Vec<Effect>,
    ) {
        let Some(wave) = self.waves.get(index) else {
            return;
        };
        if wave.members_known || wave.status != WaveStatus::Deploying || page != wave.member_pages {
            return;
        }
        let mut added = 0u64;
        let mut elsewhere = 0u64;
        // one allocation: growing by doubling would hold the old and new tables at once
        self.devices.reserve(devices.len());
        for device in devices {
            match self.devices.get(device.as_str()) {
                Some(record) if record.wave as usize != index => elsewhere += 1,
                // already stored by an earlier, interrupted attempt: still a member
                Some(_) => added += 1,
                None => {
                    let record = DeviceRecord::new(index as u32);
                    self.devices.insert(device.as_str().into(), record);
                    added += 1;
                }
            }
        }
        let wave = &mut self.waves[index];
        wave.member_pages += 1;
        wave.members_left_out += elsewhere;
        wave.counts.total += added;
        if last {
            self.members_learned(index, effects);
        }
    }

    /// All pages of the wave's members are counted: say how many, and deploy.
    fn members_learned(&mut self, index: usize, effects: &mut Vec<Effect>) {
        let wave = &mut self.waves[index];
        wave.members_known = true;
        let plan = &self.plan.waves[index];
        let mut reason = format!(
            "wave {}: {} device(s) in group {}; deploying {}",
            plan.name, wave.counts.total, plan.device_group, self.plan.update
        );
        if wave.members_left_out > 0 {
            reason.push_str(&format!(
                " ({} device(s) already in an earlier wave left out)",
                wave.members_left_out
            ));
        }
        self.decide(effects, "wave.members", Some(index), None, reason);
        if self.waves[index].deployed_at.is_none() {
            self.request_deployment(index, effects);
        }
    }

    /// A device report: O(1) whatever the fleet size.
    pub(super) fn on_device_report(&mut self, report: &DeviceReport) {
        let Some(record) = self.devices.get_mut(report.device.as_str()) else {
            self.ignored_reports += 1;
            return;
        };
        if report.twin_version <= record.version {
            self.ignored_reports += 1;
            return;
        }
        record.version = report.twin_version;
        let wave = record.wave as usize;
        if let Some(rollback) = self.rollback.as_mut() {
            if let Some(group) = rollback.groups.iter_mut().find(|g| g.wave == wave) {
                if let Some(reported) = classify(report, &self.plan.rollback_update) {
                    record_report(
                        (
                            &mut record.rollback,
                            &mut record.rollback_polled,
                            &mut record.rollback_reported,
                        ),
                        &mut group.counts,
                        reported,
                        group.timeouts_applied,
                    );
                }
                return;
            }
        }
        let Some(progress) = self.waves.get_mut(wave) else {
            return;
        };
        if let Some(reported) = classify(report, &self.plan.update) {
            record_report(
                (
                    &mut record.forward,
                    &mut record.forward_polled,
                    &mut record.forward_reported,
                ),
                &mut progress.counts,
                reported,
                progress.timeouts_applied,
            );
        }
    }
}

/// Records a reported outcome in `counts`, except a report still in progress after a polled
/// final outcome: the poll saw the device finish, so that report is older. A final report
/// marks the device as one whose own reports arrive (`reported`).
fn record_report(
    (recorded, polled, reported_final): (&mut Outcome, &mut bool, &mut bool),
    counts: &mut Counts,
    reported: Outcome,
    deadline_passed: bool,
) {
    if reported.is_finished() || !*polled {
        *recorded = move_outcome(counts, *recorded, reported, deadline_passed);
        *polled = false;
    }
    *reported_final |= reported.is_finished();
}

/// Moves one device from `old` to `new` in `counts` (both as they count once the deadline
/// passed); returns the outcome to record.
pub(super) fn move_outcome(
    counts: &mut Counts,
    old: Outcome,
    new: Outcome,
    deadline_passed: bool,
) -> Outcome {
    let old = effective_outcome(old, deadline_passed);
    let new = effective_outcome(new, deadline_passed);
    counts.add(old, -1);
    counts.add(new, 1);
    new
}
