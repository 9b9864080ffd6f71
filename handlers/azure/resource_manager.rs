//! Resource Manager: `installPatches` on VMs and Arc machines (a long-running operation,
//! followed through `Azure-AsyncOperation` / `Location`), and cancelling a scheduled
//! maintenance run (`applyUpdates` status `Cancel`).

use super::rest::{AzureError, Reply, RestClient};
use reqwest::Method;
use rollout_core::PatchOutcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Token scope of Resource Manager.
pub const SCOPE: &str = "https://management.azure.com/.default";
/// Compute (virtual machines) API version.
pub const COMPUTE_API_VERSION: &str = "2025-04-01";
/// Arc-enabled servers API version.
pub const HYBRID_COMPUTE_API_VERSION: &str = "2024-07-10";
/// Maintenance API version that can cancel a run.
pub const MAINTENANCE_API_VERSION: &str = "2023-10-01-preview";

/// Where to poll a running operation (kept between invocations as a checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `Azure-AsyncOperation` URL (status).
    pub status_url: Option<String>,
    /// `Location` URL (final result).
    pub result_url: Option<String>,
}

/// A finished patch run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRunResult {
    /// What it means for the gate.
    pub outcome: PatchOutcome,
    /// Counts and error text for the decision log.
    pub detail: String,
}

/// A patch run: done, or still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchRun {
    /// Done.
    Finished(PatchRunResult),
    /// Still running; poll again later.
    Running(Operation),
}

/// Which kind of machine a resource id names, and its API version.
fn api_version_of(machine: &str) -> Result<&'static str, AzureError> {
    let lower = machine.to_ascii_lowercase();
    if lower.contains("/providers/microsoft.compute/virtualmachines/") {
        Ok(COMPUTE_API_VERSION)
    } else if lower.contains("/providers/microsoft.hybridcompute/machines/") {
        Ok(HYBRID_COMPUTE_API_VERSION)
    } else {
        Err(AzureError::Decode(format!(
            "{machine} is neither a virtual machine nor an Arc machine"
        )))
    }
}

/// Resource Manager client.
#[derive(Clone)]
pub struct ResourceManagerClient {
    rest: RestClient,
}

impl ResourceManagerClient {
    /// A client behind `rest` (base = `https://management.azure.com` or a stand-in).
    pub fn new(rest: RestClient) -> Self {
        ResourceManagerClient { rest }
    }

    /// Starts `installPatches` (critical and security classifications, reboot if required,
    /// at most 4 hours). Both the Windows and the Linux parameter sets are sent; the service
    /// uses the one that fits the machine's OS.
    pub async fn start_install_patches(&self, machine: &str) -> Result<PatchRun, AzureError> {
        let api_version = api_version_of(machine)?;
        let body = json!({
            "maximumDuration": "PT4H",
            "rebootSetting": "IfRequired",
            "windowsParameters": {"classificationsToInclude": ["Critical", "Security"]},
            "linuxParameters": {"classificationsToInclude": ["Critical", "Security"]}
        });
        let path = format!(
            "{}/installPatches?api-version={api_version}",
            machine.trim_end_matches('/')
        );
        let reply = self
            .rest
            .send(Method::POST, &path, Some(&body), &[])
            .await?;
        Ok(run_of(reply))
    }

    /// Starts `assessPatches` (no body); the result is followed like an install.
    pub async fn start_assess_patches(&self, machine: &str) -> Result<PatchRun, AzureError> {
        let api_version = api_version_of(machine)?;
        let path = format!(
            "{}/assessPatches?api-version={api_version}",
            machine.trim_end_matches('/')
        );
        let reply = self.rest.send(Method::POST, &path, None, &[]).await?;
        Ok(run_of(reply))
    }

    /// Polls a running operation once.
    pub async fn poll(&self, operation: &Operation) -> Result<PatchRun, AzureError> {
        if let Some(status_url) = &operation.status_url {
            let status = self
                .rest
                .send(Method::GET, status_url, None, &[])
                .await?
                .body;
            let state = status
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("InProgress");
            if matches!(state, "InProgress" | "Running" | "NotStarted" | "Accepted") {
                return Ok(PatchRun::Running(operation.clone()));
            }
            if operation.result_url.is_none() || state != "Succeeded" {
                let error = status
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or(state);
                let outcome = if state == "Succeeded" {
                    PatchOutcome::Succeeded
                } else {
                    PatchOutcome::Failed
                };
                return Ok(PatchRun::Finished(PatchRunResult {
                    outcome,
                    detail: format!("operation {state}: {error}"),
                }));
            }
        }
        let Some(result_url) = &operation.result_url else {
            return Err(AzureError::Decode(
                "operation has neither a status nor a result URL".into(),
            ));
        };
        let reply = self.rest.send(Method::GET, result_url, None, &[]).await?;
        Ok(match run_of(reply) {
            PatchRun::Running(_) => PatchRun::Running(operation.clone()),
            finished => finished,
        })
    }

    /// Follows a running operation for up to `budget`, then hands back where it stands.
    pub async fn follow(
        &self,
        mut run: PatchRun,
        budget: Duration,
        interval: Duration,
    ) -> Result<PatchRun, AzureError> {
        let deadline = tokio::time::Instant::now() + budget;
        while let PatchRun::Running(operation) = &run {
            if tokio::time::Instant::now() + interval > deadline {
                break;
            }
            tokio::time::sleep(interval).await;
            run = self.poll(operation).await?;
        }
        Ok(run)
    }

    /// Cancels a scheduled maintenance run (allowed until 10 minutes before its start).
    pub async fn cancel_maintenance_run(&self, run_id: &str) -> Result<String, AzureError> {
        let path = format!(
            "{}?api-version={MAINTENANCE_API_VERSION}",
            run_id.trim_end_matches('/')
        );
        let body = json!({"properties": {"status": "Cancel"}});
        let reply = self.rest.send(Method::PUT, &path, Some(&body), &[]).await?;
        Ok(reply
            .body
            .pointer("/properties/status")
            .and_then(Value::as_str)
            .unwrap_or("Cancel")
            .to_string())
    }
}

/// A 200 with a result, or a 202 with where to poll.
fn run_of(reply: Reply) -> PatchRun {
    if reply.status.as_u16() == 202
        || reply.body.get("status").and_then(Value::as_str) == Some("InProgress")
    {
        return PatchRun::Running(Operation {
            status_url: reply.header("azure-asyncoperation"),
            result_url: reply.header("location"),
        });
    }
    PatchRun::Finished(result_of(&reply.body))
}

/// Reads an install result (VM or Arc shape).
pub fn result_of(body: &Value) -> PatchRunResult {
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    let count = |key: &str| body.get(key).and_then(Value::as_u64).unwrap_or(0);
    let outcome = match status {
        "Succeeded" => PatchOutcome::Succeeded,
        "CompletedWithWarnings" => PatchOutcome::SucceededWithWarnings,
        _ => PatchOutcome::Failed,
    };
    let mut detail = format!(
        "{status}: {} installed, {} failed, {} pending",
        count("installedPatchCount"),
        count("failedPatchCount"),
        count("pendingPatchCount")
    );
    if let Some(message) = body.pointer("/error/message").and_then(Value::as_str) {
        detail.push_str(&format!("; {message}"));
    }
    PatchRunResult { outcome, detail }
}
