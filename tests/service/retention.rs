//! Dead letters past the retention are deleted by the timer, counted in the health counters,
//! and a failure to delete them never fails the tick.

use crate::support::*;
use patchwave::config::AuthSettings;
use patchwave::decode::agent_report::AgentState;
use patchwave::ports::ManualClock;
use patchwave::service::RolloutService;
use patchwave::startup::Application;
use patchwave::state::AppState;
use patchwave::store::sqlite::SqliteStore;
use patchwave::store::Store;
use rollout_core::RolloutState;
use serde_json::Value;
use std::sync::Arc;

/// A service on SQLite that keeps dead letters for 2 days and at most 3 of them.
fn service_keeping_three(
    dir: &tempfile::TempDir,
    azure: Arc<FakeAzure>,
) -> (Arc<RolloutService>, Arc<ManualClock>, Arc<dyn Store>) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("patchwave.db")).expect("open"));
    let clock = Arc::new(ManualClock::new(t0()));
    let service = RolloutService::new(store.clone(), azure, clock.clone())
        .with_dead_letter_retention(chrono::Duration::days(2), 3);
    (Arc::new(service), clock, store)
}

async fn keep_letter(service: &RolloutService, clock: &ManualClock, n: usize) {
    service
        .dead_letter(
            "TwinChanges",
            &format!("inv-{n}"),
            "message body is not JSON",
            &format!("{{broken {n}"),
        )
        .await
        .expect("kept");
    clock.advance(chrono::Duration::minutes(1));
}

async fn raws(store: &Arc<dyn Store>) -> Vec<String> {
    let letters = store.dead_letters(100).await.expect("list");
    letters.into_iter().map(|letter| letter.raw).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_prunes_dead_letters_past_the_retention_and_counts_them() {
    let dir = tempfile::tempdir().expect("dir");
    let (service, clock, store) = service_keeping_three(&dir, Arc::new(FakeAzure::default()));
    for n in 0..5 {
        keep_letter(&service, &clock, n).await;
    }

    // 5 letters, at most 3 kept: the 2 oldest go
    service.tick().await.expect("tick");
    assert_eq!(service.metrics().snapshot().dead_letters_pruned, 2);
    assert_eq!(raws(&store).await, ["{broken 4", "{broken 3", "{broken 2"]);
    service.tick().await.expect("tick");
    assert_eq!(service.metrics().snapshot().dead_letters_pruned, 2);

    // two days later those 3 are too old; a new one stays. This tick is the timer's own
    // invocation, over HTTP, and the health counters show what it pruned
    clock.advance(chrono::Duration::days(2));
    keep_letter(&service, &clock, 5).await;
    let app = Application::bind(
        0,
        AppState::with_service(
            service.clone(),
            AuthSettings {
                open: true,
                ..AuthSettings::default()
            },
        ),
    )
    .await
    .expect("bind");
    let address = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.serve(std::future::pending()));
    let client = reqwest::Client::new();
    let timer: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/timer-request-with-retrycontext.json"),
        )
        .expect("fixture"),
    )
    .expect("json");
    let ticked = client
        .post(format!("{address}/RolloutTick"))
        .json(&timer)
        .send()
        .await
        .expect("tick");
    assert_eq!(ticked.status(), 200);
    assert_eq!(raws(&store).await, ["{broken 5"]);
    let health: Value = client
        .get(format!("{address}/api/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["counters"]["deadLettersPruned"], 5, "{health}");
    assert_eq!(health["counters"]["deadLetters"], 6, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_to_prune_dead_letters_does_not_fail_the_tick() {
    let dir = tempfile::tempdir().expect("dir");
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 20)));
    let (service, clock, store) = service_keeping_three(&dir, azure);
    let rollout = service
        .create(one_wave_plan("canary", 100.0), "alice", None)
        .await
        .expect("created");
    let changes: Vec<_> = devices("gw", 20)
        .iter()
        .map(|d| twin_change(d, 5, AgentState::Idle, Some(update("2.4.1"))))
        .collect();
    service
        .deliver_reports(&context(), &changes)
        .await
        .expect("reports");

    // the dead letters' table is gone: pruning fails
    rusqlite::Connection::open(dir.path().join("patchwave.db"))
        .and_then(|c| c.execute_batch("DROP TABLE dead_letters"))
        .expect("drop");
    let retention = patchwave::store::DeadLetterRetention {
        received_before: t0(),
        keep: 3,
        at_most: 10,
    };
    assert!(store.prune_dead_letters(&retention).await.is_err());
    clock.advance(chrono::Duration::minutes(31));
    service.tick().await.expect("the tick succeeds");
    let done = service.get(rollout.id()).await.expect("get");
    assert_eq!(done.state(), RolloutState::Completed, "the rollouts ticked");
    assert_eq!(service.metrics().snapshot().dead_letters_pruned, 0);
}
