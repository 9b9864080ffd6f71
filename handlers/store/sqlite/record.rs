//! Device records as SQLite stores them: 29 bytes (wave, twin version, both outcomes, flags,
//! installed update, workflow, time of the last report), 78 for a device of a health-gated
//! wave (its install time and connection), instead of a JSON document, so a batch's reads and
//! writes neither parse nor print text. Records written by earlier versions (15 bytes, or
//! JSON) are still read.

use super::{backend, from_json};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use rollout_core::{ConnectionSequence, ConnectionState, DeviceRecord, Installed, Outcome};
use rusqlite::types::ValueRef;

/// Size of an encoded record.
const LEN: usize = 29;
/// Size of a record written before attribution (no installed update, workflow or time).
const LEN_BEFORE_ATTRIBUTION: usize = 15;
/// Size of a record with health data: install time (8), connection (1 + 8 + 32).
const LEN_WITH_HEALTH: usize = LEN + 49;

/// An encoded record: 29 bytes, or 78 with health data.
pub(super) struct Encoded {
    bytes: [u8; LEN_WITH_HEALTH],
    len: usize,
}

impl std::ops::Deref for Encoded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl rusqlite::ToSql for Encoded {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Blob(self)))
    }
}

fn millis_of(at: Option<DateTime<Utc>>) -> [u8; 8] {
    at.map_or(i64::MIN, |at| at.timestamp_millis())
        .to_le_bytes()
}

fn time_of(bytes: &[u8], what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut millis = [0u8; 8];
    millis.copy_from_slice(&bytes[..8]);
    let millis = i64::from_le_bytes(millis);
    if millis == i64::MIN {
        return Ok(None);
    }
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(Some)
        .ok_or_else(|| unreadable(&format!("{what} {millis}")))
}

/// The record's bytes: wave (u32 LE), version (u64 LE), forward, rollback, flags, installed,
/// workflow (u32 LE), its deployment, last report (Unix milliseconds, i64 LE; `i64::MIN` for
/// none).
pub(super) fn encode(record: &DeviceRecord) -> Encoded {
    let mut bytes = [0u8; LEN_WITH_HEALTH];
    bytes[..4].copy_from_slice(&record.wave.to_le_bytes());
    bytes[4..12].copy_from_slice(&record.version.to_le_bytes());
    bytes[12] = outcome_code(record.forward);
    bytes[13] = outcome_code(record.rollback);
    let flags = [
        record.forward_polled,
        record.rollback_polled,
        record.forward_reported,
        record.rollback_reported,
    ];
    bytes[14] = flags
        .iter()
        .enumerate()
        .fold(0, |acc, (bit, set)| acc | (u8::from(*set) << bit));
    bytes[15] = installed_code(record.installed);
    bytes[16..20].copy_from_slice(&record.workflow.to_le_bytes());
    bytes[20] = record.workflow_deployment;
    bytes[21..29].copy_from_slice(&millis_of(record.last_report_at));
    if record.succeeded_at.is_none() && record.connection.is_none() {
        return Encoded { bytes, len: LEN };
    }
    bytes[29..37].copy_from_slice(&millis_of(record.succeeded_at));
    if let Some(connection) = record.connection {
        bytes[37] = if connection.connected { 1 } else { 2 };
        bytes[38..46].copy_from_slice(&millis_of(Some(connection.at)));
        bytes[46..78].copy_from_slice(&connection.sequence.to_bytes());
    }
    Encoded {
        bytes,
        len: LEN_WITH_HEALTH,
    }
}

/// Reads a stored record: the 15-byte form, or JSON text from an earlier version.
pub(super) fn decode(value: ValueRef<'_>) -> Result<DeviceRecord, StoreError> {
    match value {
        ValueRef::Blob(bytes) => decode_bytes(bytes),
        ValueRef::Text(text) => from_json(std::str::from_utf8(text).map_err(backend)?),
        other => Err(unreadable(&format!("a {:?} value", other.data_type()))),
    }
}

fn decode_bytes(bytes: &[u8]) -> Result<DeviceRecord, StoreError> {
    if ![LEN, LEN_BEFORE_ATTRIBUTION, LEN_WITH_HEALTH].contains(&bytes.len()) {
        return Err(unreadable(&format!("{} bytes", bytes.len())));
    }
    let mut record = decode_counted(bytes)?;
    if let Some(rest) = bytes.get(LEN_BEFORE_ATTRIBUTION..LEN) {
        record.installed = installed_of(rest[0])?;
        record.workflow = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
        record.workflow_deployment = rest[5];
        record.last_report_at = time_of(&rest[6..14], "report time")?;
    }
    if let Some(health) = bytes.get(LEN..LEN_WITH_HEALTH) {
        decode_health(health, &mut record)?;
    }
    Ok(record)
}

/// The 49 bytes of health data: install time, then the connection (none, connected or
/// disconnected; its time; its sequence number).
fn decode_health(bytes: &[u8], record: &mut DeviceRecord) -> Result<(), StoreError> {
    record.succeeded_at = time_of(&bytes[..8], "install time")?;
    let connected = match bytes[8] {
        0 => return Ok(()),
        1 => true,
        2 => false,
        other => return Err(unreadable(&format!("connection code {other}"))),
    };
    let at = time_of(&bytes[9..17], "connection time")?
        .ok_or_else(|| unreadable("connection without a time"))?;
    let mut sequence = [0u8; 32];
    sequence.copy_from_slice(&bytes[17..49]);
    record.connection = Some(ConnectionState {
        connected,
        at,
        sequence: ConnectionSequence::from_bytes(sequence),
    });
    Ok(())
}

