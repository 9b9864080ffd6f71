//! Shared helpers: a fast configuration, reference examples, key-set comparison, a recording
//! handler, and polling.

use patchwave_standin::{GroupConfig, Standin, StandinConfig};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A configuration that finishes in well under a second.
pub fn fast_config(groups: Vec<GroupConfig>) -> StandinConfig {
    StandinConfig {
        groups,
        report_delay_min: Duration::from_millis(5),
        report_delay_max: Duration::from_millis(60),
        patch_duration: Duration::from_millis(500),
        maintenance_pre_wait: Duration::from_millis(300),
        batch_window: Duration::from_millis(20),
        redelivery_backoff_min: Duration::from_millis(50),
        redelivery_backoff_max: Duration::from_millis(200),
        ..StandinConfig::default()
    }
}

/// Starts a stand-in.
pub async fn start(config: StandinConfig) -> Standin {
    Standin::start(config).await.expect("stand-in starts")
}

/// An official Azure example, copied into `tests/fixtures/azure/` (sources in its README).
pub fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts every key of `example` is in `actual`, recursively through objects and the first
/// element of arrays of objects. Returns the keys checked.
pub fn assert_shape(example: &Value, actual: &Value, path: &str) -> usize {
    let mut checked = 0;
    match (example, actual) {
        (Value::Object(expected), Value::Object(got)) => {
            for (key, value) in expected {
                let here = format!("{path}.{key}");
                let found = got
                    .get(key)
                    .unwrap_or_else(|| panic!("missing {here} in {actual}"));
                checked += 1 + assert_shape(value, found, &here);
            }
        }
        (Value::Array(expected), Value::Array(got)) => {
            if let (Some(first), Some(got_first)) = (expected.first(), got.first()) {
                if first.is_object() {
                    checked += assert_shape(first, got_first, &format!("{path}[0]"));
                }
            }
        }
        (Value::Object(_), other) => panic!("{path} should be an object, found {other}"),
        _ => {}
    }
    checked
}

/// One POST the recording handler received.
#[derive(Debug, Clone)]
pub struct Call {
    pub function: String,
    pub invocation_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub answered: u16,
}

/// A tiny handler that records every invocation, answering 500 to the first `fail_first`.
pub struct Recorder {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    pub async fn start(fail_first: usize) -> Recorder {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        type Calls = Arc<Mutex<Vec<Call>>>;
        async fn record(
            State((calls, fail_first)): State<(Calls, usize)>,
            Path(function): Path<String>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> (StatusCode, String) {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            let mut calls = calls.lock().expect("lock");
            let status = if calls.len() < fail_first {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            calls.push(Call {
                function,
                invocation_id: header("x-azure-functions-invocationid"),
                content_type: header("content-type"),
                body: body.to_vec(),
                answered: status.as_u16(),
            });
            (
                status,
                r#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#.to_string(),
            )
        }
        let calls: Calls = Arc::default();
        let app = axum::Router::new()
            .route("/{function}", axum::routing::post(record))
            .with_state((calls.clone(), fail_first));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Recorder { url, calls }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    /// The calls to `function` that were answered 200.
    pub fn accepted(&self, function: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.function == function && c.answered == 200)
            .collect()
    }
}

/// Polls `done` every 20 ms until it holds, panicking with `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every device of the world's `index`-th deployment has finished it.
pub async fn deployment_finishes(world: &patchwave_standin::World, index: usize) {
    eventually("the deployment finishes", Duration::from_secs(10), || {
        world.deployments()[index]
            .devices
            .values()
            .all(|p| p.is_final())
    })
    .await;
}

/// A client for the stand-in.
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Asserts a response is a `400 InvalidApiVersion`.
pub async fn assert_invalid_api_version(response: reqwest::Response) {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidApiVersion", "{body}");
}
