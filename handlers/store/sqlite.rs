//! The embedded store: SQLite in WAL mode, one connection per store, work done on the
//! blocking pool so the async threads never wait on disk.

use super::{Commit, DeadLetter, PendingEffect, Store, StoreError, Version, Versioned};
use rollout_core::{Decision, DeviceRecord, Effect, Rollout};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    rollout TEXT NOT NULL, device TEXT NOT NULL, version INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (rollout, device)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_index (device TEXT PRIMARY KEY, rollout TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    rollout TEXT NOT NULL, effect_id TEXT NOT NULL, ord TEXT NOT NULL, effect TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, checkpoint TEXT, PRIMARY KEY (rollout, effect_id));
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (done, rollout, ord);
CREATE TABLE IF NOT EXISTS audit (
    rollout TEXT NOT NULL, seq INTEGER NOT NULL, decision TEXT NOT NULL, PRIMARY KEY (rollout, seq));
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, received_at TEXT NOT NULL, function TEXT NOT NULL,
    invocation_id TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// SQLite store on a file (`PATCHWAVE_STORE=sqlite:PATH`).
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL size (pages) at which a commit checkpoints by itself, should the background
/// checkpointer fall behind.
const WAL_BACKSTOP_PAGES: u32 = 65_536;

/// Checkpoints the WAL from a thread of its own, on a connection of its own, so commits
/// only append to the WAL and never wait for a checkpoint's copying and `fsync`. `PASSIVE`
/// never blocks the writer. The thread ends when the store is dropped.
fn start_checkpointer(path: &Path, store: Weak<Mutex<Connection>>) -> Result<(), StoreError> {
    let checkpointer = Connection::open(path)
        .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while store.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(error) =
                    checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::warn!(%error, "WAL checkpoint failed; commits will checkpoint");
                }
            }
        })
        .map_err(backend)?;
    Ok(())
}

/// Rebuilds a table made as a rowid table (before 2026-11) as a `WITHOUT ROWID` table
/// clustered on its key, as `SCHEMA` now makes it: a point read is then one B-tree descent
/// instead of two. Rows are copied in one transaction.
fn cluster_by_key(connection: &Connection, table: &str) -> Result<(), StoreError> {
    let definition: String = connection
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get(0),
        )
        .map_err(backend)?;
    if definition.contains("WITHOUT ROWID") {
        return Ok(());
    }
    tracing::info!(table, "rebuilding the table clustered on its key");
    let old = format!("{table}_rowid");
    connection
        .execute_batch(&format!(
            "BEGIN IMMEDIATE; ALTER TABLE {table} RENAME TO {old}; {SCHEMA} \
             INSERT INTO {table} SELECT * FROM {old}; DROP TABLE {old}; COMMIT;"
        ))
        .map_err(|error| {
            let _ = connection.execute_batch("ROLLBACK");
            backend(format!("rebuilding {table}: {error}"))
        })
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("stored document unreadable: {e}")))
}

impl SqliteStore {
    /// Opens (and creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        connection
            .execute_batch(&format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES};"))
            .map_err(backend)?;
        connection.execute_batch(SCHEMA).map_err(backend)?;
        rusqlite::vtab::array::load_module(&connection).map_err(backend)?;
        for table in ["devices", "device_index"] {
            cluster_by_key(&connection, table)?;
        }
        // databases made before effects had checkpoints
        let has_checkpoint = connection
            .prepare("SELECT checkpoint FROM outbox LIMIT 0")
            .is_ok();
        if !has_checkpoint {
            connection
                .execute_batch("ALTER TABLE outbox ADD COLUMN checkpoint TEXT")
                .map_err(backend)?;
        }
        let connection = Arc::new(Mutex::new(connection));
        start_checkpointer(path, Arc::downgrade(&connection))?;
        Ok(SqliteStore { connection })
    }

    /// Runs `work` with the connection on the blocking pool.
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
        .map_err(backend)?
    }
}

fn write_commit(connection: &mut Connection, commit: &Commit) -> Result<Version, StoreError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let id = &commit.rollout.id;
    let version = write_head(&tx, commit)?;
    for write in &commit.devices {
        let record = to_json(&write.record)?;
        let changed = match &write.expected {
            None => execute(
                &tx,
                "INSERT OR IGNORE INTO devices (rollout, device, version, record) VALUES (?1, ?2, 1, ?3)",
                params![id, write.device, record],
            ),
            Some(expected) => execute(
                &tx,
                "UPDATE devices SET record = ?1, version = version + 1 WHERE rollout = ?2 AND device = ?3 AND version = ?4",
                params![record, id, write.device, expected.parse::<i64>().unwrap_or(-1)],
            ),
        }?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!(
                "device {} of rollout {id} changed",
                write.device
            )));
        }
    }
    for (index, effect) in commit.effects.iter().enumerate() {
        execute(
            &tx,
            "INSERT OR IGNORE INTO outbox (rollout, effect_id, ord, effect) VALUES (?1, ?2, ?3, ?4)",
            params![id, effect.id, format!("{version:012}-{index:05}"), to_json(effect)?],
        )?;
    }
    for (seq, decision) in &commit.decisions {
        execute(
            &tx,
            "INSERT OR IGNORE INTO audit (rollout, seq, decision) VALUES (?1, ?2, ?3)",
            params![id, *seq as i64, to_json(decision)?],
        )?;
    }
    tx.commit().map_err(backend)?;
    Ok(version.to_string())
}

