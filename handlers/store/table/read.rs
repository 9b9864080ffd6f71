//! Reading device records of one rollout that the cache does not hold: a few by point reads,
//! several at once; many (a page of a group's members) by one range query over their row
//! keys, which reads a new rollout's empty partition in one request instead of one per device.

use super::cache::CachedRecord;
use super::client::Client;
use super::entity::{get_doc, key, literal, string};
use super::write::device_row;
use super::CONCURRENCY;
use crate::store::StoreError;
use futures::stream::{StreamExt, TryStreamExt};
use rollout_core::DeviceRecord;
use std::collections::HashMap;

/// From this many devices on, a range query is tried first.
const RANGE_FROM: usize = 32;
/// A range holding more than this many rows per wanted device is read point by point instead.
const RANGE_DENSITY: usize = 2;

/// The records of `devices` in `rollout` that exist, with their ETags.
pub(super) async fn records(
    client: &Client,
    table: &str,
    rollout: &str,
    devices: Vec<String>,
) -> Result<Vec<(String, CachedRecord)>, StoreError> {
    if devices.len() >= RANGE_FROM {
        if let Some(found) = by_range(client, table, rollout, &devices).await? {
            return Ok(found);
        }
    }
    by_point(client, table, rollout, devices).await
}

/// One range query from the least to the greatest row key wanted; `None` when the range
/// holds too many other rows to be worth reading.
async fn by_range(
    client: &Client,
    table: &str,
    rollout: &str,
    devices: &[String],
) -> Result<Option<Vec<(String, CachedRecord)>>, StoreError> {
    let mut wanted: HashMap<String, &String> = devices
        .iter()
        .map(|device| (device_row(device), device))
        .collect();
    let (Some(first), Some(last)) = (wanted.keys().min(), wanted.keys().max()) else {
        return Ok(Some(Vec::new()));
    };
    let filter = format!(
        "PartitionKey eq {} and RowKey ge {} and RowKey le {}",
        literal(&key(rollout)),
        literal(first),
        literal(last)
    );
    let most = devices.len() * RANGE_DENSITY;
    let rows = client
        .query_with_etags(table, &filter, Some(most + 1))
        .await?;
    if rows.len() > most {
        return Ok(None);
    }
    let mut found = Vec::new();
    for row in rows {
        let Some(device) = wanted.remove(&string(&row, "RowKey")?) else {
            continue;
        };
        let etag = string(&row, "odata.etag")?;
        found.push((device.clone(), (get_doc::<DeviceRecord>(&row)?, etag)));
    }
    Ok(Some(found))
}

/// A point read per device, several in flight.
async fn by_point(
    client: &Client,
    table: &str,
    rollout: &str,
    devices: Vec<String>,
) -> Result<Vec<(String, CachedRecord)>, StoreError> {
    let partition = key(rollout);
    let reads = devices.into_iter().map(|device| {
        let (partition, row) = (partition.as_str(), device_row(&device));
        async move {
            let read = client.get(table, partition, &row).await?;
            let record = match read {
                Some((row, etag)) => Some((get_doc::<DeviceRecord>(&row)?, etag)),
                None => None,
            };
            Ok::<_, StoreError>(record.map(|record| (device, record)))
        }
    });
    futures::stream::iter(reads)
        .buffered(CONCURRENCY)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await
}
