//! Rollbacks judged on the rollback's own reports: attribution by workflow and time, the
//! rollback's policy, late reports after the end, and Device Update failing a deployment.

mod common;

use common::*;
use rollout_core::*;

/// canary (4 devices, rollback once 2 of 4 failed) and the rollback's default policy.
fn canary() -> Scenario {
    let mut s = Scenario::new(plan(vec![wave(
        "canary",
        100.0,
        25.0,
        2,
        WaveFailure::Rollback,
    )]));
    s.members(0, devices("canary", 4), minutes(1));
    s
}

const FAILED: (i64, Option<UpdateId>) = (255, None);
const IN_PROGRESS: (i64, Option<UpdateId>) = (6, None);

fn back() -> (i64, Option<UpdateId>) {
    (0, Some(update("2.4.0")))
}

/// Opens the rollback at minute 10: three forward failures written at minute 9, applied in
/// one batch at minute 10 (the third after the threshold was crossed).
fn rolled_back_at_ten(s: &mut Scenario) {
    for device in ["canary-d0", "canary-d1", "canary-d2"] {
        s.agent(device, FAILED, ("fw-1", minutes(9)), minutes(10));
    }
    assert_eq!(s.state(), RolloutState::RollingBack);
}

fn rollback_counts(s: &Scenario) -> Counts {
    s.rollout.rollback().expect("rollback").groups[0].counts
}

#[test]
fn forward_reports_of_the_same_batch_do_not_count_against_the_rollback() {
    let mut s = canary();
    rolled_back_at_ten(&mut s);
    let counts = rollback_counts(&s);
    assert_eq!((counts.failed, counts.in_progress), (0, 0), "{counts:?}");
    assert_eq!(
        s.rollout.wave_progress()[0].counts.failed,
        3,
        "the forward deployment keeps all three failures"
    );
}

#[test]
fn a_late_forward_failure_after_the_rollback_opened_is_known_by_its_workflow() {
    let mut s = canary();
    // d3 took the forward deployment before the rollback
    s.agent("canary-d3", IN_PROGRESS, ("fw-1", minutes(5)), minutes(5));
    rolled_back_at_ten(&mut s);
    // ... and fails it after the rollback was created: still the forward workflow
    s.agent("canary-d3", FAILED, ("fw-1", minutes(12)), minutes(12));
    let counts = rollback_counts(&s);
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert_eq!(s.rollout.wave_progress()[0].counts.failed, 4);
    // its rollback workflow, in progress then failed, counts
    s.agent("canary-d3", IN_PROGRESS, ("rb-1", minutes(13)), minutes(13));
    assert_eq!(rollback_counts(&s).in_progress, 1);
    s.agent("canary-d3", FAILED, ("rb-1", minutes(14)), minutes(14));
    assert_eq!(rollback_counts(&s).failed, 1);
}

#[test]
fn a_device_that_failed_forward_and_still_runs_the_rollback_update_is_back() {
    let mut s = canary();
    // d0 said at boot it runs 2.4.0, then failed the forward update (failures do not
    // rewrite installedUpdateId)
    s.agent("canary-d0", back(), ("old", minutes(2)), minutes(2));
    rolled_back_at_ten(&mut s);
    s.agent("canary-d0", FAILED, ("fw-1", minutes(11)), minutes(11));
    assert_eq!(rollback_counts(&s).succeeded, 1);
}

#[test]
fn every_group_back_ends_rolled_back_with_the_numbers() {
    let mut s = canary();
    rolled_back_at_ten(&mut s);
    for device in devices("canary", 4) {
        s.agent(&device, back(), ("rb-1", minutes(20)), minutes(20));
    }
    assert_eq!(s.state(), RolloutState::RolledBack);
    assert_eq!(
        s.last_reason("rollback.finished"),
        "rollback finished: 4 of 4 back on Contoso/Gateway/2.4.0"
    );
}

