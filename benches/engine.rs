//! Engine benchmark: folds 1,000,000 device reports through `Rollout::step` for a fleet of
//! 1,000 and one of 1,000,000 devices, and prints reports per second and their ratio: once
//! as the service steps the engine (a batch's records at a time), once with the whole fleet
//! in the engine's table.
//! Run with `cargo bench --bench engine`.

// A benchmark measures wall time; the engine itself never reads the clock.
#![allow(clippy::disallowed_methods)]

use chrono::{DateTime, TimeZone, Utc};
use rollout_core::{
    DeviceChange, DeviceId, DeviceReport, Input, Rollout, RolloutId, RolloutPlan, UpdateId,
    WaveFailure, WavePlan, WorkingSet,
};
use std::collections::HashMap;
use std::time::Instant;

const REPORTS: u64 = 1_000_000;
/// Reports per step as the service applies them (one twin change batch).
const BATCH: usize = 100;

fn plan() -> RolloutPlan {
    let update = |v: &str| UpdateId::new("Contoso", "Gateway", v).expect("valid id");
    RolloutPlan {
        name: "bench".into(),
        update: update("2.4.1"),
        rollback_update: update("2.4.0"),
        infrastructure: None,
        waves: vec![WavePlan {
            name: "fleet".into(),
            device_group: "fleet".into(),
            success_threshold_percent: 100.0,
            failure_threshold_percent: 5.0,
            min_devices_judged: 50,
            soak_minutes: 60,
            device_timeout_minutes: 24 * 60,
            approval_required: false,
            on_failure: WaveFailure::Rollback,
            health_gate: None,
        }],
        window: None,
        allow_self_approval: false,
        rollback: None,
        alert_rules: Vec::new(),
    }
}

/// A rollout whose one wave has learned a fleet of `fleet` devices; their records; the
/// devices; the time.
fn fleet_rollout(fleet: u64) -> (Rollout, WorkingSet, Vec<DeviceId>, DateTime<Utc>) {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("time");
    let id = RolloutId::new("bench");
    let (mut rollout, _) = Rollout::create(id, plan(), "bench", now).expect("valid plan");
    let devices: Vec<DeviceId> = (0..fleet)
        .map(|i| DeviceId::new(format!("device-{i:07}")))
        .collect();
    let members = Input::GroupMembers {
        wave: 0,
        devices: devices.clone(),
        page: 0,
        last: true,
    };
    let mut records = WorkingSet::default();
    let _ = rollout.step(&mut records, &members, now).expect("members");
    (rollout, records, devices, now)
}

/// Reports per second when `REPORTS` reports go to a fleet of `fleet` devices.
fn fold(fleet: u64) -> f64 {
    let (mut rollout, mut records, devices, now) = fleet_rollout(fleet);
    let reports: Vec<Input> = (0..REPORTS)
        .map(|n| {
            Input::DeviceReport(DeviceReport {
                device: devices[(n % fleet) as usize].clone(),
                twin_version: n / fleet + 1,
                agent_state: 6,
                result_code: Some(400),
                installed_update: None,
                workflow: None,
                reported_at: None,
            })
        })
        .collect();
    let started = Instant::now();
    for report in &reports {
        let _ = rollout
            .step(&mut records, report, now)
            .expect("report accepted");
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        rollout.wave_progress()[0].counts.in_progress,
        fleet,
        "every device counted once"
    );
    REPORTS as f64 / elapsed
}

/// Reports per second folded the way the service folds them: a step's working set holds
/// only the records of the batch it applies, loaded from the store before and its changes
/// written back after (here the "store" is a vector in memory, read in an order with no
/// locality; the real store's cost is in the e2e benchmark). The fleet then only sets the
/// counts.
fn fold_batches(fleet: u64) -> f64 {
    let (mut rollout, records, devices, now) = fleet_rollout(fleet);
    let mut stored: Vec<_> = devices.iter().map(|d| records[d.as_str()]).collect();
    drop(records);
    // a permutation of the fleet per round (7919 is prime, so coprime to 10^3 and 10^6)
    let reports: Vec<(usize, Input)> = (0..REPORTS)
        .map(|n| {
            let index = ((n * 7919) % fleet) as usize;
            let report = DeviceReport {
                device: devices[index].clone(),
                twin_version: n / fleet + 1,
                agent_state: 6,
                result_code: Some(400),
                installed_update: None,
                workflow: None,
                reported_at: None,
            };
            (index, Input::DeviceReport(report))
        })
        .collect();
    let started = Instant::now();
    let device = |input: &Input| match input {
        Input::DeviceReport(report) => report.device.clone(),
        _ => unreachable!("reports only"),
    };
    for batch in reports.chunks(BATCH) {
        let mut records = WorkingSet::with_capacity(batch.len());
        for (index, report) in batch {
            records.insert_loaded(device(report), stored[*index], *index);
        }
        for (_, report) in batch {
            let _ = rollout
                .step(&mut records, report, now)
                .expect("report accepted");
        }
        for change in records.into_changes() {
            if let DeviceChange::Changed(_, record, index) = change {
                stored[index] = record;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        rollout.wave_progress()[0].counts.in_progress,
        fleet,
        "every device counted once"
    );
    REPORTS as f64 / elapsed
}

/// The floor: the same lookups in a bare hash map of the same size, doing nothing else.
/// What the engine adds on top of it is its own cost; the rest is the memory hierarchy.
fn lookup_floor(fleet: u64) -> f64 {
    let mut table: HashMap<String, u64> = HashMap::new();
    let devices: Vec<String> = (0..fleet).map(|i| format!("device-{i:07}")).collect();
    for device in &devices {
        table.insert(device.clone(), 0);
    }
    let keys: Vec<String> = (0..REPORTS)
        .map(|n| devices[(n % fleet) as usize].clone())
        .collect();
    let started = Instant::now();
    for key in &keys {
        if let Some(slot) = table.get_mut(key.as_str()) {
            *slot += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(table.values().sum::<u64>(), REPORTS);
    REPORTS as f64 / elapsed
}

fn main() {
    println!("rollout-core: folding {REPORTS} device reports per fleet size");
    println!(
        " as the service steps it ({BATCH} reports per step, the step holding only their records):"
    );
    let mut rates = Vec::new();
    for fleet in [1_000, 1_000_000] {
        let engine = fold_batches(fleet);
        println!(
            "  fleet {fleet:>9} devices: engine {engine:>11.0} reports/s ({:>5.0} ns each)",
            1e9 / engine
        );
        rates.push(engine);
    }
    println!(
        "  ratio of rates, 1k fleet / 1M fleet: {:.2}x (goal: within 2x)",
        rates[0] / rates[1]
    );
    println!(
        " with the whole fleet's records in the engine's table (not how the service runs it):"
    );
    let mut rates = Vec::new();
    for fleet in [1_000, 1_000_000] {
        let engine = fold(fleet);
        let floor = lookup_floor(fleet);
        println!(
            "  fleet {fleet:>9} devices: engine {engine:>11.0} reports/s ({:>5.0} ns each); bare hash-map lookup {floor:>11.0}/s; engine / floor = {:.2}",
            1e9 / engine,
            engine / floor
        );
        rates.push(engine);
    }
    println!(
        "  ratio of rates, 1k fleet / 1M fleet: {:.2}x (goal: within 2x)",
        rates[0] / rates[1]
    );
}
