//! The alert gate: a fired alert of a rule the plan names fails the wave that deploys or
//! soaks (then `onFailure` applies); resolved, unnamed and untimely alerts are recorded
//! only; a redelivered alert changes nothing; terminal rollouts ignore alerts.

mod common;

use common::*;
use rollout_core::*;

const RULE: &str = "hub-connected-devices-low";

/// pilot (4 devices), deployed at minute 1, with `RULE` in `alertRules`.
fn pilot(on_failure: WaveFailure) -> Scenario {
    let mut p = plan(vec![wave("pilot", 100.0, 50.0, 2, on_failure)]);
    p.alert_rules = vec![RULE.into(), "another-rule".into()];
    let mut s = Scenario::new(p);
    s.members(0, devices("pilot", 4), minutes(1));
    assert_eq!(s.state(), RolloutState::Deploying);
    s
}

fn alert(id: &str, rule: &str, fired: bool, at: chrono::DateTime<chrono::Utc>) -> Input {
    Input::Alert(AlertInput {
        alert_id: format!("/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/{id}"),
        rule: rule.into(),
        fired,
        at: Some(at),
    })
}

/// Steps `input` and returns the decisions and effects it produced.
fn step(s: &mut Scenario, input: &Input, at: chrono::DateTime<chrono::Utc>) -> Step {
    let step = s.rollout.step(&mut s.devices, input, at).expect("accepted");
    s.decisions
        .extend(step.decisions.iter().map(|(_, d)| d.clone()));
    s.effects.extend(step.effects.iter().cloned());
    step
}

fn decision_kinds(step: &Step) -> Vec<String> {
    step.decisions
        .iter()
        .map(|(_, d)| d.kind.to_string())
        .collect()
}

#[test]
fn a_fired_alert_of_a_named_rule_fails_the_deploying_wave_and_rolls_back() {
    let mut s = pilot(WaveFailure::Rollback);
    s.succeed("pilot-d0", minutes(3));
    let produced = step(&mut s, &alert("a1", RULE, true, minutes(5)), minutes(6));
    assert_eq!(s.state(), RolloutState::RollingBack);
    assert_eq!(
        s.last_reason("wave.failed"),
        "wave pilot: alert hub-connected-devices-low fired at 2026-11-23T01:05:00Z; rolling back"
    );
    assert_eq!(s.rollout.wave_progress()[0].status, WaveStatus::Failed);
    assert_eq!(kinds(&produced.effects), ["cancel", "create-rollback"]);
    assert_eq!(
        decision_kinds(&produced),
        ["wave.failed", "rollback.opened"]
    );
    assert!(s
        .rollout
        .applied()
        .contains("alert:/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1:Fired"));
}

#[test]
fn a_fired_alert_pauses_when_the_wave_says_pause_and_matches_rule_names_without_case() {
    let mut s = pilot(WaveFailure::Pause);
    let produced = step(
        &mut s,
        &alert("a1", "Hub-Connected-Devices-LOW", true, minutes(5)),
        minutes(5),
    );
    assert_eq!(s.state(), RolloutState::Paused);
    assert_eq!(decision_kinds(&produced), ["wave.failed"]);
    assert!(s
        .last_reason("wave.failed")
        .starts_with("wave pilot: alert Hub-Connected-Devices-LOW fired at 2026-11-23T01:05:00Z; paused for an operator"));
    assert!(kinds(&produced.effects).is_empty());
}

#[test]
fn a_fired_alert_fails_a_soaking_wave_and_one_paused_there_by_an_operator() {
    let mut s = pilot(WaveFailure::Rollback);
    for device in devices("pilot", 4) {
        s.succeed(&device, minutes(3));
    }
    assert_eq!(s.state(), RolloutState::Soaking);
    let _ = step(&mut s, &alert("a1", RULE, true, minutes(10)), minutes(10));
    assert_eq!(s.state(), RolloutState::RollingBack);

    let mut s = pilot(WaveFailure::Rollback);
    s.command("c1", CommandAction::Pause, "bob", minutes(2))
        .expect("pause");
    assert_eq!(s.state(), RolloutState::Paused);
    let _ = step(&mut s, &alert("a1", RULE, true, minutes(5)), minutes(5));
    assert_eq!(s.state(), RolloutState::RollingBack);
    assert!(s
        .last_reason("wave.failed")
        .contains("alert hub-connected-devices-low fired"));
}

