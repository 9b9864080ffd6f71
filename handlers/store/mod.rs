//! Durable state behind one interface, with two real backends: SQLite (the embedded default)
//! and Azure Table Storage. Every write is conditional on a version, so instances that write
//! the same rollout at once never lose each other's updates.
//!
//! Layout, per rollout: the rollout document (everything but its devices), one record per
//! device, the outbox of effects still to run, and the append-only audit log. Besides: a
//! device → rollout index for routing reports, dead letters, and idempotency keys.

pub mod sqlite;
pub mod table;

use chrono::{DateTime, Utc};
use rollout_core::{Decision, DeviceId, DeviceRecord, Effect, Rollout};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// An opaque version (a row version or an ETag) for conditional writes.
pub type Version = String;

/// A value and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub version: Version,
}

/// Why a store operation failed. Failures of a library keep it as their source; the
/// messages name what was attempted. Sources are shared (`Arc`) so the error stays `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost against another writer: reload and try again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend refused or returned something unusable (protocol, corrupt data, limits).
    #[error("store: {0}")]
    Backend(String),
    /// A commit writes more than the backend takes in one transaction; nothing was written
    /// (a commit of fewer inputs fits).
    #[error("store: commit too large for one entity group transaction: {operations} operations, at most {limit}")]
    TooLarge {
        /// Entities the commit writes.
        operations: usize,
        /// The most one transaction takes.
        limit: usize,
    },
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// SQLite could not open a database file.
    #[error("store: {path}: {source}")]
    SqliteOpen {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// A value could not be written as JSON.
    #[error("store: {0}")]
    Json(#[source] Arc<serde_json::Error>),
    /// Something stored (or a reply of the service) could not be read.
    #[error("store: {what} unreadable: {source}")]
    Unreadable {
        /// What was read.
        what: String,
        /// Why it could not be.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A request to the Table service got no answer (or its answer could not be read).
    #[error("store: {what}: {source}")]
    Http {
        /// The request (`METHOD /path`, no query, no secrets).
        what: String,
        /// Why.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The Table service answered with an error status.
    #[error("store: {}", status_line(what, *status, detail))]
    Status {
        /// What was attempted.
        what: String,
        /// HTTP status.
        status: u16,
        /// The service's error code and message.
        detail: String,
    },
    /// No token for Table Storage from the shared Azure credential.
    #[error("store: {0}")]
    Credential(#[from] crate::azure::error::AzureError),
    /// The Table endpoint (of a connection string) is unusable.
    #[error("store: {0}")]
    Endpoint(#[from] crate::config::StoreLocationError),
    /// A blocking store task failed.
    #[error("store: {0}")]
    Task(#[source] Arc<tokio::task::JoinError>),
    /// The operating system refused (a thread, a file).
    #[error("store: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

fn status_line(what: &str, status: u16, detail: &str) -> String {
    format!("{what}: {status} {detail}").trim_end().to_string()
}

/// Errors are equal when they are the same kind with the same message (library errors
/// compare by what they say).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(error))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Json(Arc::new(error))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        StoreError::Io(Arc::new(error))
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(error: tokio::task::JoinError) -> Self {
        StoreError::Task(Arc::new(error))
    }
}

impl StoreError {
    /// `what` could not be read as JSON.
    pub fn unreadable(what: impl Into<String>, source: serde_json::Error) -> Self {
        StoreError::Unreadable {
            what: what.into(),
            source: Arc::new(source),
        }
    }

    /// The request `what` got no usable answer.
    pub fn http(what: impl Into<String>, source: reqwest::Error) -> Self {
        StoreError::Http {
            what: what.into(),
            source: Arc::new(source),
        }
    }
}

/// A device record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceWrite {
    /// Device id.
    pub device: DeviceId,
    /// The record.
    pub record: DeviceRecord,
    /// The version it was read at (`None` = it must not exist yet).
    pub expected: Option<Version>,
}

/// Everything one step changed, written atomically: the rollout (conditional on
/// `expected`), device records (each conditional), new outbox effects and audit entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The rollout document (devices are not part of it).
    pub rollout: Rollout,
    /// The version the rollout was read at (`None` = create).
    pub expected: Option<Version>,
    /// Changed device records.
    pub devices: Vec<DeviceWrite>,
    /// Effects to add to the outbox, in order.
    pub effects: Vec<Effect>,
    /// Decisions to append to the audit log, numbered.
    pub decisions: Vec<(u64, Decision)>,
}

impl Commit {
    /// How many entities the commit writes (Table Storage takes at most 100 in one batch).
    pub fn size(&self) -> usize {
        1 + self.devices.len() + self.effects.len() + self.decisions.len()
    }
}

/// Where a reporting device belongs: its rollout, and its record there as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Device id.
    pub device: String,
    /// The rollout the device is indexed to.
    pub rollout: String,
    /// Its record in that rollout (`None` if the rollout holds none).
    pub record: Option<Versioned<DeviceRecord>>,
}

/// An effect waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingEffect {
    /// The rollout that asked for it.
    pub rollout: String,
    /// Ordering within the rollout (effects run in the order they were decided).
    pub order: String,
    /// The effect.
    pub effect: Effect,
    /// Where a long-running effect stood when it was last left (e.g. the URL to poll).
    #[serde(default)]
    pub checkpoint: Option<String>,
}

/// An input that should have been usable and was not, kept with its raw payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Deterministic id (a redelivered bad event is kept once).
    pub id: String,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// The function that received it.
    pub function: String,
    /// The invocation.
    pub invocation_id: String,
    /// Why it could not be used.
    pub reason: String,
    /// The payload as it arrived.
    pub raw: String,
}

impl DeadLetter {
    /// A dead letter whose id is derived from where it came from and what it holds.
    pub fn new(
        received_at: &str,
        function: &str,
        invocation_id: &str,
        reason: &str,
        raw: &str,
    ) -> Self {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for part in [function, reason, raw] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        DeadLetter {
            id: hex::encode(&hash.finalize()[..16]),
            received_at: received_at.into(),
            function: function.into(),
            invocation_id: invocation_id.into(),
            reason: reason.into(),
            raw: raw.into(),
        }
    }
}

/// What [`Store::prune_dead_letters`] deletes, and how much of it one call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterRetention {
    /// Letters received before this time are deleted.
    pub received_before: DateTime<Utc>,
    /// Of the letters left, the newest `keep` are kept (in the order [`Store::dead_letters`]
    /// lists them) and the older ones deleted.
    pub keep: usize,
    /// The most letters one call deletes; the rest are left for the next call. A Table
    /// Storage store also reads at most twice as many listing keys to count the letters.
    pub at_most: usize,
}

