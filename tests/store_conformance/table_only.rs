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
        Err(StoreError::TooLarge { operations, limit }) => {
            assert_eq!((operations, limit), (size, 100))
        }
        other => panic!("expected a commit too large, got {other:?}"),
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

/// A record this instance wrote (and so keeps for routing) that another instance then
/// changed: the next commit from the kept copy loses its version check, and the record is
/// routed afresh; a plain load always reads the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_record_another_instance_changed_loses_and_is_read_again() {
    use patchwave::store::DeviceWrite;
    use rollout_core::{DeviceId, Outcome};
    let (first, guard) = fresh().await;
    let second = another(&guard).await;
    let v1 = first.commit(create_commit("kept")).await.expect("create");
    first
        .add_devices("kept", &[("d1".to_string(), DeviceRecord::new(0))])
        .await
        .expect("add");
    let write = |record: DeviceRecord, expected: String| DeviceWrite {
        device: DeviceId::new("d1"),
        record,
        expected: Some(expected),
    };
    let seen = second
        .load_devices("kept", &["d1".to_string()])
        .await
        .expect("load");
    let mut moved = DeviceRecord::new(0);
    moved.version = 7;
    moved.forward = Outcome::InProgress;
    let head = second
        .load_rollout("kept")
        .await
        .expect("load")
        .expect("head");
    let v2 = second
        .commit(Commit {
            rollout: head.value.clone(),
            expected: Some(head.version),
            devices: vec![write(moved, seen[0].1.version.clone())],
            effects: vec![],
            decisions: vec![],
        })
        .await
        .expect("the second instance writes the record");

    let loaded = first
        .load_devices("kept", &["d1".to_string()])
        .await
        .expect("load");
    assert_eq!(loaded[0].1.value.version, 7, "a load reads the store");
    // the first instance routes d1 from the record as it last saw it: the one just loaded
    let routed = |routed: Vec<patchwave::store::Routed>| {
        let record = routed[0].record.clone().expect("a record");
        (record.value, record.version)
    };
    let (kept, kept_version) = routed(first.route_devices(vec!["d1".into()]).await.expect("route"));
    assert_eq!(kept.version, 7);
    let mut moved_again = kept;
    moved_again.version = 8;
    let v3 = second
        .commit(Commit {
            rollout: head.value.clone(),
            expected: Some(v2.clone()),
            devices: vec![write(moved_again, kept_version.clone())],
            effects: vec![],
            decisions: vec![],
        })
        .await
        .expect("the second instance writes it again");
    let (stale, stale_version) =
        routed(first.route_devices(vec!["d1".into()]).await.expect("route"));
    assert_eq!(stale.version, 7, "the kept copy, older than the store's");
    let mut from_stale = stale;
    from_stale.version = 9;
    let lost = first
        .commit(Commit {
            rollout: head.value.clone(),
            expected: Some(v3.clone()),
            devices: vec![write(from_stale, stale_version)],
            effects: vec![],
            decisions: vec![],
        })
        .await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    let (fresh_record, _) = routed(first.route_devices(vec!["d1".into()]).await.expect("route"));
    assert_eq!(
        (fresh_record.version, fresh_record.forward),
        (8, Outcome::InProgress),
        "after the conflict the record is read again"
    );
    assert_ne!(v1, v2);
}

/// Routes are kept, but a device another instance indexes to a newer rollout (or a device
/// that was in none) is routed to it from the next lookup on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_indexed_anew_by_another_instance_is_routed_to_its_new_rollout() {
    let (first, guard) = fresh().await;
    let second = another(&guard).await;
    let devices = ["moves".to_string(), "joins".to_string()];
    first
        .add_devices("old", &[(devices[0].clone(), DeviceRecord::new(0))])
        .await
        .expect("add");
    let routed = first.rollouts_of_devices(&devices).await.expect("routes");
    assert_eq!(routed.get("moves").map(String::as_str), Some("old"));
    assert!(!routed.contains_key("joins"));
    let both: Vec<(String, DeviceRecord)> = devices
        .iter()
        .map(|d| (d.clone(), DeviceRecord::new(0)))
        .collect();
    second.add_devices("new", &both).await.expect("add");
    let routed = first.rollouts_of_devices(&devices).await.expect("routes");
    assert_eq!(routed.get("moves").map(String::as_str), Some("new"));
    assert_eq!(routed.get("joins").map(String::as_str), Some("new"));
}

/// Many records are read by one range query when their range is sparse in other rows, one
/// by one when it is dense; either way exactly the existing ones come back, with ETags a
/// conditional write takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_records_are_read_by_range_or_point_with_their_etags() {
    use patchwave::store::DeviceWrite;
    use rollout_core::DeviceId;
    let (first, guard) = fresh().await;
    let head = first.commit(create_commit("wide")).await.expect("create");
    let added: Vec<(String, DeviceRecord)> = (0..200)
        .map(|i| (format!("d{i:03}"), DeviceRecord::new(0)))
        .collect();
    first.add_devices("wide", &added).await.expect("add");
    // a fresh instance has nothing cached
    let second = another(&guard).await;
    let mut sparse: Vec<String> = (100..130).map(|i| format!("d{i:03}")).collect();
    sparse.extend((100..110).map(|i| format!("d{i:03}a")));
    let found = second.load_devices("wide", &sparse).await.expect("load");
    let mut names: Vec<&str> = found.iter().map(|(d, _)| d.as_str()).collect();
    names.sort_unstable();
    let expected: Vec<String> = (100..130).map(|i| format!("d{i:03}")).collect();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let third = another(&guard).await;
    let dense: Vec<String> = (0..200).step_by(5).map(|i| format!("d{i:03}")).collect();
    let found_dense = third.load_devices("wide", &dense).await.expect("load");
    assert_eq!(found_dense.len(), dense.len());

    let (device, record) = &found[0];
    let mut moved = record.value;
    moved.version = 9;
    let rollout = second
        .load_rollout("wide")
        .await
        .expect("load")
        .expect("head");
    assert_eq!(rollout.version, head);
    second
        .commit(Commit {
            rollout: rollout.value,
            expected: Some(rollout.version),
            devices: vec![DeviceWrite {
                device: DeviceId::new(device.as_str()),
                record: moved,
                expected: Some(record.version.clone()),
            }],
            effects: vec![],
            decisions: vec![],
        })
        .await
        .expect("the ETag read with the range takes a conditional write");
}
