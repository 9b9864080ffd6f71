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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64) -> DeviceRecord {
        DeviceRecord {
            version,
            ..DeviceRecord::new(0)
        }
    }

    fn changes(set: WorkingSet<&'static str>) -> Vec<DeviceChange<&'static str>> {
        let mut changes: Vec<_> = set.into_changes().collect();
        changes.sort_by_key(|change| match change {
            DeviceChange::Added(id, _) | DeviceChange::Changed(id, _, _) => id.clone(),
        });
        changes
    }

    #[test]
    fn only_added_and_changed_records_come_back_with_their_versions() {
        let mut set = WorkingSet::with_capacity(3);
        set.insert_loaded("a".into(), record(1), "v-a");
        set.insert_loaded("b".into(), record(1), "v-b");
        set.add("c".into(), record(0));
        if let Some(b) = set.get_mut("b") {
            b.version = 2;
        }
        assert_eq!(set.loaded("b"), Some((&record(1), &"v-b")));
        assert_eq!(set["b"], record(2));
        assert_eq!(
            changes(set),
            [
                DeviceChange::Changed("b".into(), record(2), "v-b"),
                DeviceChange::Added("c".into(), record(0)),
            ]
        );
    }

    #[test]
    fn a_later_record_replaces_an_earlier_one_also_across_sets() {
        let mut first = WorkingSet::default();
        first.insert_loaded("a".into(), record(1), "v1");
        first.insert_loaded("b".into(), record(1), "v1");
        let mut second = WorkingSet::default();
        second.insert_loaded("a".into(), record(3), "v3");
        second.add("c".into(), record(0));
        if let Some(a) = second.get_mut("a") {
            a.version = 4;
        }
        first.append(&mut second);
        assert!(second.is_empty());
        assert_eq!(first.len(), 3);
        assert_eq!(first.loaded("a"), Some((&record(3), &"v3")));
        assert_eq!(
            changes(first),
            [
                DeviceChange::Changed("a".into(), record(4), "v3"),
                DeviceChange::Added("c".into(), record(0)),
            ]
        );
    }
}
