//! What crosses the boundary around one step: the device records the shell hands in (a
//! [`WorkingSet`]) and what it takes back ([`Step`], then [`WorkingSet::into_changes`]).
//!
//! No I/O here: the shell reads the records an input names before the step and writes the
//! changed ones after it, with the version token `V` it read each with, so nothing is
//! copied or compared twice.

use crate::effect::Effect;
use crate::ids::DeviceId;
use crate::state::{Decision, DeviceRecord};
use std::collections::HashMap;

/// One device's record in a working set, with what was loaded (if it was).
#[derive(Debug, Clone)]
struct Slot<V> {
    record: DeviceRecord,
    loaded: Option<(DeviceRecord, V)>,
}

/// The device records one or more steps may read and change, by device id. The shell loads
/// those its inputs name (a rule never visits every device); a device not in the set is one
/// the rollout does not know. `V` is the shell's version of each loaded record (an ETag or a
/// row version), handed back with the change.
#[derive(Debug, Clone)]
pub struct WorkingSet<V = ()> {
    slots: HashMap<DeviceId, Slot<V>, rustc_hash::FxBuildHasher>,
}

impl<V> Default for WorkingSet<V> {
    fn default() -> Self {
        WorkingSet {
            slots: HashMap::default(),
        }
    }
}

/// A record a step changed or added: what the shell must store.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceChange<V> {
    /// A new member of a wave (from `GroupMembers`): not stored yet.
    Added(DeviceId, DeviceRecord),
    /// A loaded record that changed, with the version it was loaded at.
    Changed(DeviceId, DeviceRecord, V),
}

impl<V> WorkingSet<V> {
    /// An empty set with room for `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        WorkingSet {
            slots: HashMap::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    /// Hands in a stored record, read at `version` (a later one for the same device replaces
    /// it).
    pub fn insert_loaded(&mut self, device: DeviceId, record: DeviceRecord, version: V) {
        let loaded = Some((record, version));
        self.slots.insert(device, Slot { record, loaded });
    }

    /// Moves every record of `other` into this set (one of `other` replaces one here).
    pub fn append(&mut self, other: &mut WorkingSet<V>) {
        self.slots.reserve(other.slots.len());
        self.slots.extend(other.slots.drain());
    }

    /// The record of `device` as it was loaded, with its version.
    pub fn loaded(&self, device: &str) -> Option<(&DeviceRecord, &V)> {
        let (record, version) = self.slots.get(device)?.loaded.as_ref()?;
        Some((record, version))
    }

    /// The record of `device` as the steps so far left it.
    pub fn get(&self, device: &str) -> Option<&DeviceRecord> {
        self.slots.get(device).map(|slot| &slot.record)
    }

    /// Every record, as the steps so far left it.
    pub fn iter(&self) -> impl Iterator<Item = (&DeviceId, &DeviceRecord)> {
        self.slots.iter().map(|(id, slot)| (id, &slot.record))
    }

    /// Records in the set.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the set holds no record.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// What the shell must store: records added by the steps and loaded records they changed
    /// (a loaded record left as it was is not listed).
    pub fn into_changes(self) -> impl Iterator<Item = DeviceChange<V>> {
        self.slots
            .into_iter()
            .filter_map(|(device, slot)| match slot.loaded {
                None => Some(DeviceChange::Added(device, slot.record)),
                Some((before, version)) if before != slot.record => {
                    Some(DeviceChange::Changed(device, slot.record, version))
                }
                Some(_) => None,
            })
    }

    /// Keeps only the records `keep` says yes to (a shell that loaded fewer).
    pub fn retain(&mut self, mut keep: impl FnMut(&DeviceId, &DeviceRecord) -> bool) {
        self.slots.retain(|id, slot| keep(id, &slot.record));
    }

    pub(crate) fn get_mut(&mut self, device: &str) -> Option<&mut DeviceRecord> {
        self.slots.get_mut(device).map(|slot| &mut slot.record)
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
    }

    pub(crate) fn add(&mut self, device: DeviceId, record: DeviceRecord) {
        self.slots.insert(
            device,
            Slot {
                record,
                loaded: None,
            },
        );
    }
}

impl<V> std::ops::Index<&str> for WorkingSet<V> {
    type Output = DeviceRecord;

    /// The record of `device`; panics when the set does not hold it.
    fn index(&self, device: &str) -> &DeviceRecord {
        self.get(device)
            .unwrap_or_else(|| panic!("no record of device {device} in the working set"))
    }
}

/// What one step produced: the effects to carry out (an outbox) and the decisions it
/// recorded, numbered over the rollout's life for the audit log.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct Step {
    /// Effects to store with the rollout, then carry out.
    pub effects: Vec<Effect>,
    /// Decisions recorded, with their numbers.
    pub decisions: Vec<(u64, Decision)>,
}

impl Step {
    /// Adds a later step's output after this one's.
    pub fn append(&mut self, mut later: Step) {
        self.effects.append(&mut later.effects);
        self.decisions.append(&mut later.decisions);
    }

    /// Whether the step produced nothing.
    pub fn is_empty(&self) -> bool {
        self.effects.is_empty() && self.decisions.is_empty()
    }
}
