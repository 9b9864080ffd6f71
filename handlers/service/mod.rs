//! The imperative shell around `rollout-core`: load the rollout and the device records the
//! inputs name → step → store the new state, the changed records, its effects (the outbox)
//! and decisions in one conditional write → execute effects → mark them done. On a
//! conflict it reloads and steps again; pending effects survive a crash and are picked up by
//! the next invocation or the timer.

mod alerts;
mod connections;
mod effects;
mod gaps;
mod heads;
mod inputs;
mod metrics;
mod reports;
mod writers;

pub use alerts::AlertAction;
pub use metrics::Metrics;

use crate::ports::{Clock, EffectExecutor};
use crate::store::{Commit, DeadLetter, DeviceWrite, Store, StoreError, Version};
use rollout_core::{
    DeviceChange, DeviceId, Effect, Input, Rollout, RolloutId, RolloutPlan, Step, WorkingSet,
};
use std::sync::Arc;

/// Attempts at a conditional write before giving up (each after a reload).
const MAX_ATTEMPTS: usize = 50;
/// Device records read or written per store call.
const DEVICE_CHUNK: usize = 2_000;

/// Why a service call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// No such rollout.
    #[error("rollout {0} not found")]
    NotFound(String),
    /// The plan is invalid; every problem listed.
    #[error("invalid plan: {}", .0.join("; "))]
    InvalidPlan(Vec<String>),
    /// The engine refused the command in the rollout's state.
    #[error("{0}")]
    Rejected(String),
    /// A conflicting rollout or too much contention.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rollout service: one per process, shared by every trigger and the API.
pub struct RolloutService {
    store: Arc<dyn Store>,
    executor: Arc<dyn EffectExecutor>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    writers: writers::Writers,
    heads: heads::Heads,
    gaps: gaps::ReportGaps,
    dead_letter_retention: Retention,
}

/// How long dead letters are kept, and how many at most; the timer deletes the rest.
#[derive(Debug, Clone, Copy)]
struct Retention {
    /// Letters older than this are deleted.
    max_age: chrono::Duration,
    /// Past this many, the oldest letters are deleted.
    max_count: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: chrono::Duration::days(
                crate::config::DEFAULT_DEAD_LETTER_RETENTION_DAYS.into(),
            ),
            max_count: crate::config::DEFAULT_DEAD_LETTER_MAX,
        }
    }
}

/// Device records read for a step (before the writer's turn, with the batch's routing, or
/// by the step's attempt), by device, with the versions their writes are conditional on.
pub(crate) type Preloaded = WorkingSet<Version>;

/// What one load-step-commit produced.
pub(crate) struct Applied {
    rollout: Rollout,
    effects: Vec<Effect>,
}

impl RolloutService {
    /// A service over a store, an effect executor and a clock.
    pub fn new(
        store: Arc<dyn Store>,
        executor: Arc<dyn EffectExecutor>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        RolloutService {
            store,
            executor,
            clock,
            metrics: Metrics::default(),
            writers: writers::Writers::default(),
            heads: heads::Heads::default(),
            gaps: gaps::ReportGaps::default(),
            dead_letter_retention: Retention::default(),
        }
    }

    /// Keeps dead letters for `max_age` and at most `max_count` of them (by default 30 days
    /// and 100,000); each tick deletes the rest.
    pub fn with_dead_letter_retention(
        mut self,
        max_age: chrono::Duration,
        max_count: usize,
    ) -> Self {
        self.dead_letter_retention = Retention { max_age, max_count };
        self
    }

