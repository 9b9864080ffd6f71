//! Properties over generated plans and input sequences (issue acceptance 1–6).

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use proptest::prelude::*;
use rollout_core::*;
use std::collections::{BTreeSet, HashMap};

const CONFIG: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/hosts";
const MACHINE: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw-01";

/// A generated input, resolved against the rollout as it runs.
#[derive(Debug, Clone)]
enum Step {
    Tick(u16),
    Members,
    Report {
        pick: u16,
        bump: u8,
        kind: u8,
        about: u8,
    },
    Command {
        action: u8,
        by_creator: bool,
    },
    Pre {
        stamp: u8,
        lead: u16,
    },
    Post {
        stamp: u8,
        failed: bool,
    },
    Machine {
        failed: bool,
    },
    EffectResult {
        pick: u16,
        ok: bool,
    },
    Poll {
        pick: u16,
        mask: u16,
    },
}

#[derive(Debug, Clone)]
struct Case {
    plan: RolloutPlan,
    fleet: Vec<usize>,
    steps: Vec<Step>,
}

fn wave_strategy(index: usize) -> impl Strategy<Value = WavePlan> {
    (
        prop_oneof![Just(50.0), Just(80.0), Just(95.0), Just(100.0)],
        prop_oneof![Just(0.0), Just(2.0), Just(5.0), Just(10.0), Just(20.0)],
        0u32..6,
        0u32..40,
        10u32..120,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(success, failure, min, soak, timeout, approval, rollback)| WavePlan {
                name: format!("w{index}"),
                device_group: format!("w{index}"),
                success_threshold_percent: success,
                failure_threshold_percent: failure,
                min_devices_judged: min,
                soak_minutes: soak,
                device_timeout_minutes: timeout,
                approval_required: approval,
                on_failure: if rollback {
                    WaveFailure::Rollback
                } else {
                    WaveFailure::Pause
                },
                health_gate: None,
            },
        )
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u16..50).prop_map(Step::Tick),
        3 => Just(Step::Members),
        12 => (any::<u16>(), prop_oneof![1 => Just(0u8), 4 => Just(1u8), 1 => Just(2u8)], prop_oneof![6 => Just(0u8), 2 => Just(1u8), 3 => Just(2u8), 2 => Just(3u8), 1 => Just(4u8)], 0u8..4)
            .prop_map(|(pick, bump, kind, about)| Step::Report { pick, bump, kind, about }),
        2 => (command_action(), prop::bool::weighted(0.2)).prop_map(|(action, by_creator)| Step::Command { action, by_creator }),
        1 => (0u8..3, 0u16..90).prop_map(|(stamp, lead)| Step::Pre { stamp, lead }),
        1 => (0u8..3, any::<bool>()).prop_map(|(stamp, failed)| Step::Post { stamp, failed }),
        1 => any::<bool>().prop_map(|failed| Step::Machine { failed }),
        2 => (any::<u16>(), any::<bool>()).prop_map(|(pick, ok)| Step::EffectResult { pick, ok }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(pick, mask)| Step::Poll { pick, mask }),
    ]
}

/// Operator actions, cancel rarely (it ends everything).
fn command_action() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 4 => Just(1u8), 4 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..4, any::<bool>(), any::<bool>())
        .prop_flat_map(|(waves, with_config, with_machine)| {
            let plans: Vec<_> = (0..waves).map(wave_strategy).collect();
            (
                plans,
                prop::collection::vec(0usize..7, waves),
                prop::collection::vec(step_strategy(), 0..150),
                Just((with_config, with_machine)),
            )
        })
        .prop_map(|(waves, fleet, steps, (with_config, with_machine))| {
            let mut plan = plan(waves);
            if with_config || with_machine {
                plan.infrastructure = Some(InfrastructurePlan {
                    maintenance_configuration_ids: if with_config {
                        vec![CONFIG.into()]
                    } else {
                        vec![]
                    },
                    machines: if with_machine {
                        vec![MACHINE.into()]
                    } else {
                        vec![]
                    },
                    on_failure: if with_config {
                        InfrastructureFailure::Block
                    } else {
                        InfrastructureFailure::Warn
                    },
                });
            }
            Case { plan, fleet, steps }
        })
}

/// A rollout with every device record it made (a shell that loads them all).
#[derive(Clone)]
struct Engine {
    rollout: Rollout,
    devices: WorkingSet,
}

impl Engine {
    fn create(plan: &RolloutPlan) -> (Engine, rollout_core::Step) {
        let id = RolloutId::new("p");
        let (rollout, step) = Rollout::create(id, plan.clone(), "alice", t0()).expect("valid");
        let devices = WorkingSet::default();
        (Engine { rollout, devices }, step)
    }

