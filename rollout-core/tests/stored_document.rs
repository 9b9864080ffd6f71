//! A rollout document written by the engine before its boundary was typed (the fixtures in
//! `tests/fixtures/`, see their README) is read by today's engine, written back unchanged,
//! and steps on exactly as the earlier engine did; a damaged document is refused at load.

mod common;

use common::*;
use rollout_core::*;
use std::collections::BTreeMap;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stored_rollout() -> (String, Rollout) {
    let text = fixture("rollout-document.v1.json");
    let rollout = serde_json::from_str(&text).expect("the stored document loads");
    (text, rollout)
}

fn stored_devices() -> WorkingSet {
    let records: BTreeMap<String, DeviceRecord> =
        serde_json::from_str(&fixture("rollout-devices.v1.json")).expect("records load");
    let mut devices = WorkingSet::with_capacity(records.len());
    for (device, record) in records {
        devices.insert_loaded(device.into(), record, ());
    }
    devices
}

#[test]
fn a_document_written_before_is_read_and_written_back_unchanged() {
    let (text, rollout) = stored_rollout();
    assert_eq!(rollout.id(), "r1");
    assert_eq!(rollout.state(), RolloutState::Deploying);
    assert_eq!(rollout.current_wave(), 1);
    assert_eq!(rollout.decision_count(), 12);
    let (plan, pilot) = rollout.wave(1).expect("pilot");
    assert_eq!(plan.name, "pilot");
    assert_eq!(
        pilot.deployment_id.as_ref().expect("deployed"),
        "pw-r1-w1a1"
    );
    let written = serde_json::to_string_pretty(&rollout).expect("json") + "\n";
    assert_eq!(written, text);

    let decisions = fixture("rollout-decisions.v1.json");
    let read: Vec<Decision> = serde_json::from_str(&decisions).expect("decisions load");
    assert_eq!(read[0].kind, DecisionKind::RolloutCreated);
    let written = serde_json::to_string_pretty(&read).expect("json") + "\n";
    assert_eq!(written, decisions);
}

#[test]
fn a_document_written_before_steps_on_as_it_did() {
    let (_, mut rollout) = stored_rollout();
    let mut devices = stored_devices();
    let mut step = Step::default();
    // the twin versions go on from those in the stored records (pilot-d1 reported at 5)
    for (device, version, at) in [("pilot-d3", 6, 47), ("pilot-d4", 7, 48)] {
        let report = agent_report(device, version, (255, None), None, minutes(at));
        let input = Input::DeviceReport(report);
        step.append(
            rollout
                .step(&mut devices, &input, minutes(at))
                .expect("step"),
        );
    }
    step.append(
        rollout
            .step(&mut devices, &Input::Tick, minutes(49))
            .expect("step"),
    );

    let expected: serde_json::Value =
        serde_json::from_str(&fixture("rollout-continuation.v1.json")).expect("json");
    let decisions: Vec<&Decision> = step.decisions.iter().map(|(_, d)| d).collect();
    let numbers: Vec<u64> = step.decisions.iter().map(|(n, _)| *n).collect();
    let produced = serde_json::json!({
        "state": rollout.state(),
        "effects": step.effects,
        "decisions": decisions,
    });
    assert_eq!(produced, expected);
    assert_eq!(numbers, [12, 13]);

    let mut changed: Vec<String> = devices
        .into_changes()
        .map(|change| match change {
            DeviceChange::Changed(device, record, ()) => {
                assert_eq!(record.forward, Outcome::Failed);
                device.to_string()
            }
            DeviceChange::Added(device, _) => panic!("{device} added"),
        })
        .collect();
    changed.sort();
    assert_eq!(changed, ["pilot-d3", "pilot-d4"]);
}

#[test]
fn a_document_whose_waves_and_plan_differ_is_refused_at_load() {
    let (text, _) = stored_rollout();
    let mut document: serde_json::Value = serde_json::from_str(&text).expect("json");
    document["waves"].as_array_mut().expect("waves").pop();
    let refused = serde_json::from_value::<Rollout>(document).expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("rollout r1: the plan has 3 wave(s) but progress is stored for 2"),
        "{refused}"
    );

    let mut document: serde_json::Value = serde_json::from_str(&text).expect("json");
    document["currentWave"] = 7.into();
    let refused = serde_json::from_value::<Rollout>(document).expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("currentWave names wave 7 of 3"),
        "{refused}"
    );
}
