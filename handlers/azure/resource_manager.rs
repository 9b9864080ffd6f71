//! Resource Manager: `installPatches` on VMs and Arc machines (a long-running operation,
//! followed through `Azure-AsyncOperation` / `Location` at the pace `Retry-After` asks), with
//! the parameter set of the machine's OS (learned with a GET of the machine, then kept), and
//! cancelling a scheduled maintenance run (`applyUpdates` status `Cancel`).

use super::rest::{AzureError, Reply, RestClient};
use crate::ports::{Clock, SystemClock};
use chrono::{DateTime, Utc};
use reqwest::Method;
use rollout_core::PatchOutcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long patchwave lets `installPatches` run (`maximumDuration`).
const MAXIMUM_DURATION: &str = "PT4H";
/// [`MAXIMUM_DURATION`], and the slack after it before a run still going counts as failed.
const MAXIMUM_RUN: chrono::Duration = chrono::Duration::minutes(4 * 60 + 15);
/// Longest wait between two polls, whatever `Retry-After` asks.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

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
    /// The service's `Retry-After` on its last answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Past this the run is over its `maximumDuration`: still running then counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
}

/// A machine's operating system: which `installPatches` parameter set it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineOs {
    /// `windowsParameters`.
    Windows,
    /// `linuxParameters`.
    Linux,
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
    /// Machines' operating systems, by lower-case resource id, once learned.
    systems: Arc<Mutex<HashMap<String, MachineOs>>>,
}

impl ResourceManagerClient {
    /// A client behind `rest` (base = `https://management.azure.com` or a stand-in).
    pub fn new(rest: RestClient) -> Self {
        ResourceManagerClient {
            rest,
            systems: Default::default(),
        }
    }

    /// The machine's OS: a GET of the VM (`properties.storageProfile.osDisk.osType`) or Arc
    /// machine (`properties.osType`, lower case), once per machine.
    pub async fn machine_os(&self, machine: &str) -> Result<MachineOs, AzureError> {
        let key = machine.trim_end_matches('/').to_ascii_lowercase();
        if let Some(os) = self.lock().get(&key) {
            return Ok(*os);
        }
        let path = format!(
            "{}?api-version={}",
            machine.trim_end_matches('/'),
            api_version_of(machine)?
        );
        let body = self.rest.send(Method::GET, &path, None, &[]).await?.body;
        let os_type = body
            .pointer("/properties/storageProfile/osDisk/osType")
            .or_else(|| body.pointer("/properties/osType"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let os = match os_type.to_ascii_lowercase().as_str() {
            "windows" => MachineOs::Windows,
            "linux" => MachineOs::Linux,
            other => {
                return Err(AzureError::Decode(format!(
                    "{machine}: unknown osType `{other}`"
                )))
            }
        };
        self.lock().insert(key, os);
        Ok(os)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MachineOs>> {
        self.systems.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `installPatches` (critical and security classifications, reboot if required,
    /// at most 4 hours) with the parameter set of the machine's OS, as the service takes it.
    pub async fn start_install_patches(&self, machine: &str) -> Result<PatchRun, AzureError> {
        let api_version = api_version_of(machine)?;
        let parameters = match self.machine_os(machine).await? {
            MachineOs::Windows => "windowsParameters",
            MachineOs::Linux => "linuxParameters",
        };
        let mut body = json!({"maximumDuration": MAXIMUM_DURATION, "rebootSetting": "IfRequired"});
        body[parameters] = json!({"classificationsToInclude": ["Critical", "Security"]});
        let path = format!(
            "{}/installPatches?api-version={api_version}",
            machine.trim_end_matches('/')
        );
        let reply = self
            .rest
            .send(Method::POST, &path, Some(&body), &[])
            .await?;
        Ok(match run_of(reply) {
            PatchRun::Running(operation) => PatchRun::Running(Operation {
                not_after: Some(SystemClock.now() + MAXIMUM_RUN),
                ..operation
            }),
            finished => finished,
        })
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

    /// Polls a running operation once. Only `Succeeded`, `Failed` and `Canceled` end it
    /// (ARM: any other status means still running); a run still going past its
    /// `maximumDuration` counts as failed.
    pub async fn poll(&self, operation: &Operation) -> Result<PatchRun, AzureError> {
        if let Some(status_url) = &operation.status_url {
            let reply = self.rest.send(Method::GET, status_url, None, &[]).await?;
            let state = reply
                .body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("InProgress")
                .to_string();
            let terminal = ["Succeeded", "Failed", "Canceled"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&state));
            if !terminal {
                return Ok(still_running(operation, &reply, &state));
            }
            if operation.result_url.is_none() || !state.eq_ignore_ascii_case("Succeeded") {
                return Ok(PatchRun::Finished(ended(&reply.body, &state)));
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

    /// Follows a running operation for up to `budget`, waiting between polls what the
    /// service's `Retry-After` asks (at most a minute; `interval` when it says nothing), then
    /// hands back where it stands.
    pub async fn follow(
        &self,
        mut run: PatchRun,
        budget: Duration,
        interval: Duration,
    ) -> Result<PatchRun, AzureError> {
        let deadline = tokio::time::Instant::now() + budget;
        while let PatchRun::Running(operation) = &run {
            let wait = operation
                .retry_after_seconds
                .map_or(interval, |s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
            if tokio::time::Instant::now() + wait > deadline {
                break;
            }
            tokio::time::sleep(wait).await;
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
            retry_after_seconds: retry_after(&reply),
            not_after: None,
        });
    }
    PatchRun::Finished(result_of(&reply.body))
}

fn retry_after(reply: &Reply) -> Option<u64> {
    reply.header("retry-after")?.trim().parse().ok()
}

/// A status that does not end the operation: poll again, unless it ran past its limit.
fn still_running(operation: &Operation, reply: &Reply, state: &str) -> PatchRun {
    if operation
        .not_after
        .is_some_and(|limit| SystemClock.now() > limit)
    {
        return PatchRun::Finished(PatchRunResult {
            outcome: PatchOutcome::Failed,
            detail: format!("operation still {state} past its maximumDuration {MAXIMUM_DURATION}"),
        });
    }
    PatchRun::Running(Operation {
        retry_after_seconds: retry_after(reply),
        ..operation.clone()
    })
}

/// A terminal status: `Canceled` is a cancelled run, anything but `Succeeded` a failure.
fn ended(status: &Value, state: &str) -> PatchRunResult {
    let error = status
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or(state);
    let outcome = if state.eq_ignore_ascii_case("Succeeded") {
        PatchOutcome::Succeeded
    } else if state.eq_ignore_ascii_case("Canceled") {
        PatchOutcome::Cancelled
    } else {
        PatchOutcome::Failed
    };
    PatchRunResult {
        outcome,
        detail: format!("operation {state}: {error}"),
    }
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
