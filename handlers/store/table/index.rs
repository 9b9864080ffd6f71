//! The device index (`DeviceIndex`: device → rollout, 16 partitions by a hash nibble) and its
//! generation: a row of the catalog that every call adding devices replaces with a fresh value
//! once its entries are stored. A reader reads the generation before any entry, so routes it
//! cached under a generation stay true while the generation does (see `cache`).

use super::batch::{Operation, Outcome};
use super::cache::Cache;
use super::client::Client;
use super::entity::{self, key, string};
use super::CONCURRENCY;
use crate::store::StoreError;
use futures::stream::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;

/// Partition and row of the generation row in the catalog table.
const GENERATION_PARTITION: &str = "meta";
const GENERATION_ROW: &str = "index";
/// The generation when no index write ever replaced the row.
const NO_GENERATION: &str = "-";

/// The device-index partition of a device: one hex digit of its hash (16 partitions, so
/// index writes batch well and no partition is hot).
pub(super) fn device_bucket(device: &str) -> String {
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

/// Indexes `devices` (of one index partition, at most 100) to `rollout` in one transaction:
/// inserted (the devices of a new rollout are new to the index), else, when one of them is
/// indexed already (to an earlier rollout, or by a retried call), all replaced.
pub(super) async fn index_chunk(
    client: &Client,
    index: &str,
    bucket: &str,
    rollout: &str,
    devices: &[&String],
) -> Result<(), StoreError> {
    let entry = |device: &String| {
        let mut row = entity::entity(bucket, &key(device));
        row.insert("Device".into(), device.as_str().into());
        row.insert("Rollout".into(), rollout.into());
        row
    };
    let inserts: Vec<Operation> = devices
        .iter()
        .map(|device| Operation::Insert(entry(device)))
        .collect();
    let mut outcome = client.batch(index, &inserts).await?;
    if let Outcome::Failed { status: 409, .. } = outcome {
        let upserts: Vec<Operation> = devices
            .iter()
            .map(|device| Operation::Upsert(entry(device)))
            .collect();
        outcome = client.batch(index, &upserts).await?;
    }
    applied(outcome, &format!("device index bucket {bucket}"))
}

/// Replaces the generation, once index entries are stored: routes read before are read again.
pub(super) async fn bump_generation(client: &Client, catalog: &str) -> Result<(), StoreError> {
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
