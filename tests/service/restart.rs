//! Pending effects survive a restart and run exactly once.

use crate::support::*;
use patchwave::ports::ManualClock;
use patchwave::service::RolloutService;
use patchwave::store::sqlite::SqliteStore;
use patchwave::store::{Commit, Store};
use rollout_core::Rollout;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_effects_survive_a_restart_and_run_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("patchwave.db");
    // process 1 decides and stores the decision with its effects, then dies before running them
    let emitted = {
        let store = SqliteStore::open(&path).expect("open");
        let (mut rollout, effects) =
            Rollout::create("ro-restart", one_wave_plan("canary", 100.0), "alice", t0())
                .expect("valid");
        let decisions = std::mem::take(&mut rollout.decisions)
            .into_iter()
            .enumerate()
            .map(|(i, d)| (i as u64, d))
            .collect();
        store
            .commit(Commit {
                rollout,
                expected: None,
                devices: vec![],
                effects: effects.clone(),
                decisions,
            })
            .await
            .expect("commit");
        effects.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    // process 2 starts on the same database
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 3)));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let service = RolloutService::new(
        store.clone(),
        azure.clone(),
        Arc::new(ManualClock::new(t0())),
    );
    assert_eq!(
        store.pending_effects(None).await.expect("pending").len(),
        emitted.len()
    );
    service.run_all_effects().await.expect("run");
    service.run_all_effects().await.expect("run again");
    service.tick().await.expect("tick runs the sweep too");
    let executed = azure.executed();
    for id in &emitted {
        assert_eq!(
            executed.iter().filter(|e| *e == id).count(),
            1,
            "{id} executed once: {executed:?}"
        );
    }
    let create = executed
        .iter()
        .filter(|e| e.ends_with("-w0a1:create"))
        .count();
    assert_eq!(
        create, 1,
        "the deployment the members led to was created once: {executed:?}"
    );
    assert!(store
        .pending_effects(None)
        .await
        .expect("pending")
        .is_empty());
    assert_eq!(
        service.get("ro-restart").await.expect("get").waves[0]
            .counts
            .total,
        3
    );
}
