//! The device index as builds before the claims log laid it out: table `{prefix}DeviceIndex`,
//! one row per device (partition a hash nibble, `Device` and `Rollout` properties). A store
//! with such a table adopts its routes as claims before its index is first used, so an upgrade
//! in the middle of a rollout keeps routing its devices. Only devices no claim names yet are
//! claimed, each append conditional on the log it read, so instances adopting at once, or a
//! rollout created meanwhile, never move a device back; a catalog row records that it was done
//! (or that there was nothing to adopt), so later instances read one row. The old table is left
//! as it was; instances of the old build must be stopped first (a deployment restarts them all),
//! since what they write there afterwards is not read.

use super::batch::Operation;
use super::client::Client;
use super::entity::{self, key, string};
use super::index::{device_bucket, Claiming, DeviceIndex};
use crate::store::StoreError;
use std::collections::BTreeMap;

/// The catalog row recording the adoption.
const ADOPTED_PARTITION: &str = "meta";
const ADOPTED_ROW: &str = "legacy-index";

/// The old index table of a prefix.
pub(super) fn legacy_table(prefix: &str) -> String {
    format!("{prefix}DeviceIndex")
}

/// Adopts the routes of `legacy` into `index` unless that was done; how many it adopted.
pub(super) async fn adopt(
    client: &Client,
    catalog: &str,
    legacy: &str,
    index: &DeviceIndex,
) -> Result<usize, StoreError> {
    if client
        .get(catalog, ADOPTED_PARTITION, ADOPTED_ROW)
        .await?
        .is_some()
    {
        return Ok(0);
    }
    let rows = match client
        .query(legacy, "RowKey ne ''", Some("Device,Rollout"), None)
        .await
    {
        Err(StoreError::Status { status: 404, .. }) => Vec::new(),
        rows => rows?,
    };
    let mut by_rollout: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        let rollout = string(row, "Rollout")?;
        by_rollout
            .entry(rollout)
            .or_default()
            .push(string(row, "Device")?);
    }
    for (rollout, devices) in &by_rollout {
        let devices: Vec<&String> = devices.iter().collect();
        index
            .append(client, rollout, &devices, Claiming::Unrouted)
            .await?;
    }
    let mut marker = entity::entity(ADOPTED_PARTITION, ADOPTED_ROW);
    marker.insert("Routes".into(), rows.len().into());
    let outcome = client.batch(catalog, &[Operation::Upsert(marker)]).await?;
    outcome.applied("recording the old device index's adoption")?;
    if !rows.is_empty() {
        tracing::info!(
            routes = rows.len(),
            rollouts = by_rollout.len(),
            table = legacy,
            "device index of an earlier build adopted as claims"
        );
    }
    Ok(rows.len())
}

/// Writes `routes` (device, rollout) into the old index table of `prefix`, laid out as builds
/// before the claims log wrote it: for tests of the adoption, and tools that recreate an old
/// store.
pub async fn write_legacy_index(
    connection_string: &str,
    prefix: &str,
    routes: &[(String, String)],
) -> Result<(), StoreError> {
    let client = Client::with_connection_string(connection_string)?;
    let table = legacy_table(prefix);
    client.create_table(&table).await?;
    for (device, rollout) in routes {
        let mut row = entity::entity(&format!("{:x}", device_bucket(device)), &key(device));
        row.insert("Device".into(), device.as_str().into());
        row.insert("Rollout".into(), rollout.as_str().into());
        let outcome = client.batch(&table, &[Operation::Upsert(row)]).await?;
        outcome.applied("old index row")?;
    }
    Ok(())
}
