//! Several instances write the same rollout at once: counts stay exact, nothing is lost.

use crate::gated::HoldFirstCommit;
use crate::support::*;
use patchwave::decode::agent_report::AgentState;
use patchwave::ports::ManualClock;
use patchwave::service::RolloutService;
use patchwave::store::sqlite::SqliteStore;
use patchwave::store::Store;
use rollout_core::Outcome;
use std::sync::Arc;

const WRITERS: usize = 4;
const REPORTS_PER_WRITER: usize = 1000;

/// 4 instances deliver 1,000 reports each (10% of them sent twice) for one rollout. `stores`
/// are five handles on one backend: the creator's and one per writer.
pub async fn concurrent_writers_keep_counts_exact(mut stores: Vec<Arc<dyn Store>>) {
    assert_eq!(stores.len(), WRITERS + 1);
    let fleet = devices("dev", WRITERS * REPORTS_PER_WRITER);
    let azure = Arc::new(FakeAzure::with_group("fleet", fleet.clone()));
    let clock = Arc::new(ManualClock::new(t0()));
    let creator = RolloutService::new(stores.remove(0), azure.clone(), clock.clone());
    let mut plan = one_wave_plan("fleet", 100.0);
    plan.waves[0].failure_threshold_percent = 50.0;
    plan.waves[0].min_devices_judged = 4000;
    let rollout = creator.create(plan, "alice", None).await.expect("created");
    assert_eq!(rollout.wave_progress()[0].counts.total, fleet.len() as u64);

    let mut writers = Vec::new();
    let mut services = Vec::new();
    for writer in 0..WRITERS {
        let service = Arc::new(RolloutService::new(
            stores.remove(0),
            azure.clone(),
            clock.clone(),
        ));
        services.push(service.clone());
        let mine: Vec<String> =
            fleet[writer * REPORTS_PER_WRITER..(writer + 1) * REPORTS_PER_WRITER].to_vec();
        writers.push(tokio::spawn(async move {
            let mut changes = Vec::new();
            for (i, device) in mine.iter().enumerate() {
                // every 10th device fails, the rest succeed; every 10th report is sent twice
                let state = if i % 10 == 3 {
                    AgentState::Failed
                } else {
                    AgentState::Idle
                };
                changes.push(twin_change(device, 7, state, Some(update("2.4.1"))));
                if i % 10 == 0 {
                    changes.push(twin_change(device, 7, state, Some(update("2.4.1"))));
                }
            }
            for batch in changes.chunks(100) {
                service
                    .deliver_reports(&context(), batch)
                    .await
                    .expect("delivered");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let conflicts: u64 = services
        .iter()
        .map(|s| s.metrics().snapshot().conflicts_retried)
        .sum();
    println!("conditional writes redone after losing to another instance: {conflicts}");
    let after = creator.get(rollout.id()).await.expect("get");
    let counts = after.wave_progress()[0].counts;
    let failed = (WRITERS * REPORTS_PER_WRITER / 10) as u64;
    assert_eq!(counts.failed, failed, "{counts:?}");
    assert_eq!(counts.succeeded, fleet.len() as u64 - failed, "{counts:?}");
    assert_eq!(counts.in_progress, 0);
    let sample: Vec<String> = fleet.iter().step_by(97).cloned().collect();
    for (device, record) in creator
        .store()
        .load_devices(rollout.id(), &sample)
        .await
        .expect("devices")
    {
        let index: usize = device.trim_start_matches("dev-").parse().expect("index");
        let expected = if (index % REPORTS_PER_WRITER) % 10 == 3 {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        assert_eq!(record.value.forward, expected, "{device}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers_keep_counts_exact() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("patchwave.db");
    let stores = (0..=WRITERS)
        .map(|_| Arc::new(SqliteStore::open(&path).expect("open")) as Arc<dyn Store>)
        .collect();
    concurrent_writers_keep_counts_exact(stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_storage_concurrent_writers_keep_counts_exact() {
    let spec = crate::azurite::connection_string();
    let prefix = crate::azurite::unique_prefix();
    let mut stores = Vec::new();
    for _ in 0..=WRITERS {
        let store = patchwave::store::table::TableStore::connect_with_prefix(&spec, &prefix)
            .await
            .expect("connect");
        stores.push(Arc::new(store) as Arc<dyn Store>);
    }
    concurrent_writers_keep_counts_exact(stores).await;
}

/// A SQLite store in `dir`.
fn sqlite_in(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.join("patchwave.db")).expect("open"))
}

/// One instance on `store`, with a one-wave rollout of `size` devices that judges only once
/// all of them finished.
async fn one_instance_one_wave(
    store: Arc<dyn Store>,
    size: usize,
) -> (Arc<RolloutService>, Vec<String>, rollout_core::Rollout) {
    let fleet = devices("dev", size);
    let azure = Arc::new(FakeAzure::with_group("fleet", fleet.clone()));
    let service = Arc::new(RolloutService::new(
        store,
        azure,
        Arc::new(ManualClock::new(t0())),
    ));
    let mut plan = one_wave_plan("fleet", 100.0);
    plan.waves[0].min_devices_judged = size as u32;
    let rollout = service.create(plan, "alice", None).await.expect("created");
    (service, fleet, rollout)
}

/// Within one instance, invocations for the same rollout queue for it: 8 concurrent
/// deliveries lose no conditional write to each other, share commits, and every report
/// counts. The first commit is held until all 8 have been routed, so the other 7 are queued
/// behind it however the machine schedules them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_instance_queues_its_own_writers_instead_of_conflicting() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(HoldFirstCommit::new(sqlite_in(dir.path()), 8));
    let (service, fleet, rollout) = one_instance_one_wave(store.clone(), 800).await;
    store.arm();
    let deliveries: Vec<_> = fleet
        .chunks(100)
        .map(|chunk| {
            let (service, chunk) = (service.clone(), chunk.to_vec());
            tokio::spawn(async move {
                let changes: Vec<_> = chunk
                    .iter()
                    .map(|d| twin_change(d, 7, AgentState::DeploymentInProgress, None))
                    .collect();
                service.deliver_reports(&context(), &changes).await
            })
        })
        .collect();
    for delivery in deliveries {
        delivery.await.expect("joined").expect("delivered");
    }
    let counts = service
        .get(rollout.id())
        .await
        .expect("get")
        .wave_progress()[0]
        .counts;
    assert_eq!(counts.in_progress, 800);
    let metrics = service.metrics().snapshot();
    assert_eq!(metrics.conflicts_retried, 0);
    assert_eq!(metrics.reports_applied, 800);
    // the 7 deliveries that queued behind the first one share commits
    assert!(metrics.report_commits <= 3, "{metrics:?}");
}

/// Within one instance, batches that carry the same devices at once: each batch routes its
/// devices' records before its writer turn, so all but the first read records that another
/// batch writes before they commit. Those commits must fail their version checks and step
/// again on fresh records: the newest twin version wins and every count stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_routed_on_records_that_another_batch_wrote_since_step_again() {
    let dir = tempfile::tempdir().expect("dir");
    let (service, fleet, rollout) = one_instance_one_wave(sqlite_in(dir.path()), 100).await;
    const BATCHES: u64 = 8;
    for round in 0..5u64 {
        let deliveries: Vec<_> = (0..BATCHES)
            .map(|k| {
                let (service, fleet) = (service.clone(), fleet.clone());
                // the newest version of the last round says installed; all else in progress
                let version = 10 + round * BATCHES + k;
                let done = round == 4 && k == BATCHES - 1;
                tokio::spawn(async move {
                    let changes: Vec<_> = fleet
                        .iter()
                        .map(|d| {
                            if done {
                                twin_change(d, version, AgentState::Idle, Some(update("2.4.1")))
                            } else {
                                twin_change(d, version, AgentState::DeploymentInProgress, None)
                            }
                        })
                        .collect();
                    service.deliver_reports(&context(), &changes).await
                })
            })
            .collect();
        for delivery in deliveries {
            delivery.await.expect("joined").expect("delivered");
        }
    }
    let after = service.get(rollout.id()).await.expect("get");
    let counts = after.wave_progress()[0].counts;
    assert_eq!(
        (counts.succeeded, counts.in_progress),
        (100, 0),
        "{counts:?}"
    );
    let records = service
        .store()
        .load_devices(rollout.id(), &fleet)
        .await
        .expect("records");
    assert_eq!(records.len(), 100);
    for (device, record) in records {
        assert_eq!(record.value.version, 10 + 5 * BATCHES - 1, "{device}");
        assert_eq!(record.value.forward, Outcome::Succeeded, "{device}");
    }
    assert_eq!(
        service.metrics().snapshot().reports_applied,
        100 * 5 * BATCHES
    );
}