/// The store. Implementations: [`sqlite::SqliteStore`] and the Table Storage store.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the backend is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Loads a rollout document.
    async fn load_rollout(&self, id: &str) -> Result<Option<Versioned<Rollout>>, StoreError>;
    /// Every rollout document (newest first).
    async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError>;
    /// The records of the named devices of a rollout (missing ones are left out).
    async fn load_devices(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> Result<Vec<(String, Versioned<DeviceRecord>)>, StoreError>;
    /// One page of a rollout's device records in device-id order: at most `limit`, those
    /// after `after` (from the start when `None`).
    async fn list_devices(
        &self,
        rollout: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeviceRecord)>, StoreError>;
    /// Writes device records that must not exist yet, and indexes them to the rollout;
    /// existing ones are left as they are (so a retried write is harmless).
    async fn add_devices(
        &self,
        rollout: &str,
        devices: &[(String, DeviceRecord)],
    ) -> Result<(), StoreError>;
    /// The rollouts the named devices belong to; devices in no rollout are left out.
    async fn rollouts_of_devices(
        &self,
        devices: &[String],
    ) -> Result<HashMap<String, String>, StoreError>;
    /// Routes a batch of reporting devices: the rollout each belongs to, with its record
    /// there, read together (devices in no rollout are left out). The records are a snapshot
    /// for a first attempt: the commit's conditional writes catch any that moved since.
    async fn route_devices(&self, devices: Vec<String>) -> Result<Vec<Routed>, StoreError> {
        let index = self.rollouts_of_devices(&devices).await?;
        let mut by_rollout: HashMap<&str, Vec<String>> = HashMap::new();
        for (device, rollout) in &index {
            by_rollout.entry(rollout).or_default().push(device.clone());
        }
        let mut routed = Vec::with_capacity(index.len());
        for (rollout, devices) in by_rollout {
            let mut records: HashMap<String, Versioned<DeviceRecord>> = self
                .routing_records(rollout, &devices)
                .await?
                .into_iter()
                .collect();
            routed.extend(devices.into_iter().map(|device| Routed {
                record: records.remove(&device),
                rollout: rollout.to_string(),
                device,
            }));
        }
        Ok(routed)
    }
    /// The records routing hands out with the devices of one rollout: by default those
    /// [`Store::load_devices`] reads. A backend may answer from what it last wrote, since
    /// the commit checks each record's version.
    async fn routing_records(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> Result<Vec<(String, Versioned<DeviceRecord>)>, StoreError> {
        self.load_devices(rollout, devices).await
    }
    /// The most device records one commit may write (a backend's transaction limit), leaving
    /// room for the rollout, its effects and decisions.
    fn max_device_writes(&self) -> usize {
        usize::MAX
    }
    /// Applies a commit atomically; `Conflict` if any conditional write lost. Returns the
    /// rollout's new version.
    async fn commit(&self, commit: Commit) -> Result<Version, StoreError>;
    /// Outbox effects not yet done, of one rollout or of all, in order.
    async fn pending_effects(
        &self,
        rollout: Option<&str>,
    ) -> Result<Vec<PendingEffect>, StoreError>;
    /// Marks an outbox effect done.
    async fn complete_effect(&self, rollout: &str, effect_id: &str) -> Result<(), StoreError>;
    /// Records where a long-running effect stands, so the next attempt resumes it.
    async fn checkpoint_effect(
        &self,
        rollout: &str,
        effect_id: &str,
        checkpoint: &str,
    ) -> Result<(), StoreError>;
    /// The audit log of a rollout, oldest first.
    async fn audit(&self, rollout: &str) -> Result<Vec<Decision>, StoreError>;
    /// Keeps a dead letter (once per id).
    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;
    /// Dead letters, newest first, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Applies a retention to dead letters: deletes those received before
    /// `retention.received_before` and then, past the newest `retention.keep`, the oldest;
    /// at most `retention.at_most` in one call. Returns how many it deleted. Nothing but dead
    /// letters is ever deleted; a deleted letter's id may be kept again.
    async fn prune_dead_letters(
        &self,
        retention: &DeadLetterRetention,
    ) -> Result<usize, StoreError>;
    /// Claims `key` for `value`; returns the value it already had if it was claimed before.
    async fn claim_key(&self, key: &str, value: &str) -> Result<Option<String>, StoreError>;
}
