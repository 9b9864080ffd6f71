//! Writing one commit: the rollout head (conditional on its version), the changed device
//! records (each conditional on its own), new effects and decisions, in one transaction.

use super::{backend, to_json};
use crate::store::{Commit, StoreError, Version};
use rusqlite::{params, Connection, TransactionBehavior};

/// Writes `commit` in one immediate transaction; a version that moved is a conflict and
/// changes nothing.
pub(super) fn write_commit(
    connection: &mut Connection,
    commit: &Commit,
) -> Result<Version, StoreError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    let id = commit.rollout.id().as_str();
    let version = write_head(&tx, commit)?;
    for write in &commit.devices {
        let record = super::record::encode(&write.record);
        let changed = match &write.expected {
            None => execute(
                &tx,
                "INSERT OR IGNORE INTO devices (rollout, device, version, record) VALUES (?1, ?2, 1, ?3)",
                params![id, write.device.as_str(), record],
            ),
            Some(expected) => execute(
                &tx,
                "UPDATE devices SET record = ?1, version = version + 1 WHERE rollout = ?2 AND device = ?3 AND version = ?4",
                params![record, id, write.device.as_str(), expected.parse::<i64>().unwrap_or(-1)],
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
            params![id, effect.id.as_str(), format!("{version:012}-{index:05}"), to_json(effect)?],
        )?;
    }
    for (seq, decision) in &commit.decisions {
        execute(
            &tx,
            "INSERT OR IGNORE INTO audit (rollout, seq, decision) VALUES (?1, ?2, ?3)",
            params![id, *seq as i64, to_json(decision)?],
        )?;
    }
    tx.commit().map_err(StoreError::from)?;
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
        .map_err(StoreError::from)
}

/// Inserts the rollout document, or replaces it if its version is still the one read.
fn write_head(connection: &Connection, commit: &Commit) -> Result<i64, StoreError> {
    let id = commit.rollout.id().as_str();
    let doc = to_json(&commit.rollout)?;
    match &commit.expected {
        None => {
            let inserted = execute(
                connection,
                "INSERT OR IGNORE INTO rollouts (id, version, created_at, doc) VALUES (?1, 1, ?2, ?3)",
                params![id, commit.rollout.created_at().to_rfc3339(), doc],
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
