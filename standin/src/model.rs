//! The simulated world's records: devices, deployments, machines, operations, maintenance runs
//! and what was delivered. Public and serializable, so tests and `GET /_standin/world` read them.

use chrono::{DateTime, Utc};
use rollout_core::UpdateId;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Where a device stands in one deployment (Device Update's `DeviceDeploymentState`, plus
/// `Pending` before the device has reported anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DevicePhase {
    /// Not reported yet (counted as in progress by the service).
    Pending,
    /// Reported state 6.
    InProgress,
    /// Reported state 0 with result 700 and the update installed.
    Succeeded,
    /// Reported state 255.
    Failed,
    /// Its subgroup deployment was cancelled before it finished.
    Canceled,
}

impl DevicePhase {
    /// The name Device Update uses (`Pending` shows as `InProgress`).
    pub fn service_name(self) -> &'static str {
        match self {
            DevicePhase::Pending | DevicePhase::InProgress => "InProgress",
            DevicePhase::Succeeded => "Succeeded",
            DevicePhase::Failed => "Failed",
            DevicePhase::Canceled => "Canceled",
        }
    }

    /// Whether the device is done with the deployment.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DevicePhase::Succeeded | DevicePhase::Failed | DevicePhase::Canceled
        )
    }
}

/// A simulated device (one IoT Hub device with the Device Update agent).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// IoT Hub device id.
    pub id: String,
    /// Its Device Update group (twin tag `ADUGroup`).
    pub group: String,
    /// Its device class id.
    pub device_class: String,
    /// The update installed now.
    pub installed: UpdateId,
    /// The update of its last deployment.
    pub last_attempted: Option<UpdateId>,
    /// The last deployment it worked on.
    pub last_deployment: Option<String>,
    /// Where it stands in that deployment.
    pub status: Option<DevicePhase>,
    /// Twin `version`, increased with every change.
    pub twin_version: u64,
    /// `properties.reported.$version`.
    pub reported_version: u64,
    /// The reported `deviceUpdate.agent` object now.
    pub agent: Value,
}

/// A Device Update deployment as the stand-in keeps it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Group it targets.
    pub group: String,
    /// Deployment id.
    pub id: String,
    /// The update deployed.
    pub update: UpdateId,
    /// `startDateTime` as sent.
    pub start: String,
    /// `rollbackPolicy` as sent, if any.
    pub rollback_policy: Option<Value>,
    /// The workflow id devices report for it.
    pub workflow_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How many PUTs named it (idempotent repeats count).
    pub puts: u32,
    /// Device classes whose subgroup deployment was cancelled.
    pub canceled_classes: BTreeSet<String>,
    /// Whether a subgroup was retried.
    pub retried: bool,
    /// How many retries were asked for.
    pub retries: u32,
    /// Whether it was deleted.
    pub deleted: bool,
    /// A newer deployment on the same group replaced it (it is `Inactive`).
    pub superseded: bool,
    /// Each device of the group and where it stands.
    pub devices: BTreeMap<String, DevicePhase>,
    /// Accepted past the limit of configurations: every subgroup is `Failed` with
    /// `ADMConfigurationLimitExceeded` and no device is sent the update.
    pub over_limit: bool,
}

impl Deployment {
    /// Whether every subgroup was cancelled.
    pub fn is_canceled(&self, classes: &[String]) -> bool {
        !classes.is_empty() && classes.iter().all(|c| self.canceled_classes.contains(c))
    }

    /// How many devices are in `phase`.
    pub fn count(&self, phase: DevicePhase) -> usize {
        self.devices.values().filter(|p| **p == phase).count()
    }
}

/// Which Resource Manager provider a machine belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MachineKind {
    /// `Microsoft.Compute/virtualMachines` (api-version 2025-04-01).
    VirtualMachine,
    /// `Microsoft.HybridCompute/machines`, Arc-enabled servers (api-version 2024-07-10).
    ArcMachine,
}

/// `installPatches` or `assessPatches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OperationKind {
    /// installPatches.
    Install,
    /// assessPatches.
    Assess,
}