/// Runs one statement, prepared once per connection.
fn execute(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(backend)
}

/// Keys as one statement parameter (`IN rarray(?)`): a batch's point reads in one statement.
fn key_array(keys: Vec<String>) -> rusqlite::vtab::array::Array {
    std::rc::Rc::new(keys.into_iter().map(rusqlite::types::Value::Text).collect())
}

/// One read transaction for a batch of point reads, instead of one per statement (each
/// of which would take and release the WAL read lock). Dropped, it ends without writing.
fn read_transaction(connection: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    connection
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(backend)
}

/// Inserts the rollout document, or replaces it if its version is still the one read.
fn write_head(connection: &Connection, commit: &Commit) -> Result<i64, StoreError> {
    let id = &commit.rollout.id;
    let doc = to_json(&commit.rollout)?;
    match &commit.expected {
        None => {
            let inserted = execute(
                connection,
                "INSERT OR IGNORE INTO rollouts (id, version, created_at, doc) VALUES (?1, 1, ?2, ?3)",
                params![id, commit.rollout.created_at.to_rfc3339(), doc],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("rollout {id} already exists")));
            }
            Ok(1)
        }
        Some(expected) => {
            let expected: i64 = expected.parse().map_err(|_| backend("bad version"))?;
            let updated = execute(
                connection,
                "UPDATE rollouts SET doc = ?1, version = version + 1 WHERE id = ?2 AND version = ?3",
                params![doc, id, expected],
            )?;
            if updated == 0 {
                return Err(StoreError::Conflict(format!(
                    "rollout {id} changed since version {expected}"
                )));
            }
            Ok(expected + 1)
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
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
                .map_err(backend)?;
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
                .map_err(backend)?;
            let docs = statement
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            docs.map(|doc| from_json(&doc.map_err(backend)?)).collect()
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
            let reads = read_transaction(c)?;
            let mut statement = reads
                .prepare_cached(
                    "SELECT device, record, version FROM devices WHERE rollout = ?1 AND device IN rarray(?2)",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(params![rollout, key_array(devices)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (device, record, version) = row.map_err(backend)?;
                let value = from_json(&record)?;
                Ok((device, Versioned { value, version: version.to_string() }))
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
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO devices (rollout, device, version, record) VALUES (?1, ?2, 1, ?3)")
                    .map_err(backend)?;
                let mut index = tx
                    .prepare_cached("INSERT OR REPLACE INTO device_index (device, rollout) VALUES (?1, ?2)")
                    .map_err(backend)?;
                for (device, record) in &devices {
                    insert.execute(params![rollout, device, to_json(record)?]).map_err(backend)?;
                    index.execute(params![device, rollout]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn rollouts_of_devices(
        &self,
        devices: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let devices = devices.to_vec();
        self.with(move |c| {
            let reads = read_transaction(c)?;
            let mut statement = reads
                .prepare_cached(
                    "SELECT device, rollout FROM device_index WHERE device IN rarray(?1)",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([key_array(devices)], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            rows.map(|row| row.map_err(backend)).collect()
        })
        .await
    }

    async fn commit(&self, commit: Commit) -> Result<Version, StoreError> {
        self.with(move |c| write_commit(c, &commit)).await
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
                .map_err(backend)?;
            let rows = statement
                .query_map([rollout], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (rollout, order, effect, checkpoint) = row.map_err(backend)?;
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
            .map_err(backend)
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
            .map_err(backend)
        })
        .await
    }

    async fn audit(&self, rollout: &str) -> Result<Vec<Decision>, StoreError> {
        let rollout = rollout.to_string();
        self.with(move |c| {
            let mut statement = c
                .prepare("SELECT decision FROM audit WHERE rollout = ?1 ORDER BY seq")
                .map_err(backend)?;
            let rows = statement
                .query_map([rollout], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|row| from_json(&row.map_err(backend)?)).collect()
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
            .map_err(backend)
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(move |c| {
            let mut statement = c
                .prepare("SELECT id, received_at, function, invocation_id, reason, raw FROM dead_letters ORDER BY received_at DESC, id LIMIT ?1")
                .map_err(backend)?;
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
                .map_err(backend)?;
            rows.map(|row| row.map_err(backend)).collect()
        })
        .await
    }

    async fn claim_key(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT value FROM idempotency_keys WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if existing.is_none() {
                tx.execute(
                    "INSERT INTO idempotency_keys (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(existing)
        })
        .await
    }
}
