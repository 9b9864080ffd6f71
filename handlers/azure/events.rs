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
