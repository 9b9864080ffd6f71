//! Talking to Azure: one small client per service behind the shell's `EffectExecutor` port,
//! over one REST pipeline (tokens, retries, typed errors).

pub mod credential;
pub mod device_update;
pub mod error;
pub mod events;
pub mod iot_hub;
pub mod resource_manager;
pub mod rest;

use crate::ports::{DeploymentPoll, EffectExecutor, EffectOutcome};
use device_update::{DeploymentDeviceState, DeviceUpdateClient};
use events::{cloud_event, LifecycleSink};
use iot_hub::{GroupPosition, IotHubClient};
use resource_manager::{Operation, PatchRun, ResourceManagerClient};
use rest::AzureError;
use rollout_core::{Effect, EffectKind, PolledDevice, Rollout};
use std::sync::Arc;
use std::time::Duration;

/// The outcome of an effect whose client is not configured: it waits in the outbox with a
/// message naming the setting.
fn missing(what: &str) -> Result<EffectOutcome, AzureError> {
    Ok(EffectOutcome::Failed {
        error: format!("not configured: {what}"),
        retryable: true,
    })
}

/// Creates, cancels or deletes a Device Update deployment.
async fn deployment_effect(
    du: &DeviceUpdateClient,
    rollout: &Rollout,
    kind: &EffectKind,
) -> Result<EffectOutcome, AzureError> {
    match kind {
        EffectKind::CreateDeployment {
            deployment_id,
            group,
            update,
        }
        | EffectKind::CreateRollbackDeployment {
            deployment_id,
            group,
            update,
        } => du
            .create_deployment(group, deployment_id, update, rollout.now(), None)
            .await
            .map(|_| EffectOutcome::Done),
        EffectKind::CancelDeployment {
            deployment_id,
            group,
        } => du
            .cancel_deployment(group, deployment_id)
            .await
            .map(|_| EffectOutcome::Done),
        EffectKind::DeleteDeployment {
            deployment_id,
            group,
        } => du
            .delete_deployment(group, deployment_id)
            .await
            .map(|_| EffectOutcome::Done),
        other => Ok(EffectOutcome::Failed {
            error: format!("not a deployment effect: {other:?}"),
            retryable: false,
        }),
    }
}

/// Carries effects out with the configured clients; an effect whose client is missing waits
/// in the outbox with a message naming the setting to configure.
pub struct AzureExecutor {
    /// Device Update client.
    pub device_update: Option<DeviceUpdateClient>,
    /// Resource Manager client.
    pub resource_manager: Option<ResourceManagerClient>,
    /// IoT Hub client.
    pub iot_hub: Option<IotHubClient>,
    /// Lifecycle events.
    pub events: Arc<dyn LifecycleSink>,
    /// How long one invocation follows a patch run before leaving it for the next.
    pub patch_budget: Duration,
    /// Poll interval while following a patch run.
    pub poll_interval: Duration,
}

impl AzureExecutor {
    /// An executor over the given clients.
    pub fn new(
        device_update: Option<DeviceUpdateClient>,
        resource_manager: Option<ResourceManagerClient>,
        iot_hub: Option<IotHubClient>,
        events: Arc<dyn LifecycleSink>,
    ) -> Self {
        AzureExecutor {
            device_update,
            resource_manager,
            iot_hub,
            events,
            patch_budget: Duration::from_secs(20),
            poll_interval: Duration::from_secs(1),
        }
    }

    async fn run(
        &self,
        rollout: &Rollout,
        effect: &Effect,
        checkpoint: Option<&str>,
    ) -> Result<EffectOutcome, AzureError> {
        match &effect.kind {
            EffectKind::FetchGroupMembers { group, .. } => match &self.iot_hub {
                Some(hub) => members_page(hub, group.as_str(), checkpoint).await,
                None => missing("PATCHWAVE_IOTHUB_HOST"),
            },
            EffectKind::CreateDeployment { .. }
            | EffectKind::CreateRollbackDeployment { .. }
            | EffectKind::CancelDeployment { .. }
            | EffectKind::DeleteDeployment { .. } => match &self.device_update {
                Some(du) => deployment_effect(du, rollout, &effect.kind).await,
                None => missing("PATCHWAVE_ADU_ENDPOINT and PATCHWAVE_ADU_INSTANCE"),
            },
            EffectKind::InstallPatches { machine } => match &self.resource_manager {
                Some(arm) => self.install_patches(arm, machine, checkpoint).await,
                None => missing("PATCHWAVE_ARM_ENDPOINT"),
            },
            EffectKind::CancelMaintenanceRun { run_id } => match &self.resource_manager {
                Some(arm) => arm
                    .cancel_maintenance_run(run_id)
                    .await
                    .map(|_| EffectOutcome::Done),
                None => missing("PATCHWAVE_ARM_ENDPOINT"),
            },
            EffectKind::PublishEvent {
                event_type,
                summary,
            } => {
                let event = cloud_event(
                    effect.id.as_str(),
                    rollout.id().as_str(),
                    event_type,
                    summary,
                    rollout.now(),
                );
                Ok(match self.events.publish(&event).await {
                    Ok(()) => EffectOutcome::Done,
                    Err(error) => EffectOutcome::Failed {
                        error,
                        retryable: true,
                    },
                })
            }
        }
    }