    fn step(&mut self, input: &Input, at: DateTime<Utc>) -> Result<rollout_core::Step, Rejected> {
        self.rollout.step(&mut self.devices, input, at)
    }
}

/// Runs the generated steps, turning each into a concrete input; returns the inputs (with
/// their times) that the rollout accepted.
fn resolve(case: &Case) -> Vec<(Input, DateTime<Utc>)> {
    let (mut engine, _) = Engine::create(&case.plan);
    let mut now = t0();
    let mut versions = Seen::default();
    let mut accepted = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        let Some(input) = concrete(step, index, &engine, case, &mut now, &mut versions) else {
            continue;
        };
        if engine.step(&input, now).is_ok() {
            accepted.push((input, now));
        }
    }
    accepted
}

fn concrete(
    step: &Step,
    index: usize,
    engine: &Engine,
    case: &Case,
    now: &mut DateTime<Utc>,
    seen: &mut Seen,
) -> Option<Input> {
    let rollout = &engine.rollout;
    let run = |stamp: u8, start: DateTime<Utc>| MaintenanceRun {
        run_id: format!("{CONFIG}/providers/microsoft.maintenance/applyupdates/{stamp}"),
        configuration_id: CONFIG.into(),
        start: Some(start),
        cancellation_cutoff: None,
    };
    Some(match step {
        Step::Tick(minutes) => {
            *now += Duration::minutes(i64::from(*minutes));
            Input::Tick
        }
        Step::Members => {
            let wave = rollout.current_wave();
            let progress = rollout.wave_progress().get(wave)?;
            if progress.members_known || progress.status != WaveStatus::Deploying {
                return None;
            }
            Input::GroupMembers {
                wave,
                devices: devices(&format!("w{wave}"), case.fleet[wave])
                    .into_iter()
                    .map(DeviceId::from)
                    .collect(),
                page: 0,
                last: true,
            }
        }
        Step::Report {
            pick,
            bump,
            kind,
            about,
        } => {
            let mut known: Vec<&str> = engine.devices.iter().map(|(k, _)| k.as_str()).collect();
            known.sort();
            let device = known
                .get(usize::from(*pick) % known.len().max(1))?
                .to_string();
            let version = seen.versions.entry(device.clone()).or_insert(0);
            *version += u64::from(*bump);
            let version = *version;
            let (agent_state, installed) = match kind {
                0 => (0, Some(rollout.plan().update.clone())),
                1 => (0, Some(rollout.plan().rollback_update.clone())),
                2 => (255, None),
                3 => (6, None),
                _ => (0, Some(update("9.9.9"))),
            };
            let fresh = engine
                .devices
                .get(device.as_str())
                .is_some_and(|r| r.version < version);
            let (workflow, reported_at) = report_origin(engine, &device, *about, *now, fresh, seen);
            Input::DeviceReport(DeviceReport {
                device: device.into(),
                twin_version: version,
                agent_state,
                result_code: Some(700),
                installed_update: installed,
                workflow,
                reported_at,
            })
        }
        Step::Command { action, by_creator } => {
            let action = [
                CommandAction::Pause,
                CommandAction::Resume,
                CommandAction::Approve,
                CommandAction::Cancel,
                CommandAction::Rollback,
            ][usize::from(*action)];
            let actor = if *by_creator { "alice" } else { "bob" };
            Input::Operator(Command {
                id: format!("cmd-{index}"),
                action,
                actor: actor.into(),
                reason: "generated".into(),
            })
        }
        Step::Pre { stamp, lead } => {
            Input::MaintenanceStarting(run(*stamp, *now + Duration::minutes(i64::from(*lead))))
        }
        Step::Post { stamp, failed } => Input::MaintenanceFinished {
            run: run(*stamp, *now),
            outcome: if *failed {
                PatchOutcome::Failed
            } else {
                PatchOutcome::Succeeded
            },
        },
        Step::Machine { failed } => Input::MachinePatched {
            machine: MACHINE.into(),
            outcome: if *failed {
                PatchOutcome::Failed
            } else {
                PatchOutcome::Succeeded
            },
            detail: String::new(),
        },
        Step::Poll { pick, mask } => {
            let targets = rollout.deployments_to_poll();
            let target = targets.get(usize::from(*pick) % targets.len().max(1))?;
            let prefix = format!("{}-", target.group);
            let mut members: Vec<&str> = engine
                .devices
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|d| d.starts_with(&prefix))
                .collect();
            members.sort();
            // each device in or out of the listing, succeeded or failed, by two bits of `mask`
            let devices = members
                .iter()
                .enumerate()
                .filter(|(i, _)| mask >> ((2 * i) % 16) & 1 == 1)
                .map(|(i, device)| PolledDevice {
                    device: DeviceId::new(*device),
                    succeeded: mask >> ((2 * i + 1) % 16) & 1 == 1,
                })
                .collect();
            Input::DeploymentStates {
                deployment_id: target.deployment_id.clone(),
                devices,
                last: pick % 3 != 0,
            }
        }
        Step::EffectResult { pick, ok } => {
            let ids: Vec<&EffectId> = rollout.outstanding().keys().collect();
            let effect_id = (*ids.get(usize::from(*pick) % ids.len().max(1))?).clone();
            if *ok {
                Input::EffectSucceeded { effect_id }
            } else {
                Input::EffectFailed {
                    effect_id,
                    error: "gave up".into(),
                }
            }
        }
    })
}

