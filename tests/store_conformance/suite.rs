//! The conformance cases, written once against `dyn Store`. `conformance_tests!()` expands
//! them into tests inside a backend module that provides `fresh()` and `another(&guard)`.

use chrono::{TimeZone, Utc};
use patchwave::store::{Commit, DeadLetter, DeadLetterRetention, DeviceWrite, Store, StoreError};
use rollout_core::*;
use std::sync::Arc;

pub fn plan() -> RolloutPlan {
    let update = |v: &str| UpdateId::new("Contoso", "Gateway", v).expect("id");
    RolloutPlan {
        name: "conformance".into(),
        update: update("2.4.1"),
        rollback_update: update("2.4.0"),
        infrastructure: None,
        waves: vec![WavePlan {
            name: "canary".into(),
            device_group: "canary".into(),
            success_threshold_percent: 100.0,
            failure_threshold_percent: 5.0,
            min_devices_judged: 5,
            soak_minutes: 30,
            device_timeout_minutes: 120,
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

pub fn new_rollout(id: &str) -> (Rollout, Step) {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("time");
    Rollout::create(RolloutId::new(id), plan(), "alice", now).expect("valid")
}

/// `rollout` with its stored document edited (fields the engine alone changes, set here to
/// make a document that differs).
pub fn edited(rollout: &Rollout, edit: impl FnOnce(&mut serde_json::Value)) -> Rollout {
    let mut document = serde_json::to_value(rollout).expect("json");
    edit(&mut document);
    serde_json::from_value(document).expect("still a rollout")
}

/// `rollout` with `ignoredReports` set to `count`.
pub fn with_ignored_reports(rollout: &Rollout, count: u64) -> Rollout {
    edited(rollout, |document| {
        document["ignoredReports"] = count.into()
    })
}

pub fn create_commit(id: &str) -> Commit {
    let (rollout, step) = new_rollout(id);
    Commit {
        rollout,
        expected: None,
        devices: vec![],
        effects: step.effects,
        decisions: step.decisions,
    }
}

fn record(wave: u32, version: u64, forward: Outcome) -> DeviceRecord {
    DeviceRecord {
        version,
        forward,
        ..DeviceRecord::new(wave)
    }
}

pub async fn create_load_and_refuse_a_second_create(store: Arc<dyn Store>) {
    store.ping().await.expect("reachable");
    let version = store.commit(create_commit("r-1")).await.expect("create");
    let loaded = store
        .load_rollout("r-1")
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(loaded.version, version);
    assert_eq!(loaded.value.plan(), &plan());
    assert_eq!(loaded.value.state(), RolloutState::Deploying);
    assert!(store.load_rollout("nope").await.expect("load").is_none());
    let again = store.commit(create_commit("r-1")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    store
        .commit(create_commit("r-2"))
        .await
        .expect("second rollout");
    let ids: Vec<String> = store
        .list_rollouts()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"r-1".to_string()) && ids.contains(&"r-2".to_string()));
}

pub async fn stale_writes_conflict_and_change_nothing(store: Arc<dyn Store>) {
    let v1 = store.commit(create_commit("r")).await.expect("create");
    store
        .add_devices("r", &[("d1".into(), record(0, 0, Outcome::NotReported))])
        .await
        .expect("devices");
    let loaded = store
        .load_rollout("r")
        .await
        .expect("load")
        .expect("exists");
    let devices = store
        .load_devices("r", &["d1".into()])
        .await
        .expect("devices");
    let device_version = devices[0].1.version.clone();

    let changed = with_ignored_reports(&loaded.value, 7);
    let write = |expected: &str, device_version: &str, outcome| Commit {
        rollout: changed.clone(),
        expected: Some(expected.to_string()),
        devices: vec![DeviceWrite {
            device: "d1".into(),
            record: record(0, 3, outcome),
            expected: Some(device_version.to_string()),
        }],
        effects: vec![],
        decisions: vec![],
    };
    let v2 = store
        .commit(write(&v1, &device_version, Outcome::Failed))
        .await
        .expect("first writer wins");
    assert_ne!(v1, v2);
    // the second writer read the same versions: its whole commit is refused
    let lost = store
        .commit(write(&v1, &device_version, Outcome::Succeeded))
        .await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    let devices = store
        .load_devices("r", &["d1".into()])
        .await
        .expect("devices");
    assert_eq!(
        devices[0].1.value.forward,
        Outcome::Failed,
        "the losing commit wrote nothing"
    );
    // a current head but a stale device version: refused as a whole too
    let mixed = store
        .commit(write(&v2, &device_version, Outcome::Succeeded))
        .await;
    assert!(matches!(mixed, Err(StoreError::Conflict(_))), "{mixed:?}");
    let head = store
        .load_rollout("r")
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(
        head.version, v2,
        "the head was not written by the refused commit"
    );
}

pub async fn devices_are_added_once_indexed_and_loaded_by_id(store: Arc<dyn Store>) {
    store.commit(create_commit("r")).await.expect("create");
    let members: Vec<(String, DeviceRecord)> = (0..250)
        .map(|i| (format!("dev-{i:03}"), record(0, 0, Outcome::NotReported)))
        .collect();
    store.add_devices("r", &members).await.expect("add");
    // a retried add leaves existing records alone
    store
        .add_devices(
            "r",
            &[("dev-007".into(), record(0, 99, Outcome::Succeeded))],
        )
        .await
        .expect("re-add");
    let ids: Vec<String> = vec!["dev-007".into(), "dev-249".into(), "missing".into()];
    let loaded = store.load_devices("r", &ids).await.expect("load");
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].0, "dev-007");
    assert_eq!(loaded[0].1.value, record(0, 0, Outcome::NotReported));
    let wanted: Vec<String> = vec!["dev-123".into(), "stranger".into(), "dev-000".into()];
    let index = store.rollouts_of_devices(&wanted).await.expect("index");
    assert_eq!(
        index,
        [
            ("dev-123".to_string(), "r".to_string()),
            ("dev-000".into(), "r".into())
        ]
        .into_iter()
        .collect()
    );
    // routing reads the index and each device's record there together
    store
        .add_devices(
            "r2",
            &[("dev-005".into(), record(0, 3, Outcome::InProgress))],
        )
        .await
        .expect("moved");
    let wanted: Vec<String> = vec!["dev-007".into(), "stranger".into(), "dev-005".into()];
    let mut routed = store.route_devices(wanted).await.expect("route");
    routed.sort_by(|a, b| a.device.cmp(&b.device));
    let summary: Vec<(&str, &str, Option<DeviceRecord>)> = routed
        .iter()
        .map(|r| {
            (
                r.device.as_str(),
                r.rollout.as_str(),
                r.record.as_ref().map(|v| v.value),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("dev-005", "r2", Some(record(0, 3, Outcome::InProgress))),
            ("dev-007", "r", Some(record(0, 0, Outcome::NotReported))),
        ]
    );
    let version_read = &routed[1].record.as_ref().expect("record").version;
    assert_eq!(
        version_read, &loaded[0].1.version,
        "the version a commit checks"
    );
}

/// A record with every field away from its default, distinct per `i`.
fn full_record(i: u32) -> DeviceRecord {
    let reported = Utc
        .with_ymd_and_hms(2026, 11, 23, 2, 0, 0)
        .single()
        .expect("time");
    DeviceRecord {
        version: u64::from(i) + 1,
        forward: Outcome::Succeeded,
        rollback: Outcome::Failed,
        forward_reported: true,
        installed: Installed::Update,
        workflow: 0xBEEF_0000 + i,
        workflow_deployment: if i.is_multiple_of(2) {
            2
        } else {
            ROLLBACK_DEPLOYMENT
        },
        last_report_at: Some(reported + chrono::Duration::seconds(i64::from(i))),
        ..DeviceRecord::new(i % 3)
    }
}

/// Every page of a rollout's devices, each asked for after the last id of the one before.
async fn all_pages(
    store: &dyn Store,
    rollout: &str,
    limit: usize,
) -> Vec<Vec<(String, DeviceRecord)>> {
    let mut pages: Vec<Vec<(String, DeviceRecord)>> = Vec::new();
    loop {
        let after = pages
            .last()
            .and_then(|p| p.last())
            .map(|(id, _)| id.clone());
        let page = store
            .list_devices(rollout, after.as_deref(), limit)
            .await
            .expect("list");
        if page.is_empty() {
            return pages;
        }
        assert!(page.len() <= limit, "{} > {limit}", page.len());
        pages.push(page);
        assert!(pages.len() <= 1000, "paging does not end");
    }
}

pub async fn devices_are_listed_in_pages_in_id_order(store: Arc<dyn Store>) {
    store.commit(create_commit("r")).await.expect("create");
    let written: Vec<(String, DeviceRecord)> = (0..25)
        .map(|i| (format!("dev-{i:02}"), full_record(i)))
        .collect();
    // added out of order, with another rollout's devices around them
    let mut shuffled = written.clone();
    shuffled.reverse();
    store.add_devices("r", &shuffled).await.expect("add");
    let others: Vec<(String, DeviceRecord)> = ["dev-00x", "dev-05a", "dev-99", "a", "z"]
        .iter()
        .map(|id| (id.to_string(), DeviceRecord::new(0)))
        .collect();
    store.add_devices("r-other", &others).await.expect("others");
    store.add_devices("r-", &others).await.expect("others");

    let pages = all_pages(store.as_ref(), "r", 10).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(
        pages.concat(),
        written,
        "in id order, once each, as written"
    );
    let last = written.last().map(|(id, _)| id.as_str());
    assert!(store
        .list_devices("r", last, 10)
        .await
        .expect("list")
        .is_empty());
    assert!(store
        .list_devices("r", None, 0)
        .await
        .expect("list")
        .is_empty());
    let all = store.list_devices("r", None, 1000).await.expect("list");
    assert_eq!(all, written);
    let middle = store
        .list_devices("r", Some("dev-07"), 3)
        .await
        .expect("list");
    assert_eq!(middle, written[8..11]);
    assert!(store
        .list_devices("nope", None, 10)
        .await
        .expect("list")
        .is_empty());
}

pub async fn device_pages_neither_skip_nor_repeat_any_id(store: Arc<dyn Store>) {
    let rollout = "r:1/x";
    let version = store.commit(create_commit(rollout)).await.expect("create");
    let mut written: Vec<(String, DeviceRecord)> = (0..9)
        .map(|i| (format!("host-{i}"), full_record(i)))
        .collect();
    // an id whose stored key is encoded: its place in the order may differ by backend
    written.push(("host:4/é".into(), full_record(9)));
    // and one too long for a key as it is (Table Storage keys it by its hash)
    written.push((format!("host-{}", "z".repeat(500)), full_record(11)));
    store.add_devices(rollout, &written).await.expect("add");
    // a record changed by a commit is listed as committed
    let loaded = store
        .load_rollout(rollout)
        .await
        .expect("load")
        .expect("exists");
    let read = store
        .load_devices(rollout, &["host:4/é".into()])
        .await
        .expect("read");
    let changed = DeviceRecord {
        forward: Outcome::TimedOut,
        ..full_record(10)
    };
    store
        .commit(Commit {
            rollout: loaded.value,
            expected: Some(version),
            devices: vec![DeviceWrite {
                device: "host:4/é".into(),
                record: changed,
                expected: Some(read[0].1.version.clone()),
            }],
            effects: vec![],
            decisions: vec![],
        })
        .await
        .expect("commit");
    written[9].1 = changed;

    for limit in [1, 2, 3, 10, 11] {
        let mut listed = all_pages(store.as_ref(), rollout, limit).await.concat();
        assert_eq!(listed.len(), written.len(), "limit {limit}: no repeats");
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut expected = written.clone();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed, expected, "limit {limit}: every device, as stored");
    }
    // the plain ids keep their own order around the others
    let expected: Vec<String> = (0..9).map(|i| format!("host-{i}")).collect();
    let plain: Vec<String> = store
        .list_devices(rollout, None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| expected.contains(id))
        .collect();
    assert_eq!(plain, expected);
}

pub async fn outbox_keeps_order_ignores_duplicates_and_completes(store: Arc<dyn Store>) {
    let create = create_commit("r");
    let first_ids: Vec<EffectId> = create.effects.iter().map(|e| e.id.clone()).collect();
    let version = store.commit(create.clone()).await.expect("create");
    let pending = store.pending_effects(Some("r")).await.expect("pending");
    assert_eq!(
        pending
            .iter()
            .map(|p| p.effect.id.clone())
            .collect::<Vec<_>>(),
        first_ids
    );
    // a later commit re-emitting an effect id does not duplicate it
    let loaded = store
        .load_rollout("r")
        .await
        .expect("load")
        .expect("exists");
    let extra = Effect {
        id: "r:extra".into(),
        kind: EffectKind::CancelMaintenanceRun {
            run_id: "run-1".into(),
        },
    };
    let commit = Commit {
        rollout: loaded.value,
        expected: Some(version),
        devices: vec![],
        effects: vec![create.effects[0].clone(), extra.clone()],
        decisions: vec![],
    };
    store.commit(commit).await.expect("commit");
    let pending = store.pending_effects(None).await.expect("pending");
    let ids: Vec<EffectId> = pending.iter().map(|p| p.effect.id.clone()).collect();
    let mut expected = first_ids.clone();
    expected.push("r:extra".into());
    assert_eq!(ids, expected, "in order, once each");
    assert_eq!(pending.last().map(|p| p.effect.clone()), Some(extra));
    store
        .complete_effect("r", first_ids[0].as_str())
        .await
        .expect("complete");
    let pending = store.pending_effects(Some("r")).await.expect("pending");
    assert!(!pending.iter().any(|p| p.effect.id == first_ids[0]));
    assert_eq!(pending.len(), expected.len() - 1);
}

pub async fn checkpoints_stay_with_pending_effects(store: Arc<dyn Store>) {
    let create = create_commit("r");
    let first = create.effects[0].id.clone();
    store.commit(create).await.expect("create");
    assert!(store
        .pending_effects(Some("r"))
        .await
        .expect("pending")
        .iter()
        .all(|p| p.checkpoint.is_none()));
    let url = "https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/op?api-version=2025-04-01";
    let checkpoint = format!("{{\"statusUrl\":\"{url}\"}}");
    store
        .checkpoint_effect("r", first.as_str(), &checkpoint)
        .await
        .expect("checkpoint");
    let pending = store.pending_effects(Some("r")).await.expect("pending");
    let item = pending
        .iter()
        .find(|p| p.effect.id == first)
        .expect("still pending");
    assert_eq!(item.checkpoint.as_deref(), Some(checkpoint.as_str()));
    store
        .checkpoint_effect("r", first.as_str(), "second")
        .await
        .expect("overwrite");
    let pending = store.pending_effects(None).await.expect("pending");
    assert_eq!(
        pending
            .iter()
            .find(|p| p.effect.id == first)
            .and_then(|p| p.checkpoint.clone())
            .as_deref(),
        Some("second")
    );
    store
        .complete_effect("r", first.as_str())
        .await
        .expect("complete");
    assert!(!store
        .pending_effects(Some("r"))
        .await
        .expect("pending")
        .iter()
        .any(|p| p.effect.id == first));
}

pub async fn audit_is_append_only_and_ordered(store: Arc<dyn Store>) {
    let create = create_commit("r");
    let decisions = create.decisions.clone();
    assert!(!decisions.is_empty());
    let version = store.commit(create).await.expect("create");
    let loaded = store
        .load_rollout("r")
        .await
        .expect("load")
        .expect("exists");
    let mut later = decisions[0].1.clone();
    later.kind = DecisionKind::RolloutPaused;
    let commit = Commit {
        rollout: loaded.value,
        expected: Some(version),
        devices: vec![],
        effects: vec![],
        decisions: vec![(decisions.len() as u64, later.clone()), (0, later.clone())],
    };
    store.commit(commit).await.expect("commit");
    let audit = store.audit("r").await.expect("audit");
    assert_eq!(audit.len(), decisions.len() + 1);
    assert_eq!(
        audit[0], decisions[0].1,
        "an existing entry is never overwritten"
    );
    assert_eq!(audit.last(), Some(&later));
}

pub async fn dead_letters_are_kept_once_and_listed_newest_first(store: Arc<dyn Store>) {
    let old = DeadLetter::new(
        "2026-11-23T01:00:00Z",
        "TwinChanges",
        "inv-1",
        "message body is not JSON",
        "{oops",
    );
    let new = DeadLetter::new(
        "2026-11-23T02:00:00Z",
        "PatchEvents",
        "inv-2",
        "event has no type",
        "{}",
    );
    store.add_dead_letter(&old).await.expect("add");
    store.add_dead_letter(&new).await.expect("add");
    let redelivered = DeadLetter::new(
        "2026-11-23T03:00:00Z",
        "TwinChanges",
        "inv-3",
        "message body is not JSON",
        "{oops",
    );
    assert_eq!(redelivered.id, old.id);
    store
        .add_dead_letter(&redelivered)
        .await
        .expect("add again");
    let letters = store.dead_letters(10).await.expect("list");
    assert_eq!(letters, vec![new.clone(), old.clone()]);
    assert_eq!(store.dead_letters(1).await.expect("list"), vec![new]);
}

/// When the retention cases' letters are received: `minutes` after 2026-11-23 00:00 UTC.
pub fn retention_time(minutes: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .expect("time")
        + chrono::Duration::minutes(minutes)
}

/// A distinct dead letter received `minutes` after the retention cases' base time.
pub fn letter_at(minutes: i64, n: usize) -> DeadLetter {
    DeadLetter::new(
        &retention_time(minutes).to_rfc3339(),
        "TwinChanges",
        &format!("inv-{n}"),
        "message body is not JSON",
        &format!("{{broken {n}"),
    )
}

/// Keeps each letter, returns them newest first (as the store lists them).
async fn keep_letters(store: &Arc<dyn Store>, letters: &[DeadLetter]) -> Vec<DeadLetter> {
    for letter in letters {
        store.add_dead_letter(letter).await.expect("add");
    }
    let mut sorted = letters.to_vec();
    sorted.sort_by(|a, b| b.received_at.cmp(&a.received_at));
    sorted
}

async fn listed(store: &Arc<dyn Store>) -> Vec<DeadLetter> {
    store.dead_letters(10_000).await.expect("list")
}

/// A retention that deletes nothing for its age.
fn keep_newest(keep: usize, at_most: usize) -> DeadLetterRetention {
    DeadLetterRetention {
        received_before: retention_time(-1_000_000),
        keep,
        at_most,
    }
}

pub async fn dead_letters_older_than_the_retention_are_pruned_and_nothing_else(
    store: Arc<dyn Store>,
) {
    // what else the store holds stays
    let rollout = create_commit("r-stays");
    store.commit(rollout.clone()).await.expect("create");
    let audit = store.audit("r-stays").await.expect("audit");
    assert_eq!(
        store.claim_key("create:k", "r-stays").await.expect("claim"),
        None
    );

    let day = 24 * 60;
    let cutoff = retention_time(-30 * day);
    // 60 letters 40 days old (more than one transaction's worth), one a second older than
    // the cutoff, one received at it, and three recent ones
    let mut old: Vec<DeadLetter> = (0..60)
        .map(|n| letter_at(-40 * day + n as i64, n))
        .collect();
    old.push(DeadLetter::new(
        &(cutoff - chrono::Duration::seconds(1)).to_rfc3339(),
        "PatchEvents",
        "inv-edge",
        "event has no type",
        "{}",
    ));
    let at_cutoff = DeadLetter::new(
        &cutoff.to_rfc3339(),
        "PatchEvents",
        "inv-cutoff",
        "event has no type",
        "{\"id\": 1}",
    );
    let recent: Vec<DeadLetter> = (1..=3)
        .map(|n| letter_at(-60 * n as i64, 100 + n))
        .collect();
    keep_letters(&store, &old).await;
    let mut kept = keep_letters(&store, &recent).await;
    store.add_dead_letter(&at_cutoff).await.expect("add");
    kept.push(at_cutoff);

    let retention = DeadLetterRetention {
        received_before: cutoff,
        keep: 1_000,
        at_most: 1_000,
    };
    assert_eq!(
        store.prune_dead_letters(&retention).await.expect("prune"),
        61
    );
    assert_eq!(listed(&store).await, kept);
    assert_eq!(
        store.prune_dead_letters(&retention).await.expect("again"),
        0
    );

    // a pruned letter's id is free: the same bad input arriving again is kept again
    let again = DeadLetter {
        received_at: retention_time(0).to_rfc3339(),
        ..old[0].clone()
    };
    store.add_dead_letter(&again).await.expect("add again");
    assert_eq!(listed(&store).await.first(), Some(&again));

    // everything but dead letters is untouched, even by a retention that keeps none
    let none = keep_newest(0, 1_000);
    assert_eq!(store.prune_dead_letters(&none).await.expect("prune all"), 5);
    assert!(listed(&store).await.is_empty());
    let loaded = store
        .load_rollout("r-stays")
        .await
        .expect("load")
        .expect("still there");
    assert_eq!(loaded.value.id(), "r-stays");
    assert_eq!(store.audit("r-stays").await.expect("audit"), audit);
    assert_eq!(
        store
            .pending_effects(Some("r-stays"))
            .await
            .expect("outbox")
            .len(),
        rollout.effects.len()
    );
    assert_eq!(
        store.claim_key("create:k", "other").await.expect("claim"),
        Some("r-stays".into())
    );
}

pub async fn past_the_most_kept_the_oldest_dead_letters_are_pruned(store: Arc<dyn Store>) {
    let letters: Vec<DeadLetter> = (0..9).map(|n| letter_at(n as i64, n)).collect();
    let newest_first = |range: std::ops::Range<usize>| -> Vec<DeadLetter> {
        letters[range].iter().rev().cloned().collect()
    };
    let retention = keep_newest(5, 1_000);

    keep_letters(&store, &letters[..3]).await;
    assert_eq!(
        store.prune_dead_letters(&retention).await.expect("prune"),
        0
    );
    assert_eq!(listed(&store).await, newest_first(0..3));

    // 7 letters: the 2 oldest go
    keep_letters(&store, &letters[3..7]).await;
    assert_eq!(
        store.prune_dead_letters(&retention).await.expect("prune"),
        2
    );
    assert_eq!(listed(&store).await, newest_first(2..7));
    assert_eq!(
        store.prune_dead_letters(&retention).await.expect("again"),
        0
    );

    // 2 more: 2 more go
    keep_letters(&store, &letters[7..9]).await;
    assert_eq!(
        store.prune_dead_letters(&retention).await.expect("prune"),
        2
    );
    assert_eq!(listed(&store).await, newest_first(4..9));

    // both at once: the one older than the cutoff, then the oldest past 3
    let both = DeadLetterRetention {
        received_before: retention_time(5),
        keep: 3,
        at_most: 1_000,
    };
    assert_eq!(store.prune_dead_letters(&both).await.expect("prune"), 2);
    assert_eq!(listed(&store).await, newest_first(6..9));
}

pub async fn a_flood_of_dead_letters_is_pruned_a_bounded_number_at_a_time(store: Arc<dyn Store>) {
    let flood: Vec<DeadLetter> = (0..120).map(|n| letter_at(n as i64, n)).collect();
    let kept = keep_letters(&store, &flood).await;
    let retention = keep_newest(30, 8);

    let prune_down_to = |keep: usize| {
        let store = store.clone();
        async move {
            let (mut deleted, mut calls) = (0, 0);
            while listed(&store).await.len() > keep {
                calls += 1;
                assert!(calls <= 100, "still {} letters", listed(&store).await.len());
                let pruned = store.prune_dead_letters(&retention).await.expect("prune");
                assert!(pruned <= 8, "{pruned} deleted in one call");
                deleted += pruned;
            }
            (deleted, calls)
        }
    };
    let (deleted, calls) = prune_down_to(30).await;
    assert_eq!(deleted, 90);
    assert!(calls >= 12, "{calls} calls");
    assert_eq!(listed(&store).await, kept[..30].to_vec());
    for _ in 0..3 {
        assert_eq!(
            store.prune_dead_letters(&retention).await.expect("prune"),
            0
        );
    }

    // another flood later is pruned the same way
    let later: Vec<DeadLetter> = (0..20)
        .map(|n| letter_at(500 + n as i64, 500 + n))
        .collect();
    let mut all = keep_letters(&store, &later).await;
    all.extend(kept[..30].iter().cloned());
    let (deleted, _) = prune_down_to(30).await;
    assert_eq!(deleted, 20);
    assert_eq!(listed(&store).await, all[..30].to_vec());
}

pub async fn idempotency_keys_are_claimed_once(store: Arc<dyn Store>) {
    assert_eq!(
        store.claim_key("create:abc", "r-1").await.expect("claim"),
        None
    );
    assert_eq!(
        store.claim_key("create:abc", "r-2").await.expect("claim"),
        Some("r-1".into())
    );
}

/// Expands every case into a `#[tokio::test]` using the enclosing module's `fresh()`.
#[macro_export]
macro_rules! conformance_tests {
    () => {
        $crate::conformance_tests!(
            create_load_and_refuse_a_second_create,
            stale_writes_conflict_and_change_nothing,
            devices_are_added_once_indexed_and_loaded_by_id,
            devices_are_listed_in_pages_in_id_order,
            device_pages_neither_skip_nor_repeat_any_id,
            outbox_keeps_order_ignores_duplicates_and_completes,
            checkpoints_stay_with_pending_effects,
            audit_is_append_only_and_ordered,
            dead_letters_are_kept_once_and_listed_newest_first,
            dead_letters_older_than_the_retention_are_pruned_and_nothing_else,
            past_the_most_kept_the_oldest_dead_letters_are_pruned,
            a_flood_of_dead_letters_is_pruned_a_bounded_number_at_a_time,
            idempotency_keys_are_claimed_once
        );
    };
    ($($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = fresh().await;
                $crate::suite::$case(store).await;
            }
        )+
    };
}
