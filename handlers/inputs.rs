//! Where decoded trigger inputs go: the seam between the trigger adapters and the service.
//!
//! Adapters turn host payloads into [`Delivery`] values and hand them to an [`InputSink`].
//! The service shell (load, step the engine, store, run effects) is the production sink;
//! [`RecordingSink`] keeps deliveries in memory for tests and local inspection.

use crate::decode::timer::TimerTick;
use crate::decode::twin_change::TwinChange;
use crate::decode::ItemError;
use crate::host::InvocationContext;
use serde::Serialize;
use std::sync::Mutex;

/// A decoded input that can move a rollout.
// Device reports dominate by far; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "input", rename_all = "camelCase")]
pub enum TriggerInput {
    /// An Update Manager maintenance event.
    Maintenance(crate::decode::event_grid::MaintenanceEvent),
    /// A twin change carrying a Device Update agent report.
    DeviceReport(TwinChange),
    /// A device connected or disconnected (IoT Hub via Event Grid).
    Connection(crate::decode::device_events::ConnectionEvent),
    /// A timer firing.
    Tick(TimerTick),
}

/// What one invocation delivers: usable inputs and the items that could not be used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delivery {
    /// Inputs to act on, in arrival order.
    pub inputs: Vec<TriggerInput>,
    /// Items that should have been usable but were not: to be dead-lettered.
    pub rejected: Vec<ItemError>,
}

/// Accepts deliveries. An error means "nothing was kept, try again": the invocation fails
/// and the host's retry policy (or the event source) redelivers.
#[async_trait::async_trait]
pub trait InputSink: Send + Sync + 'static {
    /// Takes one invocation's delivery.
    async fn accept(&self, context: &InvocationContext, delivery: Delivery) -> anyhow::Result<()>;
}

/// Logs every delivery; the sink used until the service shell is wired in.
#[derive(Debug, Default)]
pub struct LoggingSink;

#[async_trait::async_trait]
impl InputSink for LoggingSink {
    async fn accept(&self, _context: &InvocationContext, delivery: Delivery) -> anyhow::Result<()> {
        for input in &delivery.inputs {
            tracing::debug!(input = ?input, "input accepted");
        }
        for rejected in &delivery.rejected {
            tracing::warn!(index = rejected.index, reason = %rejected.reason, "item rejected");
        }
        Ok(())
    }
}

/// Keeps every delivery in memory, with the invocation it came from.
#[derive(Debug, Default)]
pub struct RecordingSink {
    deliveries: Mutex<Vec<(InvocationContext, Delivery)>>,
}

impl RecordingSink {
    /// Everything delivered so far, oldest first.
    pub fn deliveries(&self) -> Vec<(InvocationContext, Delivery)> {
        self.deliveries
            .lock()
            .map(|guard| guard.clone())
            .unwrap_or_default()
    }

    /// All inputs delivered so far, flattened.
    pub fn inputs(&self) -> Vec<TriggerInput> {
        self.deliveries()
            .into_iter()
            .flat_map(|(_, delivery)| delivery.inputs)
            .collect()
    }
}

#[async_trait::async_trait]
impl InputSink for RecordingSink {
    async fn accept(&self, context: &InvocationContext, delivery: Delivery) -> anyhow::Result<()> {
        self.deliveries
            .lock()
            .map_err(|_| anyhow::anyhow!("recording sink poisoned"))?
            .push((context.clone(), delivery));
        Ok(())
    }
}
