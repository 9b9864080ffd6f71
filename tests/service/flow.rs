//! A whole rollout through the service: effects run from the outbox, reports counted,
//! decisions in the audit log; unusable inputs become dead letters.

use crate::support::*;
use patchwave::decode::agent_report::AgentState;
use rollout_core::RolloutState;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_wave_runs_from_plan_to_completed() {
    let dir = tempfile::tempdir().expect("dir");
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 20)));
    let (service, clock, store) = sqlite_service(&dir, azure.clone());
    let rollout = service
        .create(one_wave_plan("canary", 100.0), "alice", None)
        .await
        .expect("created");
    assert_eq!(rollout.state(), RolloutState::Deploying);
    assert_eq!(
        rollout.wave_progress()[0].counts.total,
        20,
        "members fetched and stored through the outbox"
    );
    let executed = azure.executed();
    assert!(
        executed.iter().any(|id| id.ends_with(":members:w0a1")),
        "{executed:?}"
    );
    assert!(
        executed.iter().any(|id| id.ends_with("-w0a1:create")),
        "{executed:?}"
    );
    assert!(store
        .pending_effects(None)
        .await
        .expect("pending")
        .is_empty());

    let changes: Vec<_> = devices("gw", 20)
        .iter()
        .map(|d| twin_change(d, 5, AgentState::Idle, Some(update("2.4.1"))))
        .collect();
    service
        .deliver_reports(&context(), &changes)
        .await
        .expect("reports");
    let after = service.get(rollout.id()).await.expect("get");
    assert_eq!(after.wave_progress()[0].counts.succeeded, 20);
    assert_eq!(after.state(), RolloutState::Soaking);

    clock.advance(chrono::Duration::minutes(31));
    service.tick().await.expect("tick");
    let done = service.get(rollout.id()).await.expect("get");
    assert_eq!(done.state(), RolloutState::Completed);
    let audit = store.audit(rollout.id()).await.expect("audit");
    let kinds: Vec<&str> = audit.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"rollout.created"));
    assert_eq!(kinds.last(), Some(&"rollout.completed"));
    assert!(
        kinds.contains(&"wave.threshold_met") && kinds.contains(&"wave.passed"),
        "{kinds:?}"
    );
    assert_eq!(service.metrics().snapshot().reports_applied, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_devices_open_a_rollback_through_the_outbox() {
    let dir = tempfile::tempdir().expect("dir");
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 20)));
    let (service, _clock, _store) = sqlite_service(&dir, azure.clone());
    let rollout = service
        .create(one_wave_plan("canary", 100.0), "alice", None)
        .await
        .expect("created");
    let mut changes = Vec::new();
    for (i, device) in devices("gw", 10).iter().enumerate() {
        let state = if i < 2 {
            AgentState::Failed
        } else {
            AgentState::Idle
        };
        changes.push(twin_change(device, 5, state, Some(update("2.4.1"))));
    }
    service
        .deliver_reports(&context(), &changes)
        .await
        .expect("reports");
    let after = service.get(rollout.id()).await.expect("get");
    assert_eq!(after.state(), RolloutState::RollingBack);
    let executed = azure.executed();
    assert!(
        executed.iter().any(|id| id.ends_with("-rb0:create")),
        "rollback deployment created: {executed:?}"
    );
    assert!(
        executed.iter().any(|id| id.ends_with("-w0a1:cancel")),
        "{executed:?}"
    );
    // the cancel and the rollback went before the lifecycle events decided with them,
    // which kept their own order
    let position = |suffix: &str| {
        executed
            .iter()
            .position(|id| id.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in {executed:?}"))
    };
    let events: Vec<usize> = executed
        .iter()
        .enumerate()
        .filter(|(_, id)| id.contains(":event:"))
        .map(|(i, _)| i)
        .collect();
    let last_two = &events[events.len() - 2..];
    assert!(
        position("-w0a1:cancel") < last_two[0] && position("-rb0:create") < last_two[0],
        "{executed:?}"
    );
    let numbers: Vec<u32> = events
        .iter()
        .map(|&i| {
            executed[i]
                .rsplit(':')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("n")
        })
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{executed:?}");
    let reason = &service
        .store()
        .audit(rollout.id())
        .await
        .expect("audit")
        .into_iter()
        .find(|d| d.kind == "wave.failed")
        .expect("failed")
        .reason;
    assert_eq!(
        reason,
        "wave canary: 2 of 20 failed = 10.0% > 5%, judged after 10 finished; rolling back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_traffic_is_counted_not_dead_lettered() {
    let dir = tempfile::tempdir().expect("dir");
    let (service, _clock, store) = sqlite_service(&dir, Arc::new(FakeAzure::default()));
    let stranger = twin_change(
        "not-in-any-rollout",
        3,
        AgentState::Idle,
        Some(update("2.4.1")),
    );
    let mut no_report = twin_change("x", 1, AgentState::Idle, None);
    no_report.device_update = None;
    service
        .deliver_reports(&context(), &[stranger, no_report])
        .await
        .expect("deliver");
    assert_eq!(service.metrics().snapshot().ordinary_traffic, 2);
    assert!(store.dead_letters(10).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_problems_and_busy_groups_are_refused_and_create_is_idempotent() {
    let dir = tempfile::tempdir().expect("dir");
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 2)));
    let (service, _clock, _store) = sqlite_service(&dir, azure);
    let mut bad = one_wave_plan("canary", 100.0);
    bad.waves[0].failure_threshold_percent = 150.0;
    let refused = service
        .create(bad, "alice", None)
        .await
        .expect_err("invalid");
    assert!(
        matches!(&refused, patchwave::service::ServiceError::InvalidPlan(p) if p.len() == 2),
        "{refused:?}"
    );
    let first = service
        .create(one_wave_plan("canary", 100.0), "alice", Some("key-1"))
        .await
        .expect("created");
    let again = service
        .create(one_wave_plan("canary", 100.0), "alice", Some("key-1"))
        .await
        .expect("same");
    assert_eq!(
        first.id(),
        again.id(),
        "Idempotency-Key returns the first rollout"
    );
    let busy = service
        .create(one_wave_plan("CANARY", 100.0), "alice", Some("key-2"))
        .await
        .expect_err("busy");
    assert!(
        busy.to_string()
            .contains("device group CANARY is in active rollout"),
        "{busy}"
    );
}

