//! Rows of the device index log and its compaction. A claim is row `{seq:012}`; a snapshot of
//! a bucket as of claim `seq` is rows `{seq:012}s{part:04}` (every route, by rollout, cut to
//! fit rows; each part says how many there are); row `~head` holds the last claim's number
//! and is replaced, conditionally, in the transaction of every claim, so a writer that read
//! an older log fails whole even where a compaction deleted the numbers it would take. Once a
//! snapshot is whole, the rows before it are deleted, so a bucket holds about its devices'
//! routes, not every claim ever made.
//! Readers take the latest whole snapshot they read as the claims up to it (`routes`), so a
//! compaction half done, or done by two instances at once, reads the same.

use super::batch::{Operation, Outcome, MAX_OPERATIONS};
use super::client::Client;
use super::entity::{self, get_text, literal, put_text, string, Entity};
use super::routes::{Claim, Snapshot};
use crate::store::StoreError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Text of one row's device lists, in UTF-16 units: 8 properties of 30,000, well within the
/// 1 MiB of an entity.
pub(super) const ROW_UNITS: usize = 240_000;
/// Rows of device lists per transaction: within its 4 MiB even for ids of 3-byte characters.
pub(super) const ROWS_PER_TRANSACTION: usize = 4;

/// The row holding a bucket's last claim number (after every claim and snapshot row).
const HEAD_ROW: &str = "~head";

/// A bucket's head as read: its last claim number and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogHead {
    pub tail: u64,
    pub etag: String,
}

/// What one read of a bucket's rows found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Log {
    pub claims: Vec<Claim>,
    /// The latest snapshot read whole.
    pub snapshot: Option<Snapshot>,
    /// `None` when no claim was ever appended.
    pub head: Option<LogHead>,
}

pub(super) fn partition(bucket: usize) -> String {
    format!("{bucket:x}")
}

pub(super) fn claim_row(seq: u64) -> String {
    format!("{seq:012}")
}

fn snapshot_row(seq: u64, part: usize) -> String {
    format!("{seq:012}s{part:04}")
}

/// A filter for the rows of `bucket` after claim `after` (claims and snapshots past it).
pub(super) fn after_filter(bucket: usize, after: u64) -> String {
    format!(
        "PartitionKey eq {} and RowKey gt {}",
        literal(&partition(bucket)),
        literal(&format!("{}~", claim_row(after)))
    )
}

/// UTF-16 units one device id takes in a JSON list: as JSON writes it, and a comma.
fn cost(device: &str) -> usize {
    let quoted = Value::from(device).to_string();
    quoted.encode_utf16().count() + 1
}

/// The head row's write in the transaction of claims up to `tail`: inserted for the first
/// claim, else replaced only if it is still the one read.
pub(super) fn head_operation(bucket: usize, tail: u64, read: Option<&LogHead>) -> Operation {
    let mut row = entity::entity(&partition(bucket), HEAD_ROW);
    row.insert("Tail".into(), tail.to_string().into());
    match read {
        None => Operation::Insert(row),
        Some(head) => Operation::Replace {
            entity: row,
            if_match: head.etag.clone(),
        },
    }
}

/// Devices cut into lists that fit one row each.
pub(super) fn device_parts(devices: Vec<String>) -> Vec<Vec<String>> {
    let mut parts = vec![Vec::new()];
    let mut units = 2;
    for device in devices {
        let last = parts.last_mut().expect("one part");
        if units + cost(&device) > ROW_UNITS && !last.is_empty() {
            parts.push(Vec::new());
            units = 2;
        }
        units += cost(&device);
        parts.last_mut().expect("one part").push(device);
    }
    parts
}

pub(super) fn claim_entity(bucket: usize, claim: &Claim) -> Result<Entity, StoreError> {
    let mut row = entity::entity(&partition(bucket), &claim_row(claim.seq));
    row.insert("Rollout".into(), claim.rollout.as_str().into());
    let devices = serde_json::to_string(&claim.devices).map_err(StoreError::from)?;
    put_text(&mut row, "Devices", &devices);
    Ok(row)
}