    /// Starts a patch run, or resumes following it from the checkpoint an earlier attempt
    /// left (so a run is never started twice), for up to the budget.
    async fn install_patches(
        &self,
        arm: &ResourceManagerClient,
        machine: &str,
        checkpoint: Option<&str>,
    ) -> Result<EffectOutcome, AzureError> {
        let resumed = checkpoint.and_then(|c| serde_json::from_str::<Operation>(c).ok());
        let run = match resumed {
            Some(operation) => arm.poll(&operation).await?,
            None => match arm.start_install_patches(machine).await {
                // a run started by an attempt that crashed before keeping its checkpoint is
                // still going: wait for it to end, then start again (patching twice is harmless)
                Err(error) if error.status() == Some(409) => {
                    return Ok(EffectOutcome::Failed {
                        error: format!("another patch run is in progress on {machine}"),
                        retryable: true,
                    })
                }
                other => other?,
            },
        };
        Ok(
            match arm
                .follow(run, self.patch_budget, self.poll_interval)
                .await?
            {
                PatchRun::Finished(result) => EffectOutcome::Patched {
                    outcome: result.outcome,
                    detail: result.detail,
                },
                PatchRun::Running(operation) => EffectOutcome::InProgress {
                    checkpoint: serde_json::to_string(&operation)
                        .map_err(|e| AzureError::Decode(e.to_string()))?,
                    note: format!("patch run on {machine} still in progress"),
                },
            },
        )
    }
}

#[async_trait::async_trait]
impl EffectExecutor for AzureExecutor {
    async fn execute(
        &self,
        rollout: &Rollout,
        effect: &Effect,
        checkpoint: Option<&str>,
    ) -> EffectOutcome {
        match self.run(rollout, effect, checkpoint).await {
            Ok(outcome) => outcome,
            Err(error) => EffectOutcome::Failed {
                retryable: error.retryable(),
                error: error.to_string(),
            },
        }
    }

    async fn poll_deployment(
        &self,
        group: &str,
        deployment_id: &str,
        known_finished: u64,
    ) -> Result<DeploymentPoll, String> {
        let Some(client) = &self.device_update else {
            return Ok(DeploymentPoll::default());
        };
        let progress = client
            .poll_deployment(group, deployment_id, known_finished)
            .await
            .map_err(|error| error.to_string())?;
        let failure = (!progress.failures.is_empty()).then(|| progress.failures.join("; "));
        let finished = progress.finished.map(|states| {
            states
                .into_iter()
                .filter_map(|item| {
                    let succeeded = match item.state {
                        DeploymentDeviceState::Succeeded => true,
                        DeploymentDeviceState::Failed => false,
                        _ => return None,
                    };
                    Some(PolledDevice {
                        device: item.device_id.into(),
                        succeeded,
                    })
                })
                .collect()
        });
        Ok(DeploymentPoll {
            finished,
            failure,
            finished_count: progress.finished_count,
        })
    }
}

/// Where a paged group lookup stands: the next page's number and where in IoT Hub's two
/// twin queries it comes from (which query, its continuation). A checkpoint written before
/// module twins were queried (`{"page","continuation"}`) reads as a position in the
/// device-twin query.
#[derive(serde::Serialize, serde::Deserialize)]
struct MembersCheckpoint {
    page: u32,
    #[serde(flatten)]
    at: GroupPosition,
}

/// One page of a group's members, from where `checkpoint` left off (a checkpoint that
/// cannot be read starts over: pages the rollout counted already are ignored by it).
async fn members_page(
    hub: &IotHubClient,
    group: &str,
    checkpoint: Option<&str>,
) -> Result<EffectOutcome, AzureError> {
    let from: Option<MembersCheckpoint> = checkpoint.and_then(|c| serde_json::from_str(c).ok());
    let (page, at) = match &from {
        Some(from) => (from.page, Some(&from.at)),
        None => (0, None),
    };
    let (devices, next) = hub.group_devices_page(group, at).await?;
    let resume = next.map(|at| {
        let at = MembersCheckpoint { page: page + 1, at };
        serde_json::to_string(&at).unwrap_or_default()
    });
    Ok(EffectOutcome::MembersPage {
        devices,
        page,
        resume,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_hub::TwinCollection;

    #[test]
    fn members_checkpoints_say_which_query() {
        let at = MembersCheckpoint {
            page: 3,
            at: GroupPosition {
                collection: TwinCollection::Modules,
                continuation: Some("token".into()),
                device_twin_members: false,
            },
        };
        let text = serde_json::to_string(&at).expect("json");
        assert_eq!(
            text,
            r#"{"page":3,"collection":"modules","continuation":"token","deviceTwinMembers":false}"#
        );
        let old: MembersCheckpoint =
            serde_json::from_str(r#"{"page":2,"continuation":"abc"}"#).expect("old checkpoint");
        assert_eq!(old.page, 2);
        assert_eq!(old.at.collection, TwinCollection::Devices);
        assert_eq!(old.at.continuation.as_deref(), Some("abc"));
    }
}
