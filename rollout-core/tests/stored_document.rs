//! Writes the stored-document fixture with the engine as it is at this commit (run once with
//! `PATCHWAVE_WRITE_FIXTURE=1`); a later commit replaces this with the test that reads it.

mod common;

use common::*;
use rollout_core::*;
use std::collections::BTreeMap;

#[test]
fn write_stored_document_fixture() {
    if std::env::var_os("PATCHWAVE_WRITE_FIXTURE").is_none() {
        return;
    }
    let mut plan = plan(vec![
        wave("canary", 90.0, 20.0, 1, WaveFailure::Rollback),
        wave("pilot", 90.0, 20.0, 2, WaveFailure::Rollback),
        wave("fleet", 90.0, 20.0, 2, WaveFailure::Rollback),
    ]);
    plan.infrastructure = Some(InfrastructurePlan {
        maintenance_configuration_ids: vec![],
        machines: vec![
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw1"
                .into(),
        ],
        on_failure: InfrastructureFailure::Block,
    });
    let mut s = Scenario::new(plan);
    s.step(
        Input::MachinePatched {
            machine:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw1"
                    .into(),
            outcome: PatchOutcome::Succeeded,
            detail: "3 installed".into(),
        },
        minutes(1),
    );
    s.members(0, devices("canary", 3), minutes(2));
    for d in devices("canary", 3) {
        s.succeed(&d, minutes(5));
    }
    s.step(Input::Tick, minutes(40));
    assert_eq!(s.state(), RolloutState::Deploying);
    let pilot = devices("pilot", 5);
    s.members(1, pilot.clone(), minutes(41));
    s.command("cmd-1", CommandAction::Pause, "bob", minutes(42))
        .expect("pause");
    s.command("cmd-2", CommandAction::Resume, "bob", minutes(43))
        .expect("resume");
    let target = s.rollout.plan.update.clone();
    s.agent(&pilot[0], (0, Some(target)), ("wf-1", minutes(44)), minutes(44));
    s.agent(&pilot[1], (6, None), ("wf-1", minutes(44)), minutes(45));
    s.step(
        Input::DeploymentStates {
            deployment_id: s.rollout.waves[1].deployment_id.clone().expect("deployed"),
            devices: vec![PolledDevice {
                device: pilot[2].clone(),
                succeeded: true,
            }],
            last: false,
        },
        minutes(46),
    );
    // as the shell stores it: decisions drained into the audit log, devices on their own
    let decisions = std::mem::take(&mut s.rollout.decisions);
    let devices: BTreeMap<String, DeviceRecord> = s
        .rollout
        .devices
        .iter()
        .map(|(id, record)| (id.to_string(), *record))
        .collect();
    s.rollout.devices.clear();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let document = serde_json::to_string_pretty(&s.rollout).expect("json");
    std::fs::write(dir.join("rollout-document.v1.json"), document + "\n").expect("write");
    let records = serde_json::to_string_pretty(&devices).expect("json");
    std::fs::write(dir.join("rollout-devices.v1.json"), records + "\n").expect("write");
    let decisions = serde_json::to_string_pretty(&decisions).expect("json");
    std::fs::write(dir.join("rollout-decisions.v1.json"), decisions + "\n").expect("write");
    // what stepping on from there produces: two more failures fail the pilot and roll back
    for (id, record) in &devices {
        s.rollout.devices.insert(id.as_str().into(), *record);
    }
    let mut effects = Vec::new();
    effects.extend(s.fail(&pilot[3], minutes(47)));
    effects.extend(s.fail(&pilot[4], minutes(48)));
    effects.extend(s.step(Input::Tick, minutes(49)));
    let after = serde_json::json!({
        "state": s.rollout.state,
        "effects": effects,
        "decisions": s.rollout.decisions,
    });
    let after = serde_json::to_string_pretty(&after).expect("json");
    std::fs::write(dir.join("rollout-continuation.v1.json"), after + "\n").expect("write");
}
