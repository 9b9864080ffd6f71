//! The device index (`DeviceIndex`: device → rollout, 16 partitions by a hash nibble) and its
//! generation: a row of the catalog that every index write replaces with a fresh value once
//! its entries are stored. A reader reads the generation before any entry, so routes it
//! cached under a generation stay true while the generation does (see `cache`).

use super::batch::{self, Operation, Outcome};
use super::cache::Cache;
use super::client::Client;
use super::entity::{self, key, string};
use crate::store::StoreError;
use futures::stream::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Partition and row of the generation row in the catalog table.
const GENERATION_PARTITION: &str = "meta";
const GENERATION_ROW: &str = "index";
/// The generation when no index write ever replaced the row.
const NO_GENERATION: &str = "-";
/// Point reads or transactions in flight at once.
pub(super) const CONCURRENCY: usize = 16;

/// The device-index partition of a device: one hex digit of its hash (16 partitions, so
/// index writes batch well and no partition is hot).
fn device_bucket(device: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(device.as_bytes());
    format!("{:x}", hash[0] >> 4)
}

/// The index's current generation.
async fn generation(client: &Client, catalog: &str) -> Result<String, StoreError> {
    let row = client
        .get(catalog, GENERATION_PARTITION, GENERATION_ROW)
        .await?;
    match row {
        Some((row, _)) => string(&row, "Generation"),
        None => Ok(NO_GENERATION.to_string()),
    }
}

/// The rollouts of `devices` (devices in no rollout left out): cached routes while the
/// generation holds, point reads of the others.
pub(super) async fn rollouts_of(
    client: &Arc<Client>,
    cache: &Cache,
    tables: (&str, &str),
    devices: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let (index, catalog) = tables;
    let generation = generation(client, catalog).await?;
    let (hits, misses) = cache.routes(&generation, devices);
    let lookups = misses.into_iter().map(|device| {
        let (client, index) = (client.clone(), index.to_string());
        async move {
            let row = client
                .get(&index, &device_bucket(&device), &key(&device))
                .await?;
            let rollout = row.map(|(row, _)| string(&row, "Rollout")).transpose()?;
            Ok::<_, StoreError>((device, rollout))
        }
    });
    let read: Vec<(String, Option<String>)> = futures::stream::iter(lookups)
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    cache.put_routes(&generation, read.iter().cloned());
    Ok(hits
        .into_iter()
        .chain(read)
        .filter_map(|(device, rollout)| rollout.map(|rollout| (device, rollout)))
        .collect())
}

/// Indexes `devices` to `rollout`, transactions of up to 100 per partition, several in
/// flight; then replaces the generation.
pub(super) async fn index_devices(
    client: &Arc<Client>,
    tables: (&str, &str),
    rollout: &str,
    devices: impl Iterator<Item = &String>,
) -> Result<(), StoreError> {
    let (index, catalog) = tables;
    let mut buckets: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for device in devices {
        if !seen.insert(device.as_str()) {
            continue;
        }
        let bucket = device_bucket(device);
        let mut row = entity::entity(&bucket, &key(device));
        row.insert("Device".into(), device.as_str().into());
        row.insert("Rollout".into(), rollout.into());
        buckets
            .entry(bucket)
            .or_default()
            .push(Operation::Upsert(row));
    }
    let transactions: Vec<(String, Vec<Operation>)> = buckets
        .into_iter()
        .flat_map(|(bucket, operations)| {
            operations
                .chunks(batch::MAX_OPERATIONS)
                .map(|chunk| (bucket.clone(), chunk.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    let writes = transactions.into_iter().map(|(bucket, operations)| {
        let (client, index) = (client.clone(), index.to_string());
        async move { write_bucket(&client, &index, &bucket, operations).await }
    });
    futures::stream::iter(writes)
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let mut row = entity::entity(GENERATION_PARTITION, GENERATION_ROW);
    row.insert(
        "Generation".into(),
        uuid::Uuid::new_v4().simple().to_string().into(),
    );
    let outcome = client.batch(catalog, &[Operation::Upsert(row)]).await?;
    applied(outcome, "device index generation")
}

/// `Ok` when the transaction applied, else what failed.
fn applied(outcome: Outcome, what: &str) -> Result<(), StoreError> {
    match outcome {
        Outcome::Applied(_) => Ok(()),
        Outcome::Failed {
            status,
            code,
            message,
        } => Err(StoreError::Backend(format!(
            "{what}: {status} {code} {message}"
        ))),
    }
}

/// One transaction of index entries: inserted (the devices of a new rollout are new to the
/// index, and the emulator inserts faster than it replaces), else, when one of them is
/// indexed already (to an earlier rollout, or by a retried call), all replaced.
async fn write_bucket(
    client: &Client,
    index: &str,
    bucket: &str,
    mut operations: Vec<Operation>,
) -> Result<(), StoreError> {
    let mut outcome = client.batch(index, &operations).await?;
    if let Outcome::Failed { status: 409, .. } = outcome {
        for operation in &mut operations {
            if let Operation::Insert(row) = operation {
                *operation = Operation::Upsert(std::mem::take(row));
            }
        }
        outcome = client.batch(index, &operations).await?;
    }
    applied(outcome, &format!("device index bucket {bucket}"))
}
