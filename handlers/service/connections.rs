//! Device connection events into rollouts: each routed by device (with its record, read in
//! the same store call), grouped per rollout, and applied by the rollout's writer like
//! reports; events of devices in no rollout are counted as ordinary traffic.

use super::{Preloaded, RolloutService, ServiceError};
use crate::decode::device_events::{Connection, ConnectionEvent};
use crate::host::InvocationContext;
use rollout_core::{ConnectionReport, DeviceId, Input};
use std::collections::{BTreeMap, HashMap};

/// One rollout's share of a delivery.
#[derive(Default)]
struct Share<'a> {
    inputs: Vec<Input>,
    events: Vec<&'a ConnectionEvent>,
    records: Preloaded,
}

impl RolloutService {
    /// Applies connection events to the rollouts their devices belong to.
    pub async fn deliver_connections(
        &self,
        context: &InvocationContext,
        events: &[ConnectionEvent],
    ) -> Result<(), ServiceError> {
        for (rollout, share) in self.route_connections(events).await? {
            let count = share.inputs.len() as u64;
            match self
                .apply_reports(&rollout, share.inputs, share.records)
                .await
            {
                Ok(produced_effects) => {
                    self.metrics.reports_applied.add(count);
                    if produced_effects {
                        self.run_effects(&rollout).await?;
                    }
                }
                Err(ServiceError::NotFound(_)) => {
                    for event in share.events {
                        let raw = serde_json::to_string(event).unwrap_or_default();
                        let reason = format!(
                            "device {} is indexed to rollout {rollout}, which does not exist",
                            event.device_id
                        );
                        let (function, invocation) = (context.function, &context.invocation_id);
                        self.dead_letter(function, invocation, &reason, &raw)
                            .await?;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    async fn route_connections<'a>(
        &self,
        events: &'a [ConnectionEvent],
    ) -> Result<BTreeMap<String, Share<'a>>, ServiceError> {
        let devices: Vec<String> = events.iter().map(|e| e.device_id.clone()).collect();
        let mut routes: HashMap<String, _> = self
            .store
            .route_devices(devices)
            .await?
            .into_iter()
            .map(|routed| (routed.device, (routed.rollout, routed.record)))
            .collect();
        let now = self.clock.now();
        let mut shares: BTreeMap<String, Share<'a>> = BTreeMap::new();
        for event in events {
            let Some((rollout, record)) = routes.get_mut(&event.device_id) else {
                self.metrics.ordinary_traffic.add(1);
                continue;
            };
            let share = shares.entry(rollout.clone()).or_default();
            let device = DeviceId::new(event.device_id.as_str());
            if let Some(record) = record.take() {
                share
                    .records
                    .insert_loaded(device.clone(), record.value, record.version);
            }
            share.events.push(event);
            share.inputs.push(Input::DeviceConnection(ConnectionReport {
                device,
                connected: event.connection == Connection::Connected,
                sequence: event.sequence_number,
                at: event.event_time.unwrap_or(now),
            }));
        }
        Ok(shares)
    }
}
