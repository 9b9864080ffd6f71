//! The commit of a rollout's partition: one entity group transaction of the head, the changed
//! device records, and the outbox effects and audit entries not yet stored.

use super::batch::{Operation, Outcome, MAX_OPERATIONS};
use super::cache::{Cache, CachedRecord, Head};
use super::client::Client;
use super::entity::{entity, key, literal, put_doc, string, Entity};
use super::HEAD;
use crate::store::{Commit, StoreError, Version};
use std::collections::HashSet;

pub(super) const DEVICE: &str = "device_";
pub(super) const EFFECT: &str = "effect_";
pub(super) const AUDIT: &str = "audit_";
/// RowKey comparisons per existence query (the service allows 15 comparisons per filter).
const KEYS_PER_QUERY: usize = 14;

pub(super) fn device_row(device: &str) -> String {
    format!("{DEVICE}{}", key(device))
}

fn effect_row(effect_id: &str) -> String {
    format!("{EFFECT}{}", key(effect_id))
}

fn audit_row(seq: u64) -> String {
    format!("{AUDIT}{seq:020}")
}

/// Which of `rows` exist in the partition.
async fn existing_rows(
    client: &Client,
    table: &str,
    partition: &str,
    rows: &[String],
) -> Result<HashSet<String>, StoreError> {
    let mut existing = HashSet::new();
    for chunk in rows.chunks(KEYS_PER_QUERY) {
        let any: Vec<String> = chunk
            .iter()
            .map(|row| format!("RowKey eq {}", literal(row)))
            .collect();
        let filter = format!(
            "PartitionKey eq {} and ({})",
            literal(partition),
            any.join(" or ")
        );
        for found in client.query(table, &filter, Some("RowKey"), None).await? {
            existing.insert(string(&found, "RowKey")?);
        }
    }
    Ok(existing)
}

/// Applies a commit as one transaction in the rollout's partition: the head (inserted, or
/// replaced if its ETag still matches), each device (inserted, or replaced on its ETag), and
/// the outbox effects and audit entries not yet stored (existing ones are never overwritten:
/// they are looked up first and left out). Returns the head's new ETag. What it wrote goes
/// into the cache; a commit that fails makes the cache forget the rollout.
pub(super) async fn commit(
    client: &Client,
    cache: &Cache,
    table: &str,
    commit: &Commit,
) -> Result<Version, StoreError> {
    let id = commit.rollout.id().as_str();
    let written = write_commit(client, cache, table, commit).await;
    match written {
        Ok((head, devices)) => {
            let etag = head.etag.clone();
            cache.put_head(id, head);
            cache.put_records(id, devices);
            Ok(etag)
        }
        Err(error) => {
            cache.forget_rollout(id);
            Err(error)
        }
    }
}

/// The commit's transaction: the head as written, and the device records with their ETags.
async fn write_commit(
    client: &Client,
    cache: &Cache,
    table: &str,
    commit: &Commit,
) -> Result<(Head, Vec<(String, CachedRecord)>), StoreError> {
    let size = commit.size();
    if size > MAX_OPERATIONS {
        return Err(StoreError::TooLarge {
            operations: size,
            limit: MAX_OPERATIONS,
        });
    }
    let partition = key(commit.rollout.id().as_str());
    let seq = next_seq(client, cache, table, &partition, commit).await?;
    let mut operations = vec![head_operation(&partition, seq, commit)?];
    operations.extend(device_operations(&partition, commit)?);
    let mut appends = appends(&partition, seq, commit)?;
    if commit.expected.is_some() && !appends.is_empty() {
        let keys: Vec<String> = appends.iter().map(|(row_key, _)| row_key.clone()).collect();
        let existing = existing_rows(client, table, &partition, &keys).await?;
        appends.retain(|(row_key, _)| !existing.contains(row_key));
    }
    operations.extend(appends.into_iter().map(|(_, row)| Operation::Insert(row)));
    let outcome = client.batch(table, &operations).await?;
    let id = commit.rollout.id().as_str();
    let mut etags = committed(client, table, &partition, id, outcome).await?;
    let etag = etags
        .remove(0)
        .ok_or_else(|| StoreError::Backend(format!("rollout {id}: the commit returned no ETag")))?;
    let devices = commit
        .devices
        .iter()
        .zip(etags)
        .filter_map(|(write, etag)| Some((write.device.to_string(), (write.record, etag?))))
        .collect();
    Ok((Head { etag, seq }, devices))
}

