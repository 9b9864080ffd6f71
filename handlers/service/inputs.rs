//! Trigger inputs into rollouts: device reports routed by device, maintenance events by
//! configuration, ticks to every active rollout; unusable items become dead letters.

use super::{Preloaded, RolloutService, ServiceError};
use crate::decode::agent_report::AgentState;
use crate::decode::event_grid::{MaintenanceEvent, MaintenancePhase, RunStatus};
use crate::decode::twin_change::TwinChange;
use crate::host::InvocationContext;
use crate::inputs::{Delivery, InputSink, TriggerInput};
use crate::store::Versioned;
use rollout_core::{DeviceRecord, DeviceReport, Input, MaintenanceRun, PatchOutcome, Rollout};
use std::collections::{BTreeMap, HashMap};

/// Most polled devices applied per commit (bounds the records one step loads).
const POLLED_PER_COMMIT: usize = 1_000;

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
        device: change.device_id.clone(),
        twin_version: change.twin_version.or(change.reported_version)?,
        agent_state,
        result_code: report
            .last_install_result
            .as_ref()
            .and_then(|r| r.result_code),
        installed_update: report.installed_update_id.clone(),
    })
}

/// The preloaded records of one commit's reports (a device reporting twice in the batch
/// shares its record).
fn take_records(preloaded: &mut Preloaded, inputs: &[Input]) -> Preloaded {
    let mut taken = Preloaded::with_capacity(inputs.len());
    for input in inputs {
        if let Input::DeviceReport(report) = input {
            if let Some(record) = preloaded.get(&report.device) {
                taken.insert(report.device.clone(), record.clone());
            }
        }
    }
    taken
}

