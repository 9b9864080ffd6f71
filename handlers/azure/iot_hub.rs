//! IoT Hub: the devices of a Device Update group, by twin query on the `ADUGroup` tag. Asked
//! once per wave (twin queries are throttled hard), paging with `x-ms-continuation`.
//!
//! Device Update agents run either as the device identity (the `ADUGroup` tag is on the device
//! twin) or as a module identity (the tag is on that module's twin), so a group is two
//! queries: `devices`, then `devices.modules`. **A member is a device id** in both cases: a
//! module agent reports on its module twin, whose change notifications carry the `deviceId`
//! (and the `moduleId`), and reports are routed to rollouts by that device id
//! (`DeviceReport.device` is the notification's `deviceId`); Device Update too lists and
//! counts a deployment's devices by device id. One agent per device is Device Update's model,
//! so a device tagged on its device twin and on a module twin is one member: module rows whose
//! device was already a device-twin member are left out (see [`IotHubClient::group_devices_page`]).
//! IoT Hub errors arrive in IoT Hub's own form and are read by the shared pipeline
//! (`rest::iot_hub_error_fields`).

use super::rest::{AzureError, RestClient};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Token scope of the IoT Hub service API.
pub const SCOPE: &str = "https://iothubs.azure.net/.default";
/// Service API version of the twin query.
pub const API_VERSION: &str = "2021-04-12";
/// Twins asked for per page.
const PAGE_SIZE: &str = "1000";
/// Most device ids in one `deviceId IN [...]` check, and the longest such list in characters
/// (the check's query stays far below IoT Hub's limit on a query's size).
const CHECK_IDS: usize = 200;
const CHECK_CHARS: usize = 4_000;

/// Which of a group's two twin queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TwinCollection {
    /// Device twins (`FROM devices`): agents running as the device identity.
    #[default]
    Devices,
    /// Module twins (`FROM devices.modules`): agents running as a module identity.
    Modules,
}

impl TwinCollection {
    fn name(self) -> &'static str {
        match self {
            TwinCollection::Devices => "devices",
            TwinCollection::Modules => "devices.modules",
        }
    }
}

/// Where a paged group lookup stands: which query, its continuation (`None`: its first page),
/// and whether the device-twin query found any member (then module rows are checked so a
/// device tagged on both twins counts once; when it found none there is nothing to check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPosition {
    /// The query the next page comes from (a position written before module twins were
    /// queried has none: the device-twin query).
    #[serde(default)]
    pub collection: TwinCollection,
    /// IoT Hub's continuation of that query.
    #[serde(default)]
    pub continuation: Option<String>,
    /// Whether earlier pages held device-twin members (unknown, for an older position: yes).
    #[serde(default = "unknown_means_yes")]
    pub device_twin_members: bool,
}

fn unknown_means_yes() -> bool {
    true
}

/// IoT Hub client.
#[derive(Clone)]
pub struct IotHubClient {
    rest: RestClient,
}

impl IotHubClient {
    /// A client behind `rest` (base = `https://{hub}.azure-devices.net` or a stand-in).
    pub fn new(rest: RestClient) -> Self {
        IotHubClient { rest }
    }

    /// The device ids of `group` (`tags.ADUGroup` on the device twin or on a module twin),
    /// each once, all pages of both queries.
    pub async fn group_devices(&self, group: &str) -> Result<Vec<String>, AzureError> {
        let mut devices = Vec::new();
        let mut position: Option<GroupPosition> = None;
        loop {
            let (page, next) = self.group_devices_page(group, position.as_ref()).await?;
            devices.extend(page);
            position = next;
            if position.is_none() {
                return Ok(devices);
            }
        }
    }