/// The head's commit number, which orders the outbox: 1 for a new rollout, else one past the
/// stored head's (whose ETag must still be the one read): the one this instance committed at
/// that ETag, or read from the store.
async fn next_seq(
    client: &Client,
    cache: &Cache,
    table: &str,
    partition: &str,
    commit: &Commit,
) -> Result<u64, StoreError> {
    let id = commit.rollout.id().as_str();
    let Some(expected) = &commit.expected else {
        return Ok(1);
    };
    // committed here last at the ETag expected: the transaction's condition checks the rest
    if let Some(head) = cache.head(id).filter(|head| &head.etag == expected) {
        return Ok(head.seq + 1);
    }
    let Some((head, etag)) = client.get(table, partition, HEAD).await? else {
        return Err(StoreError::Conflict(format!("rollout {id} does not exist")));
    };
    if &etag != expected {
        return Err(StoreError::Conflict(format!(
            "rollout {id} changed since it was read"
        )));
    }
    let seq: u64 = string(&head, "Seq")?
        .parse()
        .map_err(|_| StoreError::Backend(format!("rollout {id}: bad Seq")))?;
    Ok(seq + 1)
}

/// The head row: inserted for a new rollout, else replaced on the ETag read.
fn head_operation(partition: &str, seq: u64, commit: &Commit) -> Result<Operation, StoreError> {
    let mut head = entity(partition, HEAD);
    head.insert("Id".into(), commit.rollout.id().as_str().into());
    head.insert("Seq".into(), format!("{seq:012}").into());
    head.insert(
        "CreatedAt".into(),
        commit.rollout.created_at().to_rfc3339().into(),
    );
    put_doc(&mut head, &commit.rollout)?;
    Ok(match &commit.expected {
        None => Operation::Insert(head),
        Some(etag) => Operation::Replace {
            entity: head,
            if_match: etag.clone(),
        },
    })
}

/// One row per changed device: inserted if new, else replaced on the ETag read.
fn device_operations(partition: &str, commit: &Commit) -> Result<Vec<Operation>, StoreError> {
    let mut operations = Vec::with_capacity(commit.devices.len());
    for write in &commit.devices {
        let mut row = entity(partition, &device_row(&write.device));
        row.insert("Device".into(), write.device.as_str().into());
        put_doc(&mut row, &write.record)?;
        operations.push(match &write.expected {
            None => Operation::Insert(row),
            Some(etag) => Operation::Replace {
                entity: row,
                if_match: etag.clone(),
            },
        });
    }
    Ok(operations)
}

/// New outbox effects and audit entries with their row keys, the first of any repeated id
/// winning.
fn appends(
    partition: &str,
    seq: u64,
    commit: &Commit,
) -> Result<Vec<(String, Entity)>, StoreError> {
    let id = commit.rollout.id().as_str();
    let mut appends: Vec<(String, Entity)> = Vec::new();
    let mut seen = HashSet::new();
    for (index, effect) in commit.effects.iter().enumerate() {
        let row_key = effect_row(effect.id.as_str());
        if seen.insert(row_key.clone()) {
            let mut row = entity(partition, &row_key);
            row.insert("Rollout".into(), id.into());
            row.insert("EffectId".into(), effect.id.as_str().into());
            row.insert("Order".into(), format!("{seq:012}-{index:05}").into());
            row.insert("Done".into(), false.into());
            put_doc(&mut row, effect)?;
            appends.push((row_key, row));
        }
    }
    for (number, decision) in &commit.decisions {
        let row_key = audit_row(*number);
        if seen.insert(row_key.clone()) {
            let mut row = entity(partition, &row_key);
            put_doc(&mut row, decision)?;
            appends.push((row_key, row));
        }
    }
    Ok(appends)
}

/// What a commit's transaction came to: the ETags it produced (the head's first, always
/// there; then the other operations' in order, where the service sent them), a conflict, or
/// an error.
async fn committed(
    client: &Client,
    table: &str,
    partition: &str,
    id: &str,
    outcome: Outcome,
) -> Result<Vec<Option<String>>, StoreError> {
    match outcome {
        Outcome::Applied(mut etags) => {
            if etags.first().is_some_and(Option::is_some) {
                return Ok(etags);
            }
            // the service always sends one; should it not, read the head back
            let head = client
                .get(table, partition, HEAD)
                .await?
                .map(|(_, etag)| etag)
                .ok_or_else(|| {
                    StoreError::Backend(format!("rollout {id} vanished after its commit"))
                })?;
            match etags.first_mut() {
                Some(first) => *first = Some(head),
                None => etags.push(Some(head)),
            }
            Ok(etags)
        }
        // 409: exists already; 412: changed since read; 404: gone since read
        Outcome::Failed {
            status: status @ (404 | 409 | 412),
            code,
            message,
        } if code != "TableNotFound" => Err(StoreError::Conflict(format!(
            "rollout {id}: {status} {code} {message}"
        ))),
        Outcome::Failed {
            status,
            code,
            message,
        } => Err(StoreError::Status {
            what: format!("commit of rollout {id}"),
            status,
            detail: format!("{code} {message}"),
        }),
    }
}
