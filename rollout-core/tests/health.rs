//! Health gates: devices that install and then drop off count as failed; a wave passes only on
//! devices that finished their observation healthy.

mod common;

use common::*;
use rollout_core::*;

/// A canary of 6 with a health gate (observe 60 min; `max` minutes of disconnection allowed;
/// success at 50%, failure above 40%), its devices all installed at minute 1.
fn gated(max: u32) -> Scenario {
    let mut canary = wave("canary", 50.0, 40.0, 1, WaveFailure::Rollback);
    canary.soak_minutes = 0;
    canary.health_gate = Some(HealthGate {
        observe_minutes: 60,
        max_disconnected_minutes: max,
    });
    let fleet = wave("fleet", 95.0, 2.0, 10, WaveFailure::Rollback);
    let mut s = Scenario::new(plan(vec![canary, fleet]));
    s.members(0, devices("canary", 6), minutes(0));
    for device in devices("canary", 6) {
        s.succeed(&device, minutes(1));
    }
    s
}

fn connection(s: &mut Scenario, device: &str, connected: bool, sequence: &str, at: i64) {
    let report = ConnectionReport {
        device: device.into(),
        connected,
        sequence: ConnectionSequence::parse(sequence).expect("sequence"),
        at: minutes(at),
    };
    s.step(Input::DeviceConnection(report), minutes(at));
}

fn wave_counts(s: &Scenario, index: usize) -> Counts {
    s.rollout.wave(index).expect("wave").1.counts
}

#[test]
fn with_zero_minutes_any_disconnect_while_observed_fails_the_wave_with_the_numbers() {
    let mut s = gated(0);
    assert_eq!(
        s.state(),
        RolloutState::Soaking,
        "installed: soak and observation run"
    );
    for (i, device) in devices("canary", 3).iter().enumerate() {
        connection(&mut s, device, false, &format!("{:X}", 10 + i), 5);
    }
    assert_eq!(s.state(), RolloutState::RollingBack);
    assert_eq!(
        s.last_reason("wave.failed"),
        "wave canary: 3 of 6 unhealthy after install (disconnected > 0 min within 60 min) = 50.0% > 40%; rolling back"
    );
    let counts = wave_counts(&s, 0);
    assert_eq!((counts.succeeded, counts.unhealthy), (3, 3));
    assert_eq!(s.devices["canary-d0"].forward, Outcome::Unhealthy);
}

#[test]
fn the_wave_passes_only_once_its_devices_finished_their_observation_healthy() {
    let mut s = gated(10);
    // soak is 0 minutes, yet the wave waits for the observation
    s.step(Input::Tick, minutes(30));
    assert_eq!(s.state(), RolloutState::Soaking);
    s.step(Input::Tick, minutes(61));
    assert_eq!(
        s.state(),
        RolloutState::Soaking,
        "minute 1 + 60 is not over yet"
    );
    s.step(Input::Tick, minutes(62));
    let status = s.rollout.wave(0).expect("wave").1.status;
    assert_eq!(status, WaveStatus::Passed);
    assert_eq!(s.rollout.current_wave(), 1, "the next wave is on");
    let reason = s.last_reason("wave.passed");
    assert!(
        reason.contains("6 of 6 healthy after 60 min of observation"),
        "{reason}"
    );
}

