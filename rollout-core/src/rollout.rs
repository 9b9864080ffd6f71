//! The rollout document: its fields are the engine's own (read through accessors, changed
//! only by [`Rollout::create`] and [`Rollout::step`]), and a stored document is checked as it
//! is read, so a damaged one is refused at load instead of panicking mid-request.

use crate::effect::EffectKind;
use crate::ids::{DeploymentId, EffectId, RolloutId};
use crate::plan::{RolloutPlan, WavePlan};
use crate::state::{
    Decision, InfrastructureProgress, PauseRecord, RollbackProgress, RolloutState, WaveProgress,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A rollout: its plan, where it is, and everything decided so far.
///
/// Its device records are not part of it: the shell stores each on its own and hands those
/// a step needs in a [`crate::WorkingSet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "StoredRollout")]
pub struct Rollout {
    pub(crate) id: RolloutId,
    /// Immutable once created; `plan.waves[i]` and `waves[i]` describe the same wave (the
    /// load check keeps the lengths equal; read them together with [`Rollout::wave`]).
    pub(crate) plan: RolloutPlan,
    pub(crate) created_by: String,
    pub(crate) created_at: DateTime<Utc>,
    /// The latest time seen (inputs with older times are judged at this time).
    pub(crate) now: DateTime<Utc>,
    pub(crate) state: RolloutState,
    /// The wave in progress, or the next to start (`waves.len()` once all are done).
    pub(crate) current_wave: usize,
    pub(crate) infrastructure: InfrastructureProgress,
    pub(crate) waves: Vec<WaveProgress>,
    pub(crate) pause: Option<PauseRecord>,
    pub(crate) rollback: Option<RollbackProgress>,
    /// Decisions of the step under way; a step hands them out, so the stored document has
    /// none (the field stays in it for the readers of earlier documents).
    pub(crate) decisions: Vec<Decision>,
    pub(crate) decision_count: u64,
    pub(crate) outstanding: BTreeMap<EffectId, EffectKind>,
    pub(crate) applied: BTreeSet<String>,
    pub(crate) ignored_reports: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) reconciling: BTreeMap<DeploymentId, (u64, u64)>,
}

/// Why a stored rollout document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The plan's waves and their progress differ in number.
    #[error("rollout {id}: the plan has {planned} wave(s) but progress is stored for {stored}")]
    WaveCount {
        /// The rollout.
        id: RolloutId,
        /// Waves in the plan.
        planned: usize,
        /// Waves with progress.
        stored: usize,
    },
    /// An index names a wave the plan does not have.
    #[error("rollout {id}: {what} names wave {index} of {planned}")]
    WaveIndex {
        /// The rollout.
        id: RolloutId,
        /// Which field.
        what: &'static str,
        /// The index stored.
        index: usize,
        /// Waves in the plan.
        planned: usize,
    },
}

/// The stored form of a rollout, as every version so far wrote it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRollout {
    id: RolloutId,
    plan: RolloutPlan,
    created_by: String,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    state: RolloutState,
    current_wave: usize,
    infrastructure: InfrastructureProgress,
    waves: Vec<WaveProgress>,
    pause: Option<PauseRecord>,
    rollback: Option<RollbackProgress>,
    #[serde(default)]
    decisions: Vec<Decision>,
    decision_count: u64,
    outstanding: BTreeMap<EffectId, EffectKind>,
    applied: BTreeSet<String>,
    ignored_reports: u64,
    #[serde(default)]
    reconciling: BTreeMap<DeploymentId, (u64, u64)>,
}

impl TryFrom<StoredRollout> for Rollout {
    type Error = LoadError;