#[test]
fn the_rollback_policy_judges_after_every_device_finished_or_timed_out() {
    let mut p = plan(vec![wave("canary", 100.0, 25.0, 2, WaveFailure::Rollback)]);
    p.rollback = Some(RollbackPolicy {
        success_threshold_percent: 75.0,
        device_timeout_minutes: 60,
    });
    let mut s = Scenario::new(p);
    s.members(0, devices("canary", 4), minutes(1));
    rolled_back_at_ten(&mut s);
    for device in ["canary-d0", "canary-d1", "canary-d2"] {
        s.agent(device, back(), ("rb-1", minutes(20)), minutes(20));
    }
    assert_eq!(
        s.state(),
        RolloutState::RollingBack,
        "3 of 4 meets 75%, but d3 may still report"
    );
    s.step(Input::Tick, minutes(69));
    assert_eq!(s.state(), RolloutState::RollingBack);
    s.step(Input::Tick, minutes(70));
    assert_eq!(s.state(), RolloutState::RolledBack);
    assert_eq!(
        s.last_reason("rollback.finished"),
        "rollback finished: 3 of 4 back on Contoso/Gateway/2.4.0; 1 timed out (listed in compliance)"
    );
}

/// The canary rolled back: three devices back, canary-d3 failing the rollback; the rollout
/// ends `Failed` under the default policy (100%).
fn three_back_one_failed() -> Scenario {
    let mut s = canary();
    rolled_back_at_ten(&mut s);
    for device in ["canary-d0", "canary-d1", "canary-d2"] {
        s.agent(device, back(), ("rb-1", minutes(20)), minutes(20));
    }
    s.agent("canary-d3", FAILED, ("rb-1", minutes(21)), minutes(21));
    assert_eq!(s.state(), RolloutState::Failed);
    s
}

#[test]
fn a_rollback_below_its_policy_ends_failed_with_the_numbers() {
    let s = three_back_one_failed();
    assert_eq!(
        s.last_reason("rollback.failed"),
        "rollback failed: wave canary: 3 of 4 back on Contoso/Gateway/2.4.0; 1 failed (listed in compliance), 75.0% < 100%"
    );
}

#[test]
fn a_report_after_the_end_updates_the_device_but_reopens_nothing() {
    let mut s = three_back_one_failed();
    let decisions = s.rollout.decision_count();
    let effects = s.agent("canary-d3", back(), ("rb-1", minutes(30)), minutes(30));
    assert!(effects.is_empty());
    assert_eq!(s.state(), RolloutState::Failed, "a final decision stays");
    assert_eq!(s.rollout.decision_count(), decisions);
    let counts = rollback_counts(&s);
    assert_eq!((counts.succeeded, counts.failed), (4, 0));
    let record = s.devices["canary-d3"];
    assert_eq!(record.installed, Installed::RollbackUpdate);
    assert_eq!(record.last_report_at, Some(minutes(30)));
}

#[test]
fn a_retried_wave_does_not_count_the_earlier_attempts_reports() {
    let mut s = canary();
    // the deployment could not be created: the wave pauses, resume retries it (attempt 2)
    let create = EffectId::new("pw-r1-w0a1:create");
    s.step(
        Input::EffectFailed {
            effect_id: create,
            error: "boom".into(),
        },
        minutes(2),
    );
    assert_eq!(s.state(), RolloutState::Paused);
    s.command("retry", CommandAction::Resume, "bob", minutes(5))
        .expect("resume");
    assert_eq!(s.rollout.wave_progress()[0].attempt, 2);
    // a failure of attempt 1 written before attempt 2 existed does not count
    s.agent("canary-d0", FAILED, ("fw-1", minutes(4)), minutes(6));
    assert_eq!(s.rollout.wave_progress()[0].counts.failed, 0);
    // attempt 2's own report does
    s.agent("canary-d1", FAILED, ("fw-2", minutes(7)), minutes(7));
    assert_eq!(s.rollout.wave_progress()[0].counts.failed, 1);
}

#[test]
fn device_update_failing_the_deployment_fails_the_wave_with_its_error() {
    let mut s = canary();
    s.step(
        Input::DeploymentFailed {
            deployment_id: "pw-r1-w0a1".into(),
            error: "subgroup deviceClassId2: ADMConfigurationLimitExceeded: The subgroup deployment failed to be created due to hitting the ADM configuration limit".into(),
        },
        minutes(3),
    );
    assert_eq!(s.state(), RolloutState::RollingBack);
    assert!(s
        .last_reason("wave.failed")
        .contains("ADMConfigurationLimitExceeded"));
}
