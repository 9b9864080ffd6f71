//! Shared test helpers: spawning the app, loading examples, building host envelopes.

use patchwave::inputs::{RecordingSink, TriggerInput};
use patchwave::startup::Application;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A running handler and what it delivered.
pub struct TestApp {
    pub address: String,
    pub sink: Arc<RecordingSink>,
    pub client: reqwest::Client,
}

/// Binds the real router on 127.0.0.1:0 with a recording sink and serves it in the background.
pub async fn spawn_app() -> TestApp {
    let sink = Arc::new(RecordingSink::default());
    let state = patchwave::state::AppState::with_sink(sink.clone(), Default::default());
    let app = Application::bind(0, state).await.expect("bind");
    let address = format!("http://{}", app.local_addr().expect("address"));
    tokio::spawn(app.serve(std::future::pending()));
    TestApp {
        address,
        sink,
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    /// POSTs an invocation body to `/{function}` as the host does; returns status and JSON.
    pub async fn invoke(&self, function: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/{function}", self.address))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-HostVersion", "4.1037.1.1")
            .header(
                "X-Azure-Functions-InvocationId",
                "0f5e9a9c-4f0b-4a51-9d1e-2b8f8e6c3a10",
            )
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("application/json"),
            "content type {content_type}"
        );
        let json: Value = response.json().await.expect("JSON body");
        assert!(
            json.get("Outputs").is_some() && json.get("Logs").is_some(),
            "{json}"
        );
        (status, json)
    }

    /// POSTs JSON to a function and expects `200`.
    pub async fn invoke_ok(&self, function: &str, envelope: &Value) -> Value {
        let (status, json) = self.invoke(function, envelope.to_string()).await;
        assert_eq!(status, 200, "{json}");
        json
    }

    /// Everything delivered so far.
    pub fn inputs(&self) -> Vec<TriggerInput> {
        self.sink.inputs()
    }
}

/// `tests/fixtures/`: official examples under `azure/` and `functions-host/`, payloads built
/// from the documents at the top level (sources in its README).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads an official JSON example from `tests/fixtures/<relative>`, e.g. `azure/x.json`.
pub fn reference(relative: &str) -> Value {
    read_json(&fixtures_dir().join(relative))
}

/// Reads a JSON fixture from `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Value {
    read_json(&fixtures_dir().join(name))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The envelope the host sends an `eventGridTrigger`: the event, indented, as a JSON string
/// inside a JSON string.
pub fn event_grid_envelope(event: &Value) -> Value {
    let indented = serde_json::to_string_pretty(event).expect("serialize");
    json!({
        "Data": {"event": serde_json::to_string(&indented).expect("encode")},
        "Metadata": {"sys": {"MethodName": "PatchEvents", "UtcNow": "2023-05-09T15:55:01Z", "RandGuid": "00000000-0000-0000-0000-000000000001"}}
    })
}

/// One Event Hubs message for a batch envelope.
pub struct HubMessage {
    pub body: String,
    pub application: Value,
    pub system: Value,
}

impl HubMessage {
    /// A twin change notification as IoT Hub routes it: body plus its documented properties.
    pub fn twin_change(device: &str, body: &Value) -> Self {
        HubMessage {
            body: body.to_string(),
            application: json!({
                "hubName": "contoso-edge-hub", "deviceId": device,
                "operationTimestamp": "2024-05-14T03:41:12.1234567Z",
                "iothub-message-schema": "twinChangeNotification", "opType": "updateTwin"
            }),
            system: json!({
                "content-type": "application/json", "content-encoding": "utf-8",
                "user-id": "contoso-edge-hub", "iothub-connection-device-id": device,
                "iothub-enqueuedtime": "2024-05-14T03:41:12.2000000Z",
                "iothub-message-source": "twinChangeEvents"
            }),
        }
    }

    /// A Device Update agent report (the `{"deviceUpdate": …}` reported fragment).
    pub fn agent_report(device: &str, twin_version: u64, reported: &Value) -> Self {
        let mut reported = reported.clone();
        reported["$version"] = json!(twin_version.saturating_sub(17));
        Self::twin_change(
            device,
            &json!({"version": twin_version, "properties": {"reported": reported}}),
        )
    }
}

/// The envelope the host sends an `eventHubTrigger` with `cardinality: many`,
/// `dataType: string`: bodies and metadata columns each a JSON string holding an array.
pub fn event_hub_envelope(messages: &[HubMessage]) -> Value {
    let encode = |values: Vec<Value>| Value::String(Value::Array(values).to_string());
    let bodies: Vec<Value> = messages
        .iter()
        .map(|m| Value::String(m.body.clone()))
        .collect();
    let count = messages.len();
    json!({
        "Data": {"events": encode(bodies)},
        "Metadata": {
            "TriggerPartitionContext": {"IsCheckpointingAfterInvocation": true,
                "FullyQualifiedNamespace": "patchwave-ns.servicebus.windows.net",
                "EventHubName": "twin-changes", "ConsumerGroup": "patchwave", "PartitionId": "3"},
            "PropertiesArray": encode(messages.iter().map(|m| m.application.clone()).collect()),
            "SystemPropertiesArray": encode(messages.iter().map(|m| m.system.clone()).collect()),
            "SequenceNumberArray": encode((0..count).map(|i| json!(1000 + i)).collect()),
            "EnqueuedTimeUtcArray": encode((0..count).map(|_| json!("2024-05-14T03:41:12.2")).collect()),
            "sys": {"MethodName": "TwinChanges", "UtcNow": "2024-05-14T03:41:13Z", "RandGuid": "00000000-0000-0000-0000-000000000002"}
        }
    })
}