/// The rows of a snapshot of `bucket`.
fn snapshot_entities(bucket: usize, snapshot: &Snapshot) -> Result<Vec<Entity>, StoreError> {
    let mut parts: Vec<Vec<(String, Vec<String>)>> = vec![Vec::new()];
    let mut units = 2;
    for (rollout, devices) in &snapshot.routes {
        let mut opened = false;
        for device in devices {
            let needed = cost(device) + if opened { 0 } else { 8 + cost(rollout) };
            if units + needed > ROW_UNITS && units > 2 {
                parts.push(Vec::new());
                units = 2;
                opened = false;
            }
            let part = parts.last_mut().expect("one part");
            if !opened {
                part.push((rollout.clone(), Vec::new()));
                units += 8 + cost(rollout);
                opened = true;
            }
            part.last_mut().expect("opened").1.push(device.clone());
            units += cost(device);
        }
    }
    let count = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let mut row = entity::entity(&partition(bucket), &snapshot_row(snapshot.seq, index));
            row.insert("Parts".into(), Value::from(count));
            let routes = serde_json::to_string(part).map_err(StoreError::from)?;
            put_text(&mut row, "Routes", &routes);
            Ok(row)
        })
        .collect()
}

/// Routes of one snapshot read so far: the parts it says it has, and those read.
#[derive(Default)]
struct Parts {
    expected: u64,
    read: BTreeMap<usize, Vec<(String, Vec<String>)>>,
}

/// The claims in `rows` (in row order, read with their ETags), the latest snapshot read whole
/// among them, and the head.
pub(super) fn read_log(rows: &[Entity]) -> Result<Log, StoreError> {
    let mut claims = Vec::new();
    let mut snapshots: BTreeMap<u64, Parts> = BTreeMap::new();
    let mut head = None;
    for row in rows {
        let key = string(row, "RowKey")?;
        if key == HEAD_ROW {
            let tail = string(row, "Tail")?;
            head = Some(LogHead {
                tail: tail.parse().map_err(|_| bad_row(&key))?,
                etag: string(row, "odata.etag")?,
            });
            continue;
        }
        match parse_row(&key) {
            Some((seq, None)) => claims.push(Claim {
                seq,
                rollout: string(row, "Rollout")?,
                devices: json(&get_text(row, "Devices")?, &key)?,
            }),
            Some((seq, Some(part))) => {
                let snapshot = snapshots.entry(seq).or_default();
                snapshot.expected = row.get("Parts").and_then(Value::as_u64).unwrap_or(0);
                snapshot
                    .read
                    .insert(part, json(&get_text(row, "Routes")?, &key)?);
            }
            None => return Err(bad_row(&key)),
        }
    }
    let whole = snapshots
        .into_iter()
        .rev()
        .find(|(_, parts)| parts.expected > 0 && parts.read.len() as u64 == parts.expected)
        .map(|(seq, parts)| Snapshot {
            seq,
            routes: parts.read.into_values().flatten().collect(),
        });
    Ok(Log {
        claims,
        snapshot: whole,
        head,
    })
}

fn json<T: serde::de::DeserializeOwned>(text: &str, key: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::unreadable(format!("device index row {key}"), e))
}

fn bad_row(key: &str) -> StoreError {
    StoreError::Backend(format!(
        "device index row {key:?} is neither a claim nor a snapshot part"
    ))
}

/// `{seq:012}` → (seq, None); `{seq:012}s{part:04}` → (seq, Some(part)).
fn parse_row(key: &str) -> Option<(u64, Option<usize>)> {
    let (seq, rest) = (key.get(..12)?, key.get(12..)?);
    let seq = seq
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| seq.parse().ok())??;
    match rest {
        "" => Some((seq, None)),
        _ => {
            let part = rest.strip_prefix('s')?;
            (part.len() == 4 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())?
                .map(|part| (seq, Some(part)))
        }
    }
}

