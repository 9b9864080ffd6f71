//! Trigger inputs into rollouts: maintenance events by configuration, ticks to every active
//! rollout, device reports (routed in `reports`); unusable items become dead letters.

use super::{RolloutService, ServiceError};
use crate::decode::event_grid::{MaintenanceEvent, MaintenancePhase, RunStatus};
use crate::host::InvocationContext;
use crate::inputs::{Delivery, InputSink, TriggerInput};
use rollout_core::{Input, MaintenanceRun, PatchOutcome, Rollout};

/// Most polled devices applied per commit (bounds the records one step loads).
const POLLED_PER_COMMIT: usize = 1_000;
/// Most dead letters one tick deletes (a flood is pruned over several ticks).
const DEAD_LETTERS_PRUNED_PER_TICK: usize = 5_000;

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
            let names = rollout.plan().infrastructure.as_ref().is_some_and(|infra| {
                infra
                    .maintenance_configuration_ids
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&event.maintenance_configuration_id))
            });
            if rollout.state().is_terminal() || !names {
                continue;
            }
            let applied = self
                .apply(rollout.id().as_str(), std::slice::from_ref(&input))
                .await?;
            if !applied.effects.is_empty() {
                self.run_effects(rollout.id().as_str()).await?;
            }
            delivered += 1;
        }
        if delivered == 0 {
            self.metrics.maintenance_skipped.add(1);
        }
        Ok(delivered)
    }

    /// The timer: every active rollout judges "now" and reads Device Update's status for
    /// reports that never came, then every pending effect runs; and, whether or not that
    /// failed, the dead-letter retention is applied.
    pub async fn tick(&self) -> Result<(), ServiceError> {
        let ticked = self.tick_rollouts().await;
        self.prune_dead_letters().await;
        ticked
    }

    /// Deletes the dead letters past the retention, at most [`DEAD_LETTERS_PRUNED_PER_TICK`];
    /// a failure is logged and left to the next tick.
    async fn prune_dead_letters(&self) {
        let retention = self.dead_letter_retention;
        let policy = crate::store::DeadLetterRetention {
            received_before: self
                .clock
                .now()
                .checked_sub_signed(retention.max_age)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            keep: retention.max_count,
            at_most: DEAD_LETTERS_PRUNED_PER_TICK,
        };
        match self.store.prune_dead_letters(&policy).await {
            Ok(0) => {}
            Ok(pruned) => {
                self.metrics.dead_letters_pruned.add(pruned as u64);
                tracing::info!(pruned, "dead letters pruned");
            }
            Err(error) => {
                tracing::warn!(%error, "dead letters not pruned; the next tick tries again")
            }
        }
    }

    async fn tick_rollouts(&self) -> Result<(), ServiceError> {
        for rollout in self.store.list_rollouts().await? {
            if rollout.state().is_terminal() {
                continue;
            }
            let applied = self.apply(rollout.id().as_str(), &[Input::Tick]).await?;
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
            let overdue = self
                .gaps
                .overdue(target.deployment_id.as_str(), self.clock.now());
            // the devices are listed only once Device Update has counted more finished
            // devices than reported for a while: a report on its way is not "missed"
            let listed_above = if overdue {
                target.known_finished
            } else {
                u64::MAX
            };
            let polled = self
                .executor
                .poll_deployment(
                    target.group.as_str(),
                    target.deployment_id.as_str(),
                    listed_above,
                )
                .await;
            let polled = match polled {
                Ok(polled) => polled,
                Err(error) => {
                    tracing::warn!(rollout = %rollout.id(), deployment = %target.deployment_id, %error, "deployment status not read");
                    continue;
                }
            };
            let gap = polled.finished_count > target.known_finished;
            self.gaps.note(
                target.deployment_id.as_str(),
                gap && !overdue,
                self.clock.now(),
            );
            if let Some(error) = polled.failure {
                let input = Input::DeploymentFailed {
                    deployment_id: target.deployment_id.clone(),
                    error,
                };
                self.apply(rollout.id().as_str(), &[input]).await?;
            }
            let Some(devices) = polled.finished else {
                continue;
            };
            self.metrics.devices_polled.add(devices.len() as u64);
            let per_commit = self.store.max_device_writes().clamp(1, POLLED_PER_COMMIT);
            let parts = devices.len().div_ceil(per_commit).max(1);
            for (part, chunk) in devices.chunks(per_commit).enumerate() {
                let input = Input::DeploymentStates {
                    deployment_id: target.deployment_id.clone(),
                    devices: chunk.to_vec(),
                    last: part + 1 == parts,
                };
                self.apply(rollout.id().as_str(), &[input]).await?;
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
        let (mut reports, mut connections) = (Vec::new(), Vec::new());
        for input in delivery.inputs {
            match input {
                TriggerInput::DeviceReport(change) => reports.push(change),
                TriggerInput::Connection(event) => connections.push(event),
                TriggerInput::Maintenance(event) => {
                    self.deliver_maintenance(&event).await?;
                }
                TriggerInput::Tick(_) => self.tick().await?,
            }
        }
        if !reports.is_empty() {
            self.deliver_reports(context, &reports).await?;
        }
        if !connections.is_empty() {
            self.deliver_connections(context, &connections).await?;
        }
        Ok(())
    }
}
