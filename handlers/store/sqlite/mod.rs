//! The embedded store: SQLite in WAL mode. One connection writes (and serves the occasional
//! reads); a few more route reports, so invocations read their devices while another commits.
//!
//! The two calls of the report path, routing a batch and committing a step, run on the
//! calling thread: both are bounded (a batch, a group of at most 1,000 records) and do no
//! disk waits (a WAL commit appends to the file without `fsync`; the background
//! checkpointer does the syncing), so they cost what decoding a batch costs, and a hand-off
//! to the blocking pool and back cost more than the work (BENCHMARKS.md). Everything else
//! (unbounded reads, the writing of a new rollout's records) runs on the blocking pool.
//!
//! Two waits remain on the calling thread. A commit waits while the blocking pool holds the
//! writing connection for one of those other calls; each is one statement or one chunk (the
//! service adds records 500 at a time), so the wait is one such call at most. And another
//! process writing the same file would make a commit wait for its lock, up to the busy
//! timeout: one instance owns its database file.

mod commit;
mod record;
mod setup;

use super::{
    Commit, DeadLetter, DeadLetterRetention, PendingEffect, Routed, Store, StoreError, Version,
    Versioned,
};
use rollout_core::{Decision, DeviceRecord, Effect, Rollout};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// One routing connection per core, up to 4 (each has its own page cache).
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// SQLite store on a file (`PATCHWAVE_STORE=sqlite:PATH`).
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    /// Routing reads, beside a commit (WAL readers see the last committed state).
    readers: Arc<[Mutex<Connection>]>,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::from)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::unreadable("stored document", e))
}

impl SqliteStore {
    /// Opens (and creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = setup::open(path)?;
        setup::prepare(&connection)?;
        let readers = (0..reader_count())
            .map(|_| setup::open_reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let connection = Arc::new(Mutex::new(connection));
        setup::start_checkpointer(path, Arc::downgrade(&connection))?;
        Ok(SqliteStore {
            connection,
            readers: readers.into(),
        })
    }

    /// Runs `work` with the writing connection on the blocking pool.
    async fn with<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .map_err(|_| backend("connection lock poisoned"))?;
            work(&mut guard)
        })
        .await
        .map_err(StoreError::from)?
    }

    /// A routing connection: a free one, else the first one once it is free.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        if let Some(free) = self.readers.iter().find_map(|r| r.try_lock().ok()) {
            return Ok(free);
        }
        self.readers[0]
            .lock()
            .map_err(|_| backend("connection lock poisoned"))
    }
}

