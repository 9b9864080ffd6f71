//! The device index (`DeviceClaims`): which rollout each device belongs to, as a log of claims
//! per bucket (16 partitions by a hash nibble of the device id). A claim (row `{seq:012}`,
//! numbered from 1 without gaps) says its devices belong to its rollout; a later claim of the
//! bucket moves a device. Adding devices appends one claim per bucket a call touches (with the
//! bucket's head row replaced on the condition that it is the one read, so racing writers
//! cannot both take a number, even one that read the log before a compaction), not one row per
//! device: a 20,000-device rollout indexes in ~160 rows instead of 20,000. Readers keep each
//! bucket's routes and read only the rows after the last claim they applied. Every
//! [`COMPACT_AFTER`] claims the writer replaces a bucket's rows by a snapshot (`compact`).
//!
//! The generation (catalog row `meta`/`index`) is replaced by every call adding devices once
//! its claims are stored; a reader reads it before any claim, and trusts a bucket it brought
//! up to date under the same generation without reading the bucket again.

use super::batch::{Operation, Outcome};
use super::client::Client;
use super::compact::{self, claim_entity, device_parts, head_operation, partition};
use super::compact::{Log, LogHead, ROWS_PER_TRANSACTION};
use super::entity::{self, string};
use super::routes::{BucketRoutes, Claim};
use super::CONCURRENCY;
use crate::store::StoreError;
use futures::stream::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Partition and row of the generation row in the catalog table.
const GENERATION_PARTITION: &str = "meta";
const GENERATION_ROW: &str = "index";
/// The generation when no index write ever replaced the row.
const NO_GENERATION: &str = "-";
/// Partitions of the index.
const BUCKETS: usize = 16;
/// Attempts at appending a claim while writers of other instances race for the next number
/// (and at reading a bucket that other tasks keep dropping).
const CLAIM_ATTEMPTS: usize = 20;
/// Claims of a bucket after which its writer writes a snapshot and deletes the rows before.
const COMPACT_AFTER: u64 = 64;
/// Most routes kept over all buckets (about 100 bytes each); past it the others are dropped.
const MAX_ROUTES: usize = 1_000_000;

/// The device-index bucket of a device: one hex digit of its hash.
pub(super) fn device_bucket(device: &str) -> usize {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(device.as_bytes());
    usize::from(hash[0] >> 4)
}

/// Which of the devices a call indexes get a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claiming {
    /// Every one (devices added to a rollout).
    Every,
    /// Those no claim names yet (routes adopted from the old layout: a device a newer
    /// rollout claimed meanwhile stays there).
    Unrouted,
}

/// What a bucket's read brought this instance's routes to.
struct Caught {
    tail: u64,
    head: Option<LogHead>,
}

/// One bucket as this instance knows it, and the lock its claims are appended under (so the
/// instance's own calls never race each other for a number).
#[derive(Default)]
struct Bucket {
    routes: Mutex<BucketRoutes>,
    appending: tokio::sync::Mutex<()>,
}

/// The device index of one store instance (shared by its clones).
pub(super) struct DeviceIndex {
    table: String,
    catalog: String,
    /// The index table of builds before the claims log, adopted before the first use.
    legacy: String,
    adopted: tokio::sync::OnceCell<()>,
    buckets: Vec<Bucket>,
}

impl std::fmt::Debug for DeviceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceIndex({})", self.table)
    }
}

impl DeviceIndex {
    /// The index in `table`, its generation in `catalog`; routes of the old layout's table
    /// `legacy` are adopted before the index is first used (`legacy`).
    pub fn new(table: &str, catalog: &str, legacy: &str) -> Self {
        DeviceIndex {
            table: table.to_string(),
            catalog: catalog.to_string(),
            legacy: legacy.to_string(),
            adopted: tokio::sync::OnceCell::new(),
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
        }
    }

    /// Adopts the old layout's routes once per instance (and once per store, see `legacy`).
    async fn adopt_legacy(&self, client: &Client) -> Result<(), StoreError> {
        self.adopted
            .get_or_try_init(|| async {
                super::legacy::adopt(client, &self.catalog, &self.legacy, self)
                    .await
                    .map(|_| ())
            })
            .await
            .map(|_| ())
    }

