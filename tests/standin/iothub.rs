//! IoT Hub twin query: the ADUGroup form over device and module twins, paging with
//! `x-ms-continuation`, refusals and faults in IoT Hub's own error form.

use crate::support::*;
use patchwave::azure::credential::NoCredential;
use patchwave::azure::events::JsonLinesSink;
use patchwave::azure::iot_hub::{self, IotHubClient};
use patchwave::azure::rest::{AzureError, RestClient, RetryPolicy};
use patchwave::azure::AzureExecutor;
use patchwave::ports::{EffectExecutor, EffectOutcome};
use patchwave_standin::{Faults, GroupConfig};
use rollout_core::{Effect, EffectKind, Rollout};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Asserts an answer is an IoT Hub error: `status`, the `iothub-errorcode` header, and the
/// body `{"Message":"ErrorCode:<code>;…","ExceptionMessage":"Tracking ID:…"}` with no Azure
/// `error` object. Returns the body.
async fn assert_hub_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response
            .headers()
            .get("iothub-errorcode")
            .and_then(|v| v.to_str().ok()),
        Some(code)
    );
    let body: Value = response.json().await.expect("json");
    let object = body.as_object().expect("an object");
    assert!(
        object.get("error").is_none(),
        "no Azure error object: {body}"
    );
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["ExceptionMessage", "Message"]),
        "{body}"
    );
    let message = body["Message"].as_str().expect("Message");
    let text = message
        .strip_prefix(&format!("ErrorCode:{code};"))
        .unwrap_or_else(|| panic!("Message names {code}: {message}"));
    assert!(!text.is_empty(), "{body}");
    assert!(
        body["ExceptionMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("Tracking ID:") && m.contains("-TimeStamp:")),
        "{body}"
    );
    body
}

fn rest(base: &str, max_attempts: u32) -> RestClient {
    let policy = RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(1500),
        timeout: Duration::from_secs(5),
    };
    RestClient::new(base, iot_hub::SCOPE, Arc::new(NoCredential), policy).expect("client")
}

