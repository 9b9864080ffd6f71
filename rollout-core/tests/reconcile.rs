//! Device Update's deployment status as a second source of truth for lost reports.

mod common;

use common::*;
use rollout_core::*;

fn one_wave(success: f64, failure: f64) -> RolloutPlan {
    plan(vec![wave(
        "canary",
        success,
        failure,
        5,
        WaveFailure::Rollback,
    )])
}

fn polled(device: &str, succeeded: bool) -> PolledDevice {
    PolledDevice {
        device: device.into(),
        succeeded,
    }
}

/// Reports every effect the rollout is waiting for as carried out.
fn acknowledge(s: &mut Scenario, at: chrono::DateTime<chrono::Utc>) {
    let outstanding: Vec<EffectId> = s.rollout.outstanding().keys().cloned().collect();
    for effect_id in outstanding {
        s.step(Input::EffectSucceeded { effect_id }, at);
    }
}

fn poll(s: &mut Scenario, deployment: &str, devices: Vec<PolledDevice>, m: i64) -> Vec<Effect> {
    s.step(
        Input::DeploymentStates {
            deployment_id: deployment.into(),
            devices,
            last: true,
        },
        minutes(m),
    )
}

#[test]
fn a_deployment_is_polled_once_created_and_while_reports_are_owed() {
    let mut s = Scenario::new(one_wave(100.0, 50.0));
    s.members(0, devices("canary", 3), minutes(1));
    assert!(
        s.rollout.deployments_to_poll().is_empty(),
        "the deployment's creation is still outstanding"
    );
    acknowledge(&mut s, minutes(1));
    s.succeed("canary-d0", minutes(2));
    s.report("canary-d1", 6, None, minutes(2));
    assert_eq!(
        s.rollout.deployments_to_poll(),
        [PollTarget {
            group: "canary".into(),
            deployment_id: "pw-r1-w0a1".into(),
            known_finished: 1,
        }]
    );
    s.fail("canary-d1", minutes(3));
    s.succeed("canary-d2", minutes(3));
    assert!(
        s.rollout.deployments_to_poll().is_empty(),
        "every device reported a final outcome"
    );
}

#[test]
fn polled_outcomes_fill_only_devices_whose_final_report_never_came() {
    let mut s = Scenario::new(one_wave(90.0, 20.0));
    s.members(0, devices("canary", 10), minutes(1));
    acknowledge(&mut s, minutes(1));
    for i in 0..6 {
        s.succeed(&format!("canary-d{i}"), minutes(2));
    }
    s.fail("canary-d6", minutes(2));
    s.report("canary-d7", 6, None, minutes(2));
    let mut states: Vec<PolledDevice> = (0..9)
        .map(|i| polled(&format!("canary-d{i}"), true))
        .collect();
    states.push(polled("canary-d9", false));
    states.push(polled("elsewhere-d0", true));
    poll(&mut s, "pw-r1-w0a1", states, 3);
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!(
        (counts.succeeded, counts.failed, counts.in_progress),
        (8, 2, 0),
        "d6 keeps its reported failure; d7, d8 succeeded and d9 failed by the poll"
    );
    assert_eq!(
        s.last_reason("wave.reconciled"),
        "wave canary: Device Update counts 3 device(s) finished whose reports never came \
         (2 succeeded, 1 failed); taken from deployment pw-r1-w0a1"
    );
    assert!(s.devices["canary-d7"].forward_polled);
    assert!(!s.devices["canary-d0"].forward_polled);
}

#[test]
fn a_poll_that_adds_nothing_decides_nothing() {
    let mut s = Scenario::new(one_wave(90.0, 20.0));
    s.members(0, devices("canary", 4), minutes(1));
    acknowledge(&mut s, minutes(1));
    s.succeed("canary-d0", minutes(2));
    let before = s.rollout.decision_count();
    poll(&mut s, "pw-r1-w0a1", vec![polled("canary-d0", true)], 3);
    poll(&mut s, "pw-other", vec![polled("canary-d1", true)], 3);
    assert_eq!(s.rollout.decision_count(), before);
    assert_eq!(s.rollout.wave_progress()[0].counts.succeeded, 1);
}

#[test]
fn a_report_still_in_progress_does_not_undo_a_polled_outcome() {
    let mut s = Scenario::new(one_wave(100.0, 50.0));
    s.members(0, devices("canary", 4), minutes(1));
    acknowledge(&mut s, minutes(1));
    poll(&mut s, "pw-r1-w0a1", vec![polled("canary-d0", true)], 2);
    // an older "in progress" notification delivered late, with a higher twin version than seen
    s.report("canary-d0", 6, None, minutes(3));
    assert_eq!(s.rollout.wave_progress()[0].counts.succeeded, 1);
    assert_eq!(s.rollout.wave_progress()[0].counts.in_progress, 0);
    // a final report still counts: the device's own word wins
    s.fail("canary-d0", minutes(4));
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!((counts.succeeded, counts.failed), (0, 1));
    assert!(!s.devices["canary-d0"].forward_polled);
}

