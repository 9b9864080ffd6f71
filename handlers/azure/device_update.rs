//! Device Update for IoT Hub data plane, api-version 2022-10-01: deployments on groups, their
//! status, and the states of the devices in them.

use super::rest::{segment, AzureError, RestClient};
use chrono::{DateTime, Utc};
use reqwest::Method;
use rollout_core::UpdateId;
use serde_json::{json, Value};

/// The data-plane API version.
pub const API_VERSION: &str = "2022-10-01";
/// Token scope of the Device Update data plane.
pub const SCOPE: &str = "https://api.adu.microsoft.com/.default";

/// A cloud-initiated rollback policy: deploy `update` when too many devices fail.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPolicy {
    /// The update to roll back to.
    pub update: UpdateId,
    /// Share of failed devices that triggers it.
    pub devices_failed_percentage: u32,
    /// Number of failed devices that triggers it.
    pub devices_failed_count: u32,
}

/// The deployment status counts of one device-class subgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubgroupCounts {
    /// Devices in the subgroup.
    pub total: u64,
    /// In progress.
    pub in_progress: u64,
    /// Failed.
    pub failed: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Cancelled.
    pub canceled: u64,
}

/// Where one device stands in a deployment (Device Update's `DeviceDeploymentState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentDeviceState {
    /// Installed the update.
    Succeeded,
    /// Still working on it.
    InProgress,
    /// Its subgroup deployment was cancelled.
    Canceled,
    /// Failed to install it.
    Failed,
}

