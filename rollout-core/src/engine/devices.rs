//! Group members and device reports: the hot path, constant cost per report.

use crate::decision_kind::DecisionKind;
use crate::effect::Effect;
use crate::ids::DeviceId;
use crate::input::DeviceReport;
use crate::rollout::Rollout;
use crate::state::{
    Counts, DeviceRecord, Installed, Outcome, RollbackGroup, WaveProgress, WaveStatus,
    ROLLBACK_DEPLOYMENT,
};
use crate::step::WorkingSet;
use crate::UpdateId;
use chrono::{DateTime, Utc};

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
    pub(super) fn on_group_members<V>(
        &mut self,
        records: &mut WorkingSet<V>,
        index: usize,
        devices: &[DeviceId],
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
        records.reserve(devices.len());
        for device in devices {
            match records.get(device.as_str()) {
                Some(record) if record.wave as usize != index => elsewhere += 1,
                // already stored by an earlier, interrupted attempt: still a member
                Some(_) => added += 1,
                None => {
                    records.add(device.clone(), DeviceRecord::new(index as u32));
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
        self.waves[index].members_known = true;
        let (plan, wave) = (self.wave_plan(index), &self.waves[index]);
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
        self.decide(
            effects,
            DecisionKind::WaveMembers,
            Some(index),
            None,
            reason,
        );
        if self.waves[index].deployed_at.is_none() {
            self.request_deployment(index, effects);
        }
    }

    /// A device report: O(1) whatever the fleet size. The report is attributed to one of
    /// the group's deployments first (see [`about_current`]): a rollback group counts only
    /// reports about the rollback, and a device that says it runs the rollback update is
    /// back whatever deployment its report is about.
    pub(super) fn on_device_report<V>(
        &mut self,
        records: &mut WorkingSet<V>,
        report: &DeviceReport,
        now: DateTime<Utc>,
    ) {
        let Some(record) = records.get_mut(report.device.as_str()) else {
            self.ignored_reports += 1;
            return;
        };
        if report.twin_version <= record.version {
            self.ignored_reports += 1;
            return;
        }
        record.version = report.twin_version;
        let at = report.reported_at.unwrap_or(now);
        record.last_report_at = Some(at);
        let before = record.forward;
        self.apply_report(record, report);
        self.note_forward_change(report.device.as_str(), record, before, at);
    }

    /// Attributes a report to one of the group's deployments and counts it there.
    fn apply_report(&mut self, record: &mut DeviceRecord, report: &DeviceReport) {
        let (target, rollback_update) = (&self.plan.update, &self.plan.rollback_update);
        if let Some(update) = &report.installed_update {
            record.installed = installed_kind(target, rollback_update, update);
        }
        let wave = record.wave as usize;
        let Some(progress) = self.waves.get_mut(wave) else {
            return;
        };
        let forward = u8::try_from(progress.attempt).unwrap_or(ROLLBACK_DEPLOYMENT - 1);
        let rollback_group = self.rollback.as_mut().and_then(|rollback| {
            let since = rollback.started_at;
            let group = rollback.groups.iter_mut().find(|g| g.wave == wave)?;
            Some((group, since))
        });
        let about_forward = match rollback_group {
            Some((group, since)) => {
                let attempt = (forward, since);
                count_rollback_report(record, report, group, attempt, rollback_update)
            }
            None => about_current_attempt(record, report, progress, forward, target),
        };
        if about_forward {
            if let Some(outcome) = classify(report, target) {
                let slots = forward_slots(record);
                record_report(
                    slots,
                    &mut progress.counts,
                    outcome,
                    progress.timeouts_applied,
                );
            }
        }
    }
}

/// A report of a device whose group is rolled back: counted for the rollback when it is
/// about the rollback deployment (created at `since`) or says the device is back. Returns
/// whether it is about the forward deployment (attempt `forward`) instead.
fn count_rollback_report(
    record: &mut DeviceRecord,
    report: &DeviceReport,
    group: &mut RollbackGroup,
    (forward, since): (u8, DateTime<Utc>),
    rollback_update: &UpdateId,
) -> bool {
    let about = about_current(record, report, ROLLBACK_DEPLOYMENT, Some(since), forward);
    let back = matches!(report.agent_state, STATE_IDLE | STATE_FAILED)
        && record.installed == Installed::RollbackUpdate;
    let outcome = if back {
        Some(Outcome::Succeeded)
    } else if about == Some(true) {
        classify(report, rollback_update)
    } else {
        None
    };
    if let Some(outcome) = outcome {
        let slots = rollback_slots(record);
        record_report(slots, &mut group.counts, outcome, group.timeouts_applied);
    }
    about == Some(false)
}

/// Whether a forward report is about the wave's current attempt (number `forward`). Only a
/// retried wave has an earlier deployment whose reports may still come: such a report counts
/// only when it says the target is installed.
fn about_current_attempt(
    record: &mut DeviceRecord,
    report: &DeviceReport,
    progress: &mut WaveProgress,
    forward: u8,
    target: &UpdateId,
) -> bool {
    let since =
        (progress.attempt > 1).then(|| progress.deployed_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
    let about = about_current(record, report, forward, since, forward.saturating_sub(1));
    if about == Some(true) {
        return true;
    }
    if classify(report, target) == Some(Outcome::Succeeded) {
        let slots = forward_slots(record);
        let deadline_passed = progress.timeouts_applied;
        record_report(
            slots,
            &mut progress.counts,
            Outcome::Succeeded,
            deadline_passed,
        );
    }
    false
}

/// Whether a report is about the deployment its group is measured against now (`Some(true)`),
/// an earlier one (`Some(false)`), or cannot be told (`None`). `deployment` is the current
/// deployment's number in [`DeviceRecord::workflow_deployment`], `earlier` the one before it;
/// `since` is when the current one was created, `None` when no earlier deployment of this
/// rollout can still report (a wave's first attempt).
///
/// The workflow id is trusted first: Device Update gives every deployment a device takes its
/// own workflow, and an agent reports progress and failure with it, so a workflow already
/// attributed keeps its deployment. A workflow not seen before is placed by the report's
/// time: one written before the current deployment existed cannot be about it. Without a
/// time, a report with a new workflow cannot be placed.
fn about_current(
    record: &mut DeviceRecord,
    report: &DeviceReport,
    deployment: u8,
    since: Option<DateTime<Utc>>,
    earlier: u8,
) -> Option<bool> {
    let fingerprint = report.workflow.as_deref().map(workflow_fingerprint);
    if fingerprint.is_some_and(|fp| fp == record.workflow) {
        return Some(record.workflow_deployment == deployment);
    }
    let current = match (since, report.reported_at) {
        (None, _) => true,
        (Some(since), Some(at)) => at >= since,
        (Some(_), None) => return None,
    };
    if let Some(fingerprint) = fingerprint {
        record.workflow = fingerprint;
        record.workflow_deployment = if current { deployment } else { earlier };
    }
    Some(current)
}

/// A stable 32-bit fingerprint of a workflow id (FNV-1a; never 0, which means "none").
pub fn workflow_fingerprint(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash.max(1)
}

/// Which of the rollout's updates `update` is.
pub fn installed_kind(target: &UpdateId, rollback: &UpdateId, update: &UpdateId) -> Installed {
    if update == target {
        Installed::Update
    } else if update == rollback {
        Installed::RollbackUpdate
    } else {
        Installed::Other
    }
}

type Slots<'a> = (&'a mut Outcome, &'a mut bool, &'a mut bool);

fn forward_slots(record: &mut DeviceRecord) -> Slots<'_> {
    (
        &mut record.forward,
        &mut record.forward_polled,
        &mut record.forward_reported,
    )
}

fn rollback_slots(record: &mut DeviceRecord) -> Slots<'_> {
    (
        &mut record.rollback,
        &mut record.rollback_polled,
        &mut record.rollback_reported,
    )
}

/// Records a reported outcome in `counts`, except a report still in progress after a polled
/// final outcome: the poll saw the device finish, so that report is older. A final report
/// marks the device as one whose own reports arrive (`reported`).
fn record_report(
    (recorded, polled, reported_final): Slots<'_>,
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