#[test]
fn a_device_that_reported_a_final_outcome_itself_is_left_to_its_own_reports() {
    let mut s = Scenario::new(one_wave(100.0, 50.0));
    s.members(0, devices("canary", 4), minutes(1));
    acknowledge(&mut s, minutes(1));
    s.fail("canary-d0", minutes(2));
    // the device tries again: in progress, a newer twin version
    s.report("canary-d0", 6, None, minutes(3));
    // a poll read before that report still lists the failure: it changes nothing
    let effects = poll(&mut s, "pw-r1-w0a1", vec![polled("canary-d0", false)], 4);
    assert!(effects.is_empty(), "{effects:?}");
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!((counts.in_progress, counts.failed), (1, 0));
    assert!(!s.devices["canary-d0"].forward_polled);
}

#[test]
fn a_wave_whose_reports_were_lost_passes_on_the_polled_status() {
    let mut s = Scenario::new(one_wave(100.0, 10.0));
    s.members(0, devices("canary", 5), minutes(1));
    acknowledge(&mut s, minutes(1));
    let states = devices("canary", 5)
        .iter()
        .map(|d| polled(d, true))
        .collect();
    poll(&mut s, "pw-r1-w0a1", states, 10);
    assert_eq!(s.state(), RolloutState::Soaking);
    s.step(Input::Tick, minutes(40));
    assert_eq!(s.state(), RolloutState::Completed);
}

#[test]
fn after_the_deadline_a_polled_outcome_replaces_a_timeout() {
    let mut plan = one_wave(60.0, 40.0);
    plan.waves[0].soak_minutes = 500;
    let mut s = Scenario::new(plan);
    s.members(0, devices("canary", 3), minutes(0));
    acknowledge(&mut s, minutes(0));
    s.succeed("canary-d0", minutes(5));
    s.succeed("canary-d1", minutes(5));
    s.step(Input::Tick, minutes(120));
    assert_eq!(s.rollout.wave_progress()[0].counts.timed_out, 1);
    poll(&mut s, "pw-r1-w0a1", vec![polled("canary-d2", true)], 121);
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!((counts.succeeded, counts.timed_out), (3, 0));
    assert!(s
        .last_reason("wave.reconciled")
        .contains("(1 succeeded, 0 failed)"));
}

#[test]
fn rollback_deployments_are_polled_and_the_forward_one_no_longer_counts() {
    let mut s = Scenario::new(one_wave(100.0, 10.0));
    s.members(0, devices("canary", 5), minutes(1));
    acknowledge(&mut s, minutes(1));
    for i in 0..5 {
        s.fail(&format!("canary-d{i}"), minutes(2));
    }
    assert_eq!(s.state(), RolloutState::RollingBack);
    acknowledge(&mut s, minutes(2));
    let targets: Vec<DeploymentId> = s
        .rollout
        .deployments_to_poll()
        .into_iter()
        .map(|t| t.deployment_id)
        .collect();
    assert_eq!(targets, ["pw-r1-rb0"]);
    let forward = poll(&mut s, "pw-r1-w0a1", vec![polled("canary-d0", true)], 3);
    assert!(forward.is_empty());
    assert_eq!(
        s.rollout.rollback().expect("rollback").groups[0]
            .counts
            .succeeded,
        0
    );
    let states = devices("canary", 5)
        .iter()
        .map(|d| polled(d, true))
        .collect();
    poll(&mut s, "pw-r1-rb0", states, 4);
    assert_eq!(s.state(), RolloutState::RolledBack);
    assert!(s
        .last_reason("rollback.reconciled")
        .starts_with("rollback of wave canary: Device Update counts 5 device(s) finished"));
}

#[test]
fn a_poll_in_parts_is_one_decision_and_a_poll_that_fills_nothing_is_none() {
    let mut s = Scenario::new(one_wave(100.0, 50.0));
    s.members(0, devices("canary", 4), minutes(1));
    acknowledge(&mut s, minutes(1));
    let reconciled = |s: &Scenario| {
        s.decisions
            .iter()
            .filter(|d| d.kind == "wave.reconciled")
            .count()
    };
    let part = |devices: Vec<PolledDevice>, last: bool| Input::DeploymentStates {
        deployment_id: "pw-r1-w0a1".into(),
        devices,
        last,
    };
    s.step(part(vec![polled("canary-d0", true)], false), minutes(2));
    s.step(part(vec![polled("canary-d1", false)], false), minutes(2));
    assert_eq!(reconciled(&s), 0, "the poll is not over");
    s.step(part(vec![polled("canary-d2", true)], true), minutes(2));
    assert_eq!(reconciled(&s), 1);
    assert!(s
        .last_reason("wave.reconciled")
        .contains("3 device(s) finished whose reports never came (2 succeeded, 1 failed)"));
    // the same devices again change no count: no decision
    poll(
        &mut s,
        "pw-r1-w0a1",
        vec![polled("canary-d0", true), polled("canary-d1", false)],
        3,
    );
    assert_eq!(reconciled(&s), 1);
}