fn patch_outcome(status: Option<&RunStatus>) -> PatchOutcome {
    match status {
        Some(RunStatus::Succeeded) => PatchOutcome::Succeeded,
        Some(RunStatus::CompletedWithWarnings) => PatchOutcome::SucceededWithWarnings,
        Some(RunStatus::Cancelled) => PatchOutcome::Cancelled,
        // not documented beyond Succeeded: anything else did not patch cleanly
        _ => PatchOutcome::Failed,
    }
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
        let devices: Vec<String> = reports.iter().map(|(r, _)| r.device.clone()).collect();
        let mut routes: HashMap<String, (String, Option<Versioned<DeviceRecord>>)> = self
            .store
            .route_devices(&devices)
            .await?
            .into_iter()
            .map(|routed| (routed.device, (routed.rollout, routed.record)))
            .collect();
        let mut by_rollout: BTreeMap<String, Vec<(Input, &TwinChange)>> = BTreeMap::new();
        let mut records: HashMap<String, Preloaded> = HashMap::new();
        for (report, change) in reports {
            let Some((rollout, record)) = routes.get_mut(&report.device) else {
                self.metrics.ordinary_traffic.add(1);
                continue;
            };
            if let Some(record) = record.take() {
                let preloaded = records.entry(rollout.clone()).or_default();
                preloaded.insert(report.device.clone(), record);
            }
            by_rollout
                .entry(rollout.clone())
                .or_default()
                .push((Input::DeviceReport(report), change));
        }
        let per_commit = self.store.max_device_writes().max(1);
        for (rollout, reports) in by_rollout {
            let mut preloaded = records.remove(&rollout).unwrap_or_default();
            for chunk in reports.chunks(per_commit) {
                let inputs: Vec<Input> = chunk.iter().map(|(input, _)| input.clone()).collect();
                let count = inputs.len() as u64;
                let chunk_records = take_records(&mut preloaded, &inputs);
                match self.apply_reports(&rollout, inputs, chunk_records).await {
                    Ok(produced_effects) => {
                        self.metrics.reports_applied.add(count);
                        if produced_effects {
                            self.run_effects(&rollout).await?;
                        }
                    }
                    Err(ServiceError::NotFound(_)) => {
                        for (_, change) in chunk {
                            let raw = serde_json::to_string(change).unwrap_or_default();
                            let reason = format!(
                                "device {} is indexed to rollout {rollout}, which does not exist",
                                change.device_id
                            );
                            self.dead_letter(
                                context.function,
                                &context.invocation_id,
                                &reason,
                                &raw,
                            )
                            .await?;
                        }
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(())
    }

    /// Applies a maintenance event to every active rollout that names its configuration.
    pub async fn deliver_maintenance(
        &self,
        event: &MaintenanceEvent,
    ) -> Result<usize, ServiceError> {
        let run = MaintenanceRun {
            run_id: event.correlation_id.clone(),
            configuration_id: event.maintenance_configuration_id.clone(),
            start: event.start,
            cancellation_cutoff: event.cancellation_cutoff,
        };
        let input = match event.phase {
            MaintenancePhase::Pre => Input::MaintenanceStarting(run),
            MaintenancePhase::Post => Input::MaintenanceFinished {
                run,
                outcome: patch_outcome(event.status.as_ref()),
            },
        };
        let mut delivered = 0;
        for rollout in self.store.list_rollouts().await? {
            let names = rollout.plan.infrastructure.as_ref().is_some_and(|infra| {
                infra
                    .maintenance_configuration_ids
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&event.maintenance_configuration_id))
            });
            if rollout.state.is_terminal() || !names {
                continue;
            }
            let applied = self
                .apply(&rollout.id, std::slice::from_ref(&input))
                .await?;
            if !applied.effects.is_empty() {
                self.run_effects(&rollout.id).await?;
            }
            delivered += 1;
        }
        if delivered == 0 {
            self.metrics.maintenance_skipped.add(1);
        }
        Ok(delivered)
    }

    /// The timer: every active rollout judges "now" and reads Device Update's status for
    /// reports that never came, then every pending effect runs.
    pub async fn tick(&self) -> Result<(), ServiceError> {
        for rollout in self.store.list_rollouts().await? {
            if rollout.state.is_terminal() {
                continue;
            }
            let applied = self.apply(&rollout.id, &[Input::Tick]).await?;
            self.reconcile(&applied.rollout).await?;
        }
        self.run_all_effects().await?;
        Ok(())
    }

    /// Deployment status as a second source of truth: the devices Device Update counts as
    /// finished are applied in commits of at most [`POLLED_PER_COMMIT`]; the engine fills in
    /// only those whose own final report never came. A failed read is logged and retried on
    /// the next tick.
    async fn reconcile(&self, rollout: &Rollout) -> Result<(), ServiceError> {
        for target in rollout.deployments_to_poll() {
            let listed = self
                .executor
                .finished_devices(&target.group, &target.deployment_id, target.known_finished)
                .await;
            let devices = match listed {
                Ok(Some(devices)) => devices,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(rollout = %rollout.id, deployment = %target.deployment_id, %error, "deployment status not read");
                    continue;
                }
            };
            self.metrics.devices_polled.add(devices.len() as u64);
            let per_commit = self.store.max_device_writes().clamp(1, POLLED_PER_COMMIT);
            for chunk in devices.chunks(per_commit) {
                let input = Input::DeploymentStates {
                    deployment_id: target.deployment_id.clone(),
                    devices: chunk.to_vec(),
                };
                self.apply(&rollout.id, &[input]).await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl InputSink for RolloutService {
    async fn accept(&self, context: &InvocationContext, delivery: Delivery) -> anyhow::Result<()> {
        for rejected in &delivery.rejected {
            self.dead_letter(
                context.function,
                &context.invocation_id,
                &rejected.to_string(),
                &rejected.raw,
            )
            .await?;
        }
        let mut reports = Vec::new();
        for input in delivery.inputs {
            match input {
                TriggerInput::DeviceReport(change) => reports.push(change),
                TriggerInput::Maintenance(event) => {
                    self.deliver_maintenance(&event).await?;
                }
                TriggerInput::Tick(_) => self.tick().await?,
            }
        }
        if !reports.is_empty() {
            self.deliver_reports(context, &reports).await?;
        }
        Ok(())
    }
}
