//! Device Update for IoT Hub data plane, api-version 2022-10-01: deployments on groups.

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

/// Client of one Device Update instance.
#[derive(Clone)]
pub struct DeviceUpdateClient {
    rest: RestClient,
    instance: String,
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
        let mut next = Some(first);
        let mut found = Vec::new();
        while let Some(target) = next.take() {
            let reply = self.rest.send(Method::GET, &target, None, &[]).await?;
            let items = reply
                .body
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            found.extend(
                items
                    .filter_map(|item| item.get(field).and_then(Value::as_str))
                    .map(String::from),
            );
            next = reply
                .body
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
                "{}/deviceClassSubgroups/{}/deployments/{}:{action}?api-version={API_VERSION}",
                self.group_path(group),
                segment(class),
                segment(deployment_id)
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
        let filter = format!("groupId eq '{}'", group.replace('\'', "''"));
        let query =
            percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC);
        let first = format!(
            "/deviceUpdate/{}/management/devices?filter={query}&api-version={API_VERSION}",
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
        let path = format!(
            "{}/status?api-version={API_VERSION}",
            self.deployment_path(group, deployment_id)
        );
        let body = self.rest.send(Method::GET, &path, None, &[]).await?.body;
        let state = body
            .get("deploymentState")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string();
        let mut counts = SubgroupCounts::default();
        for sub in body
            .get("subgroupStatus")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = |key: &str| sub.get(key).and_then(Value::as_u64).unwrap_or(0);
            counts.total += n("totalDevices");
            counts.in_progress += n("devicesInProgressCount");
            counts.failed += n("devicesCompletedFailedCount");
            counts.succeeded += n("devicesCompletedSucceededCount");
            counts.canceled += n("devicesCanceledCount");
        }
        Ok((state, counts))
    }
}
