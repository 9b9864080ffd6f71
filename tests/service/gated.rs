//! A store that holds its first armed commit until a number of batches have been routed, so
//! tests of writer queueing see the queue they are about, whatever the machine's timing; and
//! that can take a small transaction limit, refusing larger commits as Table Storage does.

use patchwave::store::{
    Commit, DeadLetter, DeadLetterRetention, PendingEffect, Routed, Store, StoreError,
};
use patchwave::store::{Version, Versioned};
use rollout_core::{Decision, DeviceRecord, Rollout};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a held commit waits for the batches before it goes ahead anyway (the test's
/// own assertions then report what happened).
const HOLD_AT_MOST: Duration = Duration::from_secs(20);

/// Wraps a store; once [`HoldFirstCommit::arm`]ed, the next commit waits until `batches`
/// calls of `route_devices` have returned since arming.
pub struct HoldFirstCommit {
    inner: Arc<dyn Store>,
    batches: usize,
    armed: AtomicBool,
    routed: AtomicUsize,
    routed_changed: Notify,
    /// The most entities one commit may write (none when `None`), and the commits refused.
    transaction_limit: Option<usize>,
    refused: AtomicUsize,
}

impl HoldFirstCommit {
    pub fn new(inner: Arc<dyn Store>, batches: usize) -> Self {
        Self {
            inner,
            batches,
            armed: AtomicBool::new(false),
            routed: AtomicUsize::new(0),
            routed_changed: Notify::new(),
            transaction_limit: None,
            refused: AtomicUsize::new(0),
        }
    }

    /// Refuses commits of more than `limit` entities, as a backend with that transaction
    /// limit does (`max_device_writes` leaves one for the rollout).
    #[allow(dead_code)]
    pub fn with_transaction_limit(mut self, limit: usize) -> Self {
        self.transaction_limit = Some(limit);
        self
    }

    /// Commits refused as too large so far.
    #[allow(dead_code)]
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Holds the next commit (until then commits go straight through).
    pub fn arm(&self) {
        self.routed.store(0, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    async fn wait_for_batches(&self) {
        let all_routed = async {
            loop {
                let changed = self.routed_changed.notified();
                if self.routed.load(Ordering::SeqCst) >= self.batches {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(HOLD_AT_MOST, all_routed).await;
        // the last batch routed goes on to queue for its writer without awaiting anything;
        // give it that moment on its own thread
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[async_trait::async_trait]
impl Store for HoldFirstCommit {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn load_rollout(&self, id: &str) -> Result<Option<Versioned<Rollout>>, StoreError> {
        self.inner.load_rollout(id).await
    }
    async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        self.inner.list_rollouts().await
    }
    async fn load_devices(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> Result<Vec<(String, Versioned<DeviceRecord>)>, StoreError> {
        self.inner.load_devices(rollout, devices).await
    }
    async fn list_devices(
        &self,
        rollout: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeviceRecord)>, StoreError> {
        self.inner.list_devices(rollout, after, limit).await
    }
    async fn add_devices(
        &self,
        rollout: &str,
        devices: &[(String, DeviceRecord)],
    ) -> Result<(), StoreError> {
        self.inner.add_devices(rollout, devices).await
    }
    async fn rollouts_of_devices(
        &self,
        devices: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        self.inner.rollouts_of_devices(devices).await
    }
    async fn route_devices(&self, devices: Vec<String>) -> Result<Vec<Routed>, StoreError> {
        let routed = self.inner.route_devices(devices).await;
        self.routed.fetch_add(1, Ordering::SeqCst);
        self.routed_changed.notify_waiters();
        routed
    }
    fn max_device_writes(&self) -> usize {
        match self.transaction_limit {
            Some(limit) => limit - 1,
            None => self.inner.max_device_writes(),
        }
    }
    async fn commit(&self, commit: Commit) -> Result<Version, StoreError> {
        if let Some(limit) = self.transaction_limit.filter(|&l| commit.size() > l) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let operations = commit.size();
            return Err(StoreError::TooLarge { operations, limit });
        }
        if self.armed.swap(false, Ordering::SeqCst) {
            self.wait_for_batches().await;
        }
        self.inner.commit(commit).await
    }
    async fn pending_effects(
        &self,
        rollout: Option<&str>,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        self.inner.pending_effects(rollout).await
    }
    async fn complete_effect(&self, rollout: &str, effect_id: &str) -> Result<(), StoreError> {
        self.inner.complete_effect(rollout, effect_id).await
    }
    async fn checkpoint_effect(
        &self,
        rollout: &str,
        effect_id: &str,
        checkpoint: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .checkpoint_effect(rollout, effect_id, checkpoint)
            .await
    }
    async fn audit(&self, rollout: &str) -> Result<Vec<Decision>, StoreError> {
        self.inner.audit(rollout).await
    }
    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.inner.add_dead_letter(letter).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(limit).await
    }
    async fn prune_dead_letters(
        &self,
        retention: &DeadLetterRetention,
    ) -> Result<usize, StoreError> {
        self.inner.prune_dead_letters(retention).await
    }
    async fn claim_key(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        self.inner.claim_key(key, value).await
    }
}
