//! IoT Hub: the devices of a Device Update group, by twin query on the `ADUGroup` tag. Asked
//! once per wave (twin queries are throttled hard), paging with `x-ms-continuation`.

use super::rest::{AzureError, RestClient};
use reqwest::Method;
use serde_json::{json, Value};

/// Token scope of the IoT Hub service API.
pub const SCOPE: &str = "https://iothubs.azure.net/.default";
/// Service API version of the twin query.
pub const API_VERSION: &str = "2021-04-12";
/// Twins asked for per page.
const PAGE_SIZE: &str = "1000";

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

    /// The device ids whose twin carries `tags.ADUGroup = group`, all pages.
    pub async fn group_devices(&self, group: &str) -> Result<Vec<String>, AzureError> {
        let mut devices = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let (page, next) = self
                .group_devices_page(group, continuation.as_deref())
                .await?;
            devices.extend(page);
            continuation = next;
            if continuation.is_none() {
                return Ok(devices);
            }
        }
    }

    /// One page of [`IotHubClient::group_devices`]: the page after `continuation` (the first
    /// when `None`), and the continuation of the next page, `None` after the last.
    pub async fn group_devices_page(
        &self,
        group: &str,
        continuation: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), AzureError> {
        let query = format!(
            "SELECT * FROM devices WHERE tags.ADUGroup = '{}'",
            group.replace('\'', "''")
        );
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
        let twins = reply
            .body
            .as_array()
            .ok_or_else(|| AzureError::Decode("twin query did not answer an array".into()))?;
        let devices = twins
            .iter()
            .filter_map(|t| t.get("deviceId").and_then(Value::as_str))
            .map(String::from)
            .collect();
        let next = reply.header("x-ms-continuation").filter(|c| !c.is_empty());
        Ok((devices, next))
    }
}
