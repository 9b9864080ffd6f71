//! Judging a wave's (or a rollback group's) counts against its thresholds, with the numbers.

use crate::plan::WavePlan;
use crate::state::Counts;

/// What the counts say.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The failure threshold is crossed (or success became unreachable).
    Failed(String),
    /// The success threshold is met.
    ThresholdMet(String),
    /// Not decided yet.
    Open,
}

/// Judges counts. `members_known` says whether `total` is the whole group.
///
/// - Failure: once `min(minDevicesJudged, total)` devices finished, failures (reported plus
///   timed out) over the group's size above `failureThresholdPercent`.
/// - Success: succeeded over the group's size at or above `successThresholdPercent`
///   (an empty group passes).
/// - Unreachable: every device finished and the success threshold was not met.
pub fn judge(name: &str, plan: &WavePlan, counts: &Counts, members_known: bool) -> Verdict {
    if !members_known {
        return Verdict::Open;
    }
    let total = counts.total;
    if total == 0 {
        return Verdict::ThresholdMet(format!(
            "wave {name}: the group has no devices; nothing to wait for"
        ));
    }
    let finished = counts.finished();
    let min_judged = u64::from(plan.min_devices_judged).min(total).max(1);
    let failures = counts.failures();
    let failure_percent = percent(failures, total);
    if finished >= min_judged && failure_percent > plan.failure_threshold_percent {
        if let (Some(gate), true) = (plan.health_gate, failures == counts.unhealthy) {
            return Verdict::Failed(format!(
                "wave {name}: {failures} of {total} unhealthy after install (disconnected > {} min within {} min) = {failure_percent:.1}% > {}%",
                gate.max_disconnected_minutes, gate.observe_minutes, plan.failure_threshold_percent
            ));
        }
        return Verdict::Failed(format!(
            "wave {name}: {failures} of {total} failed = {failure_percent:.1}% > {}%, judged after {finished} finished{}",
            plan.failure_threshold_percent,
            timed_out_note(counts)
        ));
    }
    let success_percent = percent(counts.succeeded, total);
    if success_percent >= plan.success_threshold_percent {
        return Verdict::ThresholdMet(format!(
            "wave {name}: {} of {total} succeeded = {success_percent:.1}% >= {}%",
            counts.succeeded, plan.success_threshold_percent
        ));
    }
    if finished >= total {
        return Verdict::Failed(format!(
            "wave {name}: all {total} finished but only {} succeeded = {success_percent:.1}% < {}%{}",
            counts.succeeded,
            plan.success_threshold_percent,
            timed_out_note(counts)
        ));
    }
    Verdict::Open
}

fn timed_out_note(counts: &Counts) -> String {
    match (counts.timed_out, counts.unhealthy) {
        (0, 0) => String::new(),
        (timed_out, 0) => format!(" ({} failed, {timed_out} timed out)", counts.failed),
        (timed_out, unhealthy) => format!(
            " ({} failed, {timed_out} timed out, {unhealthy} unhealthy after install)",
            counts.failed
        ),
    }
}

/// `part` of `whole` in percent (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::WaveFailure;

    fn wave(success: f64, failure: f64, min: u32) -> WavePlan {
        WavePlan {
            name: "canary".into(),
            device_group: "canary".into(),
            success_threshold_percent: success,
            failure_threshold_percent: failure,
            min_devices_judged: min,
            soak_minutes: 30,
            device_timeout_minutes: 120,
            approval_required: false,
            on_failure: WaveFailure::Rollback,
            health_gate: None,
        }
    }

    fn counts(total: u64, succeeded: u64, failed: u64, timed_out: u64) -> Counts {
        Counts {
            total,
            in_progress: 0,
            succeeded,
            failed,
            timed_out,
            unhealthy: 0,
        }
    }

    #[test]
    fn failure_threshold_waits_for_min_devices_judged() {
        let plan = wave(100.0, 5.0, 40);
        assert_eq!(
            judge("canary", &plan, &counts(120, 32, 7, 0), true),
            Verdict::Open
        );
        let Verdict::Failed(reason) = judge("canary", &plan, &counts(120, 33, 7, 0), true) else {
            panic!("should fail once 40 finished");
        };
        assert_eq!(
            reason,
            "wave canary: 7 of 120 failed = 5.8% > 5%, judged after 40 finished"
        );
    }

    #[test]
    fn timed_out_devices_count_as_failures_and_are_named() {
        let plan = wave(90.0, 5.0, 10);
        let Verdict::Failed(reason) = judge("canary", &plan, &counts(100, 80, 2, 18), true) else {
            panic!("timeouts fail the wave");
        };
        assert!(reason.ends_with("(2 failed, 18 timed out)"), "{reason}");
    }

    #[test]
    fn success_threshold_and_unreachable_success() {
        let plan = wave(95.0, 10.0, 50);
        assert!(matches!(
            judge("w", &plan, &counts(100, 95, 3, 0), true),
            Verdict::ThresholdMet(_)
        ));
        assert_eq!(
            judge("w", &plan, &counts(100, 94, 3, 0), true),
            Verdict::Open
        );
        assert!(
            matches!(judge("w", &plan, &counts(100, 94, 6, 0), true), Verdict::Failed(r) if r.contains("all 100 finished"))
        );
        assert!(matches!(
            judge("w", &plan, &counts(0, 0, 0, 0), true),
            Verdict::ThresholdMet(_)
        ));
        assert_eq!(
            judge("w", &plan, &counts(3, 3, 0, 0), false),
            Verdict::Open,
            "unknown group size"
        );
    }

    #[test]
    fn small_groups_are_judged_when_all_of_them_finished() {
        let plan = wave(100.0, 5.0, 50);
        assert!(matches!(
            judge("w", &plan, &counts(3, 2, 1, 0), true),
            Verdict::Failed(_)
        ));
    }
}
