//! The floor the Table store is measured against (`cargo bench --bench e2e`): device rows,
//! shaped as the store writes them, sent as entity group transactions of 100 upserts in one
//! rollout's partition by a few concurrent writers, through the store's own client. Nothing
//! is read and nothing is decided: it is as fast as the service takes writes.

use super::batch::{Operation, Outcome, MAX_OPERATIONS};
use super::client::Client;
use super::entity::{entity, key, put_doc};
use super::write::device_row;
use crate::store::StoreError;
use rollout_core::{DeviceRecord, Outcome as DeviceOutcome};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What one floor run did.
#[derive(Debug, Clone, Copy)]
pub struct FloorRun {
    /// Entities written.
    pub entities: usize,
    /// Entity group transactions sent.
    pub transactions: usize,
    /// Wall-clock time from the first request to the last answer.
    pub elapsed: Duration,
}

impl FloorRun {
    /// Entities written per second.
    pub fn per_second(&self) -> f64 {
        self.entities as f64 / self.elapsed.as_secs_f64()
    }
}

/// Writes `devices` device rows into the partition of rollout `rollout` of table `table`
/// (created if missing), 100 per transaction, `writers` transactions in flight. Each row is a
/// record as a report in progress leaves it, so entity sizes match the service's writes.
pub async fn write_device_rows(
    connection_string: &str,
    table: &str,
    rollout: &str,
    devices: &[String],
    writers: usize,
) -> Result<FloorRun, StoreError> {
    let client = Arc::new(Client::with_connection_string(connection_string)?);
    client.create_table(table).await?;
    let partition = key(rollout);
    let mut record = DeviceRecord::new(0);
    record.version = 5;
    record.forward = DeviceOutcome::InProgress;
    record.last_report_at = chrono::DateTime::from_timestamp(1_795_000_000, 0);
    let mut transactions: Vec<Vec<Operation>> = Vec::new();
    for chunk in devices.chunks(MAX_OPERATIONS) {
        let mut operations = Vec::with_capacity(chunk.len());
        for device in chunk {
            let mut row = entity(&partition, &device_row(device));
            row.insert("Device".into(), device.as_str().into());
            put_doc(&mut row, &record)?;
            operations.push(Operation::Upsert(row));
        }
        transactions.push(operations);
    }
    let transactions = Arc::new(transactions);
    let next = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers.max(1) {
        let (client, table, transactions, next) = (
            client.clone(),
            table.to_string(),
            transactions.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(operations) = transactions.get(index) else {
                    return Ok::<(), StoreError>(());
                };
                if let Outcome::Failed {
                    status,
                    code,
                    message,
                } = client.batch(&table, operations).await?
                {
                    return Err(StoreError::Backend(format!(
                        "floor transaction: {status} {code} {message}"
                    )));
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(StoreError::from)??;
    }
    Ok(FloorRun {
        entities: devices.len(),
        transactions: transactions.len(),
        elapsed: started.elapsed(),
    })
}