/// A batch whose commit does not fit the store's transaction (the reports, and the rollback
/// the failures open, with its effects and decisions) is applied in smaller commits, to the
/// same end as in one commit: the same counts, records, decisions and effects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_one_transaction_are_applied_in_smaller_commits() {
    let (whole, refused_whole) = nine_failures_with_limit(None).await;
    let (split, refused_split) = nine_failures_with_limit(Some(10)).await;
    assert_eq!(refused_whole, 0);
    assert!(refused_split > 0, "the first commit was over the limit");
    assert_eq!(split, whole);
    assert_eq!(whole.0, RolloutState::RollingBack);
}

/// What nine failure reports in one batch leave behind, on a store with the given
/// transaction limit; and how many commits it refused.
async fn nine_failures_with_limit(
    limit: Option<usize>,
) -> (
    (RolloutState, String, Vec<String>, Vec<String>, Vec<String>),
    usize,
) {
    use crate::gated::HoldFirstCommit;
    let dir = tempfile::tempdir().expect("dir");
    let sqlite: Arc<dyn patchwave::store::Store> = Arc::new(
        patchwave::store::sqlite::SqliteStore::open(&dir.path().join("p.db")).expect("open"),
    );
    let mut store = HoldFirstCommit::new(sqlite, 0);
    if let Some(limit) = limit {
        store = store.with_transaction_limit(limit);
    }
    let store = Arc::new(store);
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 40)));
    let clock = Arc::new(patchwave::ports::ManualClock::new(t0()));
    let service = patchwave::service::RolloutService::new(store.clone(), azure.clone(), clock);
    let mut plan = one_wave_plan("canary", 100.0);
    plan.waves[0].min_devices_judged = 2;
    let rollout = service.create(plan, "alice", None).await.expect("created");
    let changes: Vec<_> = devices("gw", 9)
        .iter()
        .map(|d| twin_change(d, 5, AgentState::Failed, Some(update("2.4.0"))))
        .collect();
    service
        .deliver_reports(&context(), &changes)
        .await
        .expect("reports");
    assert_eq!(service.metrics().snapshot().reports_applied, 9);
    let after = service.get(rollout.id()).await.expect("get");
    let counts = format!("{:?}", after.wave_progress()[0].counts);
    let records: Vec<String> = service
        .store()
        .list_devices(rollout.id(), None, 100)
        .await
        .expect("devices")
        .iter()
        .map(|(device, record)| format!("{device} {record:?}"))
        .collect();
    let decisions: Vec<String> = service
        .store()
        .audit(rollout.id())
        .await
        .expect("audit")
        .iter()
        .map(|d| format!("{} {}", d.kind.as_str(), d.reason))
        .collect();
    let effects: Vec<String> = azure
        .executed()
        .iter()
        .map(|id| id.replace(rollout.id().as_str(), "{rollout}"))
        .collect();
    let refused = store.refused();
    (
        (after.state(), counts, records, decisions, effects),
        refused,
    )
}
