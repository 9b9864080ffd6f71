//! What this instance knows of one bucket of the device index: the routes (device → rollout)
//! its claims add up to, read in claim order up to `tail`, and the index generation they were
//! last brought up to date under. Pure state: `index` reads and writes the claims.

use std::collections::HashMap;
use std::sync::Arc;

/// One claim of the device index: these devices belong to this rollout, from claim `seq` on
/// (until a later claim of the bucket names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claim {
    pub seq: u64,
    pub rollout: String,
    pub devices: Vec<String>,
}

/// Claims read did not follow on from the routes kept: the bucket must be read from the start.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NotContiguous {
    pub expected: u64,
    pub found: u64,
}

/// The routes of one bucket as far as its claims were read.
#[derive(Default)]
pub(super) struct BucketRoutes {
    /// Read from the first claim on (an empty bucket read counts).
    loaded: bool,
    /// The last claim applied.
    tail: u64,
    /// The index generation read before the bucket was last brought up to date.
    generation: Option<String>,
    routes: HashMap<String, Arc<str>>,
}

impl BucketRoutes {
    /// Whether the routes are complete as of `generation`.
    pub fn current_under(&self, generation: &str) -> bool {
        self.loaded && self.generation.as_deref() == Some(generation)
    }

    /// The claim to read after: the tail when loaded, else 0 (read everything).
    pub fn read_after(&self) -> u64 {
        if self.loaded {
            self.tail
        } else {
            0
        }
    }

    /// The last claim applied (0 when none or not loaded).
    pub fn tail(&self) -> u64 {
        self.read_after()
    }

    /// The rollout of `device`, if a claim applied names it.
    pub fn route(&self, device: &str) -> Option<&str> {
        self.routes.get(device).map(|rollout| &**rollout)
    }

    /// Routes kept.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Applies claims read after claim `after` (in claim order). Claims already applied are
    /// skipped; a claim that does not follow the tail means the read and the routes kept do
    /// not fit together (another task dropped them meanwhile), and nothing is applied.
    pub fn apply(&mut self, after: u64, claims: &[Claim]) -> Result<(), NotContiguous> {
        if after > self.read_after() {
            return Err(NotContiguous {
                expected: self.read_after() + 1,
                found: after + 1,
            });
        }
        let mut tail = self.read_after();
        for claim in claims {
            if claim.seq > tail + 1 {
                return Err(NotContiguous {
                    expected: tail + 1,
                    found: claim.seq,
                });
            }
            tail = tail.max(claim.seq);
        }
        let applied = self.read_after();
        let mut shared: HashMap<&str, Arc<str>> = HashMap::new();
        for claim in claims.iter().filter(|claim| claim.seq > applied) {
            let rollout = shared
                .entry(claim.rollout.as_str())
                .or_insert_with(|| Arc::from(claim.rollout.as_str()))
                .clone();
            for device in &claim.devices {
                self.routes.insert(device.clone(), rollout.clone());
            }
        }
        self.loaded = true;
        self.tail = tail;
        Ok(())
    }

    /// Records that the routes are complete as of `generation`.
    pub fn mark(&mut self, generation: &str) {
        self.generation = Some(generation.to_string());
    }

    /// Forgets everything: the next read starts from the first claim.
    pub fn reset(&mut self) {
        *self = BucketRoutes::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(seq: u64, rollout: &str, devices: &[&str]) -> Claim {
        Claim {
            seq,
            rollout: rollout.into(),
            devices: devices.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn later_claims_move_devices_and_the_routes_hold_only_under_their_generation() {
        let mut bucket = BucketRoutes::default();
        assert!(!bucket.current_under("g1"));
        bucket
            .apply(
                0,
                &[claim(1, "old", &["a", "b"]), claim(2, "new", &["b", "c"])],
            )
            .expect("contiguous");
        bucket.mark("g1");
        assert!(bucket.current_under("g1"));
        assert!(!bucket.current_under("g2"));
        assert_eq!(
            [bucket.route("a"), bucket.route("b"), bucket.route("c")],
            [Some("old"), Some("new"), Some("new")]
        );
        assert_eq!(bucket.route("d"), None);
        assert_eq!((bucket.tail(), bucket.len()), (2, 3));
    }

    #[test]
    fn claims_applied_already_are_skipped_and_a_gap_applies_nothing() {
        let mut bucket = BucketRoutes::default();
        bucket.apply(0, &[claim(1, "r1", &["a"])]).expect("first");
        // a read that started before the first claim was applied by another task
        bucket
            .apply(0, &[claim(1, "r1", &["a"]), claim(2, "r2", &["b"])])
            .expect("overlap");
        assert_eq!(bucket.tail(), 2);
        let gap = bucket.apply(2, &[claim(3, "r3", &["a"]), claim(5, "r5", &["a"])]);
        assert_eq!(
            gap,
            Err(NotContiguous {
                expected: 4,
                found: 5
            })
        );
        assert_eq!((bucket.tail(), bucket.route("a")), (2, Some("r1")));
        // a read from a tail the bucket no longer has (it was reset meanwhile)
        bucket.reset();
        assert!(bucket.apply(2, &[claim(3, "r3", &["a"])]).is_err());
        assert_eq!(bucket.route("a"), None);
        bucket.apply(0, &[]).expect("empty bucket");
        assert_eq!((bucket.read_after(), bucket.len()), (0, 0));
    }
}
