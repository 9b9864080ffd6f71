//! The IoT Hub client: IoT Hub's own error form read into the typed error, and a group's
//! members from device twins and module twins, each device once.

use crate::recorder::*;
use patchwave::azure::iot_hub::{IotHubClient, TwinCollection};
use patchwave::azure::rest::AzureError;
use serde_json::{json, Value};
use std::sync::Arc;

const SCOPE: &str = "https://iothubs.azure.net/.default";

/// An IoT Hub error answer: its body and the `iothub-errorcode` header.
fn hub_error(status: u16, code: &str, text: &str) -> (u16, Vec<(String, String)>, Value) {
    (
        status,
        vec![("iothub-errorcode".into(), code.into())],
        json!({
            "Message": format!("ErrorCode:{code};{text}"),
            "ExceptionMessage": "Tracking ID:8D0B1A2C3E4F40A1B2C3D4E5F6A7B8C9-G:3-TimeStamp:12/12/2025 12:36:43",
        }),
    )
}

fn http_error(error: AzureError) -> (u16, String, String) {
    match error {
        AzureError::Http {
            status,
            code,
            message,
            ..
        } => (status, code, message),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[tokio::test]
async fn iot_hub_errors_are_read_from_iot_hubs_own_form() {
    let quota = "Total number of messages on IotHub 'x' exceeded the allocated quota. Max allowed message count : '8000', current message count : '8448'. Send and Receive operations are blocked for this hub until the next UTC day. Consider increasing the units for this hub to increase the quota.";
    let recorder = Recorder::start(Arc::new(move |_, _| {
        hub_error(403, "IotHubQuotaExceeded", quota)
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    let error = hub.group_devices("canary").await.expect_err("403");
    assert!(!error.retryable(), "a 403 is not retried: {error}");
    assert_eq!(
        http_error(error),
        (403, "IotHubQuotaExceeded".to_string(), quota.to_string())
    );
    assert_eq!(recorder.requests().len(), 1);

    // No header: the code comes from `ErrorCode:` in the Message.
    let recorder = Recorder::start(Arc::new(|_, _| {
        let (status, _, body) = hub_error(401, "IotHubUnauthorizedAccess", "Unauthorized");
        (status, vec![], body)
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    let error = hub.group_devices("canary").await.expect_err("401");
    assert_eq!(
        http_error(error),
        (
            401,
            "IotHubUnauthorizedAccess".to_string(),
            "Unauthorized".to_string()
        )
    );

    // The Message may itself be a JSON object with a numeric errorCode.
    let recorder = Recorder::start(Arc::new(|_, _| {
        (
            403,
            vec![],
            json!({
                "Message": "{\"errorCode\":403002,\"trackingId\":\"c41e-G:3-TimeStamp:12/12/2019 12:36:43\",\"message\":\"Total number of messages on IotHub 'x' exceeded the allocated quota.\",\"timestampUtc\":\"2019-12-12T12:36:43.5570129Z\"}",
                "ExceptionMessage": "",
            }),
        )
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    let error = hub.group_devices("canary").await.expect_err("403");
    assert_eq!(
        http_error(error),
        (
            403,
            "403002".to_string(),
            "Total number of messages on IotHub 'x' exceeded the allocated quota.".to_string()
        )
    );
}

#[tokio::test]
async fn iot_hub_throttling_and_server_errors_are_retried_and_typed() {
    // 429 ThrottlingException, then 500 ServerError, then the answer: both retried.
    let recorder = Recorder::start(Arc::new(|r, index| match index {
        0 => hub_error(429, "ThrottlingException", "Too many requests"),
        1 => hub_error(500, "ServerError", "Internal server error"),
        _ if r.body["query"]
            .as_str()
            .is_some_and(|q| q.contains("modules")) =>
        {
            ok(json!([]))
        }
        _ => ok(json!([{"deviceId": "d1"}])),
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    assert_eq!(hub.group_devices("g").await.expect("retried"), ["d1"]);
    assert_eq!(recorder.requests().len(), 4);

    // Always throttled: the last error is typed with IoT Hub's code, and retryable.
    let recorder = Recorder::start(Arc::new(|_, _| {
        hub_error(429, "ThrottlingException", "Too many requests")
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    let error = hub.group_devices("g").await.expect_err("429");
    assert!(error.retryable());
    assert_eq!(
        http_error(error),
        (
            429,
            "ThrottlingException".to_string(),
            "Too many requests".to_string()
        )
    );
    assert_eq!(
        recorder.requests().len(),
        3,
        "max_attempts of the test policy"
    );
}

#[tokio::test]
async fn azure_error_objects_are_still_read_for_the_other_services() {
    let recorder = Recorder::start(Arc::new(|_, _| {
        (
            404,
            vec![],
            json!({"error": {"code": "DeviceNotFound", "message": "no such device"}}),
        )
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    let error = hub.group_devices("g").await.expect_err("404");
    assert_eq!(
        http_error(error),
        (
            404,
            "DeviceNotFound".to_string(),
            "no such device".to_string()
        )
    );
}

fn query_of(body: &Value) -> String {
    body["query"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn group_members_come_from_device_and_module_twins_each_device_once() {
    // Device twins: d1, d2 (page 1), d5 (page 2). Module twins: d2 (also tagged on its device
    // twin), d3 twice (two tagged modules), then d4 (page 2).
    let recorder = Recorder::start(Arc::new(|r, _| {
        let query = query_of(&r.body);
        let continuation = r.header("x-ms-continuation");
        let page = |rows: Value, next: Option<&str>| {
            let headers = next
                .map(|n| vec![("x-ms-continuation".to_string(), n.to_string())])
                .unwrap_or_default();
            (200, headers, rows)
        };
        if query.starts_with("SELECT deviceId FROM devices ") {
            // which of the listed devices are tagged on their device twin
            let tagged: Vec<Value> = ["d1", "d2", "d5"]
                .iter()
                .filter(|d| query.contains(&format!("'{d}'")))
                .map(|d| json!({"deviceId": d}))
                .collect();
            return ok(Value::Array(tagged));
        }
        match (query.contains("devices.modules"), continuation) {
            (false, None) => page(
                json!([{"deviceId": "d1"}, {"deviceId": "d2"}]),
                Some("dev-2"),
            ),
            (false, Some("dev-2")) => page(json!([{"deviceId": "d5"}]), None),
            (true, None) => page(
                json!([
                    {"deviceId": "d2", "moduleId": "DeviceUpdateAgent"},
                    {"deviceId": "d3", "moduleId": "DeviceUpdateAgent"},
                    {"deviceId": "d3", "moduleId": "other"},
                ]),
                Some("mod-2"),
            ),
            (true, Some("mod-2")) => page(
                json!([{"deviceId": "d4", "moduleId": "DeviceUpdateAgent"}]),
                None,
            ),
            other => panic!("unexpected query {other:?}"),
        }
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));

    let (first, at) = hub.group_devices_page("g", None).await.expect("page 0");
    assert_eq!(first, ["d1", "d2"]);
    let at = at.expect("more");
    assert_eq!(at.collection, TwinCollection::Devices);
    let (second, at) = hub
        .group_devices_page("g", Some(&at))
        .await
        .expect("page 1");
    assert_eq!(
        second,
        ["d5", "d3"],
        "the device twins' last page, then module twins"
    );
    let at = at.expect("more");
    assert_eq!(at.collection, TwinCollection::Modules);
    assert_eq!(at.continuation.as_deref(), Some("mod-2"));
    let (third, at) = hub
        .group_devices_page("g", Some(&at))
        .await
        .expect("page 2");
    assert_eq!(third, ["d4"]);
    assert!(at.is_none());

    let queries: Vec<String> = recorder
        .requests()
        .iter()
        .map(|r| query_of(&r.body))
        .collect();
    assert!(
        queries.contains(
            &"SELECT deviceId FROM devices WHERE tags.ADUGroup = 'g' AND deviceId IN ['d2', 'd3']"
                .to_string()
        ),
        "{queries:#?}"
    );
    assert!(
        queries.contains(&"SELECT * FROM devices.modules WHERE tags.ADUGroup = 'g'".to_string())
    );

    let mut all = hub.group_devices("g").await.expect("all");
    all.sort();
    assert_eq!(all, ["d1", "d2", "d3", "d4", "d5"]);
}

#[tokio::test]
async fn a_group_without_device_twin_members_asks_no_check() {
    let recorder = Recorder::start(Arc::new(|r, _| {
        if query_of(&r.body).contains("devices.modules") {
            ok(json!([{"deviceId": "m1", "moduleId": "a"}, {"deviceId": "m2", "moduleId": "a"}]))
        } else {
            ok(json!([]))
        }
    }))
    .await;
    let hub = IotHubClient::new(client(&recorder, SCOPE));
    assert_eq!(hub.group_devices("g").await.expect("members"), ["m1", "m2"]);
    assert_eq!(
        recorder.requests().len(),
        2,
        "device twins, module twins, no check"
    );
}
