//! What the operator API answers: rollouts, waves, decisions, compliance. Built from the
//! stored rollout; the OpenAPI document is generated from these types.

use rollout_core::{
    effective_outcome, Counts, Decision, DeviceRecord, Installed, Outcome, PatchOutcome, Rollout,
    RolloutPlan, RolloutState, UpdateId, WaveStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A rollout, its waves and its decision log.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    /// Rollout id.
    pub id: String,
    /// Plan name.
    pub name: String,
    /// Current state.
    pub state: RolloutState,
    /// Who created it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The wave in progress or next to start.
    pub current_wave: Option<String>,
    /// Each wave with its counts.
    pub waves: Vec<WaveView>,
    /// Host patching.
    pub infrastructure: Option<InfrastructureView>,
    /// The rollback, once opened.
    pub rollback: Option<RollbackView>,
    /// Effects issued and not yet reported back.
    pub pending_effects: usize,
    /// The plan as submitted.
    pub plan: RolloutPlan,
    /// Every decision, oldest first (on `GET /api/rollouts/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Decision>>,
}

/// One wave.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaveView {
    /// Wave name.
    pub name: String,
    /// Device Update group.
    pub device_group: String,
    /// Status.
    pub status: WaveStatus,
    /// Attempts started.
    pub attempt: u32,
    /// Current deployment id.
    pub deployment_id: Option<String>,
    /// Device counts for the plan's update.
    pub counts: Counts,
    /// Who approved its start.
    pub approved_by: Option<String>,
}

/// Host patching progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureView {
    /// Each maintenance configuration or machine and its result so far.
    pub hosts: Vec<HostView>,
    /// Whether the devices may go.
    pub gate_open: bool,
}

/// One host target.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Resource id.
    pub id: String,
    /// `maintenanceConfiguration` or `machine`.
    pub kind: String,
    /// `pending`, `succeeded`, `succeededWithWarnings`, `failed` or `cancelled`.
    pub result: String,
}

/// The rollback.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackView {
    /// When it opened.
    pub started_at: String,
    /// Why.
    pub reason: String,
    /// Each touched group.
    pub groups: Vec<RollbackGroupView>,
}

/// One group being rolled back.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackGroupView {
    /// Device Update group.
    pub device_group: String,
    /// Rollback deployment id.
    pub deployment_id: String,
    /// Counts for the rollback update.
    pub counts: Counts,
    /// `true` done, `false` failed, absent while running.
    pub passed: Option<bool>,
}

/// A line of the rollout list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    /// Rollout id.
    pub id: String,
    /// Plan name.
    pub name: String,
    /// State.
    pub state: RolloutState,
    /// The update it deploys.
    pub update: UpdateId,
    /// Who created it.
    pub created_by: String,
    /// When created.
    pub created_at: String,
    /// The wave in progress or next.
    pub current_wave: Option<String>,
}

/// `{"value": [...]}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RolloutList {
    /// The rollouts.
    pub value: Vec<RolloutSummary>,
}

/// The body of an operator command.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CommandBody {
    /// Why (kept in the audit log).
    pub reason: String,
}

/// The audit trail of a rollout.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    /// Decisions, oldest first.
    pub value: Vec<Decision>,
}

/// Hosts and devices side by side, per rollout.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceView {
    /// One entry per rollout that is active or was the latest for its groups.
    pub rollouts: Vec<RolloutCompliance>,
}

/// One rollout's compliance.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCompliance {
    /// Rollout id.
    pub rollout_id: String,
    /// State.
    pub state: RolloutState,
    /// The update devices should have (the rollback update once rolled back).
    pub target: UpdateId,
    /// Hosts.
    pub hosts: Vec<HostView>,
    /// Devices per group.
    pub devices: Vec<GroupCompliance>,
}

/// Devices of one group against the target.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupCompliance {
    /// Device Update group.
    pub device_group: String,
    /// Devices in the group.
    pub total: u64,
    /// On the target update.
    pub on_target: u64,
    /// Not there yet (not reported or in progress).
    pub behind: u64,
    /// Failed.
    pub failed: u64,
    /// Did not finish in time.
    pub timed_out: u64,
    /// Installed, then disconnected too long while observed (a wave's health gate).
    pub unhealthy: u64,
}

/// Where one device stands against the update it should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeviceStatus {
    /// Runs the target update.
    OnTarget,
    /// Not there yet: not reported, or in progress.
    Behind,
    /// Failed.
    Failed,
    /// Did not finish in time.
    TimedOut,
    /// Installed, then disconnected too long while its wave's health gate observed it.
    Unhealthy,
}