/// One long-running patch operation on a machine.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Operation id (last segment of its status URLs).
    pub id: String,
    /// Install or assess.
    pub kind: OperationKind,
    /// VM or Arc machine.
    pub machine_kind: MachineKind,
    /// The machine's resource id.
    pub machine_id: String,
    /// The request body as sent.
    pub request: Value,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ends.
    pub ends: DateTime<Utc>,
    /// Whether it ends well.
    pub succeeds: bool,
    /// The final result body (served once `ends` has passed).
    pub result: Value,
}

impl Operation {
    /// `InProgress`, `Succeeded` or `Failed` at `now`.
    /// Before its end an operation passes through ARM's in-between statuses: `Accepted`, then
    /// `InProgress`, then `Updating` (any status but `Succeeded`, `Failed` and `Canceled`
    /// means "still running").
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.ends {
            let third = (self.ends - self.started) / 3;
            if now < self.started + third {
                "Accepted"
            } else if now < self.started + third * 2 {
                "InProgress"
            } else {
                "Updating"
            }
        } else if self.succeeds {
            "Succeeded"
        } else {
            "Failed"
        }
    }
}

/// Where a scheduled maintenance run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunState {
    /// Pre event sent; waiting to start.
    Scheduled,
    /// Patching its machines.
    Running,
    /// Every machine patched.
    Succeeded,
    /// At least one machine failed.
    Failed,
    /// Cancelled through `applyUpdates` status `Cancel` before it started.
    Cancelled,
}

/// A maintenance run (one schedule instance of a maintenance configuration).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRun {
    /// `<configuration id>/providers/microsoft.maintenance/applyupdates/<yyyyMMddHHmmss>`.
    pub id: String,
    /// The maintenance configuration's resource id.
    pub configuration_id: String,
    /// Schedule instance start.
    pub start: DateTime<Utc>,
    /// Schedule instance end.
    pub end: DateTime<Utc>,
    /// Machines in the run.
    pub machines: Vec<String>,
    /// Subscriptions named in the events.
    pub subscription_ids: Vec<String>,
    /// Where it stands.
    pub state: RunState,
    /// Whether it was cancelled through the ARM route.
    pub cancelled: bool,
    /// Status sent in the PostMaintenanceEvent, once sent.
    pub post_status: Option<String>,
}

/// One device report the simulation produced (whether or not it reached the handler).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRecord {
    /// Device.
    pub device_id: String,
    /// Deployment reported on.
    pub deployment_id: String,
    /// Agent state reported (6, 0 or 255).
    pub state: i64,
    /// Twin version of the notification.
    pub twin_version: u64,
    /// Dropped by the fault knob (never delivered).
    pub dropped: bool,
    /// Enqueued twice by the fault knob.
    pub duplicated: bool,
}

/// Counters of what the stand-in did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// TwinChanges invocations answered 2xx.
    pub twin_batches_delivered: u64,
    /// Messages in those invocations.
    pub twin_messages_delivered: u64,
    /// PatchEvents invocations answered 2xx.
    pub events_delivered: u64,
    /// Deliveries that failed (non-2xx or no connection) and were retried.
    pub failed_deliveries: u64,
    /// Reports dropped by the fault knob.
    pub reports_dropped: u64,
    /// Reports duplicated by the fault knob.
    pub reports_duplicated: u64,
    /// Azure requests answered 429 by the fault knob.
    pub injected_429: u64,
    /// Azure requests answered 500 by the fault knob.
    pub injected_500: u64,
}

/// Events received, per event hub (only configured hubs exist).
#[derive(Debug, Default)]
pub struct EventHubs {
    received: Mutex<BTreeMap<String, Vec<Value>>>,
}

impl EventHubs {
    /// Hubs named in the configuration, each empty.
    pub fn new(names: &[String]) -> Self {
        let received = names.iter().map(|n| (n.clone(), Vec::new())).collect();
        EventHubs {
            received: Mutex::new(received),
        }
    }

    pub(crate) fn push(&self, hub: &str, event: Value) -> bool {
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        match received.get_mut(hub) {
            Some(events) => {
                events.push(event);
                true
            }
            None => false,
        }
    }

    /// What `hub` received, oldest first (`None`: no such hub).
    pub fn received(&self, hub: &str) -> Option<Vec<Value>> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received.get(hub).cloned()
    }
}