#[test]
fn a_short_disconnect_is_tolerated_and_a_long_one_is_unhealthy_when_it_ends_or_on_a_tick() {
    let mut s = gated(10);
    connection(&mut s, "canary-d0", false, "10", 5);
    connection(&mut s, "canary-d0", true, "11", 12); // 7 min: tolerated
    connection(&mut s, "canary-d1", false, "10", 5);
    connection(&mut s, "canary-d1", true, "11", 20); // 15 min: unhealthy when it ends
    assert_eq!(wave_counts(&s, 0).unhealthy, 1);
    assert_eq!(s.devices["canary-d0"].forward, Outcome::Succeeded);
    assert_eq!(s.devices["canary-d1"].forward, Outcome::Unhealthy);
    // still away past the limit: a tick counts it, without its record
    connection(&mut s, "canary-d2", false, "10", 30);
    s.step(Input::Tick, minutes(39));
    assert_eq!(
        wave_counts(&s, 0).unhealthy,
        1,
        "9 minutes is within the limit"
    );
    s.step(Input::Tick, minutes(41));
    let counts = wave_counts(&s, 0);
    assert_eq!((counts.unhealthy, counts.succeeded), (2, 4));
    assert!(s
        .last_reason("wave.unhealthy")
        .contains("1 device(s) disconnected for more than 10 min"));
    assert!(s.rollout.counted_unhealthy(0, "canary-d2"));
    // its return later tells its record
    connection(&mut s, "canary-d2", true, "11", 45);
    assert_eq!(s.devices["canary-d2"].forward, Outcome::Unhealthy);
    assert_eq!(wave_counts(&s, 0).unhealthy, 2, "counted once");
    assert_eq!(
        s.state(),
        RolloutState::Soaking,
        "2 of 6 = 33% is within 40%"
    );
    // d0 (back within the limit) and d3-d5 finish their observation healthy
    s.step(Input::Tick, minutes(62));
    assert!(s
        .last_reason("wave.passed")
        .contains("4 of 6 healthy after 60 min"));
    let third = ConnectionReport {
        device: "canary-d3".into(),
        connected: false,
        sequence: ConnectionSequence::parse("10").expect("sequence"),
        at: minutes(63),
    };
    s.step(Input::DeviceConnection(third), minutes(63));
    assert_eq!(
        wave_counts(&s, 0).unhealthy,
        2,
        "a passed wave is judged no more"
    );
}

#[test]
fn out_of_order_events_go_by_sequence_number() {
    let mut s = gated(10);
    // the connect that ended a 15-minute disconnection arrives before the disconnection
    connection(
        &mut s,
        "canary-d0",
        true,
        "0000000000000000000000000000000000000000000000000000000000000012",
        20,
    );
    connection(&mut s, "canary-d0", false, "11", 5);
    assert_eq!(s.devices["canary-d0"].forward, Outcome::Unhealthy);
    let state = s.devices["canary-d0"].connection.expect("connection");
    assert!(
        state.connected,
        "the highest sequence number says connected"
    );
    // an old disconnect redelivered after a short one changes nothing more
    connection(&mut s, "canary-d1", false, "20", 5);
    connection(&mut s, "canary-d1", true, "21", 8);
    connection(&mut s, "canary-d1", false, "20", 5);
    assert_eq!(s.devices["canary-d1"].forward, Outcome::Succeeded);
    assert_eq!(wave_counts(&s, 0).unhealthy, 1);
}

#[test]
fn disconnects_outside_the_observation_or_of_devices_not_installed_do_not_count() {
    let mut s = gated(0);
    connection(&mut s, "canary-d0", false, "10", 0); // before it installed at minute 1
    connection(&mut s, "canary-d0", true, "11", 0);
    connection(&mut s, "nobody", false, "10", 5); // not a member
    assert_eq!(wave_counts(&s, 0).unhealthy, 0);
    let ungated = wave("canary", 100.0, 20.0, 1, WaveFailure::Rollback);
    let mut plain = Scenario::new(plan(vec![ungated]));
    plain.members(0, devices("canary", 2), minutes(0));
    plain.succeed("canary-d0", minutes(1));
    connection(&mut plain, "canary-d0", false, "10", 5);
    assert_eq!(
        plain.devices["canary-d0"].forward,
        Outcome::Succeeded,
        "no gate, no health"
    );
}

#[test]
fn a_health_gate_that_cannot_see_its_limit_is_refused() {
    let mut bad = wave("canary", 100.0, 20.0, 1, WaveFailure::Rollback);
    bad.health_gate = Some(HealthGate {
        observe_minutes: 10,
        max_disconnected_minutes: 10,
    });
    let problems = plan(vec![bad]).validate().expect_err("invalid");
    assert!(
        problems[0].starts_with("waves[0].healthGate.maxDisconnectedMinutes must be below"),
        "{problems:?}"
    );
}