impl DeviceStatus {
    /// The name used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::OnTarget => "onTarget",
            DeviceStatus::Behind => "behind",
            DeviceStatus::Failed => "failed",
            DeviceStatus::TimedOut => "timedOut",
            DeviceStatus::Unhealthy => "unhealthy",
        }
    }

    fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Succeeded => DeviceStatus::OnTarget,
            Outcome::Failed => DeviceStatus::Failed,
            Outcome::TimedOut => DeviceStatus::TimedOut,
            Outcome::Unhealthy => DeviceStatus::Unhealthy,
            Outcome::NotReported | Outcome::InProgress => DeviceStatus::Behind,
        }
    }
}

/// One device's compliance.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCompliance {
    /// Device id.
    pub device_id: String,
    /// Its Device Update group.
    pub group: String,
    /// Against the target update (the rollback update once its group is rolled back).
    pub status: DeviceStatus,
    /// The update it last said it runs, when it is one of the rollout's two (null otherwise).
    pub installed_update: Option<UpdateId>,
    /// When it last reported (RFC 3339), null when never.
    pub last_report_at: Option<String>,
    /// The rollout it belongs to.
    pub rollout_id: String,
}

/// A page of devices.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceComplianceList {
    /// Devices, by rollout, then device id.
    pub value: Vec<DeviceCompliance>,
    /// The next page, while more remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// One host target of a rollout with its result.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostCompliance {
    /// The rollout.
    pub rollout_id: String,
    /// Resource id.
    pub id: String,
    /// `maintenanceConfiguration` or `machine`.
    pub kind: String,
    /// `pending`, `succeeded`, `succeededWithWarnings`, `failed` or `cancelled`.
    pub result: String,
}

/// Every host of the rollouts asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostComplianceList {
    /// Hosts.
    pub value: Vec<HostCompliance>,
}

impl HostCompliance {
    /// The hosts of one rollout.
    pub fn of(rollout: &Rollout) -> Vec<Self> {
        hosts(rollout)
            .into_iter()
            .map(|host| HostCompliance {
                rollout_id: rollout.id().to_string(),
                id: host.id,
                kind: host.kind,
                result: host.result,
            })
            .collect()
    }
}

impl DeviceCompliance {
    /// One device record against what its group should run.
    pub fn of(rollout: &Rollout, device: &str, record: &DeviceRecord) -> Self {
        let wave = record.wave as usize;
        let group = rollout
            .plan()
            .waves
            .get(wave)
            .map(|w| w.device_group.clone())
            .unwrap_or_default();
        let rollback = rollout
            .rollback()
            .and_then(|rb| rb.groups.iter().find(|g| g.wave == wave));
        let (outcome, target) = match (rollback, rollout.wave_progress().get(wave)) {
            (Some(group), _) => (
                effective_outcome(record.rollback, group.timeouts_applied),
                &rollout.plan().rollback_update,
            ),
            (None, Some(_)) if rollout.counted_unhealthy(wave, device) => {
                (Outcome::Unhealthy, &rollout.plan().update)
            }
            (None, Some(progress)) => (
                effective_outcome(record.forward, progress.timeouts_applied),
                &rollout.plan().update,
            ),
            (None, None) => (record.forward, &rollout.plan().update),
        };
        let status = DeviceStatus::of(outcome);
        let installed_update = match record.installed {
            Installed::Update => Some(rollout.plan().update.clone()),
            Installed::RollbackUpdate => Some(rollout.plan().rollback_update.clone()),
            // Device Update's status said it succeeded; it did not say so itself yet
            _ if status == DeviceStatus::OnTarget => Some(target.clone()),
            _ => None,
        };
        DeviceCompliance {
            device_id: device.to_string(),
            group,
            status,
            installed_update,
            last_report_at: record.last_report_at.map(|at| at.to_rfc3339()),
            rollout_id: rollout.id().to_string(),
        }
    }
}

fn result_name(outcome: Option<PatchOutcome>) -> String {
    match outcome {
        None => "pending",
        Some(PatchOutcome::Succeeded) => "succeeded",
        Some(PatchOutcome::SucceededWithWarnings) => "succeededWithWarnings",
        Some(PatchOutcome::Failed) => "failed",
        Some(PatchOutcome::Cancelled) => "cancelled",
    }
    .into()
}

