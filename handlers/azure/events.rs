//! Lifecycle events (rollout created, wave started/passed/failed, rollback opened/finished,
//! dead letter) as CloudEvents 1.0 JSON: to Event Hubs when configured, else to a JSON-lines
//! file or stdout.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::credential::TokenSource;
use super::rest::{AzureError, RestClient, RetryPolicy};
use reqwest::Method;

/// Builds the CloudEvents 1.0 envelope of a lifecycle event.
pub fn cloud_event(
    id: &str,
    rollout: &str,
    event_type: &str,
    summary: &str,
    time: DateTime<Utc>,
) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("/patchwave/rollouts/{rollout}"),
        "type": event_type,
        "subject": rollout,
        "time": time.to_rfc3339(),
        "datacontenttype": "application/json",
        "data": {"rollout": rollout, "summary": summary}
    })
}

/// Where lifecycle events go.
#[async_trait::async_trait]
pub trait LifecycleSink: Send + Sync + 'static {
    /// Publishes one CloudEvent; an error is retried later.
    async fn publish(&self, event: &Value) -> Result<(), String>;
}

/// Writes one JSON line per event to a file (appending) or to stdout.
#[derive(Debug)]
pub struct JsonLinesSink {
    file: Option<Mutex<std::fs::File>>,
    path: Option<PathBuf>,
}

impl JsonLinesSink {
    /// Events to stdout.
    pub fn stdout() -> Self {
        JsonLinesSink {
            file: None,
            path: None,
        }
    }

    /// Events appended to `path`.
    pub fn file(path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(JsonLinesSink {
            file: Some(Mutex::new(file)),
            path: Some(path),
        })
    }
}

#[async_trait::async_trait]
impl LifecycleSink for JsonLinesSink {
    async fn publish(&self, event: &Value) -> Result<(), String> {
        let line = format!("{event}\n");
        match &self.file {
            Some(file) => {
                let mut file = file
                    .lock()
                    .map_err(|_| "event file lock poisoned".to_string())?;
                file.write_all(line.as_bytes()).map_err(|e| {
                    format!(
                        "writing {}: {e}",
                        self.path
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )
                })
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(line.as_bytes())
                    .map_err(|e| format!("writing stdout: {e}"))
            }
        }
    }
}

/// Token scope of Event Hubs' data plane.
pub const SCOPE: &str = "https://eventhubs.azure.net/.default";

/// Publishes lifecycle events to an Event Hub (`PATCHWAVE_EVENTHUB_NAMESPACE`,
/// `PATCHWAVE_EVENTHUB_NAME`) with Event Hubs' REST send over HTTPS: the same TLS stack
/// (rustls), token source and retry policy as every other Azure call. The caller's identity
/// needs `Azure Event Hubs Data Sender` on the hub.
pub struct EventHubsSink {
    rest: RestClient,
    event_hub: String,
}

impl EventHubsSink {
    /// A sink for `event_hub` in `namespace`: a bare name (`name.servicebus.windows.net`), a
    /// fully qualified namespace, or a base URL (a stand-in's `http://127.0.0.1:PORT`).
    pub fn new(
        namespace: &str,
        event_hub: &str,
        tokens: Arc<dyn TokenSource>,
        policy: RetryPolicy,
    ) -> Result<Self, AzureError> {
        let base = namespace_url(namespace);
        Ok(EventHubsSink {
            rest: RestClient::new(&base, SCOPE, tokens, policy)?,
            event_hub: event_hub.to_string(),
        })
    }

    /// The base URL events go to.
    pub fn namespace(&self) -> &str {
        self.rest.base()
    }
}

/// The base URL of a namespace given as a name, a host name or a URL.
fn namespace_url(namespace: &str) -> String {
    let namespace = namespace.trim().trim_end_matches('/');
    if namespace.starts_with("http://") || namespace.starts_with("https://") {
        namespace.to_string()
    } else if let Some(host) = namespace.strip_prefix("sb://") {
        format!("https://{host}")
    } else if namespace.contains('.') {
        format!("https://{namespace}")
    } else {
        format!("https://{namespace}.servicebus.windows.net")
    }
}

#[async_trait::async_trait]
impl LifecycleSink for EventHubsSink {
    async fn publish(&self, event: &Value) -> Result<(), String> {
        let target = format!(
            "/{}/messages?timeout=60&api-version={SEND_API_VERSION}",
            percent_encoding::utf8_percent_encode(
                &self.event_hub,
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        self.rest
            .send_text(Method::POST, &target, SEND_CONTENT_TYPE, &event.to_string())
            .await
            .map(|_| ())
            .map_err(|e| format!("sending to Event Hub {}: {e}", self.event_hub))
    }
}

/// The api-version of Event Hubs' runtime REST API.
const SEND_API_VERSION: &str = "2014-01";
/// The content type that API documents for sending one event (the body is the event as is).
const SEND_CONTENT_TYPE: &str = "application/atom+xml;type=entry;charset=utf-8";