impl DeploymentDeviceState {
    /// The name Device Update uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentDeviceState::Succeeded => "Succeeded",
            DeploymentDeviceState::InProgress => "InProgress",
            DeploymentDeviceState::Canceled => "Canceled",
            DeploymentDeviceState::Failed => "Failed",
        }
    }

    /// The state Device Update names `name`; `None` for a name it does not document.
    pub fn parse(name: &str) -> Option<Self> {
        [
            DeploymentDeviceState::Succeeded,
            DeploymentDeviceState::InProgress,
            DeploymentDeviceState::Canceled,
            DeploymentDeviceState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// One device (or module) in a device-class subgroup deployment, as
/// `ListDeviceStatesForDeviceClassSubgroupDeployment` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDeploymentState {
    /// IoT Hub device id.
    pub device_id: String,
    /// Module id, when the agent runs in a module.
    pub module_id: Option<String>,
    /// Where it stands.
    pub state: DeploymentDeviceState,
    /// Whether it has moved on to a newer deployment.
    pub moved_on_to_new_deployment: bool,
    /// How many times the deployment was retried on it.
    pub retry_count: u32,
}

impl DeviceDeploymentState {
    /// Reads one list item; `None` without a device id or with an unknown state.
    fn from_item(item: &Value) -> Option<Self> {
        let text = |key: &str| item.get(key).and_then(Value::as_str);
        Some(DeviceDeploymentState {
            device_id: text("deviceId")?.to_string(),
            module_id: text("moduleId").map(String::from),
            state: DeploymentDeviceState::parse(text("deviceState")?)?,
            moved_on_to_new_deployment: item
                .get("movedOnToNewDeployment")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            retry_count: item
                .get("retryCount")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        })
    }
}

/// Client of one Device Update instance.
#[derive(Clone)]
pub struct DeviceUpdateClient {
    rest: RestClient,
    instance: String,
}

/// `filter={filter}`, percent-encoded for a query string.
fn filter_query(filter: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(filter, percent_encoding::NON_ALPHANUMERIC);
    format!("filter={encoded}")
}

/// The counts of one `subgroupStatus` item.
fn subgroup_counts(sub: &Value) -> SubgroupCounts {
    let n = |key: &str| sub.get(key).and_then(Value::as_u64).unwrap_or(0);
    SubgroupCounts {
        total: n("totalDevices"),
        in_progress: n("devicesInProgressCount"),
        failed: n("devicesCompletedFailedCount"),
        succeeded: n("devicesCompletedSucceededCount"),
        canceled: n("devicesCanceledCount"),
    }
}

fn update_info(update: &UpdateId) -> Value {
    json!({"updateId": {"provider": update.provider, "name": update.name, "version": update.version}})
}

impl DeviceUpdateClient {
    /// A client for `instance` behind `rest` (base = `https://{account}.api.adu.microsoft.com`).
    pub fn new(rest: RestClient, instance: &str) -> Self {
        DeviceUpdateClient {
            rest,
            instance: instance.to_string(),
        }
    }

    fn group_path(&self, group: &str) -> String {
        format!(
            "/deviceUpdate/{}/management/groups/{}",
            segment(&self.instance),
            segment(group)
        )
    }

    fn deployment_path(&self, group: &str, deployment: &str) -> String {
        format!(
            "{}/deployments/{}",
            self.group_path(group),
            segment(deployment)
        )
    }

    fn subgroup_deployment_path(&self, group: &str, class: &str, deployment: &str) -> String {
        format!(
            "{}/deviceClassSubgroups/{}/deployments/{}",
            self.group_path(group),
            segment(class),
            segment(deployment)
        )
    }

    /// Creates (or re-creates, idempotently) a deployment of `update` on `group`.
    pub async fn create_deployment(
        &self,
        group: &str,
        deployment_id: &str,
        update: &UpdateId,
        start: DateTime<Utc>,
        rollback: Option<&RollbackPolicy>,
    ) -> Result<Value, AzureError> {
        let mut body = json!({
            "deploymentId": deployment_id,
            "startDateTime": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "update": update_info(update),
            "groupId": group,
        });
        if let Some(policy) = rollback {
            body["rollbackPolicy"] = json!({
                "update": update_info(&policy.update),
                "failure": {"devicesFailedPercentage": policy.devices_failed_percentage, "devicesFailedCount": policy.devices_failed_count}
            });
        }
        let path = format!(
            "{}?api-version={API_VERSION}",
            self.deployment_path(group, deployment_id)
        );
        Ok(self
            .rest
            .send(Method::PUT, &path, Some(&body), &[])
            .await?
            .body)
    }

    /// Deletes a deployment; one that is already gone counts as deleted.
    pub async fn delete_deployment(
        &self,
        group: &str,
        deployment_id: &str,
    ) -> Result<(), AzureError> {
        let path = format!(
            "{}?api-version={API_VERSION}",
            self.deployment_path(group, deployment_id)
        );
        match self.rest.send(Method::DELETE, &path, None, &[]).await {
            Err(error) if error.status() == Some(404) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The device-class subgroups of a group.
    pub async fn subgroups(&self, group: &str) -> Result<Vec<String>, AzureError> {
        let first = format!(
            "{}/deviceClassSubgroups?api-version={API_VERSION}",
            self.group_path(group)
        );
        self.list_field(first, "deviceClassId").await
    }

    /// Follows a Device Update list (`value` + `nextLink`) and collects one string field.
    async fn list_field(&self, first: String, field: &str) -> Result<Vec<String>, AzureError> {
        self.list_items(first, |item| {
            item.get(field).and_then(Value::as_str).map(String::from)
        })
        .await
    }

    /// Follows a Device Update list (`value` + `nextLink`) and keeps what `pick` makes of each
    /// item (items it returns `None` for are skipped).
    async fn list_items<T>(
        &self,
        first: String,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, AzureError> {
        let mut next = Some(first);
        let mut found = Vec::new();
        while let Some(target) = next.take() {
            let body = self.rest.send(Method::GET, &target, None, &[]).await?.body;
            let items = body.get("value").and_then(Value::as_array);
            found.extend(items.into_iter().flatten().filter_map(&pick));
            next = body
                .get("nextLink")
                .and_then(Value::as_str)
                .map(String::from);
        }
        Ok(found)
    }

    /// Cancels a deployment in every device-class subgroup (the 2022-10-01 API cancels per
    /// subgroup). A deployment that is already gone counts as cancelled.
    pub async fn cancel_deployment(
        &self,
        group: &str,
        deployment_id: &str,
    ) -> Result<usize, AzureError> {
        self.per_subgroup(group, deployment_id, "cancel").await
    }

    /// Retries a deployment in every device-class subgroup.
    pub async fn retry_deployment(
        &self,
        group: &str,
        deployment_id: &str,
    ) -> Result<usize, AzureError> {
        self.per_subgroup(group, deployment_id, "retry").await
    }

    async fn per_subgroup(
        &self,
        group: &str,
        deployment_id: &str,
        action: &str,
    ) -> Result<usize, AzureError> {
        let subgroups = self.subgroups(group).await?;
        for class in &subgroups {
            let path = format!(
                "{}:{action}?api-version={API_VERSION}",
                self.subgroup_deployment_path(group, class, deployment_id)
            );
            match self.rest.send(Method::POST, &path, None, &[]).await {
                Err(error) if error.status() == Some(404) => {}
                other => {
                    other?;
                }
            }
        }
        Ok(subgroups.len())
    }

    /// The devices Device Update counts in a group (`ListDevices` filtered on the group).
    pub async fn group_devices(&self, group: &str) -> Result<Vec<String>, AzureError> {
        let filter = filter_query(&format!("groupId eq '{}'", group.replace('\'', "''")));
        let first = format!(
            "/deviceUpdate/{}/management/devices?{filter}&api-version={API_VERSION}",
            segment(&self.instance)
        );
        self.list_field(first, "deviceId").await
    }

    /// The deployment's status, summed over its subgroups.
    pub async fn deployment_status(
        &self,
        group: &str,
        deployment_id: &str,
    ) -> Result<(String, SubgroupCounts), AzureError> {
        let body = self.status_body(group, deployment_id).await?;
        let state = body
            .get("deploymentState")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string();
        let mut counts = SubgroupCounts::default();
        for (_, sub) in subgroups_of(&body) {
            counts.total += sub.total;
            counts.in_progress += sub.in_progress;
            counts.failed += sub.failed;
            counts.succeeded += sub.succeeded;
            counts.canceled += sub.canceled;
        }
        Ok((state, counts))
    }

    /// `GetDeploymentStatus`: the raw `DeploymentStatus` body.
    async fn status_body(&self, group: &str, deployment_id: &str) -> Result<Value, AzureError> {
        let path = format!(
            "{}/status?api-version={API_VERSION}",
            self.deployment_path(group, deployment_id)
        );
        Ok(self.rest.send(Method::GET, &path, None, &[]).await?.body)
    }

    /// The devices of one device-class subgroup deployment and where they stand, every page
    /// followed; only those in `state` when given (`filter=deviceState eq '…'`). Items with a
    /// state Device Update does not document are skipped.
    pub async fn device_states(
        &self,
        group: &str,
        device_class: &str,
        deployment_id: &str,
        state: Option<DeploymentDeviceState>,
    ) -> Result<Vec<DeviceDeploymentState>, AzureError> {
        let filter = state
            .map(|s| {
                format!(
                    "{}&",
                    filter_query(&format!("deviceState eq '{}'", s.as_str()))
                )
            })
            .unwrap_or_default();
        let first = format!(
            "{}/devicestates?{filter}api-version={API_VERSION}",
            self.subgroup_deployment_path(group, device_class, deployment_id)
        );
        self.list_items(first, |item| {
            DeviceDeploymentState::from_item(item).filter(|d| state.is_none_or(|s| d.state == s))
        })
        .await
    }

    /// The devices that finished a deployment (succeeded or failed), read subgroup by subgroup
    /// from the device-state lists; devices that moved on to a newer deployment are left out.
    /// `Ok(None)`, without listing, when the status counts no more finished devices than
    /// `known_finished`.
    pub async fn finished_devices(
        &self,
        group: &str,
        deployment_id: &str,
        known_finished: u64,
    ) -> Result<Option<Vec<DeviceDeploymentState>>, AzureError> {
        Ok(self
            .poll_deployment(group, deployment_id, known_finished)
            .await?
            .finished)
    }

    /// One status read: the finished devices as [`Self::finished_devices`] lists them, and
    /// the errors of the deployment or its subgroups in state `Failed` (Device Update accepts
    /// a deployment, then reports e.g. `ADMConfigurationLimitExceeded` on a subgroup).
    pub async fn poll_deployment(
        &self,
        group: &str,
        deployment_id: &str,
        known_finished: u64,
    ) -> Result<DeploymentProgress, AzureError> {
        let body = self.status_body(group, deployment_id).await?;
        let failures = failures_of(&body);
        let finished_count = subgroups_of(&body)
            .iter()
            .map(|(_, c)| c.succeeded + c.failed)
            .sum();
        let finished = self
            .list_finished(group, deployment_id, known_finished, &body)
            .await?;
        Ok(DeploymentProgress {
            finished,
            failures,
            finished_count,
        })
    }

    async fn list_finished(
        &self,
        group: &str,
        deployment_id: &str,
        known_finished: u64,
        body: &Value,
    ) -> Result<Option<Vec<DeviceDeploymentState>>, AzureError> {
        let subgroups = subgroups_of(body);
        let finished: u64 = subgroups.iter().map(|(_, c)| c.succeeded + c.failed).sum();
        if finished <= known_finished {
            return Ok(None);
        }
        let mut devices = Vec::new();
        for (class, counts) in subgroups.iter().filter(|(class, _)| !class.is_empty()) {
            let listed = self
                .finished_in_subgroup(group, class, deployment_id, counts)
                .await?;
            devices.extend(listed.into_iter().filter(|d| !d.moved_on_to_new_deployment));
        }
        Ok(Some(devices))
    }

    /// The succeeded and the failed devices of one subgroup, listing only states its counts
    /// say are there.
    async fn finished_in_subgroup(
        &self,
        group: &str,
        class: &str,
        deployment_id: &str,
        counts: &SubgroupCounts,
    ) -> Result<Vec<DeviceDeploymentState>, AzureError> {
        let mut devices = Vec::new();
        for (count, state) in [
            (counts.succeeded, DeploymentDeviceState::Succeeded),
            (counts.failed, DeploymentDeviceState::Failed),
        ] {
            if count > 0 {
                let listed = self
                    .device_states(group, class, deployment_id, Some(state))
                    .await?;
                devices.extend(listed);
            }
        }
        Ok(devices)
    }
}

/// What one read of a deployment's status found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentProgress {
    /// The finished devices; `None` when no more than already known finished.
    pub finished: Option<Vec<DeviceDeploymentState>>,
    /// "subgroup C: CODE: message" for each failed subgroup (or the deployment itself).
    pub failures: Vec<String>,
    /// Devices Device Update counts as finished, over every subgroup.
    pub finished_count: u64,
}

/// The errors of a `DeploymentStatus` in state `Failed`, and of its failed subgroups.
fn failures_of(body: &Value) -> Vec<String> {
    let describe = |item: &Value| {
        let error = item.get("error");
        let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
        match (field("code"), field("message")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            (None, Some(message)) => message.to_string(),
            (None, None) => "no error given".to_string(),
        }
    };
    let failed =
        |item: &Value| item.get("deploymentState").and_then(Value::as_str) == Some("Failed");
    let mut failures: Vec<String> = body
        .get("subgroupStatus")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|sub| failed(sub))
        .map(|sub| {
            let class = sub
                .get("deviceClassId")
                .and_then(Value::as_str)
                .unwrap_or("?");
            format!("subgroup {class}: {}", describe(sub))
        })
        .collect();
    if failures.is_empty() && failed(body) {
        failures.push(format!("deployment failed: {}", describe(body)));
    }
    failures
}

/// Each `subgroupStatus` item of a `DeploymentStatus` body: its device class and counts.
fn subgroups_of(body: &Value) -> Vec<(String, SubgroupCounts)> {
    body.get("subgroupStatus")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|sub| {
            let class = sub.get("deviceClassId").and_then(Value::as_str);
            (class.unwrap_or_default().to_string(), subgroup_counts(sub))
        })
        .collect()
}
