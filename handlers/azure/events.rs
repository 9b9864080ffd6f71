//! Lifecycle events (rollout created, wave started/passed/failed, rollback opened/finished,
//! dead letter) as CloudEvents 1.0 JSON: to Event Hubs when configured, else to a JSON-lines
//! file or stdout.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

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

/// Publishes lifecycle events to an Event Hub (`PATCHWAVE_EVENTHUB_NAMESPACE`,
/// `PATCHWAVE_EVENTHUB_NAME`) with the managed identity; the connection opens on first use.
pub struct EventHubsSink {
    namespace: String,
    event_hub: String,
    credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    retry: Option<azure_messaging_eventhubs::RetryOptions>,
    producer: tokio::sync::OnceCell<azure_messaging_eventhubs::ProducerClient>,
}

impl EventHubsSink {
    /// A sink for `event_hub` in `namespace` (`<name>.servicebus.windows.net`).
    pub fn new(
        namespace: &str,
        event_hub: &str,
        credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Self {
        let namespace = if namespace.contains('.') {
            namespace.to_string()
        } else {
            format!("{namespace}.servicebus.windows.net")
        };
        EventHubsSink {
            namespace,
            event_hub: event_hub.to_string(),
            credential,
            retry: None,
            producer: tokio::sync::OnceCell::new(),
        }
    }

    /// Overrides the client's retry options (the crate's defaults retry for up to a minute).
    pub fn with_retry(mut self, retry: azure_messaging_eventhubs::RetryOptions) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The fully qualified namespace events go to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

#[async_trait::async_trait]
impl LifecycleSink for EventHubsSink {
    async fn publish(&self, event: &Value) -> Result<(), String> {
        let producer = self
            .producer
            .get_or_try_init(|| async {
                let mut builder = azure_messaging_eventhubs::ProducerClient::builder()
                    .with_application_id("patchwave".to_string());
                if let Some(retry) = &self.retry {
                    builder = builder.with_retry_options(retry.clone());
                }
                builder
                    .open(&self.namespace, &self.event_hub, self.credential.clone())
                    .await
            })
            .await
            .map_err(|e| {
                format!(
                    "opening Event Hub {}/{}: {e}",
                    self.namespace, self.event_hub
                )
            })?;
        let data = azure_messaging_eventhubs::models::EventData::builder()
            .with_body(event.to_string())
            .with_content_type("application/cloudevents+json; charset=utf-8".to_string())
            .build();
        producer
            .send_event(data, None)
            .await
            .map_err(|e| format!("sending to Event Hub {}: {e}", self.event_hub))
    }
}
