//! The Azure Table Storage store (`PATCHWAVE_STORE=table:…`): the Table REST protocol over
//! reqwest, every write conditional on an ETag, each commit one entity group transaction.
//!
//! Tables (all names start with a prefix, `patchwave` unless told otherwise):
//! - `Rollouts`: one partition per rollout (its id, key-encoded) holding the `head` row (the
//!   rollout document and a commit sequence number), `device_{id}` rows, `effect_{id}` outbox
//!   rows (ordered by their `Order` property, `Done` once run) and `audit_{seq:020}` rows.
//!   Everything a commit touches is in one partition, so it is one transaction.
//! - `Catalog`: one row per rollout ever created (listing without scanning every device).
//!   Its `meta`/`index` row is the device index's generation (`index`).
//! - `DeviceClaims`: the device index, device → rollout as a log of claims (rollout + device
//!   list) and snapshots, one partition per hash nibble of the device id (`index`, `compact`).
//! - `DeadLetters`: an `id_{id}` marker (dedupe) and an `at_{inverted time}_{id}` row
//!   (newest first), written together and deleted together by the retention (`retention`).
//! - `Keys`: idempotency keys, one partition each.

mod add;
mod auth;
mod batch;
mod cache;
mod client;
mod compact;
mod entity;
pub mod floor;
mod index;
pub mod legacy;
mod read;
mod retention;
mod routes;
mod write;

pub use auth::{DEV_ACCOUNT, DEV_KEY, STORAGE_SCOPE};

use super::{
    DeadLetter, DeadLetterRetention, PendingEffect, Store, StoreError, Version, Versioned,
};
use crate::azure::credential::TokenSource;
use crate::store::Commit;
use batch::{Operation, Outcome};
use client::Client;
use entity::{get_doc, key, prefix_filter, put_doc, string, Entity};
use rollout_core::{Decision, DeviceRecord, Rollout};
use std::collections::HashMap;
use std::sync::Arc;

/// The default table-name prefix.
pub const DEFAULT_PREFIX: &str = "patchwave";
const HEAD: &str = "head";
const CATALOG_PARTITION: &str = "rollouts";
const LETTERS_PARTITION: &str = "letters";
/// Point reads or transactions in flight at once.
const CONCURRENCY: usize = 16;

/// The names of the store's tables.
#[derive(Debug, Clone)]
struct Tables {
    rollouts: String,
    catalog: String,
    devices: String,
    letters: String,
    keys: String,
}

/// Table Storage store. Cheap to clone; clones share one HTTP connection pool.
#[derive(Debug, Clone)]
pub struct TableStore {
    client: Arc<Client>,
    tables: Arc<Tables>,
    /// How far the dead-letter retention has counted (one pruning call at a time).
    letter_tally: Arc<tokio::sync::Mutex<retention::Tally>>,
    /// Records and heads as this instance last wrote or read them.
    cache: Arc<cache::Cache>,
    /// The device index, with the routes this instance read of it.
    index: Arc<index::DeviceIndex>,
}

impl TableStore {
    /// Connects with the default table names through a connection string (an account key,
    /// or `UseDevelopmentStorage=true`).
    pub async fn connect(connection_string: &str) -> Result<Self, StoreError> {
        TableStore::connect_with_prefix(connection_string, DEFAULT_PREFIX).await
    }

    /// Connects through a connection string with table names starting with `prefix` (a
    /// letter, then letters and digits, at most 50), creating the tables if they are missing.
    pub async fn connect_with_prefix(
        connection_string: &str,
        prefix: &str,
    ) -> Result<Self, StoreError> {
        TableStore::open(Client::with_connection_string(connection_string)?, prefix).await
    }