#[tokio::test]
async fn twin_query_pages_with_continuation_tokens() {
    let standin = start(fast_config(vec![
        GroupConfig::numbered("canary", 250, 0.0),
        GroupConfig::numbered("fleet", 7, 0.0),
    ]))
    .await;
    let http = client();
    let url = format!("{}/devices/query?api-version=2021-04-12", standin.url());
    let query = json!({"query": "SELECT * FROM devices WHERE tags.ADUGroup = 'canary'"});
    let mut continuation: Option<String> = None;
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    loop {
        let mut request = http
            .post(&url)
            .bearer_auth("ignored")
            .header("x-ms-max-item-count", "100")
            .json(&query);
        if let Some(token) = &continuation {
            request = request.header("x-ms-continuation", token);
        }
        let response = request.send().await.expect("query");
        assert_eq!(response.status(), 200);
        continuation = response
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().expect("text").to_string());
        let twins: Vec<Value> = response.json().await.expect("json");
        pages.push(twins.len());
        for twin in &twins {
            assert_eq!(twin["tags"]["ADUGroup"], "canary");
            assert!(
                twin["etag"].is_string() && twin["version"].is_u64(),
                "{twin}"
            );
            assert_eq!(
                twin["properties"]["reported"]["deviceUpdate"]["agent"]["state"],
                0
            );
            ids.push(twin["deviceId"].as_str().expect("id").to_string());
        }
        if continuation.is_none() {
            break;
        }
    }
    assert_eq!(pages, vec![100, 100, 50]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250);

    // No WHERE: every device, one default page of 100.
    let all: Vec<Value> = http
        .post(&url)
        .json(&json!({"query": "SELECT * FROM devices"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(all.len(), 100);

    let small: Vec<Value> = http
        .post(&url)
        .json(&json!({"query": "select * from devices where tags.ADUGroup = 'fleet'"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(small.len(), 7);

    for body in [
        json!({"query": "SELECT properties FROM devices"}),
        json!({"query": "SELECT * FROM devices.jobs"}),
        json!({"query": "SELECT * FROM devices WHERE properties.reported.x = 1"}),
        json!({"sql": "SELECT * FROM devices"}),
    ] {
        let refused = http.post(&url).json(&body).send().await.expect("query");
        assert_hub_error(refused, 400, "ArgumentInvalid").await;
    }
    let foreign_token = http
        .post(&url)
        .header("x-ms-continuation", "bm90LWEtdG9rZW4=")
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_hub_error(foreign_token, 400, "ArgumentInvalid").await;

    let versionless = http
        .post(format!("{}/devices/query", standin.url()))
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_hub_error(versionless, 400, "InvalidProtocolVersion").await;
    let old = http
        .post(format!(
            "{}/devices/query?api-version=2020-03-13",
            standin.url()
        ))
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_hub_error(old, 400, "InvalidProtocolVersion").await;
}

#[tokio::test]
async fn every_error_is_in_iot_hubs_form_and_the_client_reads_it() {
    let standin = start(fast_config(vec![GroupConfig::numbered("canary", 3, 0.0)])).await;
    let http = client();
    let url = format!("{}/devices/query?api-version=2021-04-12", standin.url());
    let query = json!({"query": "SELECT * FROM devices WHERE tags.ADUGroup = 'canary'"});

    let not_json = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("query");
    assert_hub_error(not_json, 400, "IotHubFormatError").await;
    let zero_items = http
        .post(&url)
        .header("x-ms-max-item-count", "0")
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_hub_error(zero_items, 400, "ArgumentInvalid").await;
    let unsupported = http
        .post(&url)
        .json(&json!({"query": "SELECT deviceId, moduleId FROM devices.modules"}))
        .send()
        .await
        .expect("query");
    let body = assert_hub_error(unsupported, 400, "ArgumentInvalid").await;
    assert!(
        body["Message"]
            .as_str()
            .is_some_and(|m| m.contains("stand-in")),
        "{body}"
    );

    let world = standin.world();
    world.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    let throttled = http.post(&url).json(&query).send().await.expect("query");
    assert_eq!(
        throttled
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_hub_error(throttled, 429, "ThrottlingException").await;
    // the client reads it into the typed error (one attempt: no waiting here)
    let hub = IotHubClient::new(rest(&standin.url(), 1));
    match hub.group_devices("canary").await {
        Err(AzureError::Http {
            status: 429,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, "ThrottlingException");
            assert!(
                message.starts_with("The request was throttled"),
                "{message}"
            );
        }
        other => panic!("expected a 429, got {other:?}"),
    }

    world.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let failing = http.post(&url).json(&query).send().await.expect("query");
    assert_hub_error(failing, 500, "ServerError").await;
    let error = hub.group_devices("canary").await.expect_err("500");
    assert!(error.retryable());
    assert!(
        error.to_string().contains("HTTP 500 ServerError: "),
        "{error}"
    );

    world.set_faults(Faults::default());
    let mut devices = hub.group_devices("canary").await.expect("members");
    devices.sort();
    assert_eq!(devices, ["canary-0001", "canary-0002", "canary-0003"]);
}

#[tokio::test]
async fn module_twins_are_queried_in_iot_hubs_shape() {
    let mut edge = GroupConfig::numbered("edge", 3, 0.0);
    edge.module_id = Some("DeviceUpdateAgent".into());
    edge.device_twin_tagged = vec!["edge-0002".into()];
    let standin = start(fast_config(vec![
        edge,
        GroupConfig::numbered("canary", 2, 0.0),
    ]))
    .await;
    let http = client();
    let url = format!("{}/devices/query?api-version=2021-04-12", standin.url());
    let rows = |query: &str| {
        let request = http.post(&url).json(&json!({ "query": query }));
        async move {
            let response = request.send().await.expect("query");
            assert_eq!(response.status(), 200);
            response.json::<Vec<Value>>().await.expect("json")
        }
    };

    let modules = rows("SELECT * FROM devices.modules WHERE tags.ADUGroup = 'edge'").await;
    assert_eq!(modules.len(), 3);
    for twin in &modules {
        assert_eq!(twin["moduleId"], "DeviceUpdateAgent", "{twin}");
        assert_eq!(twin["tags"]["ADUGroup"], "edge");
        assert!(twin["deviceId"]
            .as_str()
            .is_some_and(|d| d.starts_with("edge-")));
        assert!(
            twin["etag"].is_string() && twin["version"].is_u64(),
            "{twin}"
        );
        assert_eq!(
            twin["properties"]["reported"]["deviceUpdate"]["agent"]["state"], 0,
            "the agent reports on the module twin"
        );
        assert!(twin.get("capabilities").is_none(), "a module twin: {twin}");
    }
    // the device twins: only the one tagged there too, without the agent's properties
    let devices = rows("SELECT * FROM devices WHERE tags.ADUGroup = 'edge'").await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["deviceId"], "edge-0002");
    assert!(devices[0].get("moduleId").is_none());
    assert!(devices[0]["properties"]["reported"]
        .get("deviceUpdate")
        .is_none());
    // device-twin groups have no module twins
    assert!(
        rows("SELECT * FROM devices.modules WHERE tags.ADUGroup = 'canary'")
            .await
            .is_empty()
    );
    assert_eq!(rows("SELECT * FROM devices.modules").await.len(), 3);
    let checked = rows(
        "SELECT deviceId FROM devices WHERE tags.ADUGroup = 'edge' AND deviceId IN ['edge-0001', 'edge-0002', 'canary-0001']",
    )
    .await;
    assert_eq!(checked, [json!({"deviceId": "edge-0002"})]);
}

/// A group whose agents run as modules (tagged on module twins only, one device on both twins)
/// is learned completely by the members effect, page by page, each device once.
#[tokio::test]
async fn a_module_group_is_learned_completely_each_device_once() {
    let mut edge = GroupConfig::numbered("edge", 2_300, 0.0);
    edge.module_id = Some("DeviceUpdateAgent".into());
    // one on the first module page, one on the second
    edge.device_twin_tagged = vec!["edge-0007".into(), "edge-1500".into()];
    let standin = start(fast_config(vec![
        edge,
        GroupConfig::numbered("canary", 5, 0.0),
    ]))
    .await;
    let hub = IotHubClient::new(rest(&standin.url(), 3));
    let executor = AzureExecutor::new(None, None, Some(hub), Arc::new(JsonLinesSink::stdout()));
    let plan = serde_json::from_value(json!({
        "name": "modules", "update": {"provider": "C", "name": "G", "version": "2"},
        "rollbackUpdate": {"provider": "C", "name": "G", "version": "1"},
        "waves": [{"name": "edge", "deviceGroup": "edge", "successThresholdPercent": 100,
                   "failureThresholdPercent": 5, "minDevicesJudged": 1, "soakMinutes": 0,
                   "deviceTimeoutMinutes": 60, "onFailure": "rollback"}]
    }))
    .expect("plan");
    let (rollout, _) = Rollout::create(
        "ro-modules".into(),
        plan,
        "alice",
        chrono::DateTime::UNIX_EPOCH,
    )
    .expect("rollout");
    let effect = Effect {
        id: "ro-modules:members:w0a1".into(),
        kind: EffectKind::FetchGroupMembers {
            wave: 0,
            group: "edge".into(),
        },
    };
    let (mut seen, mut sizes, mut checkpoint) = (Vec::new(), Vec::new(), None::<String>);
    let mut checkpoints = Vec::new();
    loop {
        let outcome = executor
            .execute(&rollout, &effect, checkpoint.as_deref())
            .await;
        let EffectOutcome::MembersPage {
            devices,
            page,
            resume,
        } = outcome
        else {
            panic!("expected a page, got {outcome:?}")
        };
        assert_eq!(page as usize, sizes.len());
        sizes.push(devices.len());
        seen.extend(devices);
        checkpoint = resume;
        match &checkpoint {
            Some(at) => checkpoints.push(at.clone()),
            None => break,
        }
    }
    // page 0: both device-twin members, then the first 1,000 module twins less edge-0007;
    // page 1: module twins 1,001-2,000 less edge-1500; page 2: the last 300
    assert_eq!(sizes, [1_001, 999, 300]);
    assert!(
        checkpoints
            .iter()
            .all(|c| c.contains("\"collection\":\"modules\"")),
        "{checkpoints:?}"
    );
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "each device once");
    assert_eq!(seen.len(), 2_300, "every device of the group");
    assert!(seen.iter().all(|d| d.starts_with("edge-")));
}
