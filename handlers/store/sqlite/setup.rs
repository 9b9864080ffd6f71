//! Opening a SQLite store: connection settings, the schema and its migrations, and the
//! background WAL checkpointer.

use super::backend;
use crate::store::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, Weak};
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
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at DESC, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL size (pages) at which a commit checkpoints by itself, should the background
/// checkpointer fall behind.
const WAL_BACKSTOP_PAGES: u32 = 65_536;

/// Connection settings, the schema (created or brought up to date), and the `rarray`
/// function the batch reads use.
pub(super) fn prepare(connection: &Connection) -> Result<(), StoreError> {
    connection
        .execute_batch(&format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES};"))
        .map_err(StoreError::from)?;
    connection.execute_batch(SCHEMA).map_err(StoreError::from)?;
    rusqlite::vtab::array::load_module(connection).map_err(StoreError::from)?;
    for table in ["devices", "device_index"] {
        cluster_by_key(connection, table)?;
    }
    // databases made before effects had checkpoints
    let has_checkpoint = connection
        .prepare("SELECT checkpoint FROM outbox LIMIT 0")
        .is_ok();
    if !has_checkpoint {
        connection
            .execute_batch("ALTER TABLE outbox ADD COLUMN checkpoint TEXT")
            .map_err(StoreError::from)?;
    }
    Ok(())
}

/// A connection to the database file at `path`; the error names the file.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    Connection::open(path).map_err(|source| StoreError::SqliteOpen {
        path: path.to_path_buf(),
        source: std::sync::Arc::new(source),
    })
}

/// A second connection for reads beside the writer: same database, same `rarray` function.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let reader = open(path)?;
    reader
        .execute_batch("PRAGMA busy_timeout = 10000;")
        .map_err(StoreError::from)?;
    rusqlite::vtab::array::load_module(&reader).map_err(StoreError::from)?;
    Ok(reader)
}

/// Checkpoints the WAL from a thread of its own, on a connection of its own, so commits
/// only append to the WAL and never wait for a checkpoint's copying and `fsync`. `PASSIVE`
/// never blocks the writer. The thread ends when the store is dropped.
pub(super) fn start_checkpointer(
    path: &Path,
    store: Weak<Mutex<Connection>>,
) -> Result<(), StoreError> {
    let checkpointer = open(path)?;
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
        .map_err(StoreError::from)?;
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
        .map_err(StoreError::from)?;
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
