//! The last committed head of each rollout this instance writes. The rollout's writer starts
//! a batch of reports from it instead of reading the document back; when another instance
//! wrote in between, the commit's version check fails, the entry is dropped and the next
//! attempt reads the store.

use crate::store::{Version, Versioned};
use rollout_core::Rollout;
use std::collections::HashMap;
use std::sync::Mutex;

/// Rollout heads as this instance last committed them (active rollouts only).
#[derive(Default)]
pub(super) struct Heads(Mutex<HashMap<String, Versioned<Rollout>>>);

impl Heads {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Versioned<Rollout>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The head last committed here, if any.
    pub(super) fn get(&self, id: &str) -> Option<Versioned<Rollout>> {
        self.map().get(id).cloned()
    }

    /// Remembers a head just committed at `version` (a finished rollout is forgotten: no
    /// report moves it any more).
    pub(super) fn put(&self, rollout: &Rollout, version: Version) {
        let mut heads = self.map();
        if rollout.state().is_terminal() {
            heads.remove(rollout.id().as_str());
        } else {
            let head = Versioned {
                value: rollout.clone(),
                version,
            };
            heads.insert(rollout.id().to_string(), head);
        }
    }

    /// Drops a head that may no longer be the stored one.
    pub(super) fn forget(&self, id: &str) {
        self.map().remove(id);
    }
}