    /// The store (for read-only views).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Counters of what was processed and skipped.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Creates a rollout; a repeated `idempotency_key` returns the rollout it created first.
    pub async fn create(
        &self,
        plan: RolloutPlan,
        creator: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Rollout, ServiceError> {
        plan.validate().map_err(ServiceError::InvalidPlan)?;
        let id = new_rollout_id();
        if let Some(key) = idempotency_key {
            if let Some(existing) = self
                .store
                .claim_key(&format!("create:{creator}:{key}"), id.as_str())
                .await?
            {
                return self.get(&existing).await;
            }
        }
        self.refuse_busy_groups(&plan).await?;
        let (rollout, step) = Rollout::create(id.clone(), plan, creator, self.clock.now())
            .map_err(ServiceError::InvalidPlan)?;
        let commit = Commit {
            rollout,
            expected: None,
            devices: Vec::new(),
            effects: step.effects,
            decisions: step.decisions,
        };
        self.commit_logged(commit).await?;
        self.run_effects(id.as_str()).await?;
        self.get(id.as_str()).await
    }

    /// A device group belongs to at most one active rollout.
    async fn refuse_busy_groups(&self, plan: &RolloutPlan) -> Result<(), ServiceError> {
        for active in self
            .store
            .list_rollouts()
            .await?
            .into_iter()
            .filter(|r| !r.state().is_terminal())
        {
            for group in plan.device_groups() {
                if active
                    .plan()
                    .device_groups()
                    .any(|g| g.eq_ignore_ascii_case(group))
                {
                    return Err(ServiceError::Conflict(format!(
                        "device group {group} is in active rollout {} ({:?})",
                        active.id(),
                        active.state()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The rollout as stored.
    pub async fn get(&self, id: &str) -> Result<Rollout, ServiceError> {
        self.store
            .load_rollout(id)
            .await?
            .map(|loaded| loaded.value)
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
    }

    /// Applies inputs to a rollout in one load-step-commit, reloading on conflict. A refused
    /// single input (an operator command) is returned as `Rejected`.
    pub(crate) async fn apply(&self, id: &str, inputs: &[Input]) -> Result<Applied, ServiceError> {
        let _writer = self.writers.lock(id).await;
        self.apply_unlocked(id, inputs, None).await
    }

    /// [`RolloutService::apply`] for a caller that is the rollout's writer already. With
    /// `preloaded` (a group of reports and their devices' records, read with the routing), the
    /// first attempt starts from those records and the head this instance last committed; any
    /// other attempt reads both from the store.
    async fn apply_unlocked(
        &self,
        id: &str,
        inputs: &[Input],
        mut preloaded: Option<Preloaded>,
    ) -> Result<Applied, ServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            let attempt = self.try_apply(id, inputs, preloaded.take()).await;
            if attempt.is_err() {
                self.heads.forget(id);
            }
            match attempt {
                Err(ServiceError::Store(StoreError::Conflict(_))) => {
                    self.metrics.conflicts_retried.add(1);
                }
                Err(ServiceError::Store(StoreError::TooLarge { .. })) if inputs.len() > 1 => {
                    return self.apply_in_halves(id, inputs).await;
                }
                other => return other,
            }
        }
        Err(ServiceError::Conflict(format!(
            "rollout {id}: too many concurrent writers, gave up after {MAX_ATTEMPTS} attempts"
        )))
    }

    /// Inputs whose commit was over the store's transaction limit (nothing was written): the
    /// first half is applied, then the second, each in as many commits as it takes.
    async fn apply_in_halves(&self, id: &str, inputs: &[Input]) -> Result<Applied, ServiceError> {
        let (first, second) = inputs.split_at(inputs.len() / 2);
        let first = Box::pin(self.apply_unlocked(id, first, None)).await?;
        let mut second = Box::pin(self.apply_unlocked(id, second, None)).await?;
        let mut effects = first.effects;
        effects.append(&mut second.effects);
        Ok(Applied {
            rollout: second.rollout,
            effects,
        })
    }

    /// One load-step-commit: the engine steps every input over the records they name, and
    /// the new document, the changed records, the effects and the decisions are committed
    /// together.
    async fn try_apply(
        &self,
        id: &str,
        inputs: &[Input],
        preloaded: Option<Preloaded>,
    ) -> Result<Applied, ServiceError> {
        let cached = preloaded.as_ref().and_then(|_| self.heads.get(id));
        let loaded = match cached {
            Some(head) => head,
            None => self
                .store
                .load_rollout(id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(id.to_string()))?,
        };
        let mut rollout = loaded.value;
        let mut devices = match preloaded {
            Some(records) => records,
            None => self.load_devices_for(rollout.id(), inputs).await?,
        };
        let now = self.clock.now();
        let mut step = Step::default();
        for input in inputs {
            match rollout.step(&mut devices, input, now) {
                Ok(produced) => step.append(produced),
                Err(rejected) if inputs.len() == 1 => {
                    return Err(ServiceError::Rejected(rejected.0))
                }
                Err(rejected) => tracing::info!(rollout = id, reason = %rejected, "input refused"),
            }
        }
        let changed = self.store_device_changes(rollout.id(), devices).await?;
        let commit = Commit {
            rollout: rollout.clone(),
            expected: Some(loaded.version),
            devices: changed,
            effects: step.effects.clone(),
            decisions: step.decisions,
        };
        let version = self.commit_logged(commit).await?;
        self.heads.put(&rollout, version);
        Ok(Applied {
            rollout,
            effects: step.effects,
        })
    }

    /// Writes a commit, then logs each of its decisions (`event_type` = the lifecycle event's
    /// type, `state` the rollout's state after it, `wave` the wave it concerns or empty), so
    /// log queries, alerts and the workbook see them whatever the event sink.
    async fn commit_logged(&self, commit: Commit) -> Result<Version, StoreError> {
        let rollout = commit.rollout.id().clone();
        let logged: Vec<_> = commit
            .decisions
            .iter()
            .map(|(_, d)| (d.kind, d.state, d.wave.clone(), d.reason.clone()))
            .collect();
        let version = self.store.commit(commit).await?;
        for (kind, state, wave, reason) in logged {
            let wave = wave.unwrap_or_default();
            tracing::info!(rollout = %rollout, event_type = %kind.event_type(), state = ?state, wave = %wave, "{reason}");
        }
        Ok(version)
    }

    /// Reads the records of the devices the inputs touch.
    async fn load_devices_for(
        &self,
        rollout: &RolloutId,
        inputs: &[Input],
    ) -> Result<Preloaded, StoreError> {
        let mut wanted: Vec<&str> = Vec::new();
        for input in inputs {
            match input {
                Input::DeviceReport(report) => wanted.push(report.device.as_str()),
                Input::DeviceConnection(report) => wanted.push(report.device.as_str()),
                Input::GroupMembers { devices, .. } => {
                    wanted.extend(devices.iter().map(DeviceId::as_str))
                }
                Input::DeploymentStates { devices, .. } => {
                    wanted.extend(devices.iter().map(|polled| polled.device.as_str()))
                }
                _ => {}
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let mut read = Preloaded::with_capacity(wanted.len());
        for chunk in wanted.chunks(DEVICE_CHUNK) {
            let chunk: Vec<String> = chunk.iter().map(|device| device.to_string()).collect();
            let records = self.store.load_devices(rollout.as_str(), &chunk).await?;
            for (device, record) in records {
                read.insert_loaded(device.into(), record.value, record.version);
            }
        }
        Ok(read)
    }

    /// Writes the records the steps added (in chunks, two in flight, before the commit that
    /// counts them) and returns the conditional writes of those they changed, for the commit.
    async fn store_device_changes(
        &self,
        rollout: &RolloutId,
        devices: Preloaded,
    ) -> Result<Vec<DeviceWrite>, StoreError> {
        use futures::stream::{StreamExt, TryStreamExt};
        let mut changed = Vec::new();
        let mut added = Vec::new();
        for change in devices.into_changes() {
            match change {
                DeviceChange::Changed(device, record, version) => changed.push(DeviceWrite {
                    device,
                    record,
                    expected: Some(version),
                }),
                DeviceChange::Added(device, record) => added.push((device.into(), record)),
            }
        }
        let mut chunks: Vec<Vec<(String, rollout_core::DeviceRecord)>> = Vec::new();
        while !added.is_empty() {
            let rest = added.split_off(added.len().min(DEVICE_CHUNK));
            chunks.push(std::mem::replace(&mut added, rest));
        }
        let writes = chunks.into_iter().map(|chunk| {
            let (store, id) = (self.store.clone(), rollout.to_string());
            async move { store.add_devices(&id, &chunk).await }
        });
        futures::stream::iter(writes)
            .buffer_unordered(2)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(changed)
    }

    /// Keeps an unusable input with the reason.
    pub async fn dead_letter(
        &self,
        function: &str,
        invocation_id: &str,
        reason: &str,
        raw: &str,
    ) -> Result<(), StoreError> {
        let letter = DeadLetter::new(
            &self.clock.now().to_rfc3339(),
            function,
            invocation_id,
            reason,
            raw,
        );
        tracing::warn!(function, reason, dead_letter = %letter.id, "dead letter kept");
        self.metrics.dead_letters.add(1);
        self.store.add_dead_letter(&letter).await
    }
}

/// A new rollout id: `ro-` and 16 random hex digits (from a version 4 UUID; the engine
/// makes no ids at random).
fn new_rollout_id() -> RolloutId {
    RolloutId::new(format!("ro-{:016x}", random_u64()))
}

/// 64 random bits.
fn random_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

impl RolloutService {
    /// Applies an operator command and runs the effects it produced. A command the rollout
    /// refuses in its state is `Rejected` with the reason.
    pub async fn command(
        &self,
        id: &str,
        command: rollout_core::Command,
    ) -> Result<Rollout, ServiceError> {
        let applied = self.apply(id, &[Input::Operator(command)]).await?;
        if !applied.effects.is_empty() {
            self.run_effects(id).await?;
        }
        self.get(id).await
    }

    /// Every rollout, newest first, optionally in one state.
    pub async fn list(
        &self,
        state: Option<rollout_core::RolloutState>,
    ) -> Result<Vec<Rollout>, ServiceError> {
        let all = self.store.list_rollouts().await?;
        Ok(all
            .into_iter()
            .filter(|r| state.is_none_or(|s| r.state() == s))
            .collect())
    }

    /// A new command id (for commands sent without an `Idempotency-Key`): `cmd-` and 16
    /// random hex digits.
    pub fn new_command_id(&self) -> String {
        format!("cmd-{:016x}", random_u64())
    }
}
