//! One writer per rollout within an instance, with group commit: device reports that queue
//! for a rollout while another invocation writes it are applied together in the next commit,
//! each commit filled up to the store's limit (an invocation's reports may span two commits).
//! A group's first attempt starts from the head this instance last committed and from the
//! records each invocation read with its routing; other instances (and records that moved
//! since they were read) are met by the store's version checks, and the retry reads afresh.

use super::{Preloaded, RolloutService, ServiceError};
use rollout_core::Input;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedMutexGuard};

/// Most inputs one group commit carries (bounds a commit's size and latency).
const MAX_GROUP: usize = 1_000;

/// The writer slots of the rollouts being written.
#[derive(Default)]
pub(super) struct Writers(Mutex<HashMap<String, Arc<Slot>>>);

/// A rollout's writer lock and the reports waiting for it.
#[derive(Default)]
pub(super) struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    queue: Mutex<VecDeque<Queued>>,
}

/// Reports of one invocation (or its first part, when a commit had room for only part of
/// them), and where their outcome goes.
struct Queued {
    inputs: Vec<Input>,
    records: Preloaded,
    /// The invocation's answer: on its last part only.
    done: Option<oneshot::Sender<Result<(), ServiceError>>>,
    /// The first failure of any of the invocation's parts.
    failed: Arc<Mutex<Option<ServiceError>>>,
}

impl Queued {
    /// Records how this part's commit went; the last part answers the invocation.
    fn finish(self, result: &Result<(), ServiceError>) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if let (Err(error), None) = (result, failed.as_ref()) {
            *failed = Some(error.clone());
        }
        if let Some(done) = self.done {
            let _ = done.send(failed.take().map_or(Ok(()), Err));
        }
    }

    /// Splits off the first `count` inputs (with their records) as a part of their own; this
    /// keeps the rest and the answer.
    fn split_front(&mut self, count: usize) -> Queued {
        let inputs: Vec<Input> = self.inputs.drain(..count).collect();
        let records = super::reports::records_of(&self.records, &inputs);
        Queued {
            inputs,
            records,
            done: None,
            failed: self.failed.clone(),
        }
    }
}

impl Writers {
    fn slot(&self, id: &str) -> Arc<Slot> {
        let mut slots = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // forget slots nobody holds or waits for, so the map stays as small as the work
        slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        slots.entry(id.to_string()).or_default().clone()
    }

    /// Waits to be the rollout's only writer in this instance.
    pub(super) async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        self.slot(id).lock.clone().lock_owned().await
    }
}

impl Slot {
    fn push(&self, queued: Queued) {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(queued);
    }

    /// Takes queued reports from the front, up to `limit` inputs: whole invocations while
    /// they fit, then the first part of the next one (its rest stays in front for the next
    /// group).
    fn take_group(&self, limit: usize) -> Vec<Queued> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut group = Vec::new();
        let mut size = 0;
        while let Some(next) = queue.front_mut() {
            let room = limit.saturating_sub(size);
            if room == 0 {
                break;
            }
            if next.inputs.len() > room {
                group.push(next.split_front(room));
                break;
            }
            size += next.inputs.len();
            group.extend(queue.pop_front());
        }
        group
    }
}

/// One group's inputs in queue order, and the records read for them (a record read later
/// replaces one read earlier).
fn merge(group: &mut [Queued]) -> (Vec<Input>, Preloaded) {
    if let [only] = group {
        return (
            std::mem::take(&mut only.inputs),
            std::mem::take(&mut only.records),
        );
    }
    let mut inputs = Vec::with_capacity(group.iter().map(|q| q.inputs.len()).sum());
    let mut records = Preloaded::with_capacity(group.iter().map(|q| q.records.len()).sum());
    for queued in group {
        inputs.append(&mut queued.inputs);
        records.append(&mut queued.records);
    }
    (inputs, records)
}

impl RolloutService {
    /// Applies device reports to a rollout, in one commit with any others queued for it;
    /// `records` are their devices' records as read with the routing. Returns whether this
    /// call's commits produced effects (this caller then runs them).
    pub(super) async fn apply_reports(
        &self,
        id: &str,
        inputs: Vec<Input>,
        records: Preloaded,
    ) -> Result<bool, ServiceError> {
        let slot = self.writers.slot(id);
        let (done, mut outcome) = oneshot::channel();
        slot.push(Queued {
            inputs,
            records,
            done: Some(done),
            failed: Arc::default(),
        });
        let _writer = slot.lock.clone().lock_owned().await;
        let limit = self.store.max_device_writes().clamp(1, MAX_GROUP);
        let mut produced_effects = false;
        loop {
            if let Ok(mine) = outcome.try_recv() {
                return mine.map(|()| produced_effects);
            }
            let mut group = slot.take_group(limit);
            if group.is_empty() {
                break;
            }
            let (all, records) = merge(&mut group);
            let applied = self.apply_unlocked(id, &all, Some(records)).await;
            self.metrics.report_commits.add(1);
            produced_effects |= applied.as_ref().is_ok_and(|a| !a.effects.is_empty());
            let result = applied.map(|_| ());
            for queued in group {
                queued.finish(&result);
            }
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(ServiceError::Conflict(format!("rollout {id}: writer gone"))))
            .map(|()| produced_effects)
    }
}
