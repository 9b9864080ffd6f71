//! Device reports into rollouts: each batch routed by device (with the devices' records,
//! read in the same store call), grouped per rollout, and handed to the rollout's writer.

use super::{Preloaded, RolloutService, ServiceError};
use crate::decode::agent_report::AgentState;
use crate::decode::twin_change::TwinChange;
use crate::host::InvocationContext;
use rollout_core::{DeviceId, DeviceReport, Input};
use std::collections::{BTreeMap, HashMap};

/// The engine's view of a twin change; `None` when it carries no agent state or version.
pub fn device_report(change: &TwinChange) -> Option<DeviceReport> {
    let report = change.device_update.as_ref()?;
    let agent_state = match report.state? {
        AgentState::Idle => 0,
        AgentState::DeploymentInProgress => 6,
        AgentState::Failed => 255,
        AgentState::Other(code) => code,
    };
    Some(DeviceReport {
        device: DeviceId::new(change.device_id.as_str()),
        twin_version: change.twin_version.or(change.reported_version)?,
        agent_state,
        result_code: report
            .last_install_result
            .as_ref()
            .and_then(|r| r.result_code),
        installed_update: report.installed_update_id.clone(),
        workflow: report.workflow.as_ref().and_then(|w| w.id.clone()),
        reported_at: change.operation_time.or(change.enqueued_time),
    })
}

/// One rollout's share of a batch: its reports, the twin changes they came from (for dead
/// letters), and their devices' records as routing read them.
#[derive(Default)]
struct RolloutReports<'a> {
    inputs: Vec<Input>,
    changes: Vec<&'a TwinChange>,
    records: Preloaded,
}

impl RolloutService {
    /// Applies device reports to the rollouts their devices belong to.
    pub async fn deliver_reports(
        &self,
        context: &InvocationContext,
        changes: &[TwinChange],
    ) -> Result<(), ServiceError> {
        let reports: Vec<(DeviceReport, &TwinChange)> = changes
            .iter()
            .filter_map(|change| device_report(change).map(|report| (report, change)))
            .collect();
        self.metrics
            .ordinary_traffic
            .add((changes.len() - reports.len()) as u64);
        let by_rollout = self.route(reports).await?;
        for (rollout, share) in by_rollout {
            // the rollout's writer cuts them into commits the store takes
            self.apply_share(
                context,
                &rollout,
                share.inputs,
                share.records,
                &share.changes,
            )
            .await?;
        }
        Ok(())
    }

    /// Applies a rollout's share of the reports; reports for a rollout that does
    /// not exist become dead letters.
    async fn apply_share(
        &self,
        context: &InvocationContext,
        rollout: &str,
        inputs: Vec<Input>,
        records: Preloaded,
        changes: &[&TwinChange],
    ) -> Result<(), ServiceError> {
        let count = inputs.len() as u64;
        match self.apply_reports(rollout, inputs, records).await {
            Ok(produced_effects) => {
                self.metrics.reports_applied.add(count);
                if produced_effects {
                    self.run_effects(rollout).await?;
                }
                Ok(())
            }
            Err(ServiceError::NotFound(_)) => {
                for change in changes {
                    let raw = serde_json::to_string(change).unwrap_or_default();
                    let reason = format!(
                        "device {} is indexed to rollout {rollout}, which does not exist",
                        change.device_id
                    );
                    self.dead_letter(context.function, &context.invocation_id, &reason, &raw)
                        .await?;
                }
                Ok(())
            }
            Err(other) => Err(other),
        }
    }
}

impl RolloutService {
    /// Shares reports out by the rollout their device belongs to, with the devices' records
    /// read in the same store call; reports of devices in no rollout are counted as ordinary
    /// traffic.
    async fn route<'a>(
        &self,
        reports: Vec<(DeviceReport, &'a TwinChange)>,
    ) -> Result<BTreeMap<String, RolloutReports<'a>>, ServiceError> {
        let devices: Vec<String> = reports.iter().map(|(r, _)| r.device.to_string()).collect();
        let mut routes: HashMap<String, _> = self
            .store
            .route_devices(devices)
            .await?
            .into_iter()
            .map(|routed| (routed.device, (routed.rollout, routed.record)))
            .collect();
        let mut by_rollout: BTreeMap<String, RolloutReports<'a>> = BTreeMap::new();
        for (report, change) in reports {
            let Some((rollout, record)) = routes.get_mut(report.device.as_str()) else {
                self.metrics.ordinary_traffic.add(1);
                continue;
            };
            let share = by_rollout.entry(rollout.clone()).or_default();
            if let Some(record) = record.take() {
                let device = report.device.clone();
                share
                    .records
                    .insert_loaded(device, record.value, record.version);
            }
            share.changes.push(change);
            share.inputs.push(Input::DeviceReport(report));
        }
        Ok(by_rollout)
    }
}

/// The records of some of the reports, out of those routing read for the whole batch.
pub(super) fn records_of(records: &Preloaded, inputs: &[Input]) -> Preloaded {
    let mut taken = Preloaded::with_capacity(inputs.len());
    for input in inputs {
        if let Input::DeviceReport(report) = input {
            if let Some((record, version)) = records.loaded(report.device.as_str()) {
                taken.insert_loaded(report.device.clone(), *record, version.clone());
            }
        }
    }
    taken
}
