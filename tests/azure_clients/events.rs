//! Lifecycle events: the JSON-lines sink used without configuration, and the Event Hubs
//! publisher up to the network boundary.

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use patchwave::azure::events::{cloud_event, EventHubsSink, JsonLinesSink, LifecycleSink};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test]
async fn without_an_event_hub_events_are_cloudevents_json_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.jsonl");
    let sink = JsonLinesSink::file(path.clone()).expect("sink");
    let time = chrono::DateTime::parse_from_rfc3339("2026-11-23T01:00:00Z")
        .expect("time")
        .to_utc();
    for (i, kind) in ["patchwave.rollout.created", "patchwave.wave.failed"]
        .iter()
        .enumerate()
    {
        let event = cloud_event(
            &format!("ro-1:event:{i}"),
            "ro-1",
            kind,
            "wave canary: 7 of 120 failed",
            time,
        );
        sink.publish(&event).await.expect("published");
    }
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .expect("file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["specversion"], "1.0");
    assert_eq!(lines[1]["type"], "patchwave.wave.failed");
    assert_eq!(lines[1]["source"], "/patchwave/rollouts/ro-1");
    assert_eq!(lines[1]["id"], "ro-1:event:1");
    assert_eq!(lines[1]["data"]["summary"], "wave canary: 7 of 120 failed");
}

#[derive(Debug, Default)]
struct CountingCredential {
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for CountingCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken {
            token: Secret::new("not-a-real-token"),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::hours(1),
        })
    }
}

#[tokio::test]
async fn the_event_hubs_publisher_reaches_the_network_and_reports_the_failure() {
    // a port with nobody listening: the AMQP connection is refused
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    drop(listener);
    let credential = Arc::new(CountingCredential::default());
    let retry = azure_messaging_eventhubs::RetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(10),
        max_delay: azure_core::time::Duration::milliseconds(50),
        max_total_elapsed: azure_core::time::Duration::seconds(2),
        max_retries: 1,
    };
    let sink =
        EventHubsSink::new(&address.to_string(), "lifecycle", credential.clone()).with_retry(retry);
    let event = cloud_event(
        "ro-1:event:0",
        "ro-1",
        "patchwave.rollout.created",
        "created",
        chrono::DateTime::UNIX_EPOCH,
    );
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), sink.publish(&event))
        .await
        .expect("gives up in time");
    let error = outcome.expect_err("nobody listens");
    assert!(
        error.contains("opening Event Hub") && error.contains("lifecycle"),
        "{error}"
    );
    assert!(
        !error.contains("not-a-real-token"),
        "no token in errors: {error}"
    );
}