    fn try_from(stored: StoredRollout) -> Result<Self, LoadError> {
        let planned = stored.plan.waves.len();
        if stored.waves.len() != planned {
            return Err(LoadError::WaveCount {
                id: stored.id,
                planned,
                stored: stored.waves.len(),
            });
        }
        let bad_index = |what: &'static str, index: usize| LoadError::WaveIndex {
            id: stored.id.clone(),
            what,
            index,
            planned,
        };
        // every wave is done only in a terminal state; before that the current wave exists
        let done = stored.state.is_terminal();
        if stored.current_wave > planned || (!done && stored.current_wave == planned) {
            return Err(bad_index("currentWave", stored.current_wave));
        }
        let groups = stored.rollback.iter().flat_map(|r| &r.groups);
        if let Some(group) = groups.into_iter().find(|g| g.wave >= planned) {
            return Err(bad_index("rollback.groups[].wave", group.wave));
        }
        Ok(Rollout {
            id: stored.id,
            plan: stored.plan,
            created_by: stored.created_by,
            created_at: stored.created_at,
            now: stored.now,
            state: stored.state,
            current_wave: stored.current_wave,
            infrastructure: stored.infrastructure,
            waves: stored.waves,
            pause: stored.pause,
            rollback: stored.rollback,
            decisions: stored.decisions,
            decision_count: stored.decision_count,
            outstanding: stored.outstanding,
            applied: stored.applied,
            ignored_reports: stored.ignored_reports,
            reconciling: stored.reconciling,
        })
    }
}

impl Rollout {
    /// The rollout's id.
    pub fn id(&self) -> &RolloutId {
        &self.id
    }

    /// The plan it follows.
    pub fn plan(&self) -> &RolloutPlan {
        &self.plan
    }

    /// Who created it.
    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The latest time it has seen (inputs with older times are judged at this time).
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Where it is.
    pub fn state(&self) -> RolloutState {
        self.state
    }

    /// The wave in progress, or the next to start (the number of waves once all are done).
    pub fn current_wave(&self) -> usize {
        self.current_wave
    }

    /// Host patching.
    pub fn infrastructure(&self) -> &InfrastructureProgress {
        &self.infrastructure
    }

    /// Wave `index`: its plan and its progress.
    pub fn wave(&self, index: usize) -> Option<(&WavePlan, &WaveProgress)> {
        Some((self.plan.waves.get(index)?, self.waves.get(index)?))
    }

    /// Every wave in order: its plan and its progress.
    pub fn waves(&self) -> impl ExactSizeIterator<Item = (&WavePlan, &WaveProgress)> {
        self.plan.waves.iter().zip(&self.waves)
    }

    /// Each wave's progress, in the plan's order.
    pub fn wave_progress(&self) -> &[WaveProgress] {
        &self.waves
    }

    /// Set while paused: from which state, and why.
    pub fn pause(&self) -> Option<&PauseRecord> {
        self.pause.as_ref()
    }

    /// The rollback, once opened.
    pub fn rollback(&self) -> Option<&RollbackProgress> {
        self.rollback.as_ref()
    }

    /// Decisions recorded over the rollout's life (the next one gets this number).
    pub fn decision_count(&self) -> u64 {
        self.decision_count
    }

    /// Effects issued and not yet reported back, by id.
    pub fn outstanding(&self) -> &BTreeMap<EffectId, EffectKind> {
        &self.outstanding
    }

    /// Keys of the operator commands and maintenance events already applied.
    pub fn applied(&self) -> &BTreeSet<String> {
        &self.applied
    }

    /// Reports that changed nothing: stale versions or devices outside the rollout.
    pub fn ignored_reports(&self) -> u64 {
        self.ignored_reports
    }

    /// The plan of wave `index`, which the engine only asks for with an index it holds
    /// (`current_wave` below the wave count, a rollback group's or a device record's wave),
    /// all checked when the document was made or loaded.
    pub(crate) fn wave_plan(&self, index: usize) -> &WavePlan {
        &self.plan.waves[index]
    }

    /// The name of wave `index`, for decisions.
    pub(crate) fn wave_name(&self, index: usize) -> &str {
        &self.wave_plan(index).name
    }

    /// The group of wave `index`.
    pub(crate) fn wave_group(&self, index: usize) -> crate::GroupId {
        crate::GroupId::new(self.wave_plan(index).device_group.as_str())
    }

    /// Takes the decisions recorded by the step under way, numbered over the rollout's life.
    pub(crate) fn take_decisions(&mut self) -> Vec<(u64, Decision)> {
        if self.decisions.is_empty() {
            // most steps (a device report) decide nothing
            return Vec::new();
        }
        let decisions = std::mem::take(&mut self.decisions);
        let first = self.decision_count - decisions.len() as u64;
        (first..).zip(decisions).collect()
    }
}
