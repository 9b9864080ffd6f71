//! A local HTTP server that records every request and answers from a script.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use patchwave::azure::credential::TokenSource;
use patchwave::azure::rest::{AzureError, RestClient, RetryPolicy};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type Script =
    Arc<dyn Fn(&Recorded, usize) -> (u16, Vec<(String, String)>, Value) + Send + Sync>;

pub struct Recorder {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    pub async fn start(script: Script) -> Recorder {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                let script = script.clone();
                async move {
                    let recorded = Recorded {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: uri.query().unwrap_or_default().to_string(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    };
                    let index = {
                        let mut all = seen.lock().expect("lock");
                        all.push(recorded.clone());
                        all.len() - 1
                    };
                    let (status, headers, body) = script(&recorded, index);
                    let mut response: Response = (
                        StatusCode::from_u16(status).expect("status"),
                        body.to_string(),
                    )
                        .into_response();
                    for (name, value) in headers {
                        response.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                            value.parse().expect("value"),
                        );
                    }
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().expect("ct"));
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Recorder { url, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

/// A fixed token, to see that it is sent.
pub struct StaticToken;

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, scope: &str) -> Result<Option<String>, AzureError> {
        Ok(Some(format!("token-for-{}", scope.len())))
    }
}

pub fn client(recorder: &Recorder, scope: &str) -> RestClient {
    let policy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
    };
    RestClient::new(&recorder.url, scope, Arc::new(StaticToken), policy).expect("client")
}

/// An official Azure example, copied into `tests/fixtures/azure/` (sources in its README).
pub fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn ok(body: Value) -> (u16, Vec<(String, String)>, Value) {
    (200, vec![], body)
}