    /// Connects to `endpoint` (`https://ACCOUNT.table.core.windows.net`) with bearer tokens
    /// for [`STORAGE_SCOPE`] from `tokens` (the shared Azure credential), table names starting
    /// with `prefix`.
    pub async fn connect_with_tokens(
        endpoint: reqwest::Url,
        tokens: Arc<dyn TokenSource>,
        prefix: &str,
    ) -> Result<Self, StoreError> {
        TableStore::open(Client::with_tokens(endpoint, tokens)?, prefix).await
    }

    async fn open(client: Client, prefix: &str) -> Result<Self, StoreError> {
        let valid = prefix.len() <= 50
            && prefix
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && prefix.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(StoreError::Backend(format!(
                "table prefix {prefix:?} must be a letter followed by at most 49 letters or digits"
            )));
        }
        let tables = Tables {
            rollouts: format!("{prefix}Rollouts"),
            catalog: format!("{prefix}Catalog"),
            devices: format!("{prefix}DeviceClaims"),
            letters: format!("{prefix}DeadLetters"),
            keys: format!("{prefix}Keys"),
        };
        for table in [
            &tables.rollouts,
            &tables.catalog,
            &tables.devices,
            &tables.letters,
            &tables.keys,
        ] {
            client.create_table(table).await?;
        }
        let legacy = legacy::legacy_table(prefix);
        let index = index::DeviceIndex::new(&tables.devices, &tables.catalog, &legacy);
        let index = Arc::new(index);
        Ok(TableStore {
            client: Arc::new(client),
            tables: Arc::new(tables),
            letter_tally: Arc::default(),
            cache: Arc::default(),
            index,
        })
    }

    /// Rows the device index holds (claims and snapshot parts): what its compaction bounds.
    pub async fn device_index_rows(&self) -> Result<usize, StoreError> {
        let rows = self
            .client
            .query(&self.tables.devices, "RowKey ne ''", Some("RowKey"), None)
            .await?;
        Ok(rows.len())
    }

    /// The rollout ids in the catalog.
    async fn rollout_ids(&self) -> Result<Vec<String>, StoreError> {
        let filter = format!("PartitionKey eq {}", entity::literal(CATALOG_PARTITION));
        let rows = self
            .client
            .query(&self.tables.catalog, &filter, Some("Id"), None)
            .await?;
        rows.iter().map(|row| string(row, "Id")).collect()
    }

    async fn pending_of(&self, rollout: &str) -> Result<Vec<PendingEffect>, StoreError> {
        let filter = format!(
            "{} and Done eq false",
            prefix_filter(&key(rollout), write::EFFECT)
        );
        let rows = self
            .client
            .query(&self.tables.rollouts, &filter, None, None)
            .await?;
        let mut pending = rows
            .iter()
            .map(|row| {
                Ok(PendingEffect {
                    rollout: string(row, "Rollout")?,
                    order: string(row, "Order")?,
                    effect: get_doc(row)?,
                    checkpoint: string(row, "Checkpoint").ok(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        pending.sort_by(|a, b| a.order.cmp(&b.order));
        Ok(pending)
    }
}

/// Row key of a dead letter's listing row: newest first, then by id.
fn letter_row(letter: &DeadLetter) -> String {
    let millis = chrono::DateTime::parse_from_rfc3339(&letter.received_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    retention::listing_key(millis, &key(&letter.id))
}

#[async_trait::async_trait]
impl Store for TableStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get(&self.tables.catalog, "ping", "ping")
            .await
            .map(|_| ())
    }

    async fn load_rollout(&self, id: &str) -> Result<Option<Versioned<Rollout>>, StoreError> {
        match self
            .client
            .get(&self.tables.rollouts, &key(id), HEAD)
            .await?
        {
            None => Ok(None),
            Some((head, etag)) => Ok(Some(Versioned {
                value: get_doc(&head)?,
                version: etag,
            })),
        }
    }

    async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let mut rollouts = Vec::new();
        for id in self.rollout_ids().await? {
            // a catalog row whose create never committed has no head: skipped
            if let Some(loaded) = self.load_rollout(&id).await? {
                rollouts.push(loaded.value);
            }
        }
        rollouts.sort_by(|a, b| {
            b.created_at()
                .cmp(&a.created_at())
                .then_with(|| a.id().cmp(b.id()))
        });
        Ok(rollouts)
    }

    /// Always read from the store (`read`): a caller may act on them without writing them.
    async fn load_devices(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> Result<Vec<(String, Versioned<DeviceRecord>)>, StoreError> {
        let read = read::records(
            &self.client,
            &self.tables.rollouts,
            rollout,
            devices.to_vec(),
        )
        .await?;
        self.cache.put_records(rollout, read.iter().cloned());
        Ok(read
            .into_iter()
            .map(|(device, (value, version))| (device, Versioned { value, version }))
            .collect())
    }

    /// In row-key order: the key-encoded device id, which is the ids' own order when they are
    /// ASCII letters, digits, `-`, `_` and `.` only. `after` is encoded the same way, so
    /// paging on the last id returned neither skips nor repeats a device.
    async fn list_devices(
        &self,
        rollout: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeviceRecord)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut filter = prefix_filter(&key(rollout), write::DEVICE);
        if let Some(after) = after {
            let row = entity::literal(&write::device_row(after));
            filter.push_str(&format!(" and RowKey gt {row}"));
        }
        let rows = self
            .client
            .query(&self.tables.rollouts, &filter, None, Some(limit))
            .await?;
        // every device row carries its raw id in `Device` (the row key may be a hash)
        rows.iter()
            .map(|row| Ok((string(row, "Device")?, get_doc(row)?)))
            .collect()
    }

    async fn add_devices(
        &self,
        rollout: &str,
        devices: &[(String, DeviceRecord)],
    ) -> Result<(), StoreError> {
        let tables = (self.tables.rollouts.as_str(), &*self.index);
        add::add_devices(&self.client, &self.cache, tables, rollout, devices).await
    }

    async fn rollouts_of_devices(
        &self,
        devices: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        self.index.rollouts_of(&self.client, devices).await
    }

    /// Records as this instance last wrote or read them, the others read. A kept record may
    /// be older than the stored one: a report or connection event then either changes it (and
    /// the commit's version check fails, the rollout is forgotten, the retry reads the store)
    /// or is older than the kept record already, and so older than the stored one (versions
    /// and sequence numbers only grow).
    async fn routing_records(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> Result<Vec<(String, Versioned<DeviceRecord>)>, StoreError> {
        let (hits, misses) = self.cache.records(rollout, devices);
        let read = if misses.is_empty() {
            Vec::new()
        } else {
            read::records(&self.client, &self.tables.rollouts, rollout, misses).await?
        };
        self.cache.put_records(rollout, read.iter().cloned());
        Ok(hits
            .into_iter()
            .chain(read)
            .map(|(device, (value, version))| (device, Versioned { value, version }))
            .collect())
    }

    fn max_device_writes(&self) -> usize {
        // an entity group transaction holds 100 operations, the head among them; a commit
        // whose effects and decisions do not fit beside its devices is refused as too large
        // before anything is written, and the service applies its inputs in halves
        batch::MAX_OPERATIONS - 1
    }

    async fn commit(&self, commit: Commit) -> Result<Version, StoreError> {
        if commit.expected.is_none() {
            let id = commit.rollout.id().as_str();
            let mut row = entity::entity(CATALOG_PARTITION, &key(id));
            row.insert("Id".into(), id.into());
            row.insert(
                "CreatedAt".into(),
                commit.rollout.created_at().to_rfc3339().into(),
            );
            // listed before it exists; a create that then fails leaves a row list_rollouts skips
            self.client.insert(&self.tables.catalog, &row).await?;
        }
        write::commit(&self.client, &self.cache, &self.tables.rollouts, &commit).await
    }

    async fn pending_effects(
        &self,
        rollout: Option<&str>,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        match rollout {
            Some(rollout) => self.pending_of(rollout).await,
            None => {
                let mut pending = Vec::new();
                for id in self.rollout_ids().await? {
                    pending.extend(self.pending_of(&id).await?);
                }
                pending.sort_by(|a, b| {
                    a.rollout
                        .cmp(&b.rollout)
                        .then_with(|| a.order.cmp(&b.order))
                });
                Ok(pending)
            }
        }
    }

    async fn complete_effect(&self, rollout: &str, effect_id: &str) -> Result<(), StoreError> {
        let mut done = Entity::new();
        done.insert("Done".into(), true.into());
        let row = format!("{}{}", write::EFFECT, key(effect_id));
        // an effect that is not in the outbox has nothing to complete
        self.client
            .merge_any(&self.tables.rollouts, &done, &key(rollout), &row)
            .await
            .map(|_| ())
    }

    async fn checkpoint_effect(
        &self,
        rollout: &str,
        effect_id: &str,
        checkpoint: &str,
    ) -> Result<(), StoreError> {
        let mut row = Entity::new();
        row.insert("Checkpoint".into(), checkpoint.into());
        let key_row = format!("{}{}", write::EFFECT, key(effect_id));
        self.client
            .merge_any(&self.tables.rollouts, &row, &key(rollout), &key_row)
            .await
            .map(|_| ())
    }

    async fn audit(&self, rollout: &str) -> Result<Vec<Decision>, StoreError> {
        let filter = prefix_filter(&key(rollout), write::AUDIT);
        let mut rows = self
            .client
            .query(&self.tables.rollouts, &filter, None, None)
            .await?;
        rows.sort_by_key(|row| string(row, "RowKey").unwrap_or_default());
        rows.iter().map(get_doc).collect()
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let marker = entity::entity(
            LETTERS_PARTITION,
            &format!("{}{}", retention::MARKER, key(&letter.id)),
        );
        let mut row = entity::entity(LETTERS_PARTITION, &letter_row(letter));
        put_doc(&mut row, letter)?;
        let operations = [Operation::Insert(marker), Operation::Insert(row)];
        match self.client.batch(&self.tables.letters, &operations).await? {
            Outcome::Applied(_) => Ok(()),
            // the marker exists: this letter is kept already
            Outcome::Failed { status: 409, .. } => Ok(()),
            Outcome::Failed {
                status,
                code,
                message,
            } => Err(StoreError::Status {
                what: format!("dead letter {}", letter.id),
                status,
                detail: format!("{code} {message}"),
            }),
        }
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = prefix_filter(LETTERS_PARTITION, retention::LISTING);
        let rows = self
            .client
            .query(&self.tables.letters, &filter, None, Some(limit))
            .await?;
        rows.iter().map(get_doc).collect()
    }

    /// By age, one range of listing keys; by count, past the `keep`-th listing key, found
    /// over as many calls as it takes (see `retention`).
    async fn prune_dead_letters(&self, policy: &DeadLetterRetention) -> Result<usize, StoreError> {
        if policy.at_most == 0 {
            return Ok(0);
        }
        let mut tally = self.letter_tally.lock().await;
        retention::prune(&self.client, &self.tables.letters, &mut tally, policy).await
    }

    async fn claim_key(&self, claim: &str, value: &str) -> Result<Option<String>, StoreError> {
        let partition = key(claim);
        let mut row = entity::entity(&partition, "claim");
        entity::put_text(&mut row, "Value", value);
        if self.client.insert(&self.tables.keys, &row).await? {
            return Ok(None);
        }
        match self
            .client
            .get(&self.tables.keys, &partition, "claim")
            .await?
        {
            Some((existing, _)) => Ok(Some(entity::get_text(&existing, "Value")?)),
            None => Err(StoreError::Backend(format!(
                "key {claim} claimed and then gone"
            ))),
        }
    }
}