/// Keys as one statement parameter (`IN rarray(?)`): a batch's point reads in one statement.
fn key_array(keys: Vec<String>) -> rusqlite::vtab::array::Array {
    std::rc::Rc::new(keys.into_iter().map(rusqlite::types::Value::Text).collect())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(StoreError::from)
        })
        .await
    }

    async fn load_rollout(&self, id: &str) -> Result<Option<Versioned<Rollout>>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let row: Option<(String, i64)> = c
                .query_row(
                    "SELECT doc, version FROM rollouts WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(StoreError::from)?;
            row.map(|(doc, version)| {
                Ok(Versioned {
                    value: from_json(&doc)?,
                    version: version.to_string(),
                })
            })
            .transpose()
        })
        .await
    }

    async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        self.with(|c| {
            let mut statement = c
                .prepare("SELECT doc FROM rollouts ORDER BY created_at DESC, id")
                .map_err(StoreError::from)?;
            let docs = statement
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(StoreError::from)?;
            docs.map(|doc| from_json(&doc.map_err(StoreError::from)?))
                .collect()
        })
        .await
    }

    async fn load_devices(
        &self,
        rollout: &str,
        devices: &[String],
    ) -> Result<Vec<(String, Versioned<DeviceRecord>)>, StoreError> {
        let rollout = rollout.to_string();
        let devices = devices.to_vec();
        self.with(move |c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT device, record, version FROM devices WHERE rollout = ?1 AND device IN rarray(?2)",
                )
                .map_err(StoreError::from)?;
            let rows = statement
                .query_map(params![rollout, key_array(devices)], |r| {
                    Ok((r.get::<_, String>(0)?, record::decode(r.get_ref(1)?), r.get::<_, i64>(2)?))
                })
                .map_err(StoreError::from)?;
            rows.map(|row| {
                let (device, value, version) = row.map_err(StoreError::from)?;
                Ok((device, Versioned { value: value?, version: version.to_string() }))
            })
            .collect()
        })
        .await
    }

    async fn list_devices(
        &self,
        rollout: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeviceRecord)>, StoreError> {
        let rollout = rollout.to_string();
        let after = after.unwrap_or_default().to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT device, record FROM devices WHERE rollout = ?1 AND device > ?2 ORDER BY device LIMIT ?3",
                )
                .map_err(StoreError::from)?;
            let rows = statement
                .query_map(params![rollout, after, limit], |r| {
                    Ok((r.get::<_, String>(0)?, record::decode(r.get_ref(1)?)))
                })
                .map_err(StoreError::from)?;
            rows.map(|row| {
                let (device, record) = row.map_err(StoreError::from)?;
                Ok((device, record?))
            })
            .collect()
        })
        .await
    }

    async fn add_devices(
        &self,
        rollout: &str,
        devices: &[(String, DeviceRecord)],
    ) -> Result<(), StoreError> {
        let rollout = rollout.to_string();
        let devices = devices.to_vec();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO devices (rollout, device, version, record) VALUES (?1, ?2, 1, ?3)")
                    .map_err(StoreError::from)?;
                let mut index = tx
                    .prepare_cached("INSERT OR REPLACE INTO device_index (device, rollout) VALUES (?1, ?2)")
                    .map_err(StoreError::from)?;
                for (device, record) in &devices {
                    insert.execute(params![rollout, device, record::encode(record)]).map_err(StoreError::from)?;
                    index.execute(params![device, rollout]).map_err(StoreError::from)?;
                }
            }
            tx.commit().map_err(StoreError::from)
        })
        .await
    }

    async fn rollouts_of_devices(
        &self,
        devices: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let devices = devices.to_vec();
        self.with(move |c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT device, rollout FROM device_index WHERE device IN rarray(?1)",
                )
                .map_err(StoreError::from)?;
            let rows = statement
                .query_map([key_array(devices)], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(StoreError::from)?;
            rows.map(|row| row.map_err(StoreError::from)).collect()
        })
        .await
    }

    async fn route_devices(&self, devices: Vec<String>) -> Result<Vec<Routed>, StoreError> {
        // on this thread: see the module's documentation
        let c = self.reader()?;
        let mut statement = c
            .prepare_cached(
                "SELECT i.device, i.rollout, d.record, d.version FROM device_index i \
                 LEFT JOIN devices d ON d.rollout = i.rollout AND d.device = i.device \
                 WHERE i.device IN rarray(?1)",
            )
            .map_err(StoreError::from)?;
        let rows = statement
            .query_map([key_array(devices)], |r| {
                let record = match r.get_ref(2)? {
                    ValueRef::Null => None,
                    stored => Some(record::decode(stored)),
                };
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    record,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(StoreError::from)?;
        rows.map(|row| {
            let (device, rollout, record, version) = row.map_err(StoreError::from)?;
            let record = match (record, version) {
                (Some(record), Some(version)) => Some(Versioned {
                    value: record?,
                    version: version.to_string(),
                }),
                _ => None,
            };
            Ok(Routed {
                device,
                rollout,
                record,
            })
        })
        .collect()
    }

    async fn commit(&self, commit: Commit) -> Result<Version, StoreError> {
        // on this thread: see the module's documentation
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| backend("connection lock poisoned"))?;
        commit::write_commit(&mut connection, &commit)
    }

    async fn pending_effects(
        &self,
        rollout: Option<&str>,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        let rollout = rollout.map(str::to_string);
        self.with(move |c| {
            let mut statement = c
                .prepare(
                    "SELECT rollout, ord, effect, checkpoint FROM outbox WHERE done = 0 AND (?1 IS NULL OR rollout = ?1) ORDER BY rollout, ord",
                )
                .map_err(StoreError::from)?;
            let rows = statement
                .query_map([rollout], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
                })
                .map_err(StoreError::from)?;
            rows.map(|row| {
                let (rollout, order, effect, checkpoint) = row.map_err(StoreError::from)?;
                Ok(PendingEffect { rollout, order, effect: from_json::<Effect>(&effect)?, checkpoint })
            })
            .collect()
        })
        .await
    }

    async fn complete_effect(&self, rollout: &str, effect_id: &str) -> Result<(), StoreError> {
        let (rollout, effect_id) = (rollout.to_string(), effect_id.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE outbox SET done = 1 WHERE rollout = ?1 AND effect_id = ?2",
                params![rollout, effect_id],
            )
            .map(|_| ())
            .map_err(StoreError::from)
        })
        .await
    }

    async fn checkpoint_effect(
        &self,
        rollout: &str,
        effect_id: &str,
        checkpoint: &str,
    ) -> Result<(), StoreError> {
        let (rollout, effect_id, checkpoint) = (
            rollout.to_string(),
            effect_id.to_string(),
            checkpoint.to_string(),
        );
        self.with(move |c| {
            c.execute(
                "UPDATE outbox SET checkpoint = ?1 WHERE rollout = ?2 AND effect_id = ?3",
                params![checkpoint, rollout, effect_id],
            )
            .map(|_| ())
            .map_err(StoreError::from)
        })
        .await
    }

    async fn audit(&self, rollout: &str) -> Result<Vec<Decision>, StoreError> {
        let rollout = rollout.to_string();
        self.with(move |c| {
            let mut statement = c
                .prepare("SELECT decision FROM audit WHERE rollout = ?1 ORDER BY seq")
                .map_err(StoreError::from)?;
            let rows = statement
                .query_map([rollout], |r| r.get::<_, String>(0))
                .map_err(StoreError::from)?;
            rows.map(|row| from_json(&row.map_err(StoreError::from)?))
                .collect()
        })
        .await
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let letter = letter.clone();
        self.with(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO dead_letters (id, received_at, function, invocation_id, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![letter.id, letter.received_at, letter.function, letter.invocation_id, letter.reason, letter.raw],
            )
            .map(|_| ())
            .map_err(StoreError::from)
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(move |c| {
            let mut statement = c
                .prepare("SELECT id, received_at, function, invocation_id, reason, raw FROM dead_letters ORDER BY received_at DESC, id LIMIT ?1")
                .map_err(StoreError::from)?;
            let rows = statement
                .query_map([limit as i64], |r| {
                    Ok(DeadLetter {
                        id: r.get(0)?,
                        received_at: r.get(1)?,
                        function: r.get(2)?,
                        invocation_id: r.get(3)?,
                        reason: r.get(4)?,
                        raw: r.get(5)?,
                    })
                })
                .map_err(StoreError::from)?;
            rows.map(|row| row.map_err(StoreError::from)).collect()
        })
        .await
    }

    /// Two bounded deletes in one transaction, both along the `dead_letters_received` index:
    /// the oldest of those received before the cutoff, then those past the newest `keep` in
    /// the listing's order. Times compare as the RFC 3339 text they are stored as (the
    /// service writes UTC, `+00:00`), as the listing orders them.
    async fn prune_dead_letters(
        &self,
        retention: &DeadLetterRetention,
    ) -> Result<usize, StoreError> {
        let before = retention.received_before.to_rfc3339();
        let keep = i64::try_from(retention.keep).unwrap_or(i64::MAX);
        let at_most = i64::try_from(retention.at_most).unwrap_or(i64::MAX);
        if at_most == 0 {
            return Ok(0);
        }
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let aged = tx
                .execute(
                    "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters \
                     WHERE received_at < ?1 ORDER BY received_at, id DESC LIMIT ?2)",
                    params![before, at_most],
                )
                .map_err(StoreError::from)?;
            let left = at_most - aged as i64;
            let surplus = if left > 0 {
                tx.execute(
                    "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters \
                     ORDER BY received_at DESC, id LIMIT ?1 OFFSET ?2)",
                    params![left, keep],
                )
                .map_err(StoreError::from)?
            } else {
                0
            };
            tx.commit().map_err(StoreError::from)?;
            Ok(aged + surplus)
        })
        .await
    }

    async fn claim_key(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT value FROM idempotency_keys WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StoreError::from)?;
            if existing.is_none() {
                tx.execute(
                    "INSERT INTO idempotency_keys (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(StoreError::from)?;
            }
            tx.commit().map_err(StoreError::from)?;
            Ok(existing)
        })
        .await
    }
}