#[test]
fn a_resolved_alert_is_recorded_only() {
    let mut s = pilot(WaveFailure::Rollback);
    let produced = step(&mut s, &alert("a1", RULE, false, minutes(7)), minutes(7));
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(decision_kinds(&produced), ["alert.recorded"]);
    assert_eq!(
        s.last_reason("alert.recorded"),
        "alert hub-connected-devices-low resolved at 2026-11-23T01:07:00Z: recorded only"
    );
    assert!(kinds(&produced.effects).is_empty());
    assert_eq!(s.rollout.wave_progress()[0].status, WaveStatus::Deploying);
}

#[test]
fn a_fired_alert_of_a_rule_the_plan_does_not_name_is_recorded_only() {
    let mut s = pilot(WaveFailure::Rollback);
    let produced = step(
        &mut s,
        &alert("a9", "cpu-high", true, minutes(4)),
        minutes(4),
    );
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(decision_kinds(&produced), ["alert.recorded"]);
    assert!(s
        .last_reason("alert.recorded")
        .contains("not a rule of this rollout's alertRules"));
    assert!(kinds(&produced.effects).is_empty());
}

#[test]
fn a_redelivered_alert_decides_nothing_and_emits_nothing() {
    let mut s = pilot(WaveFailure::Pause);
    let resolved = alert("a1", RULE, false, minutes(3));
    let _ = step(&mut s, &resolved, minutes(3));
    let again = step(&mut s, &resolved, minutes(4));
    assert!(again.decisions.is_empty() && again.effects.is_empty());

    let fired = alert("a2", RULE, true, minutes(5));
    let _ = step(&mut s, &fired, minutes(5));
    assert_eq!(s.state(), RolloutState::Paused);
    let before = s.rollout.clone();
    let again = step(&mut s, &fired, minutes(6));
    assert!(again.decisions.is_empty() && again.effects.is_empty());
    assert_eq!(s.state(), RolloutState::Paused);
    assert_eq!(s.rollout.applied(), before.applied());
    // the same alert resolving is a new delivery
    let produced = step(&mut s, &alert("a2", RULE, false, minutes(7)), minutes(7));
    assert_eq!(decision_kinds(&produced), ["alert.recorded"]);
}

#[test]
fn an_alert_while_pending_is_recorded_and_a_completed_rollout_ignores_it() {
    let mut p = plan(vec![wave("pilot", 100.0, 50.0, 2, WaveFailure::Rollback)]);
    p.alert_rules = vec![RULE.into()];
    // t0 is a Monday: a Saturday window keeps the wave waiting
    p.window = Some(Window {
        days: vec!["Sat".into()],
        start: "10:00".into(),
        end: "11:00".into(),
        time_zone: "UTC".into(),
    });
    let mut s = Scenario::new(p);
    assert_eq!(s.state(), RolloutState::Pending);
    let produced = step(&mut s, &alert("a1", RULE, true, minutes(5)), minutes(5));
    assert_eq!(s.state(), RolloutState::Pending);
    assert_eq!(decision_kinds(&produced), ["alert.recorded"]);
    assert!(kinds(&produced.effects).is_empty());
    assert!(s
        .last_reason("alert.recorded")
        .contains("no wave is deploying or soaking (the rollout is Pending)"));

    let mut s = pilot(WaveFailure::Rollback);
    for device in devices("pilot", 4) {
        s.succeed(&device, minutes(3));
    }
    s.step(Input::Tick, minutes(40));
    assert_eq!(s.state(), RolloutState::Completed);
    let before = s.rollout.clone();
    let produced = step(&mut s, &alert("a1", RULE, true, minutes(41)), minutes(41));
    assert!(produced.decisions.is_empty() && produced.effects.is_empty());
    assert_eq!(s.rollout, before);
}

#[test]
fn plans_without_alert_rules_still_load_and_rule_names_are_validated() {
    let json = serde_json::to_value(plan(vec![wave(
        "pilot",
        100.0,
        50.0,
        2,
        WaveFailure::Rollback,
    )]))
    .expect("json");
    assert!(
        json.get("alertRules").is_none(),
        "an empty list is not written"
    );
    let back: RolloutPlan = serde_json::from_value(json.clone()).expect("loads");
    assert!(back.alert_rules.is_empty());
    let mut with = json;
    with["alertRules"] = serde_json::json!([RULE, ""]);
    let named: RolloutPlan = serde_json::from_value(with).expect("loads");
    assert_eq!(
        named.validate().expect_err("blank name"),
        ["alertRules[1] must not be empty"]
    );
}