    fn routes(&self, bucket: usize) -> MutexGuard<'_, BucketRoutes> {
        let routes = &self.buckets[bucket].routes;
        routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The rollouts of `devices` (devices in no rollout left out). Buckets not brought up to
    /// date under the current generation read the claims after their tail first.
    pub async fn rollouts_of(
        &self,
        client: &Client,
        devices: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        self.adopt_legacy(client).await?;
        let generation = self.generation(client).await?;
        let mut wanted: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
        for device in devices {
            wanted
                .entry(device_bucket(device))
                .or_default()
                .push(device);
        }
        let stale: Vec<usize> = wanted
            .keys()
            .copied()
            .filter(|bucket| !self.routes(*bucket).current_under(&generation))
            .collect();
        futures::stream::iter(stale)
            .map(|bucket| self.catch_up(client, bucket, Some(&generation)))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<Caught>>()
            .await?;
        let mut found = HashMap::with_capacity(devices.len());
        for (bucket, devices) in wanted {
            // a bucket dropped meanwhile (past MAX_ROUTES) is read again, never taken as empty
            let mut reads = 0;
            while !self.answer_from(bucket, &devices, &mut found) {
                reads += 1;
                if reads > CLAIM_ATTEMPTS {
                    return Err(StoreError::Backend(format!(
                        "device index bucket {}: dropped as often as it was read",
                        partition(bucket)
                    )));
                }
                self.catch_up(client, bucket, Some(&generation)).await?;
            }
        }
        Ok(found)
    }

    /// Adds the routes of `devices` to `found` if `bucket` is loaded; `false` if it is not.
    fn answer_from(
        &self,
        bucket: usize,
        devices: &[&String],
        found: &mut HashMap<String, String>,
    ) -> bool {
        let routes = self.routes(bucket);
        if !routes.is_loaded() {
            return false;
        }
        for device in devices {
            if let Some(rollout) = routes.route(device) {
                found.insert(device.to_string(), rollout.to_string());
            }
        }
        true
    }

    /// Indexes `devices` (their records stored already) to `rollout`: one claim in each bucket
    /// they fall in, several buckets at once.
    pub async fn claim(
        &self,
        client: &Client,
        rollout: &str,
        devices: &[&String],
    ) -> Result<(), StoreError> {
        self.adopt_legacy(client).await?;
        self.append(client, rollout, devices, Claiming::Every).await
    }

    /// [`DeviceIndex::claim`] without adopting the old layout first. The generation is
    /// replaced even when a bucket failed (others may have taken claims), so no instance keeps
    /// trusting a bucket that changed.
    pub(super) async fn append(
        &self,
        client: &Client,
        rollout: &str,
        devices: &[&String],
        claiming: Claiming,
    ) -> Result<(), StoreError> {
        let mut by_bucket: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for device in devices {
            by_bucket
                .entry(device_bucket(device))
                .or_default()
                .push(device.to_string());
        }
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(by_bucket)
            .map(|(bucket, devices)| self.claim_in(client, bucket, rollout, devices, claiming))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let bumped = self.bump_generation(client).await;
        match results.into_iter().find_map(Result::err) {
            Some(error) => Err(error),
            None => bumped,
        }
    }