    /// One page of [`IotHubClient::group_devices`]: the page at `from` (the first when
    /// `None`), and the position of the next page, `None` after the last.
    ///
    /// The device-twin query's last page is followed, in the same page, by the module-twin
    /// query's first, so a group tagged only on device twins pages as before. Device ids are
    /// each given once: within a page, and across the two queries, by asking (only when the
    /// device-twin query found members) which devices of a module page are device-twin members
    /// already (`SELECT deviceId FROM devices WHERE tags.ADUGroup = … AND deviceId IN [...]`).
    pub async fn group_devices_page(
        &self,
        group: &str,
        from: Option<&GroupPosition>,
    ) -> Result<(Vec<String>, Option<GroupPosition>), AzureError> {
        let mut at = from.cloned().unwrap_or(GroupPosition {
            collection: TwinCollection::Devices,
            continuation: None,
            device_twin_members: false,
        });
        let mut devices = Vec::new();
        if at.collection == TwinCollection::Devices {
            let (twins, next) = self
                .query_page(
                    &group_query("*", TwinCollection::Devices, group),
                    at.continuation.as_deref(),
                )
                .await?;
            let found = distinct_device_ids(&twins);
            at.device_twin_members |= !found.is_empty();
            devices = found;
            if next.is_some() {
                at.continuation = next;
                return Ok((devices, Some(at)));
            }
            at = GroupPosition {
                collection: TwinCollection::Modules,
                continuation: None,
                device_twin_members: at.device_twin_members,
            };
        }
        let (twins, next) = self
            .query_page(
                &group_query("*", TwinCollection::Modules, group),
                at.continuation.as_deref(),
            )
            .await?;
        let mut modules = distinct_device_ids(&twins);
        let seen: HashSet<&String> = devices.iter().collect();
        modules.retain(|device| !seen.contains(device));
        if at.device_twin_members && !modules.is_empty() {
            let tagged = self.device_twin_members(group, &modules).await?;
            modules.retain(|device| !tagged.contains(device));
        }
        devices.extend(modules);
        let next = next.map(|continuation| GroupPosition {
            continuation: Some(continuation),
            ..at
        });
        Ok((devices, next))
    }

    /// Which of `devices` carry `tags.ADUGroup = group` on their device twin.
    async fn device_twin_members(
        &self,
        group: &str,
        devices: &[String],
    ) -> Result<HashSet<String>, AzureError> {
        let mut members = HashSet::new();
        let mut chunk: Vec<String> = Vec::new();
        let mut chars = 0;
        let mut chunks = Vec::new();
        for device in devices {
            let literal = literal(device);
            if !chunk.is_empty()
                && (chunk.len() >= CHECK_IDS || chars + literal.len() > CHECK_CHARS)
            {
                chunks.push(std::mem::take(&mut chunk));
                chars = 0;
            }
            chars += literal.len() + 2;
            chunk.push(literal);
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        for chunk in chunks {
            let query = format!(
                "{} AND deviceId IN [{}]",
                group_query("deviceId", TwinCollection::Devices, group),
                chunk.join(", ")
            );
            let mut continuation: Option<String> = None;
            loop {
                let (rows, next) = self.query_page(&query, continuation.as_deref()).await?;
                members.extend(distinct_device_ids(&rows));
                continuation = next;
                if continuation.is_none() {
                    break;
                }
            }
        }
        Ok(members)
    }

    /// One page of a twin query: its rows and the continuation of the next page.
    async fn query_page(
        &self,
        query: &str,
        continuation: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), AzureError> {
        let body = json!({"query": query});
        let path = format!("/devices/query?api-version={API_VERSION}");
        let mut headers = vec![("x-ms-max-item-count", PAGE_SIZE)];
        if let Some(token) = continuation {
            headers.push(("x-ms-continuation", token));
        }
        let reply = self
            .rest
            .send(Method::POST, &path, Some(&body), &headers)
            .await?;
        let next = reply.header("x-ms-continuation").filter(|c| !c.is_empty());
        let Value::Array(rows) = reply.body else {
            return Err(AzureError::Decode(
                "twin query did not answer an array".into(),
            ));
        };
        Ok((rows, next))
    }
}

/// `SELECT {select} FROM {collection} WHERE tags.ADUGroup = '{group}'`.
fn group_query(select: &str, collection: TwinCollection, group: &str) -> String {
    format!(
        "SELECT {select} FROM {} WHERE tags.ADUGroup = {}",
        collection.name(),
        literal(group)
    )
}

/// A string literal of the query language (`'` doubled inside).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `deviceId`s of twin rows, each once, in order (a device's module rows share its id).
fn distinct_device_ids(rows: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    rows.iter()
        .filter_map(|row| row.get("deviceId").and_then(Value::as_str))
        .filter(|id| seen.insert(*id))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_the_group() {
        assert_eq!(
            group_query("*", TwinCollection::Modules, "o'brien"),
            "SELECT * FROM devices.modules WHERE tags.ADUGroup = 'o''brien'"
        );
    }

    #[test]
    fn positions_written_before_module_twins_still_read() {
        let old: GroupPosition =
            serde_json::from_str(r#"{"continuation":"abc"}"#).expect("old position");
        assert_eq!(
            old,
            GroupPosition {
                collection: TwinCollection::Devices,
                continuation: Some("abc".into()),
                device_twin_members: true,
            }
        );
    }

    #[test]
    fn rows_give_each_device_once() {
        let rows = vec![
            json!({"deviceId": "a", "moduleId": "m1"}),
            json!({"deviceId": "b", "moduleId": "m1"}),
            json!({"deviceId": "a", "moduleId": "m2"}),
        ];
        assert_eq!(distinct_device_ids(&rows), ["a", "b"]);
    }
}