/// What the generator remembers: each device's twin version, and the devices that reported
/// their forward workflow.
#[derive(Default)]
struct Seen {
    versions: HashMap<String, u64>,
    forward: BTreeSet<String>,
    rollback: BTreeSet<String>,
}

/// The workflow id a generated report is about: `about` 0 and 1 the device's forward
/// deployment (written now, or late: before the rollback opened), 2 the rollback deployment
/// (once it exists), 3 a report with neither workflow nor time. A forward workflow a device
/// never reported before is first reported before the rollback opened, as an agent does
/// (it reports state 6 as soon as it takes a deployment). `fresh`: the report is newer than
/// the device's record, so the rollout will see it.
fn report_origin(
    engine: &Engine,
    device: &str,
    about: u8,
    now: DateTime<Utc>,
    fresh: bool,
    seen: &mut Seen,
) -> (Option<String>, Option<DateTime<Utc>>) {
    let rollout = &engine.rollout;
    let wave = engine.devices.get(device).map_or(0, |r| r.wave as usize);
    let attempt = rollout.wave_progress().get(wave).map_or(0, |w| w.attempt);
    let rollback_start = rollout
        .rollback()
        .filter(|r| r.groups.iter().any(|g| g.wave == wave))
        .map(|r| r.started_at);
    // an agent that took the rollback's workflow never reports the forward one again
    let switched = seen.rollback.contains(device);
    match (about, rollback_start) {
        (3, _) => (None, None),
        (2, Some(start)) | (_, Some(start)) if about == 2 || switched => {
            if fresh {
                seen.rollback.insert(device.to_string());
            }
            (Some(format!("rb-{wave}")), Some(now.max(start)))
        }
        (late, start) => {
            let key = format!("{device}/{attempt}");
            let first = !seen.forward.contains(&key);
            if fresh {
                seen.forward.insert(key);
            }
            let at = match start {
                Some(start) if first || late == 1 => now.min(start - Duration::seconds(1)),
                _ => now,
            };
            (Some(format!("fw-{wave}-{attempt}")), Some(at))
        }
    }
}

