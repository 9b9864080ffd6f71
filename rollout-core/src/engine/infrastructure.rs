//! The infrastructure gate: host patches before devices, and holding runs while devices are
//! at risk.

use crate::decision_kind::DecisionKind;
use crate::effect::{Effect, EffectKind};
use crate::ids::EffectId;
use crate::input::{MaintenanceRun, PatchOutcome};
use crate::plan::InfrastructureFailure;
use crate::rollout::Rollout;
use crate::state::{InfrastructureProgress, PauseCause, PauseRecord, RolloutState};
use chrono::{DateTime, Duration, Utc};

/// Update Manager accepts a cancellation until 10 minutes before the run starts.
const CANCEL_LEAD_MINUTES: i64 = 10;

impl Rollout {
    /// Pending / PatchingInfrastructure: open the gate, then start the current wave.
    pub(super) fn advance_gate(&mut self, effects: &mut Vec<Effect>) -> bool {
        if !self.infrastructure.gate_open {
            if self.plan.infrastructure.is_none() {
                self.infrastructure.gate_open = true;
            } else {
                return self.advance_infrastructure(effects);
            }
        }
        self.try_start_wave(effects)
    }

    fn advance_infrastructure(&mut self, effects: &mut Vec<Effect>) -> bool {
        let Some(plan) = self.plan.infrastructure.clone() else {
            return false;
        };
        if !self.infrastructure.started {
            self.start_infrastructure(&plan, effects);
            return true;
        }
        let Some(tally) = self.infrastructure.tally() else {
            return false;
        };
        let total = tally.total;
        if tally.failed.is_empty() {
            self.infrastructure.gate_open = true;
            let warned = tally.warned;
            let reason = format!(
                "infrastructure: all {total} host patch runs succeeded ({warned} with warnings)"
            );
            self.decide(
                effects,
                DecisionKind::InfrastructurePassed,
                None,
                None,
                reason,
            );
            return true;
        }
        let summary = format!(
            "infrastructure: {} of {total} host patch runs failed ({})",
            tally.failed.len(),
            tally.failed.join(", ")
        );
        self.infrastructure_failed(plan.on_failure, summary, effects);
        true
    }

    /// Host patch runs failed: go on with a warning or hold the devices, as the plan says.
    fn infrastructure_failed(
        &mut self,
        on_failure: InfrastructureFailure,
        summary: String,
        effects: &mut Vec<Effect>,
    ) {
        match on_failure {
            InfrastructureFailure::Warn => {
                self.infrastructure.gate_open = true;
                let reason = format!("{summary}; continuing to the devices (onFailure: warn)");
                self.decide(
                    effects,
                    DecisionKind::InfrastructureWarned,
                    None,
                    None,
                    reason,
                );
            }
            InfrastructureFailure::Block => {
                self.pause = Some(PauseRecord {
                    from: RolloutState::PatchingInfrastructure,
                    cause: PauseCause::InfrastructureFailed,
                });
                self.state = RolloutState::Paused;
                let reason = format!(
                    "{summary}; holding the devices until an operator resumes (onFailure: block)"
                );
                self.decide(
                    effects,
                    DecisionKind::InfrastructureFailed,
                    None,
                    None,
                    reason,
                );
            }
        }
    }

    fn start_infrastructure(
        &mut self,
        plan: &crate::plan::InfrastructurePlan,
        effects: &mut Vec<Effect>,
    ) {
        self.infrastructure.started = true;
        for configuration in &plan.maintenance_configuration_ids {
            self.infrastructure
                .configurations
                .insert(configuration.to_ascii_lowercase(), None);
        }
        for machine in &plan.machines {
            self.infrastructure.machines.insert(machine.clone(), None);
            let id = EffectId::install_patches(&self.id, machine);
            self.emit(
                effects,
                id,
                EffectKind::InstallPatches {
                    machine: machine.clone(),
                },
            );
        }
        self.state = RolloutState::PatchingInfrastructure;
        let reason = format!(
            "infrastructure: patching {} machine(s), waiting for {} maintenance run(s)",
            plan.machines.len(),
            plan.maintenance_configuration_ids.len()
        );
        self.decide(
            effects,
            DecisionKind::InfrastructureStarted,
            None,
            None,
            reason,
        );
    }

    fn plans_configuration(&self, configuration_id: &str) -> bool {
        self.plan.infrastructure.as_ref().is_some_and(|infra| {
            infra
                .maintenance_configuration_ids
                .iter()
                .any(|c| c.eq_ignore_ascii_case(configuration_id))
        })
    }

    /// PreMaintenanceEvent: cancel the run if devices are mid-deployment, until its cut-off.
    pub(super) fn on_maintenance_starting(
        &mut self,
        run: &MaintenanceRun,
        effects: &mut Vec<Effect>,
    ) {
        if !self.plans_configuration(&run.configuration_id)
            || !self.applied.insert(format!("pre:{}", run.run_id))
        {
            return;
        }
        if !self.devices_at_risk() {
            let reason = format!(
                "infrastructure: maintenance run {} is starting",
                short_name(&run.run_id)
            );
            self.decide(
                effects,
                DecisionKind::InfrastructureRunStarting,
                None,
                None,
                reason,
            );
            return;
        }
        self.hold_run(run, effects);
    }

