//! The device index (`DeviceClaims`): which rollout each device belongs to, as a log of claims
//! per bucket (16 partitions by a hash nibble of the device id). A claim (row `{seq:012}`,
//! numbered from 1 without gaps) says its devices belong to its rollout; a later claim of the
//! bucket moves a device. Adding devices appends one claim per bucket a call touches (an
//! insert of the next number, so racing writers cannot both take it), not one row per
//! device: a 20,000-device rollout indexes in ~160 rows instead of 20,000. Readers keep each
//! bucket's routes and read only the rows after the last claim they applied. Every
//! [`COMPACT_AFTER`] claims the writer replaces a bucket's rows by a snapshot (`compact`).
//!
//! The generation (catalog row `meta`/`index`) is replaced by every call adding devices once
//! its claims are stored; a reader reads it before any claim, and trusts a bucket it brought
//! up to date under the same generation without reading the bucket again.

use super::batch::{Operation, Outcome};
use super::client::Client;
use super::compact::{self, claim_entity, device_parts, partition, ROWS_PER_TRANSACTION};
use super::entity::{self, string};
use super::routes::{BucketRoutes, Claim, Snapshot};
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
            .try_collect::<Vec<()>>()
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
        self.append(client, rollout, devices).await
    }

    /// [`DeviceIndex::claim`] without adopting the old layout first (the adoption's own claims).
    pub(super) async fn append(
        &self,
        client: &Client,
        rollout: &str,
        devices: &[&String],
    ) -> Result<(), StoreError> {
        let mut by_bucket: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for device in devices {
            by_bucket
                .entry(device_bucket(device))
                .or_default()
                .push(device.to_string());
        }
        futures::stream::iter(by_bucket)
            .map(|(bucket, devices)| self.claim_in(client, bucket, rollout, devices))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        self.bump_generation(client).await
    }

    /// Appends the claims of `devices` to one bucket: numbered after its tail, inserted, read
    /// up to the new tail again and retried when another instance took the numbers first.
    async fn claim_in(
        &self,
        client: &Client,
        bucket: usize,
        rollout: &str,
        devices: Vec<String>,
    ) -> Result<(), StoreError> {
        let _appending = self.buckets[bucket].appending.lock().await;
        for parts in device_parts(devices).chunks(ROWS_PER_TRANSACTION) {
            let mut attempts = 0;
            loop {
                attempts += 1;
                self.catch_up(client, bucket, None).await?;
                let tail = self.routes(bucket).tail();
                let claims: Vec<Claim> = (tail + 1..)
                    .zip(parts)
                    .map(|(seq, devices)| Claim {
                        seq,
                        rollout: rollout.to_string(),
                        devices: devices.clone(),
                    })
                    .collect();
                let inserts = claims
                    .iter()
                    .map(|claim| claim_entity(bucket, claim).map(Operation::Insert))
                    .collect::<Result<Vec<_>, _>>()?;
                match client.batch(&self.table, &inserts).await? {
                    Outcome::Applied(_) => {
                        // a gap here only means another task dropped the routes; they are read again
                        let _ = self.routes(bucket).apply(tail, None, &claims);
                        break;
                    }
                    Outcome::Failed { status: 409, .. } if attempts < CLAIM_ATTEMPTS => continue,
                    Outcome::Failed {
                        status,
                        code,
                        message,
                    } => {
                        return Err(StoreError::Backend(format!(
                            "device index bucket {}: {status} {code} {message}",
                            partition(bucket)
                        )))
                    }
                }
            }
        }
        self.compact_if_due(client, bucket).await;
        Ok(())
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
            Ok(_) => self.routes(bucket).snapshot_written(snapshot.seq),
            Err(error) => tracing::warn!(
                bucket = %partition(bucket),
                %error,
                "device index compaction failed; the claims stay as they are"
            ),
        }
    }

    /// Reads the claims of `bucket` after the last one applied and applies them (all of them
    /// when the bucket was never read, or when its routes were dropped while reading).
    async fn catch_up(
        &self,
        client: &Client,
        bucket: usize,
        generation: Option<&str>,
    ) -> Result<(), StoreError> {
        for _ in 0..2 {
            let after = self.routes(bucket).read_after();
            let (claims, snapshot) = self.read_log(client, bucket, after).await?;
            let mut routes = self.routes(bucket);
            match routes.apply(after, snapshot.as_ref(), &claims) {
                Ok(()) => {
                    if let Some(generation) = generation {
                        routes.mark(generation);
                    }
                    drop(routes);
                    self.bound_memory(bucket);
                    return Ok(());
                }
                Err(_) => routes.reset(),
            }
        }
        Err(StoreError::Backend(format!(
            "device index bucket {}: its claims are not numbered without gaps",
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

    /// The claims of `bucket` numbered after `after`, in order, and the latest whole
    /// snapshot among its rows past `after`.
    async fn read_log(
        &self,
        client: &Client,
        bucket: usize,
        after: u64,
    ) -> Result<(Vec<Claim>, Option<Snapshot>), StoreError> {
        let filter = compact::after_filter(bucket, after);
        let rows = client.query(&self.table, &filter, None, None).await?;
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
        match client
            .batch(&self.catalog, &[Operation::Upsert(row)])
            .await?
        {
            Outcome::Applied(_) => Ok(()),
            Outcome::Failed {
                status,
                code,
                message,
            } => Err(StoreError::Backend(format!(
                "device index generation: {status} {code} {message}"
            ))),
        }
    }
}
