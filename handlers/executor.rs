//! The effect executor used until Azure clients are configured: lifecycle events go to the
//! log as JSON lines; every Azure effect waits in the outbox, with a warning naming what is
//! missing, and runs once a client is configured.

use crate::ports::{EffectExecutor, EffectOutcome};
use rollout_core::{Effect, EffectKind, Rollout};

/// Publishes lifecycle events to stdout; defers Azure effects.
#[derive(Debug, Default)]
pub struct UnconfiguredAzure;

#[async_trait::async_trait]
impl EffectExecutor for UnconfiguredAzure {
    async fn execute(&self, rollout: &Rollout, effect: &Effect) -> EffectOutcome {
        match &effect.kind {
            EffectKind::PublishEvent {
                event_type,
                summary,
            } => {
                tracing::info!(rollout = %rollout.id, event_type = %event_type, event_id = %effect.id, "{summary}");
                EffectOutcome::Done
            }
            other => EffectOutcome::Failed {
                error: format!("no Azure client is configured to {}", describe(other)),
                retryable: true,
            },
        }
    }
}

fn describe(kind: &EffectKind) -> &'static str {
    match kind {
        EffectKind::FetchGroupMembers { .. } => {
            "query IoT Hub for group members (PATCHWAVE_IOTHUB_HOST)"
        }
        EffectKind::CreateDeployment { .. }
        | EffectKind::CreateRollbackDeployment { .. }
        | EffectKind::CancelDeployment { .. }
        | EffectKind::DeleteDeployment { .. } => {
            "call Device Update (PATCHWAVE_ADU_ENDPOINT, PATCHWAVE_ADU_INSTANCE)"
        }
        EffectKind::InstallPatches { .. } | EffectKind::CancelMaintenanceRun { .. } => {
            "call Resource Manager (PATCHWAVE_ARM_ENDPOINT)"
        }
        EffectKind::PublishEvent { .. } => "publish events",
    }
}