    /// Devices are mid-deployment: cancel the run while its cut-off allows, else say it is
    /// too late.
    fn hold_run(&mut self, run: &MaintenanceRun, effects: &mut Vec<Effect>) {
        let cutoff = cancellation_cutoff(run);
        if let Some((cutoff, bound)) = cutoff.filter(|(cutoff, _)| self.now > *cutoff) {
            let reason = format!(
                "infrastructure: maintenance run {} starts while devices are deploying, but it is past its cancellation cut-off {} ({bound})",
                short_name(&run.run_id),
                cutoff.to_rfc3339()
            );
            let too_late = DecisionKind::InfrastructureHoldTooLate;
            self.decide(effects, too_late, None, None, reason);
            return;
        }
        let kind = EffectKind::CancelMaintenanceRun {
            run_id: run.run_id.clone(),
        };
        self.emit(effects, EffectId::cancel_run(&run.run_id), kind);
        let within = cutoff.map_or(String::new(), |(cutoff, bound)| {
            format!(" (cancellable until {}, {bound})", cutoff.to_rfc3339())
        });
        let reason = format!(
            "infrastructure: holding maintenance run {} because devices are deploying; cancelling it{within}",
            short_name(&run.run_id)
        );
        self.decide(
            effects,
            DecisionKind::InfrastructureHold,
            None,
            None,
            reason,
        );
    }

    /// PostMaintenanceEvent: record the run's outcome for the gate.
    pub(super) fn on_maintenance_finished(
        &mut self,
        run: &MaintenanceRun,
        outcome: PatchOutcome,
        effects: &mut Vec<Effect>,
    ) {
        if !self.plans_configuration(&run.configuration_id)
            || !self.applied.insert(format!("post:{}", run.run_id))
        {
            return;
        }
        let key = run.configuration_id.to_ascii_lowercase();
        if let Some(slot) = self.infrastructure.configurations.get_mut(&key) {
            if !self.infrastructure.gate_open {
                *slot = Some(outcome);
            }
        }
        let reason = format!(
            "infrastructure: maintenance run {} finished: {outcome:?}",
            short_name(&run.run_id)
        );
        self.decide(
            effects,
            DecisionKind::InfrastructureRunFinished,
            None,
            None,
            reason,
        );
    }

    /// installPatches finished on a machine.
    pub(super) fn on_machine_patched(
        &mut self,
        machine: &str,
        outcome: PatchOutcome,
        detail: &str,
        effects: &mut Vec<Effect>,
    ) {
        let Some(key) = self
            .infrastructure
            .machines
            .keys()
            .find(|m| m.eq_ignore_ascii_case(machine))
            .cloned()
        else {
            return;
        };
        if self
            .infrastructure
            .machines
            .get(&key)
            .copied()
            .flatten()
            .is_some()
        {
            return;
        }
        self.infrastructure
            .machines
            .insert(key.clone(), Some(outcome));
        let reason = format!(
            "infrastructure: {} patched: {outcome:?}{}",
            short_name(&key),
            detail_suffix(detail)
        );
        self.decide(
            effects,
            DecisionKind::InfrastructureMachinePatched,
            None,
            None,
            reason,
        );
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// The last path segment of a resource id, for readable decisions.
pub(super) fn short_name(resource_id: &str) -> String {
    resource_id
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(resource_id)
        .to_string()
}

/// When a run can still be cancelled: the earlier of the event's `CancellationCutOffDateTime`
/// and 10 minutes before its start (Update Manager's documented limit; its own example event
/// names a cut-off 1 minute before the start, so neither alone is trusted), with which bound
/// applied.
fn cancellation_cutoff(run: &MaintenanceRun) -> Option<(DateTime<Utc>, &'static str)> {
    let lead = run
        .start
        .map(|start| start - Duration::minutes(CANCEL_LEAD_MINUTES));
    match (run.cancellation_cutoff, lead) {
        (Some(event), Some(lead)) if lead < event => {
            Some((lead, "10 minutes before the run's start"))
        }
        (Some(event), _) => Some((event, "the event's CancellationCutOffDateTime")),
        (None, Some(lead)) => Some((lead, "10 minutes before the run's start")),
        (None, None) => None,
    }
}

/// What the host patch runs came to, once every run reported.
struct Tally {
    /// Short names of the runs and machines that failed or were cancelled.
    failed: Vec<String>,
    /// Runs that succeeded with warnings.
    warned: usize,
    /// Runs and machines.
    total: usize,
}

impl InfrastructureProgress {
    /// The tally of every run and machine, `None` while one has not reported.
    fn tally(&self) -> Option<Tally> {
        let results: Vec<_> = self.configurations.iter().chain(&self.machines).collect();
        if results.iter().any(|(_, outcome)| outcome.is_none()) {
            return None;
        }
        let failed = results
            .iter()
            .filter(|(_, o)| matches!(o, Some(PatchOutcome::Failed | PatchOutcome::Cancelled)))
            .map(|(name, _)| short_name(name))
            .collect();
        let warned = results
            .iter()
            .filter(|(_, o)| **o == Some(PatchOutcome::SucceededWithWarnings))
            .count();
        Some(Tally {
            failed,
            warned,
            total: results.len(),
        })
    }
}