/// Writes `snapshot` of `bucket`, then deletes every row before it (never the head). `Ok(false)`
/// when another instance was writing the same snapshot: the rows before it stay until a
/// compaction finishes.
pub(super) async fn compact(
    client: &Client,
    table: &str,
    bucket: usize,
    snapshot: &Snapshot,
) -> Result<bool, StoreError> {
    let rows = snapshot_entities(bucket, snapshot)?;
    for chunk in rows.chunks(ROWS_PER_TRANSACTION) {
        let inserts: Vec<Operation> = chunk.iter().cloned().map(Operation::Insert).collect();
        match client.batch(table, &inserts).await? {
            Outcome::Failed { status: 409, .. } => return Ok(false),
            other => {
                other.applied("device index snapshot")?;
            }
        }
    }
    let before = format!(
        "PartitionKey eq {} and RowKey lt {}",
        literal(&partition(bucket)),
        literal(&snapshot_row(snapshot.seq, 0))
    );
    let old = client.query(table, &before, Some("RowKey"), None).await?;
    for chunk in old.chunks(MAX_OPERATIONS) {
        let deletes: Vec<Operation> = chunk
            .iter()
            .map(|row| {
                let key = string(row, "RowKey")?;
                Ok(Operation::Delete(entity::entity(&partition(bucket), &key)))
            })
            .collect::<Result<_, StoreError>>()?;
        match client.batch(table, &deletes).await? {
            // a row gone already: another compaction is deleting them; the next one finishes
            Outcome::Failed { status: 404, .. } => return Ok(true),
            other => {
                other.applied("device index compaction's deletes")?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: usize, name: &str) -> Vec<String> {
        (0..count).map(|i| format!("{name}-{i:08}")).collect()
    }

    #[test]
    fn claim_rows_round_trip_and_sort_in_claim_order_with_snapshots_between() {
        let claim = Claim {
            seq: 42,
            rollout: "ro-1".into(),
            devices: vec!["a".into(), "quote\"d".into(), "ünï".into()],
        };
        let row = claim_entity(3, &claim).expect("entity");
        assert_eq!(row["PartitionKey"], "3");
        let log = read_log(&[row]).expect("log");
        assert_eq!(
            (log.claims, log.snapshot, log.head),
            (vec![claim], None, None)
        );
        let (nine, snap, ten) = (claim_row(9), snapshot_row(9, 0), claim_row(10));
        assert!(nine < snap && snap < format!("{nine}~") && format!("{nine}~") < ten);
        assert!(claim_row(99_999) < claim_row(100_000));
        assert!(format!("{}~", claim_row(999_999_999_999)).as_str() < HEAD_ROW);
        assert_eq!(parse_row("000000000007s0003"), Some((7, Some(3))));
        assert_eq!(parse_row("device-1"), None);
        assert!(read_log(&[entity::entity("3", "device-1")]).is_err());
    }

    #[test]
    fn lists_longer_than_a_row_holds_are_cut_into_several_rows() {
        let devices = ids(20_000, "device");
        let parts = device_parts(devices.clone());
        assert!(parts.len() > 1, "{} parts", parts.len());
        for part in &parts {
            let text = serde_json::to_string(part).expect("json");
            assert!(text.encode_utf16().count() <= ROW_UNITS);
        }
        assert_eq!(parts.concat(), devices);
        assert_eq!(
            device_parts(vec!["one".into()]),
            vec![vec!["one".to_string()]]
        );
    }

    #[test]
    fn a_snapshot_is_read_only_when_every_part_is() {
        let snapshot = Snapshot {
            seq: 64,
            routes: vec![
                ("ro-a".into(), ids(15_000, "a")),
                ("ro-b".into(), ids(9_000, "b")),
            ],
        };
        let rows = snapshot_entities(5, &snapshot).expect("rows");
        assert!(rows.len() > 1, "{} rows", rows.len());
        for row in &rows {
            let text = get_text(row, "Routes").expect("routes");
            assert!(text.encode_utf16().count() <= ROW_UNITS);
        }
        let log = read_log(&rows).expect("log");
        assert!(log.claims.is_empty());
        let read = log.snapshot.expect("whole");
        let devices = |s: &Snapshot| -> Vec<(String, String)> {
            let mut all: Vec<(String, String)> = s
                .routes
                .iter()
                .flat_map(|(r, ds)| ds.iter().map(move |d| (d.clone(), r.clone())))
                .collect();
            all.sort();
            all
        };
        assert_eq!((read.seq, devices(&read)), (64, devices(&snapshot)));
        // a snapshot still being written is not read
        assert_eq!(
            read_log(&rows[..rows.len() - 1]).expect("log").snapshot,
            None
        );
    }
}
