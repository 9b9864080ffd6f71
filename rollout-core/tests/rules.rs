//! One test per engine rule, named after it.

mod common;

use common::*;
use rollout_core::*;

fn two_waves() -> RolloutPlan {
    plan(vec![
        wave("canary", 100.0, 5.0, 5, WaveFailure::Rollback),
        wave("fleet", 95.0, 2.0, 10, WaveFailure::Rollback),
    ])
}

/// Drives wave `index` to success with all devices succeeding at `at`.
fn pass_wave(
    s: &mut Scenario,
    index: usize,
    name: &str,
    count: usize,
    at: chrono::DateTime<chrono::Utc>,
) {
    s.members(index, devices(name, count), at);
    for device in devices(name, count) {
        s.succeed(&device, at);
    }
}

#[test]
fn plan_validation_lists_every_problem() {
    let mut bad = plan(vec![
        wave("a", 120.0, 5.0, 5, WaveFailure::Pause),
        wave("a", 50.0, 60.0, 5, WaveFailure::Pause),
    ]);
    bad.rollback_update = bad.update.clone();
    bad.waves[1].device_timeout_minutes = 0;
    bad.window = Some(Window {
        days: vec!["Someday".into()],
        start: "1am".into(),
        end: "05:00".into(),
        time_zone: "Nowhere/City".into(),
    });
    bad.infrastructure = Some(InfrastructurePlan {
        maintenance_configuration_ids: vec!["gw-hosts".into()],
        machines: vec![],
        on_failure: InfrastructureFailure::Block,
    });
    let problems = bad.validate().expect_err("invalid");
    let expected = [
        "rollbackUpdate must differ from update",
        "maintenanceConfigurationIds[0] `gw-hosts` is not a maintenance configuration",
        "waves[0].successThresholdPercent must be above 0 and at most 100",
        "waves[1].failureThresholdPercent 60% and waves[1].successThresholdPercent 50% cannot both hold",
        "waves[1].deviceTimeoutMinutes must be at least 1",
        "waves[1].name `a` is used by another wave",
        "waves[1].deviceGroup `a` is used by another wave",
        "window.days[0] `Someday` is not a day",
        "window.start `1am` is not a time",
        "window.timeZone `Nowhere/City` is not an IANA time zone",
    ];
    for fragment in expected {
        assert!(
            problems.iter().any(|p| p.contains(fragment)),
            "missing `{fragment}` in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    assert!(plan(vec![])
        .validate()
        .expect_err("no waves")
        .iter()
        .any(|p| p.contains("at least one wave")));
}

#[test]
fn the_design_example_plan_is_valid() {
    let json = r#"{
      "name": "CVE-2026-1234 gateway firmware",
      "update":         {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
      "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
      "infrastructure": {
        "maintenanceConfigurationIds": ["/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/gw-hosts"],
        "machines": ["/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw-01"],
        "onFailure": "block"
      },
      "waves": [
        {"name": "canary", "deviceGroup": "canary", "successThresholdPercent": 100,
         "failureThresholdPercent": 5, "minDevicesJudged": 5, "soakMinutes": 30,
         "deviceTimeoutMinutes": 120, "approvalRequired": false, "onFailure": "rollback"},
        {"name": "fleet", "deviceGroup": "fleet", "successThresholdPercent": 95,
         "failureThresholdPercent": 2, "minDevicesJudged": 50, "soakMinutes": 60,
         "deviceTimeoutMinutes": 240, "approvalRequired": true, "onFailure": "rollback"}
      ],
      "window": {"days": ["Mon","Tue","Wed","Thu","Fri"], "start": "01:00", "end": "05:00", "timeZone": "Europe/Berlin"}
    }"#;
    let plan: RolloutPlan = serde_json::from_str(json).expect("design plan parses");
    assert_eq!(plan.validate(), Ok(()));
}

#[test]
fn wave_start_fetches_members_before_creating_the_deployment() {
    let mut s = Scenario::new(two_waves());
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(kinds(&s.effects), ["fetch"]);
    let effects: Vec<Effect> = s
        .members(0, devices("canary", 3), minutes(1))
        .into_iter()
        .filter(|e| !matches!(e.kind, EffectKind::PublishEvent { .. }))
        .collect();
    let [Effect {
        id,
        kind:
            EffectKind::CreateDeployment {
                deployment_id,
                group,
                update,
            },
    }] = &effects[..]
    else {
        panic!("expected one create: {effects:?}")
    };
    assert_eq!(
        (deployment_id.as_str(), group.as_str()),
        ("pw-r1-w0a1", "canary")
    );
    assert_eq!(id, "pw-r1-w0a1:create");
    assert_eq!(update.version, "2.4.1");
}

#[test]
fn members_come_in_pages_each_counted_once_and_the_last_deploys() {
    let mut s = Scenario::new(two_waves());
    let page = |devices: Vec<String>, page: u32, last: bool| Input::GroupMembers {
        wave: 0,
        devices: devices.into_iter().map(DeviceId::from).collect(),
        page,
        last,
    };
    let first = devices("canary", 4);
    let second: Vec<String> = (4..7).map(|i| format!("canary-d{i}")).collect();
    // the first page counts its devices and deploys nothing yet
    let effects = s.step(page(first.clone(), 0, false), minutes(1));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(s.rollout.wave_progress()[0].counts.total, 4);
    assert!(!s.rollout.wave_progress()[0].members_known);
    // fetched again after a crash, or a page from the future: ignored
    assert!(s.step(page(first, 0, false), minutes(1)).is_empty());
    assert!(s
        .step(page(devices("x", 9), 2, true), minutes(1))
        .is_empty());
    assert_eq!(s.rollout.wave_progress()[0].counts.total, 4);
    // the last page completes the count, says so once, and deploys
    let effects = s.step(page(second.clone(), 1, true), minutes(2));
    assert_eq!(s.rollout.wave_progress()[0].counts.total, 7);
    assert!(s.rollout.wave_progress()[0].members_known);
    assert!(kinds(&effects).contains(&"create"), "{:?}", kinds(&effects));
    let told: Vec<&Decision> = s
        .decisions
        .iter()
        .filter(|d| d.kind == "wave.members")
        .collect();
    assert_eq!(told.len(), 1);
    assert!(told[0].reason.contains("7 device(s)"), "{}", told[0].reason);
    // and once known, a replayed last page changes nothing
    assert!(s.step(page(second, 1, true), minutes(3)).is_empty());
    assert_eq!(s.rollout.wave_progress()[0].counts.total, 7);
}

#[test]
fn success_threshold_then_soak_then_next_wave() {
    let mut s = Scenario::new(two_waves());
    pass_wave(&mut s, 0, "canary", 4, minutes(5));
    assert_eq!(s.state(), RolloutState::Soaking);
    assert!(s
        .last_reason("wave.threshold_met")
        .starts_with("wave canary: 4 of 4 succeeded = 100.0% >= 100%"));
    s.step(Input::Tick, minutes(34));
    assert_eq!(s.state(), RolloutState::Soaking, "soak not over");
    let effects = s.step(Input::Tick, minutes(35));
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(s.rollout.current_wave(), 1);
    assert_eq!(kinds(&effects), ["fetch"]);
    pass_wave(&mut s, 1, "fleet", 20, minutes(40));
    s.step(Input::Tick, minutes(70));
    assert_eq!(s.state(), RolloutState::Completed);
}

#[test]
fn failure_threshold_is_judged_only_after_min_devices_judged() {
    let mut s = Scenario::new(plan(vec![wave(
        "canary",
        90.0,
        5.0,
        10,
        WaveFailure::Rollback,
    )]));
    s.members(0, devices("canary", 20), minutes(1));
    s.fail("canary-d0", minutes(2));
    s.fail("canary-d1", minutes(2));
    for i in 2..9 {
        s.succeed(&format!("canary-d{i}"), minutes(3));
    }
    assert_eq!(s.state(), RolloutState::Deploying, "9 finished < 10 judged");
    let effects = s.succeed("canary-d9", minutes(4));
    assert_eq!(
        s.state(),
        RolloutState::RollingBack,
        "10th finished device makes it judgeable"
    );
    assert_eq!(kinds(&effects), ["cancel", "create-rollback"]);
    assert_eq!(
        s.last_reason("wave.failed"),
        "wave canary: 2 of 20 failed = 10.0% > 5%, judged after 10 finished; rolling back"
    );
}

#[test]
fn devices_past_their_timeout_count_as_timed_out_failures() {
    let mut s = Scenario::new(plan(vec![wave("canary", 95.0, 5.0, 5, WaveFailure::Pause)]));
    s.members(0, devices("canary", 10), minutes(0));
    for i in 0..9 {
        s.succeed(&format!("canary-d{i}"), minutes(10));
    }
    s.step(Input::Tick, minutes(119));
    assert_eq!(
        s.state(),
        RolloutState::Deploying,
        "9 of 10 = 90% < 95%, 0 failures"
    );
    s.step(Input::Tick, minutes(120));
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!(
        (counts.succeeded, counts.timed_out, counts.failed),
        (9, 1, 0)
    );
    assert_eq!(s.state(), RolloutState::Paused, "1 of 10 = 10% > 5%");
    assert!(s
        .last_reason("wave.timeouts")
        .contains("1 device(s) did not finish within 120 minutes"));
    assert!(s
        .last_reason("wave.failed")
        .contains("(0 failed, 1 timed out)"));
}

#[test]
fn approval_gate_holds_the_wave_and_separation_of_duties_applies() {
    let mut p = two_waves();
    p.waves[1].approval_required = true;
    let mut s = Scenario::new(p);
    pass_wave(&mut s, 0, "canary", 2, minutes(1));
    s.step(Input::Tick, minutes(31));
    assert_eq!(s.state(), RolloutState::AwaitingApproval);
    let refused = s
        .command("c1", CommandAction::Approve, "alice", minutes(32))
        .expect_err("creator");
    assert!(refused.0.contains("separation of duties"), "{refused}");
    assert_eq!(s.state(), RolloutState::AwaitingApproval);
    let effects = s
        .command("c2", CommandAction::Approve, "bob", minutes(33))
        .expect("approved");
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(kinds(&effects), ["fetch"]);
    assert_eq!(
        s.rollout.wave_progress()[1].approved_by.as_deref(),
        Some("bob")
    );
}

#[test]
fn waves_start_only_inside_the_maintenance_window() {
    let mut p = two_waves();
    // Berlin 01:00–05:00; t0 is Monday 02:00 Berlin, so wave 0 starts at once
    p.window = Some(Window {
        days: vec!["Mon".into(), "Tue".into()],
        start: "01:00".into(),
        end: "05:00".into(),
        time_zone: "Europe/Berlin".into(),
    });
    let mut s = Scenario::new(p);
    assert_eq!(s.state(), RolloutState::Deploying);
    pass_wave(&mut s, 0, "canary", 2, minutes(60));
    s.step(Input::Tick, minutes(200)); // 05:20 Berlin: closed
    assert_eq!(s.state(), RolloutState::Pending);
    assert!(s
        .last_reason("wave.waiting_for_window")
        .contains("Mon,Tue 01:00–05:00 Europe/Berlin"));
    s.step(Input::Tick, minutes(600)); // 12:00 Berlin: still closed, no new decision
    assert_eq!(
        s.decisions
            .iter()
            .filter(|d| d.kind == "wave.waiting_for_window")
            .count(),
        1
    );
    s.step(Input::Tick, minutes(24 * 60)); // Tuesday 02:00 Berlin
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(s.rollout.current_wave(), 1);
}

#[test]
fn on_failure_pause_waits_and_resume_accepts_the_wave() {
    let mut s = Scenario::new(plan(vec![
        wave("canary", 100.0, 5.0, 1, WaveFailure::Pause),
        wave("fleet", 95.0, 2.0, 1, WaveFailure::Rollback),
    ]));
    s.members(0, devices("canary", 4), minutes(1));
    s.fail("canary-d0", minutes(2));
    assert_eq!(s.state(), RolloutState::Paused);
    assert!(s
        .last_reason("wave.failed")
        .contains("paused for an operator"));
    s.command("r1", CommandAction::Resume, "bob", minutes(3))
        .expect("resume");
    assert_eq!(s.rollout.wave_progress()[0].status, WaveStatus::Accepted);
    assert_eq!(s.state(), RolloutState::Deploying);
    assert_eq!(s.rollout.current_wave(), 1);
}

#[test]
fn rollback_cancels_active_deployments_and_reverts_every_touched_group() {
    let mut s = Scenario::new(two_waves());
    pass_wave(&mut s, 0, "canary", 3, minutes(1));
    s.step(Input::Tick, minutes(31));
    s.members(1, devices("fleet", 10), minutes(32));
    let effects = s.fail("fleet-d0", minutes(33));
    for i in 1..10 {
        s.succeed(&format!("fleet-d{i}"), minutes(33));
    }
    assert!(effects.is_empty() || s.state() == RolloutState::RollingBack);
    assert_eq!(s.state(), RolloutState::RollingBack);
    let rollback_creates: Vec<_> = s
        .effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::CreateRollbackDeployment {
                group,
                update,
                deployment_id,
            } => Some((group.clone(), update.version.clone(), deployment_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        rollback_creates,
        [
            ("canary".into(), "2.4.0".into(), "pw-r1-rb0".into()),
            ("fleet".into(), "2.4.0".into(), "pw-r1-rb1".into())
        ]
    );
    assert!(s.effects.iter().any(|e| e.id == "pw-r1-w1a1:cancel"));
    for device in devices("canary", 3).into_iter().chain(devices("fleet", 10)) {
        s.roll_back(&device, minutes(40));
    }
    assert_eq!(s.state(), RolloutState::RolledBack);
    assert!(s
        .last_reason("rollback.finished")
        .contains("back on Contoso/Gateway/2.4.0"));
    let deletes: Vec<_> = s
        .effects
        .iter()
        .filter(|e| matches!(e.kind, EffectKind::DeleteDeployment { .. }))
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(
        deletes,
        ["pw-r1-w0a1:delete", "pw-r1-w1a1:delete"],
        "superseded deployments are deleted"
    );
}

#[test]
fn pre_maintenance_event_during_deployment_cancels_the_run() {
    let config = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/gw-hosts";
    let mut p = two_waves();
    p.infrastructure = Some(InfrastructurePlan {
        maintenance_configuration_ids: vec![config.into()],
        machines: vec![],
        on_failure: InfrastructureFailure::Block,
    });
    let mut s = Scenario::new(p);
    assert_eq!(s.state(), RolloutState::PatchingInfrastructure);
    let run = |stamp: &str, start: i64| MaintenanceRun {
        run_id: format!("{config}/providers/microsoft.maintenance/applyupdates/{stamp}"),
        configuration_id: config.to_uppercase(),
        start: Some(minutes(start)),
        cancellation_cutoff: None,
    };
    s.step(
        Input::MaintenanceFinished {
            run: run("1", 0),
            outcome: PatchOutcome::Succeeded,
        },
        minutes(1),
    );
    assert_eq!(
        s.state(),
        RolloutState::Deploying,
        "infrastructure gate passed"
    );
    s.members(0, devices("canary", 5), minutes(2));
    let effects = s.step(Input::MaintenanceStarting(run("2", 60)), minutes(20));
    assert_eq!(kinds(&effects), ["cancel-run"]);
    assert!(s
        .last_reason("infrastructure.hold")
        .contains("devices are deploying"));
    let duplicate = s.step(Input::MaintenanceStarting(run("2", 60)), minutes(21));
    assert!(
        duplicate.is_empty(),
        "redelivered pre-event changes nothing"
    );
    let late = s.step(Input::MaintenanceStarting(run("3", 25)), minutes(20));
    assert!(
        kinds(&late).is_empty(),
        "inside the last 10 minutes it can no longer be cancelled"
    );
    assert!(s
        .last_reason("infrastructure.hold_too_late")
        .contains("cut-off"));
}

#[test]
fn a_run_is_cancellable_until_the_earlier_of_its_cut_off_and_ten_minutes_before_its_start() {
    let config = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/gw-hosts";
    let mut p = two_waves();
    p.infrastructure = Some(InfrastructurePlan {
        maintenance_configuration_ids: vec![config.into()],
        machines: vec![],
        on_failure: InfrastructureFailure::Block,
    });
    let run = |stamp: &str, start: i64, cutoff: i64| MaintenanceRun {
        run_id: format!("{config}/providers/microsoft.maintenance/applyupdates/{stamp}"),
        configuration_id: config.into(),
        start: Some(minutes(start)),
        cancellation_cutoff: Some(minutes(cutoff)),
    };
    let mut s = Scenario::new(p);
    s.step(
        Input::MaintenanceFinished {
            run: run("1", 0, -1),
            outcome: PatchOutcome::Succeeded,
        },
        minutes(1),
    );
    s.members(0, devices("canary", 5), minutes(2));
    // the example event's cut-off is 1 minute before the start; the docs say 10
    let late = s.step(Input::MaintenanceStarting(run("2", 60, 59)), minutes(55));
    assert!(kinds(&late).is_empty());
    assert!(s
        .last_reason("infrastructure.hold_too_late")
        .ends_with("(10 minutes before the run's start)"));
    // an event whose own cut-off is earlier than that is trusted
    let late = s.step(Input::MaintenanceStarting(run("3", 60, 30)), minutes(40));
    assert!(kinds(&late).is_empty());
    assert!(s
        .last_reason("infrastructure.hold_too_late")
        .ends_with("(the event's CancellationCutOffDateTime)"));
    let held = s.step(Input::MaintenanceStarting(run("4", 120, 119)), minutes(40));
    assert_eq!(kinds(&held), ["cancel-run"]);
    assert!(s
        .last_reason("infrastructure.hold")
        .contains("10 minutes before the run's start"));
}

#[test]
fn infrastructure_failure_blocks_or_warns_as_planned() {
    let machine =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw-01";
    for (policy, expected) in [
        (InfrastructureFailure::Block, RolloutState::Paused),
        (InfrastructureFailure::Warn, RolloutState::Deploying),
    ] {
        let mut p = two_waves();
        p.infrastructure = Some(InfrastructurePlan {
            maintenance_configuration_ids: vec![],
            machines: vec![machine.into()],
            on_failure: policy,
        });
        let mut s = Scenario::new(p);
        assert_eq!(kinds(&s.effects), ["install-patches"]);
        s.step(
            Input::MachinePatched {
                machine: machine.into(),
                outcome: PatchOutcome::Failed,
                detail: "2 patches failed".into(),
            },
            minutes(5),
        );
        assert_eq!(s.state(), expected, "{policy:?}");
        if policy == InfrastructureFailure::Block {
            assert!(s
                .last_reason("infrastructure.failed")
                .contains("1 of 1 host patch runs failed (gw-01)"));
            s.command("r", CommandAction::Resume, "bob", minutes(6))
                .expect("override");
            assert_eq!(
                s.state(),
                RolloutState::Deploying,
                "resume overrides the block"
            );
        }
    }
}

#[test]
fn stale_and_duplicate_reports_change_nothing_and_devices_count_once() {
    let mut s = Scenario::new(two_waves());
    s.members(0, devices("canary", 10), minutes(1));
    let report = DeviceReport {
        device: "canary-d0".into(),
        twin_version: 50,
        agent_state: 255,
        result_code: Some(0),
        installed_update: None,
        workflow: None,
        reported_at: None,
    };
    s.step(Input::DeviceReport(report.clone()), minutes(2));
    s.step(Input::DeviceReport(report.clone()), minutes(2));
    let older = DeviceReport {
        twin_version: 49,
        agent_state: 0,
        result_code: Some(700),
        installed_update: Some(update("2.4.1")),
        ..report.clone()
    };
    s.step(Input::DeviceReport(older), minutes(3));
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!((counts.failed, counts.succeeded), (1, 0));
    assert_eq!(s.rollout.ignored_reports(), 2);
    let newer = DeviceReport {
        twin_version: 51,
        agent_state: 0,
        result_code: Some(700),
        installed_update: Some(update("2.4.1")),
        ..report
    };
    s.step(Input::DeviceReport(newer), minutes(4));
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!(
        (counts.failed, counts.succeeded),
        (0, 1),
        "a retried device counts once, as its latest outcome"
    );
}

#[test]
fn idle_report_of_another_update_is_not_an_outcome() {
    let target = update("2.4.1");
    let old = DeviceReport {
        device: "d".into(),
        twin_version: 1,
        agent_state: 0,
        result_code: Some(700),
        installed_update: Some(update("2.4.0")),
        workflow: None,
        reported_at: None,
    };
    assert_eq!(classify(&old, &target), None);
    let done = DeviceReport {
        installed_update: Some(target.clone()),
        ..old.clone()
    };
    assert_eq!(classify(&done, &target), Some(Outcome::Succeeded));
    assert_eq!(
        classify(
            &DeviceReport {
                agent_state: 6,
                ..old.clone()
            },
            &target
        ),
        Some(Outcome::InProgress)
    );
    assert_eq!(
        classify(
            &DeviceReport {
                agent_state: 255,
                ..old
            },
            &target
        ),
        Some(Outcome::Failed)
    );
}

#[test]
fn operator_commands_invalid_for_the_state_are_rejected_with_the_reason() {
    let mut s = Scenario::new(two_waves());
    let before = s.rollout.clone();
    let resume = s
        .command("x1", CommandAction::Resume, "bob", minutes(1))
        .expect_err("not paused");
    assert_eq!(
        resume.0,
        "Resume refused: the rollout is Deploying, not Paused"
    );
    let approve = s
        .command("x2", CommandAction::Approve, "bob", minutes(1))
        .expect_err("no gate");
    assert!(approve.0.contains("nothing awaits approval"));
    let rollback = s
        .command("x3", CommandAction::Rollback, "bob", minutes(1))
        .expect_err("nothing deployed");
    assert!(rollback.0.contains("nothing has been deployed yet"));
    assert_eq!(s.rollout, before, "a refused command changes nothing");
    s.command("x4", CommandAction::Cancel, "bob", minutes(2))
        .expect("cancel");
    let after_cancel = s
        .command("x5", CommandAction::Pause, "bob", minutes(3))
        .expect_err("terminal");
    assert!(after_cancel.0.contains("is Cancelled"));
}

#[test]
fn redelivered_operator_command_is_applied_once() {
    let mut s = Scenario::new(two_waves());
    s.command("p1", CommandAction::Pause, "bob", minutes(1))
        .expect("pause");
    s.command("r1", CommandAction::Resume, "bob", minutes(2))
        .expect("resume");
    let effects = s
        .command("p1", CommandAction::Pause, "bob", minutes(3))
        .expect("redelivery is accepted");
    assert!(effects.is_empty());
    assert_eq!(s.state(), RolloutState::Deploying);
}

#[test]
fn a_pause_never_hides_a_crossed_failure_threshold() {
    let mut s = Scenario::new(plan(vec![wave(
        "canary",
        100.0,
        5.0,
        1,
        WaveFailure::Rollback,
    )]));
    s.members(0, devices("canary", 4), minutes(1));
    s.command("p", CommandAction::Pause, "bob", minutes(2))
        .expect("pause");
    s.fail("canary-d0", minutes(3));
    assert_eq!(s.state(), RolloutState::RollingBack);
    assert!(s.last_reason("wave.failed").contains("while paused"));
}

#[test]
fn effect_ids_are_deterministic() {
    let a = Scenario::new(two_waves());
    let b = Scenario::new(two_waves());
    assert_eq!(a.effects, b.effects);
    assert_eq!(
        DeploymentId::for_wave(&RolloutId::new("r1"), 0, 1),
        "pw-r1-w0a1"
    );
}

#[test]
fn every_decision_is_published_with_its_reason() {
    let mut s = Scenario::new(two_waves());
    s.members(0, devices("canary", 1), minutes(1));
    let published: Vec<_> = s
        .effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::PublishEvent {
                event_type,
                summary,
            } => Some((event_type.clone(), summary.clone())),
            _ => None,
        })
        .collect();
    let decisions: Vec<_> = s
        .decisions
        .iter()
        .map(|d| (format!("patchwave.{}", d.kind), d.reason.clone()))
        .collect();
    assert_eq!(published, decisions);
}