/// The first 15 bytes: what every version wrote.
fn decode_counted(bytes: &[u8]) -> Result<DeviceRecord, StoreError> {
    let flag = |bit: u8| bytes[14] & (1 << bit) != 0;
    Ok(DeviceRecord {
        wave: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        version: u64::from_le_bytes([
            bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11],
        ]),
        forward: outcome_of(bytes[12])?,
        rollback: outcome_of(bytes[13])?,
        forward_polled: flag(0),
        rollback_polled: flag(1),
        forward_reported: flag(2),
        rollback_reported: flag(3),
        ..DeviceRecord::new(0)
    })
}

fn installed_code(installed: Installed) -> u8 {
    match installed {
        Installed::Unknown => 0,
        Installed::Update => 1,
        Installed::RollbackUpdate => 2,
        Installed::Other => 3,
    }
}

fn installed_of(code: u8) -> Result<Installed, StoreError> {
    Ok(match code {
        0 => Installed::Unknown,
        1 => Installed::Update,
        2 => Installed::RollbackUpdate,
        3 => Installed::Other,
        other => return Err(unreadable(&format!("installed code {other}"))),
    })
}

fn unreadable(what: &str) -> StoreError {
    StoreError::Backend(format!("stored device record unreadable: {what}"))
}

fn outcome_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::NotReported => 0,
        Outcome::InProgress => 1,
        Outcome::Succeeded => 2,
        Outcome::Failed => 3,
        Outcome::TimedOut => 4,
        Outcome::Unhealthy => 5,
    }
}

fn outcome_of(code: u8) -> Result<Outcome, StoreError> {
    Ok(match code {
        0 => Outcome::NotReported,
        1 => Outcome::InProgress,
        2 => Outcome::Succeeded,
        3 => Outcome::Failed,
        4 => Outcome::TimedOut,
        5 => Outcome::Unhealthy,
        other => return Err(unreadable(&format!("outcome code {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_record() -> Vec<DeviceRecord> {
        let outcomes = [
            Outcome::NotReported,
            Outcome::InProgress,
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::TimedOut,
            Outcome::Unhealthy,
        ];
        let mut records = Vec::new();
        for (i, (forward, rollback)) in outcomes
            .iter()
            .flat_map(|f| outcomes.iter().map(move |r| (*f, *r)))
            .enumerate()
        {
            for flags in 0..16u8 {
                records.push(DeviceRecord {
                    wave: i as u32 * 7919,
                    version: u64::MAX - i as u64,
                    forward,
                    rollback,
                    forward_polled: flags & 1 != 0,
                    rollback_polled: flags & 2 != 0,
                    forward_reported: flags & 4 != 0,
                    rollback_reported: flags & 8 != 0,
                    installed: [
                        Installed::Unknown,
                        Installed::Update,
                        Installed::RollbackUpdate,
                        Installed::Other,
                    ][usize::from(flags) % 4],
                    workflow: u32::from(flags) * 0x0101_0101,
                    workflow_deployment: flags.wrapping_mul(17),
                    last_report_at: (flags % 3 != 0).then(|| {
                        DateTime::<Utc>::from_timestamp_millis(1_790_000_000_123 + i64::from(flags))
                            .expect("time")
                    }),
                    succeeded_at: (flags % 5 == 1).then(|| {
                        DateTime::<Utc>::from_timestamp_millis(1_790_000_100_000 + i64::from(flags))
                            .expect("time")
                    }),
                    connection: (flags % 4 != 0).then(|| ConnectionState {
                        connected: flags % 2 == 0,
                        at: DateTime::<Utc>::from_timestamp_millis(1_790_000_200_000)
                            .expect("time"),
                        sequence: ConnectionSequence::parse(&format!(
                            "000000000000000001D4132452F67CE2000000020000000000000000000000{flags:02X}"
                        ))
                        .expect("sequence"),
                    }),
                });
            }
        }
        records
    }

    #[test]
    fn every_record_reads_back_as_written() {
        for record in every_record() {
            let bytes = encode(&record);
            assert_eq!(decode(ValueRef::Blob(&bytes)), Ok(record));
        }
    }

    #[test]
    fn records_written_as_json_are_still_read() {
        for record in every_record() {
            let json = serde_json::to_string(&record).expect("json");
            assert_eq!(decode(ValueRef::Text(json.as_bytes())), Ok(record));
        }
    }

    #[test]
    fn records_written_before_attribution_are_still_read() {
        for record in every_record() {
            let bytes = encode(&record);
            let before = decode(ValueRef::Blob(&bytes[..LEN_BEFORE_ATTRIBUTION])).expect("read");
            assert_eq!(
                before,
                DeviceRecord {
                    installed: Installed::Unknown,
                    workflow: 0,
                    workflow_deployment: 0,
                    last_report_at: None,
                    succeeded_at: None,
                    connection: None,
                    ..record
                }
            );
        }
    }

    #[test]
    fn damaged_records_are_errors() {
        let mut bytes = encode(&every_record()[0]).to_vec();
        bytes[12] = 9;
        assert!(decode(ValueRef::Blob(&bytes)).is_err());
        assert!(decode(ValueRef::Blob(&bytes[..14])).is_err());
        assert!(decode(ValueRef::Integer(3)).is_err());
    }
}
