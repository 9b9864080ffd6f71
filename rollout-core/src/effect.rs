//! What the shell must do for a rollout: effects are data, with deterministic ids.

use crate::UpdateId;
use serde::{Deserialize, Serialize};

/// One thing to do in Azure (or to publish). Running it twice changes nothing: its id, and
/// the ids of the Azure objects it creates, depend only on the rollout, wave and attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Effect {
    /// Deterministic id, used to mark it done and to de-duplicate.
    pub id: String,
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
        group: String,
    },
    /// Create a Device Update deployment of the plan's update on a group.
    CreateDeployment {
        /// Deployment id.
        deployment_id: String,
        /// Group id.
        group: String,
        /// The update.
        update: UpdateId,
    },
    /// Create a deployment of the rollback update on a touched group.
    CreateRollbackDeployment {
        /// Deployment id.
        deployment_id: String,
        /// Group id.
        group: String,
        /// The rollback update.
        update: UpdateId,
    },
    /// Cancel a deployment (in every device-class subgroup).
    CancelDeployment {
        /// Deployment id.
        deployment_id: String,
        /// Group id.
        group: String,
    },
    /// Delete a superseded deployment (Device Update keeps at most 100).
    DeleteDeployment {
        /// Deployment id.
        deployment_id: String,
        /// Group id.
        group: String,
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

/// Longest deployment id Device Update accepts.
pub const MAX_DEPLOYMENT_ID_CHARS: usize = 73;

/// The deployment id of a wave attempt (`purpose` is `w{wave}a{attempt}` or `rb{wave}`):
/// lower-case, only the characters Device Update allows, at most 73 characters.
pub fn deployment_id(rollout_id: &str, purpose: &str) -> String {
    let clean: String = rollout_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let keep = MAX_DEPLOYMENT_ID_CHARS - purpose.len() - 4;
    let clean: String = clean.chars().take(keep).collect();
    format!("pw-{clean}-{purpose}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_deterministic_and_valid_for_device_update() {
        let id = deployment_id("Roll/Out_1", "w0a1");
        assert_eq!(id, "pw-roll-out-1-w0a1");
        assert_eq!(id, deployment_id("Roll/Out_1", "w0a1"));
        let long = deployment_id(&"x".repeat(200), "rb12");
        assert_eq!(long.len(), MAX_DEPLOYMENT_ID_CHARS);
        assert!(long.ends_with("-rb12"));
    }
}
