//! What this instance knows of one bucket of the device index: the routes (device → rollout)
//! its claims add up to, read in claim order up to `tail` (from the latest snapshot on, when
//! one was written), and the index generation they were last brought up to date under. Pure
//! state: `index` reads and writes the claims.

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

/// Every route of a bucket as of claim `seq` (by rollout), written in place of the claims up
/// to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub seq: u64,
    pub routes: Vec<(String, Vec<String>)>,
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
    /// The claim the latest snapshot applied or written stands for (0: none).
    snapshot: u64,
    /// The index generation read before the bucket was last brought up to date.
    generation: Option<String>,
    routes: HashMap<String, Arc<str>>,
}

impl BucketRoutes {
    /// Whether the routes are complete as of `generation`.
    pub fn current_under(&self, generation: &str) -> bool {
        self.loaded && self.generation.as_deref() == Some(generation)
    }

    /// Whether the routes were read (they may be behind).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The last claim applied (0 when none, or not read): the claim to read after.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// The rollout of `device`, if a claim applied names it.
    pub fn route(&self, device: &str) -> Option<&str> {
        self.routes.get(device).map(|rollout| &**rollout)
    }

    /// Routes kept.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Claims applied since the latest snapshot (or since the first claim).
    pub fn claims_since_snapshot(&self) -> u64 {
        self.tail() - self.snapshot.min(self.tail())
    }

    /// Every route kept, as a snapshot at the tail.
    pub fn snapshot(&self) -> Snapshot {
        let mut by_rollout: HashMap<&str, Vec<String>> = HashMap::new();
        for (device, rollout) in &self.routes {
            by_rollout.entry(rollout).or_default().push(device.clone());
        }
        let mut routes: Vec<(String, Vec<String>)> = by_rollout
            .into_iter()
            .map(|(rollout, devices)| (rollout.to_string(), devices))
            .collect();
        routes.sort();
        Snapshot {
            seq: self.tail(),
            routes,
        }
    }

    /// Records that a snapshot at `seq` was written.
    pub fn snapshot_written(&mut self, seq: u64) {
        self.snapshot = self.snapshot.max(seq);
    }

    /// Applies what was read after claim `after`: the latest complete snapshot read (when
    /// newer than the tail; every route as of its claim, so it stands for the claims up to it
    /// whether they were read or deleted already), then the claims after it, in order. Claims
    /// applied already are skipped; a claim that does not follow on means the read and the
    /// routes kept do not fit together (another task dropped them meanwhile, or a compaction
    /// deleted claims the read needed), and nothing is applied.
    pub fn apply(
        &mut self,
        after: u64,
        snapshot: Option<&Snapshot>,
        claims: &[Claim],
    ) -> Result<(), NotContiguous> {
        let applied = self.tail();
        if after > applied {
            return Err(NotContiguous {
                expected: applied + 1,
                found: after + 1,
            });
        }
        let snapshot = snapshot.filter(|snapshot| snapshot.seq > applied);
        let start = snapshot.map_or(applied, |snapshot| snapshot.seq);
        let mut tail = start;
        for claim in claims.iter().filter(|claim| claim.seq > start) {
            if claim.seq != tail + 1 {
                return Err(NotContiguous {
                    expected: tail + 1,
                    found: claim.seq,
                });
            }
            tail = claim.seq;
        }
        if let Some(snapshot) = snapshot {
            for (rollout, devices) in &snapshot.routes {
                self.claimed(rollout, devices);
            }
            self.snapshot = snapshot.seq;
        }
        for claim in claims.iter().filter(|claim| claim.seq > start) {
            self.claimed(&claim.rollout, &claim.devices);
        }
        self.loaded = true;
        self.tail = tail;
        Ok(())
    }

    fn claimed(&mut self, rollout: &str, devices: &[String]) {
        let rollout: Arc<str> = Arc::from(rollout);
        for device in devices {
            self.routes.insert(device.clone(), rollout.clone());
        }
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
                None,
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
        bucket
            .apply(0, None, &[claim(1, "r1", &["a"])])
            .expect("first");
        // a read that started before the first claim was applied by another task
        bucket
            .apply(0, None, &[claim(1, "r1", &["a"]), claim(2, "r2", &["b"])])
            .expect("overlap");
        assert_eq!(bucket.tail(), 2);
        let gap = bucket.apply(2, None, &[claim(3, "r3", &["a"]), claim(5, "r5", &["a"])]);
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
        assert!(bucket.apply(2, None, &[claim(3, "r3", &["a"])]).is_err());
        assert_eq!(bucket.route("a"), None);
        bucket.apply(0, None, &[]).expect("empty bucket");
        assert_eq!((bucket.tail(), bucket.len()), (0, 0));
    }

    #[test]
    fn a_snapshot_stands_for_the_claims_up_to_it_read_or_deleted() {
        let log = [
            claim(1, "r1", &["a", "b"]),
            claim(2, "r2", &["b"]),
            claim(3, "r3", &["c"]),
        ];
        let mut whole = BucketRoutes::default();
        whole.apply(0, None, &log).expect("claims");
        let snapshot = BucketRoutes::snapshot(&{
            let mut at_two = BucketRoutes::default();
            at_two.apply(0, None, &log[..2]).expect("claims");
            at_two
        });
        assert_eq!(snapshot.seq, 2);
        // a cold reader after the compaction deleted claims 1 and 2
        let mut cold = BucketRoutes::default();
        cold.apply(0, Some(&snapshot), &log[2..])
            .expect("snapshot, then claim 3");
        // a reader that had claim 1 and reads while claim 2 is being deleted
        let mut warm = BucketRoutes::default();
        warm.apply(0, None, &log[..1]).expect("claim 1");
        warm.apply(1, Some(&snapshot), &log[2..])
            .expect("snapshot covers 2");
        for reader in [&cold, &warm] {
            assert_eq!(reader.tail(), 3);
            for device in ["a", "b", "c", "d"] {
                assert_eq!(reader.route(device), whole.route(device), "{device}");
            }
            assert_eq!(reader.claims_since_snapshot(), 1);
        }
        // without the snapshot, claims 1 and 2 missing are a gap
        assert!(BucketRoutes::default().apply(0, None, &log[2..]).is_err());
        // a snapshot older than the tail changes nothing
        whole.apply(3, Some(&snapshot), &[]).expect("old snapshot");
        assert_eq!((whole.tail(), whole.route("b")), (3, Some("r2")));
    }
}
