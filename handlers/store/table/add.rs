//! Adding devices to a rollout: each device's record in the rollout's partition (chunks of
//! up to 100 neighbouring rows, one transaction each, many in flight), then, once every record
//! is stored, the devices' claims in the device index (`index`). Existing records are left
//! alone (a retried page, a racing writer).

use super::batch::{Operation, Outcome, MAX_OPERATIONS};
use super::cache::{Cache, CachedRecord};
use super::client::Client;
use super::entity::{entity, key, put_doc};
use super::index::DeviceIndex;
use super::write::device_row;
use super::CONCURRENCY;
use crate::store::StoreError;
use futures::stream::{StreamExt, TryStreamExt};
use rollout_core::DeviceRecord;
use std::collections::{BTreeMap, HashSet};

/// Attempts at adding one chunk of devices while other writers race us.
const ADD_ATTEMPTS: usize = 5;

/// Adds `devices` to `rollout` (the first of any repeated device winning): records that do
/// not exist yet, then every device's claim in `index`. The records it inserted go into the
/// cache.
pub(super) async fn add_devices(
    client: &Client,
    cache: &Cache,
    (table, index): (&str, &DeviceIndex),
    rollout: &str,
    devices: &[(String, DeviceRecord)],
) -> Result<(), StoreError> {
    let mut rows: BTreeMap<String, (String, DeviceRecord)> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (device, record) in devices {
        if seen.insert(device.as_str()) {
            rows.insert(device_row(device), (device.clone(), *record));
        }
    }
    let rows: Vec<(String, DeviceRecord)> = rows.into_values().collect();
    let chunks: Vec<Vec<(String, DeviceRecord)>> =
        rows.chunks(MAX_OPERATIONS).map(<[_]>::to_vec).collect();
    let chunks = chunks
        .into_iter()
        .map(|chunk| async move { add_records(client, table, rollout, &chunk).await });
    let added: Vec<Vec<(String, CachedRecord)>> = futures::stream::iter(chunks)
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    cache.put_records(rollout, added.into_iter().flatten());
    let devices: Vec<&String> = rows.iter().map(|(device, _)| device).collect();
    index.claim(client, rollout, &devices).await
}

/// One chunk's records: inserted whole (a new rollout's devices do not exist); if one of them
/// exists, the transaction fails whole, the chunk reads which exist and inserts the rest, again
/// until it holds. The records it inserted, with their ETags.
async fn add_records(
    client: &Client,
    table: &str,
    rollout: &str,
    chunk: &[(String, DeviceRecord)],
) -> Result<Vec<(String, CachedRecord)>, StoreError> {
    let partition = key(rollout);
    let mut existing: HashSet<String> = HashSet::new();
    for attempt in 1..=ADD_ATTEMPTS {
        if attempt > 1 {
            let devices = chunk.iter().map(|(device, _)| device.clone()).collect();
            let found = super::read::records(client, table, rollout, devices).await?;
            existing = found.into_iter().map(|(device, _)| device).collect();
        }
        let mut operations = Vec::new();
        let mut inserted = Vec::new();
        for (device, record) in chunk {
            if !existing.contains(device) {
                let mut row = entity(&partition, &device_row(device));
                row.insert("Device".into(), device.as_str().into());
                put_doc(&mut row, record)?;
                operations.push(Operation::Insert(row));
                inserted.push((device.clone(), *record));
            }
        }
        match client.batch(table, &operations).await? {
            Outcome::Applied(etags) => {
                return Ok(inserted
                    .into_iter()
                    .zip(etags)
                    .filter_map(|((device, record), etag)| Some((device, (record, etag?))))
                    .collect())
            }
            Outcome::Failed { status: 409, .. } if attempt < ADD_ATTEMPTS => continue,
            failed => {
                failed.applied(&format!("adding devices to rollout {rollout}"))?;
            }
        }
    }
    Err(StoreError::Backend(format!(
        "adding devices to rollout {rollout}: writers kept racing"
    )))
}
