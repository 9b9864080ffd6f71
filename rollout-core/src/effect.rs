//! What the shell must do for a rollout: effects are data, with deterministic ids.

use crate::ids::{DeploymentId, EffectId, GroupId};
use crate::UpdateId;
use serde::{Deserialize, Serialize};

/// One thing to do in Azure (or to publish). Running it twice changes nothing: its id, and
/// the ids of the Azure objects it creates, depend only on the rollout, wave and attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Effect {
    /// Deterministic id, used to mark it done and to de-duplicate.
    pub id: EffectId,
    /// What to do.
    pub kind: EffectKind,
}

/// The effects the engine asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum EffectKind {
    /// Learn the devices of a Device Update group (answered by `Input::GroupMembers`).
    FetchGroupMembers {
        /// Wave index.
        wave: usize,
        /// Group id.
        group: GroupId,
    },
    /// Create a Device Update deployment of the plan's update on a group.
    CreateDeployment {
        /// Deployment id.
        deployment_id: DeploymentId,
        /// Group id.
        group: GroupId,
        /// The update.
        update: UpdateId,
    },
    /// Create a deployment of the rollback update on a touched group.
    CreateRollbackDeployment {
        /// Deployment id.
        deployment_id: DeploymentId,
        /// Group id.
        group: GroupId,
        /// The rollback update.
        update: UpdateId,
    },
    /// Cancel a deployment (in every device-class subgroup).
    CancelDeployment {
        /// Deployment id.
        deployment_id: DeploymentId,
        /// Group id.
        group: GroupId,
    },
    /// Delete a superseded deployment (Device Update keeps at most 100).
    DeleteDeployment {
        /// Deployment id.
        deployment_id: DeploymentId,
        /// Group id.
        group: GroupId,
    },
    /// Run `installPatches` on a machine (answered by `Input::MachinePatched`).
    InstallPatches {
        /// Machine resource id.
        machine: String,
    },
    /// Cancel a scheduled maintenance run (`applyUpdates` status `Cancel`).
    CancelMaintenanceRun {
        /// Run id (`CorrelationId`).
        run_id: String,
    },
    /// Publish a lifecycle event for Azure Monitor and subscribers.
    PublishEvent {
        /// Event type, e.g. `patchwave.wave.failed`.
        event_type: String,
        /// The decision's text.
        summary: String,
    },
}