    /// Appends the claims of `devices` to one bucket, a transaction at a time: numbered after
    /// the tail just read, inserted with the head replaced if it is still the one read, read
    /// again and retried when another writer moved the log first.
    async fn claim_in(
        &self,
        client: &Client,
        bucket: usize,
        rollout: &str,
        mut pending: Vec<String>,
        claiming: Claiming,
    ) -> Result<(), StoreError> {
        let _appending = self.buckets[bucket].appending.lock().await;
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            if attempts > CLAIM_ATTEMPTS {
                return Err(StoreError::Backend(format!(
                    "device index bucket {}: other writers kept moving it",
                    partition(bucket)
                )));
            }
            let caught = self.catch_up(client, bucket, None).await?;
            if caught.head.as_ref().map_or(0, |head| head.tail) != caught.tail {
                continue; // the log grew between the pages of the read
            }
            if claiming == Claiming::Unrouted && !self.keep_unrouted(bucket, &caught, &mut pending)
            {
                continue;
            }
            let parts: Vec<Vec<String>> = device_parts(pending.clone())
                .into_iter()
                .filter(|part| !part.is_empty())
                .take(ROWS_PER_TRANSACTION)
                .collect();
            let claims: Vec<Claim> = (caught.tail + 1..)
                .zip(parts)
                .map(|(seq, devices)| Claim {
                    seq,
                    rollout: rollout.to_string(),
                    devices,
                })
                .collect();
            let Some(last) = claims.last().map(|claim| claim.seq) else {
                break;
            };
            let mut operations = claims
                .iter()
                .map(|claim| claim_entity(bucket, claim).map(Operation::Insert))
                .collect::<Result<Vec<_>, _>>()?;
            operations.push(head_operation(bucket, last, caught.head.as_ref()));
            match client.batch(&self.table, &operations).await? {
                Outcome::Applied(_) => {
                    // fails only if another task dropped the routes meanwhile: read again later
                    let _ = self.routes(bucket).apply(caught.tail, None, &claims);
                    let taken: usize = claims.iter().map(|claim| claim.devices.len()).sum();
                    pending.drain(..taken);
                    attempts = 0;
                }
                Outcome::Failed {
                    status: 409 | 412, ..
                } => continue,
                failed => {
                    failed.applied(&format!("device index bucket {}", partition(bucket)))?;
                }
            }
        }
        self.compact_if_due(client, bucket).await;
        Ok(())
    }

    /// Keeps in `pending` only the devices no claim names, as of the read `caught`; `false`
    /// if the routes kept are no longer that read (dropped meanwhile).
    fn keep_unrouted(&self, bucket: usize, caught: &Caught, pending: &mut Vec<String>) -> bool {
        let routes = self.routes(bucket);
        if !routes.is_loaded() || routes.tail() != caught.tail {
            return false;
        }
        pending.retain(|device| routes.route(device).is_none());
        true
    }

    /// Writes a snapshot of `bucket` once [`COMPACT_AFTER`] claims followed the last one. The
    /// claims stay whole if it fails (it is tried again after the next claim).
    async fn compact_if_due(&self, client: &Client, bucket: usize) {
        let snapshot = {
            let routes = self.routes(bucket);
            if routes.claims_since_snapshot() < COMPACT_AFTER {
                return;
            }
            routes.snapshot()
        };
        match compact::compact(client, &self.table, bucket, &snapshot).await {
            Ok(true) => self.routes(bucket).snapshot_written(snapshot.seq),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                bucket = %partition(bucket),
                %error,
                "device index compaction failed; the claims stay as they are"
            ),
        }
    }

    /// Reads the rows of `bucket` after the last claim applied and applies them (all of them
    /// when the bucket was never read, or when its routes were dropped while reading); the
    /// tail that read brought the routes to, and the head it read.
    async fn catch_up(
        &self,
        client: &Client,
        bucket: usize,
        generation: Option<&str>,
    ) -> Result<Caught, StoreError> {
        for _ in 0..3 {
            let after = self.routes(bucket).tail();
            let log = self.read_log(client, bucket, after).await?;
            let mut routes = self.routes(bucket);
            if routes
                .apply(after, log.snapshot.as_ref(), &log.claims)
                .is_ok()
            {
                if let Some(generation) = generation {
                    routes.mark(generation);
                }
                let tail = routes.tail();
                drop(routes);
                self.bound_memory(bucket);
                return Ok(Caught {
                    tail,
                    head: log.head,
                });
            }
            routes.reset();
        }
        Err(StoreError::Backend(format!(
            "device index bucket {}: could not be read whole (claims missing, or the bucket dropped while read)",
            partition(bucket)
        )))
    }

    /// Past [`MAX_ROUTES`], drops every bucket but `keep` (read again when next needed).
    fn bound_memory(&self, keep: usize) {
        let kept: usize = (0..BUCKETS).map(|bucket| self.routes(bucket).len()).sum();
        if kept > MAX_ROUTES {
            for bucket in (0..BUCKETS).filter(|bucket| *bucket != keep) {
                self.routes(bucket).reset();
            }
        }
    }

    /// The rows of `bucket` after claim `after`: its claims, the latest whole snapshot among
    /// them, and its head.
    async fn read_log(
        &self,
        client: &Client,
        bucket: usize,
        after: u64,
    ) -> Result<Log, StoreError> {
        let filter = compact::after_filter(bucket, after);
        let rows = client.query_with_etags(&self.table, &filter, None).await?;
        compact::read_log(&rows)
    }

    /// The index's current generation.
    async fn generation(&self, client: &Client) -> Result<String, StoreError> {
        let row = client
            .get(&self.catalog, GENERATION_PARTITION, GENERATION_ROW)
            .await?;
        match row {
            Some((row, _)) => string(&row, "Generation"),
            None => Ok(NO_GENERATION.to_string()),
        }
    }

    /// Replaces the generation, once claims are stored: buckets read before are read again.
    async fn bump_generation(&self, client: &Client) -> Result<(), StoreError> {
        let mut row = entity::entity(GENERATION_PARTITION, GENERATION_ROW);
        row.insert(
            "Generation".into(),
            uuid::Uuid::new_v4().simple().to_string().into(),
        );
        let outcome = client
            .batch(&self.catalog, &[Operation::Upsert(row)])
            .await?;
        outcome.applied("device index generation").map(|_| ())
    }
}
