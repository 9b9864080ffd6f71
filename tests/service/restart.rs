//! Pending effects survive a restart and run exactly once.

use crate::support::*;
use patchwave::ports::ManualClock;
use patchwave::service::RolloutService;
use patchwave::store::sqlite::SqliteStore;
use patchwave::store::{Commit, Store};
use rollout_core::{Rollout, RolloutId};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_effects_survive_a_restart_and_run_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("patchwave.db");
    // process 1 decides and stores the decision with its effects, then dies before running them
    let emitted = {
        let store = SqliteStore::open(&path).expect("open");
        let id = RolloutId::new("ro-restart");
        let (rollout, step) =
            Rollout::create(id, one_wave_plan("canary", 100.0), "alice", t0()).expect("valid");
        let (effects, decisions) = (step.effects, step.decisions);
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
        effects
            .into_iter()
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>()
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
        service
            .get("ro-restart")
            .await
            .expect("get")
            .wave_progress()[0]
            .counts
            .total,
        3
    );
}

/// A patch run that outlives one attempt: the first attempt leaves a checkpoint, a new
/// process resumes from it instead of starting a second run.
struct SlowPatches {
    seen: std::sync::Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl patchwave::ports::EffectExecutor for SlowPatches {
    async fn execute(
        &self,
        _rollout: &Rollout,
        effect: &rollout_core::Effect,
        checkpoint: Option<&str>,
    ) -> patchwave::ports::EffectOutcome {
        use patchwave::ports::EffectOutcome;
        if !matches!(effect.kind, rollout_core::EffectKind::InstallPatches { .. }) {
            return EffectOutcome::Done;
        }
        self.seen
            .lock()
            .expect("lock")
            .push(checkpoint.map(String::from));
        match checkpoint {
            None => EffectOutcome::InProgress {
                checkpoint: "operation-42".into(),
                note: "patching".into(),
            },
            Some(_) => EffectOutcome::Patched {
                outcome: rollout_core::PatchOutcome::Succeeded,
                detail: "3 installed".into(),
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_patch_run_resumes_from_its_checkpoint_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("patchwave.db");
    let machine =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gw-01";
    let mut plan = one_wave_plan("canary", 100.0);
    plan.infrastructure = Some(rollout_core::InfrastructurePlan {
        maintenance_configuration_ids: vec![],
        machines: vec![machine.into()],
        on_failure: rollout_core::InfrastructureFailure::Block,
    });
    let first = Arc::new(SlowPatches {
        seen: Default::default(),
    });
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
    let service = RolloutService::new(store, first.clone(), Arc::new(ManualClock::new(t0())));
    let rollout = service.create(plan, "alice", None).await.expect("created");
    assert_eq!(
        rollout.state(),
        rollout_core::RolloutState::PatchingInfrastructure
    );
    assert_eq!(*first.seen.lock().expect("lock"), vec![None]);
    drop(service);

    let second = Arc::new(SlowPatches {
        seen: Default::default(),
    });
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let service = RolloutService::new(store, second.clone(), Arc::new(ManualClock::new(t0())));
    service.tick().await.expect("tick");
    assert_eq!(
        *second.seen.lock().expect("lock"),
        vec![Some("operation-42".to_string())],
        "resumed, not restarted"
    );
    let after = service.get(rollout.id()).await.expect("get");
    assert_eq!(
        after.state(),
        rollout_core::RolloutState::Deploying,
        "host patched, devices go"
    );
}
