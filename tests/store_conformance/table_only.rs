//! Table Storage cases beyond the shared suite: two instances on the same tables, the
//! 100-operation limit of one transaction, documents over the 64 KiB property limit, ids
//! that are not key-safe, and queries and device pages long enough to need continuation
//! tokens, two instances pruning the same dead letters.

use crate::suite::{
    create_commit, edited, letter_at, new_rollout, retention_time, with_ignored_reports,
};
use crate::table::{another, fresh};
use patchwave::store::{Commit, DeadLetter, DeadLetterRetention, StoreError};
use rollout_core::{Decision, DeviceRecord, Effect, EffectId, EffectKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_sees_writes_and_loses_with_a_stale_version() {
    let (first, guard) = fresh().await;
    let second = another(&guard).await;
    let v1 = first.commit(create_commit("r")).await.expect("create");
    let seen = second
        .load_rollout("r")
        .await
        .expect("load")
        .expect("the other instance sees it");
    assert_eq!(seen.version, v1);

    let changed = with_ignored_reports(&seen.value, 1);
    let commit = |expected: &str| Commit {
        rollout: changed.clone(),
        expected: Some(expected.to_string()),
        devices: vec![],
        effects: vec![],
        decisions: vec![],
    };
    let v2 = second
        .commit(commit(&v1))
        .await
        .expect("second instance writes");
    let lost = first.commit(commit(&v1)).await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    let reloaded = first
        .load_rollout("r")
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(
        (reloaded.version, reloaded.value.ignored_reports()),
        (v2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_one_transaction_is_refused_whole() {
    let (store, _guard) = fresh().await;
    let mut commit = create_commit("big");
    let template = commit.decisions[0].1.clone();
    commit.decisions = (0..100).map(|i| (i, template.clone())).collect();
    let size = commit.size();
    assert!(size > 100);
    let refused = store.commit(commit).await;
    match refused {
        Err(StoreError::Backend(message)) => assert_eq!(
            message,
            format!("commit too large for one entity group transaction: {size} operations")
        ),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(store.load_rollout("big").await.expect("load").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_documents_and_awkward_ids_round_trip() {
    let (store, _guard) = fresh().await;
    let id = "rollouts/2026 #1?'é";
    let (rollout, step) = new_rollout(id);
    let effects = step.effects;
    // far beyond one string property's 64 KiB
    let applied: Vec<String> = (0..6000)
        .map(|i| format!("operator-command-{i:08}-✓"))
        .collect();
    let rollout = edited(&rollout, |document| document["applied"] = applied.into());
    let effect = Effect {
        id: EffectId::new(format!("{id}:cancel/run:1")),
        kind: EffectKind::CancelMaintenanceRun {
            run_id: "run/1".into(),
        },
    };
    let commit = Commit {
        rollout: rollout.clone(),
        expected: None,
        devices: vec![],
        effects: vec![effects[0].clone(), effect.clone()],
        decisions: vec![],
    };
    let version = store.commit(commit).await.expect("create");
    let loaded = store.load_rollout(id).await.expect("load").expect("exists");
    assert_eq!(loaded.version, version);
    assert_eq!(loaded.value, rollout);
    let pending = store.pending_effects(Some(id)).await.expect("pending");
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1].effect, effect);
    assert_eq!(pending[1].rollout, id);
    store
        .complete_effect(id, &effect.id)
        .await
        .expect("complete");
    store
        .complete_effect(id, "never-issued")
        .await
        .expect("nothing to complete");
    assert_eq!(
        store
            .pending_effects(Some(id))
            .await
            .expect("pending")
            .len(),
        1
    );
    assert_eq!(
        store.claim_key("create/'key'#", "a").await.expect("claim"),
        None
    );
    assert_eq!(
        store.claim_key("create/'key'#", "b").await.expect("claim"),
        Some("a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_follow_continuation_tokens() {
    let (store, _guard) = fresh().await;
    let mut version = store.commit(create_commit("r")).await.expect("create");
    let mut expected: Vec<Decision> = store.audit("r").await.expect("audit");
    let template = expected[0].clone();
    // more audit rows than one page (the service returns at most 1,000 per response)
    for round in 0..11u64 {
        let loaded = store
            .load_rollout("r")
            .await
            .expect("load")
            .expect("exists");
        let first = expected.len() as u64;
        let decisions: Vec<(u64, Decision)> = (0..99)
            .map(|i| {
                let mut decision = template.clone();
                decision.reason = format!("round {round} entry {i}");
                (first + i, decision)
            })
            .collect();
        expected.extend(decisions.iter().map(|(_, d)| d.clone()));
        let commit = Commit {
            rollout: loaded.value,
            expected: Some(version),
            devices: vec![],
            effects: vec![],
            decisions,
        };
        version = store.commit(commit).await.expect("commit");
    }
    let audit = store.audit("r").await.expect("audit");
    assert_eq!(audit.len(), expected.len());
    assert!(audit.len() > 1000);
    assert_eq!(audit, expected, "every entry, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_pages_longer_than_one_response_follow_continuation_tokens() {
    let (store, _guard) = fresh().await;
    let written: Vec<(String, DeviceRecord)> = (0..1500)
        .map(|i| (format!("dev-{i:04}"), DeviceRecord::new(i % 4)))
        .collect();
    store.add_devices("r", &written).await.expect("add");
    // more than the service returns in one response: $top and continuation together
    let first = store.list_devices("r", None, 1200).await.expect("list");
    assert_eq!(first, written[..1200]);
    let after = first.last().map(|(id, _)| id.as_str());
    let rest = store.list_devices("r", after, 1200).await.expect("list");
    assert_eq!(rest, written[1200..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_instances_never_both_win() {
    let (first, guard) = fresh().await;
    let second = another(&guard).await;
    first.commit(create_commit("r")).await.expect("create");
    for round in 0..10u64 {
        let read = first
            .load_rollout("r")
            .await
            .expect("load")
            .expect("exists");
        let attempt = |store: std::sync::Arc<dyn patchwave::store::Store>, reports: u64| {
            let rollout = with_ignored_reports(&read.value, reports);
            let commit = Commit {
                rollout,
                expected: Some(read.version.clone()),
                devices: vec![],
                effects: vec![],
                decisions: vec![],
            };
            tokio::spawn(async move { store.commit(commit).await })
        };
        let a = attempt(first.clone(), 2 * round);
        let b = attempt(second.clone(), 2 * round + 1);
        let (a, b) = (a.await.expect("join"), b.await.expect("join"));
        let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {a:?} {b:?}");
        for result in [&a, &b] {
            if let Err(error) = result {
                assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
            }
        }
        let now = first
            .load_rollout("r")
            .await
            .expect("load")
            .expect("exists");
        let winner = if a.is_ok() { 2 * round } else { 2 * round + 1 };
        assert_eq!(
            now.value.ignored_reports(),
            winner,
            "the winner's write is the one kept"
        );
    }
}

/// Two instances applying the retention at once: each letter is deleted once (a transaction
/// that finds a row gone is redone row by row), counted by the instance that deleted it, and
/// its dedupe marker goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_pruning_at_once_delete_each_letter_once() {
    let (first, guard) = fresh().await;
    let second = another(&guard).await;
    let letters: Vec<DeadLetter> = (0..160).map(|n| letter_at(n as i64, n)).collect();
    for letter in &letters {
        first.add_dead_letter(letter).await.expect("add");
    }
    // 100 too old, then 50 past the newest 10
    let retention = DeadLetterRetention {
        received_before: retention_time(100),
        keep: 10,
        at_most: 500,
    };
    let (a, b) = tokio::join!(
        first.prune_dead_letters(&retention),
        second.prune_dead_letters(&retention)
    );
    assert_eq!(a.expect("first") + b.expect("second"), 150);
    let newest: Vec<DeadLetter> = letters[150..].iter().rev().cloned().collect();
    assert_eq!(first.dead_letters(1_000).await.expect("list"), newest);

    let again = DeadLetter {
        received_at: retention_time(1_000).to_rfc3339(),
        ..letters[0].clone()
    };
    second.add_dead_letter(&again).await.expect("add again");
    assert_eq!(
        first.dead_letters(1).await.expect("list"),
        vec![again],
        "its marker went with it"
    );
}