#[test]
fn a_failed_deployment_pauses_and_resume_retries_with_a_new_attempt() {
    let mut s = Scenario::new(two_waves());
    s.members(0, devices("canary", 2), minutes(1));
    s.step(
        Input::EffectFailed {
            effect_id: "pw-r1-w0a1:create".into(),
            error: "403 Forbidden".into(),
        },
        minutes(2),
    );
    assert_eq!(s.state(), RolloutState::Paused);
    assert!(s.last_reason("wave.blocked").contains("403 Forbidden"));
    let effects = s
        .command("r", CommandAction::Resume, "bob", minutes(3))
        .expect("resume");
    let creates: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e.kind, EffectKind::CreateDeployment { .. }))
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(creates, ["pw-r1-w0a2:create"]);
}

#[test]
fn after_the_deadline_only_a_final_outcome_replaces_a_timeout() {
    let mut long_soak = wave("canary", 60.0, 45.0, 1, WaveFailure::Pause);
    long_soak.soak_minutes = 600;
    let mut s = Scenario::new(plan(vec![long_soak]));
    s.members(0, devices("canary", 5), minutes(0));
    s.succeed("canary-d0", minutes(1));
    s.succeed("canary-d1", minutes(1));
    s.succeed("canary-d4", minutes(1));
    s.report("canary-d2", 6, None, minutes(1));
    s.step(Input::Tick, minutes(10));
    assert_eq!(s.state(), RolloutState::Soaking);
    s.step(Input::Tick, minutes(120));
    assert_eq!(
        s.state(),
        RolloutState::Soaking,
        "2 of 5 timed out = 40% is not above 45%"
    );
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!(
        (counts.succeeded, counts.timed_out, counts.in_progress),
        (3, 2, 0)
    );
    s.report("canary-d2", 6, None, minutes(121));
    assert_eq!(
        s.rollout.wave_progress()[0].counts.timed_out,
        2,
        "still working is still timed out"
    );
    s.succeed("canary-d3", minutes(122));
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!(
        (counts.succeeded, counts.timed_out),
        (4, 1),
        "a late success counts"
    );
}

#[test]
fn no_rule_needs_every_device_record_loaded() {
    let mut s = Scenario::new(plan(vec![wave(
        "canary",
        90.0,
        30.0,
        1,
        WaveFailure::Rollback,
    )]));
    s.members(0, devices("canary", 1000), minutes(0));
    // the shell may hold only the records an input concerns
    s.devices.retain(|id, _| id.as_str() == "canary-d7");
    s.succeed("canary-d7", minutes(5));
    s.step(Input::Tick, minutes(120));
    let counts = s.rollout.wave_progress()[0].counts;
    assert_eq!(
        (counts.total, counts.succeeded, counts.timed_out),
        (1000, 1, 999)
    );
    assert_eq!(s.state(), RolloutState::RollingBack);
    assert_eq!(
        s.rollout.rollback().map(|r| r.groups[0].counts.total),
        Some(1000)
    );
}