/// Whether an input is, by construction, Device Update's or a device's word about a
/// rollback deployment that the device did not succeed in.
fn rollback_trouble(input: &Input) -> Vec<String> {
    match input {
        Input::DeviceReport(report)
            if report
                .workflow
                .as_deref()
                .is_some_and(|w| w.starts_with("rb-"))
                && report.agent_state != 0 =>
        {
            vec![report.device.to_string()]
        }
        Input::DeploymentStates {
            deployment_id,
            devices,
            ..
        } if deployment_id.as_str().contains("rb") => devices
            .iter()
            .filter(|d| !d.succeeded)
            .map(|d| d.device.to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Every wave's and rollback group's counts are the sum of its devices' records.
fn check_counts(engine: &Engine) -> Result<(), TestCaseError> {
    let rollout = &engine.rollout;
    let mut sums: HashMap<(bool, usize), Counts> = HashMap::new();
    for (_, record) in engine.devices.iter() {
        let wave = record.wave as usize;
        let deadline_passed = rollout.wave_progress()[wave].timeouts_applied;
        let forward = effective_outcome(record.forward, deadline_passed);
        bump(sums.entry((false, wave)).or_default(), forward);
        if let Some(group) = rollout
            .rollback()
            .iter()
            .flat_map(|r| &r.groups)
            .find(|g| g.wave == wave)
        {
            let back = effective_outcome(record.rollback, group.timeouts_applied);
            bump(sums.entry((true, wave)).or_default(), back);
        }
    }
    let mut groups: Vec<((bool, usize), Counts)> = rollout
        .wave_progress()
        .iter()
        .enumerate()
        .map(|(i, w)| ((false, i), w.counts))
        .collect();
    groups.extend(
        rollout
            .rollback()
            .iter()
            .flat_map(|r| &r.groups)
            .map(|g| ((true, g.wave), g.counts)),
    );
    for (key, counts) in groups {
        let sum = sums.get(&key).copied().unwrap_or_default();
        prop_assert_eq!(
            (
                counts.total,
                counts.in_progress,
                counts.succeeded,
                counts.failed,
                counts.timed_out
            ),
            (
                sum.total,
                sum.in_progress,
                sum.succeeded,
                sum.failed,
                sum.timed_out
            ),
            "counts of {:?} differ from the sum of their records",
            key
        );
    }
    Ok(())
}

fn bump(counts: &mut Counts, outcome: Outcome) {
    counts.total += 1;
    match outcome {
        Outcome::NotReported => {}
        Outcome::InProgress => counts.in_progress += 1,
        Outcome::Succeeded => counts.succeeded += 1,
        Outcome::Failed => counts.failed += 1,
        Outcome::TimedOut => counts.timed_out += 1,
        Outcome::Unhealthy => counts.unhealthy += 1,
    }
}

/// Runs concrete inputs; returns the final rollout and every effect id emitted.
fn run(plan: &RolloutPlan, inputs: &[(Input, DateTime<Utc>)]) -> (Engine, BTreeSet<EffectId>) {
    let (mut engine, step) = Engine::create(plan);
    let mut ids: BTreeSet<EffectId> = step.effects.into_iter().map(|e| e.id).collect();
    for (input, at) in inputs {
        if let Ok(step) = engine.step(input, *at) {
            ids.extend(step.effects.into_iter().map(|e| e.id));
        }
    }
    (engine, ids)
}

/// A rollout and its records as stored, ignoring the count of ignored (stale) reports, a
/// metric.
fn comparable(engine: &Engine) -> serde_json::Value {
    let mut document = serde_json::to_value(&engine.rollout).expect("json");
    document["ignoredReports"] = 0.into();
    let records: std::collections::BTreeMap<&str, &DeviceRecord> = engine
        .devices
        .iter()
        .map(|(id, record)| (id.as_str(), record))
        .collect();
    document["devices"] = serde_json::to_value(records).expect("json");
    document
}

/// A rollout without what reports keep moving after its end (records and counts).
fn decided(rollout: &Rollout) -> serde_json::Value {
    let mut document = serde_json::to_value(rollout).expect("json");
    document["ignoredReports"] = 0.into();
    let zero = serde_json::to_value(Counts::default()).expect("json");
    for wave in document["waves"].as_array_mut().into_iter().flatten() {
        wave["counts"] = zero.clone();
    }
    let groups = document["rollback"]["groups"].as_array_mut();
    for group in groups.into_iter().flatten() {
        group["counts"] = zero.clone();
    }
    document
}

fn is_active(status: WaveStatus) -> bool {
    matches!(status, WaveStatus::Deploying | WaveStatus::Soaking)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn duplicates_inserted_anywhere_change_nothing(case in case_strategy(), picks in prop::collection::vec((any::<u16>(), any::<u16>()), 1..12)) {
        let inputs = resolve(&case);
        prop_assume!(!inputs.is_empty());
        let (original, original_ids) = run(&case.plan, &inputs);
        let mut with_duplicates = inputs.clone();
        for (source, offset) in picks {
            let source = usize::from(source) % with_duplicates.len();
            let position = source + 1 + usize::from(offset) % (with_duplicates.len() - source);
            let duplicate = with_duplicates[source].0.clone();
            let at = with_duplicates[position - 1].1;
            with_duplicates.insert(position, (duplicate, at));
        }
        let (duplicated, duplicated_ids) = run(&case.plan, &with_duplicates);
        prop_assert_eq!(comparable(&duplicated), comparable(&original));
        prop_assert_eq!(duplicated_ids, original_ids);
    }

    #[test]
    fn gates_order_waves_and_failures_act_at_once(case in case_strategy()) {
        let inputs = resolve(&case);
        let (mut engine, _) = Engine::create(&case.plan);
        let statuses = |rollout: &Rollout| -> Vec<(WaveStatus, u32)> {
            rollout.wave_progress().iter().map(|w| (w.status, w.attempt)).collect()
        };
        let mut previous = statuses(&engine.rollout);
        let waves = engine.rollout.wave_progress().len();
        check_started_waves(&engine.rollout, &[(WaveStatus::Waiting, 0); 3][..waves])?;
        for (input, at) in &inputs {
            let _ = engine.step(input, *at);
            let rollout = &engine.rollout;
            check_started_waves(rollout, &previous)?;
            // 3. at most one forward wave deploys at a time
            prop_assert!(rollout.wave_progress().iter().filter(|w| is_active(w.status)).count() <= 1);
            // 4. a crossed failure threshold is acted on in the step that crossed it
            for (plan, wave) in rollout.waves() {
                let guarded = match rollout.state() {
                    RolloutState::Deploying | RolloutState::Soaking => true,
                    RolloutState::Paused => rollout.pause().is_some_and(|p| p.cause == PauseCause::Operator),
                    _ => false,
                };
                if guarded && is_active(wave.status) && wave.deployed_at.is_some() {
                    let verdict = judge(&plan.name, plan, &wave.counts, wave.members_known);
                    prop_assert!(!matches!(verdict, Verdict::Failed(_)), "failure left standing: {:?}", verdict);
                }
            }
            previous = statuses(rollout);
        }
    }

    #[test]
    fn terminal_states_absorb_every_input(case in case_strategy(), extra in prop::collection::vec(step_strategy(), 0..40)) {
        let mut inputs = resolve(&case);
        // make sure the run ends: cancel is accepted in every non-terminal state
        let end = inputs.last().map_or(t0(), |(_, at)| *at);
        let cancel = Command { id: "final-cancel".into(), action: CommandAction::Cancel, actor: "bob".into(), reason: "end".into() };
        inputs.push((Input::Operator(cancel), end));
        let mut more = case.clone();
        more.steps.extend(extra);
        inputs.extend(resolve(&more));
        let (mut engine, _) = Engine::create(&case.plan);
        let mut terminal_seen = false;
        for (input, at) in &inputs {
            let snapshot = engine.rollout.clone();
            let result = engine.step(input, *at);
            if snapshot.state().is_terminal() {
                terminal_seen = true;
                // a late report still moves its device's record and counts; nothing else moves
                prop_assert_eq!(decided(&engine.rollout), decided(&snapshot));
                prop_assert!(result.map(|step| step.is_empty()).unwrap_or(true));
            }
        }
        prop_assert!(terminal_seen || engine.rollout.state().is_terminal());
    }

    #[test]
    fn rollback_counts_hold_only_the_rollbacks_reports(case in case_strategy()) {
        let inputs = resolve(&case);
        let (mut engine, _) = Engine::create(&case.plan);
        let mut troubled: BTreeSet<String> = BTreeSet::new();
        for (input, at) in &inputs {
            let _ = engine.step(input, *at);
            troubled.extend(rollback_trouble(input));
            check_counts(&engine)?;
            for (device, record) in engine.devices.iter() {
                if matches!(record.rollback, Outcome::Failed | Outcome::InProgress) {
                    prop_assert!(
                        troubled.contains(device.as_str()),
                        "{} counts {:?} for the rollback, but only forward reports said so",
                        device,
                        record.rollback
                    );
                }
            }
        }
    }

    #[test]
    fn replaying_the_same_inputs_gives_the_same_state_and_effects(case in case_strategy()) {
        let inputs = resolve(&case);
        let (first, first_ids) = run(&case.plan, &inputs);
        let (second, second_ids) = run(&case.plan, &inputs);
        prop_assert_eq!(comparable(&first), comparable(&second));
        prop_assert_eq!(first.rollout.ignored_reports(), second.rollout.ignored_reports());
        prop_assert_eq!(first_ids, second_ids);
    }
}

/// Property 2: a wave that started in this step had its predecessor passed, its approval
/// and the infrastructure gate.
fn check_started_waves(
    rollout: &Rollout,
    previous: &[(WaveStatus, u32)],
) -> Result<(), TestCaseError> {
    for (index, (plan, wave)) in rollout.waves().enumerate() {
        if wave.attempt == previous[index].1 {
            continue;
        }
        if index > 0 {
            let before = rollout.wave_progress()[index - 1].status;
            prop_assert!(
                matches!(before, WaveStatus::Passed | WaveStatus::Accepted),
                "wave {} started after {:?}",
                index,
                before
            );
        }
        prop_assert!(
            !plan.approval_required || wave.approved_by.is_some(),
            "wave {} started unapproved",
            index
        );
        prop_assert!(
            rollout.infrastructure().gate_open,
            "wave {} started before the infrastructure gate",
            index
        );
    }
    Ok(())
}