fn hosts(rollout: &Rollout) -> Vec<HostView> {
    let infra = rollout.infrastructure();
    let planned = rollout.plan().infrastructure.as_ref();
    let configurations = planned
        .map(|p| p.maintenance_configuration_ids.clone())
        .unwrap_or_default();
    let machines = planned.map(|p| p.machines.clone()).unwrap_or_default();
    let mut hosts: Vec<HostView> = configurations
        .into_iter()
        .map(|id| HostView {
            result: result_name(
                infra
                    .configurations
                    .get(&id.to_ascii_lowercase())
                    .copied()
                    .flatten(),
            ),
            id,
            kind: "maintenanceConfiguration".into(),
        })
        .collect();
    hosts.extend(machines.into_iter().map(|id| HostView {
        result: result_name(infra.machines.get(&id).copied().flatten()),
        id,
        kind: "machine".into(),
    }));
    hosts
}

impl RolloutView {
    /// The view of a stored rollout (with `decisions` when given).
    pub fn of(rollout: &Rollout, decisions: Option<Vec<Decision>>) -> Self {
        let waves = rollout
            .plan()
            .waves
            .iter()
            .zip(rollout.wave_progress())
            .map(|(plan, progress)| WaveView {
                name: plan.name.clone(),
                device_group: plan.device_group.clone(),
                status: progress.status,
                attempt: progress.attempt,
                deployment_id: progress.deployment_id.as_ref().map(ToString::to_string),
                counts: progress.counts,
                approved_by: progress.approved_by.clone(),
            })
            .collect();
        let rollback = rollout.rollback().map(|rb| RollbackView {
            started_at: rb.started_at.to_rfc3339(),
            reason: rb.reason.clone(),
            groups: rb
                .groups
                .iter()
                .map(|g| RollbackGroupView {
                    device_group: rollout.plan().waves[g.wave].device_group.clone(),
                    deployment_id: g.deployment_id.to_string(),
                    counts: g.counts,
                    passed: g.passed,
                })
                .collect(),
        });
        RolloutView {
            id: rollout.id().to_string(),
            name: rollout.plan().name.clone(),
            state: rollout.state(),
            created_by: rollout.created_by().to_string(),
            created_at: rollout.created_at().to_rfc3339(),
            current_wave: rollout
                .plan()
                .waves
                .get(rollout.current_wave())
                .map(|w| w.name.clone()),
            waves,
            infrastructure: rollout
                .plan()
                .infrastructure
                .as_ref()
                .map(|_| InfrastructureView {
                    hosts: hosts(rollout),
                    gate_open: rollout.infrastructure().gate_open,
                }),
            rollback,
            pending_effects: rollout.outstanding().len(),
            plan: rollout.plan().clone(),
            decisions,
        }
    }
}

impl RolloutSummary {
    /// A list line.
    pub fn of(rollout: &Rollout) -> Self {
        RolloutSummary {
            id: rollout.id().to_string(),
            name: rollout.plan().name.clone(),
            state: rollout.state(),
            update: rollout.plan().update.clone(),
            created_by: rollout.created_by().to_string(),
            created_at: rollout.created_at().to_rfc3339(),
            current_wave: rollout
                .plan()
                .waves
                .get(rollout.current_wave())
                .map(|w| w.name.clone()),
        }
    }
}

impl RolloutCompliance {
    /// Hosts and devices of one rollout against what they should run.
    pub fn of(rollout: &Rollout) -> Self {
        let rolled_back = rollout.rollback().is_some();
        let target = if rolled_back {
            rollout.plan().rollback_update.clone()
        } else {
            rollout.plan().update.clone()
        };
        let devices = rollout
            .plan()
            .waves
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                let counts = rollout
                    .rollback()
                    .and_then(|rb| rb.groups.iter().find(|g| g.wave == index).map(|g| g.counts))
                    .unwrap_or(rollout.wave_progress()[index].counts);
                GroupCompliance {
                    device_group: plan.device_group.clone(),
                    total: counts.total,
                    on_target: counts.succeeded,
                    behind: counts.total.saturating_sub(counts.finished()),
                    failed: counts.failed,
                    timed_out: counts.timed_out,
                    unhealthy: counts.unhealthy,
                }
            })
            .collect();
        RolloutCompliance {
            rollout_id: rollout.id().to_string(),
            state: rollout.state(),
            target,
            hosts: hosts(rollout),
            devices,
        }
    }
}
