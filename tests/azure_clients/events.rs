//! Lifecycle events: the JSON-lines sink used without configuration, and the Event Hubs
//! publisher over Event Hubs' REST send, against the stand-in.

use patchwave::azure::credential::{NoCredential, TokenSource};
use patchwave::azure::events::{cloud_event, EventHubsSink, JsonLinesSink, LifecycleSink};
use patchwave::azure::rest::{AzureError, RetryPolicy};
use patchwave_standin::{Standin, StandinConfig};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Hands out a fixed token for Event Hubs' scope only, counting requests.
#[derive(Debug, Default)]
struct FixedToken {
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenSource for FixedToken {
    async fn token(&self, scope: &str) -> Result<Option<String>, AzureError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        assert_eq!(scope, "https://eventhubs.azure.net/.default");
        Ok(Some("not-a-real-token".into()))
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
    }
}

fn event(i: usize) -> Value {
    cloud_event(
        &format!("ro-1:event:{i}"),
        "ro-1",
        "patchwave.wave.failed",
        "wave canary: 7 of 120 failed",
        chrono::DateTime::UNIX_EPOCH,
    )
}

#[tokio::test]
async fn lifecycle_events_reach_the_event_hub_over_its_rest_send() {
    let standin = Standin::start(StandinConfig::default())
        .await
        .expect("stand-in");
    let tokens = Arc::new(FixedToken::default());
    let sink =
        EventHubsSink::new(&standin.url(), "lifecycle", tokens.clone(), quick()).expect("sink");
    for i in 0..3 {
        sink.publish(&event(i)).await.expect("published");
    }
    let received = standin
        .world()
        .event_hubs
        .received("lifecycle")
        .expect("hub");
    let ids: Vec<&str> = received.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, ["ro-1:event:0", "ro-1:event:1", "ro-1:event:2"]);
    assert_eq!(received[0]["specversion"], "1.0");
    assert_eq!(
        received[0]["data"]["summary"],
        "wave canary: 7 of 120 failed"
    );
    assert!(tokens.asked.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn event_hubs_refusals_come_back_as_errors_with_the_services_detail() {
    let standin = Standin::start(StandinConfig::default())
        .await
        .expect("stand-in");
    // an event hub the namespace does not have: 404 with Service Bus's error body
    let sink = EventHubsSink::new(
        &standin.url(),
        "no-such-hub",
        Arc::new(FixedToken::default()),
        quick(),
    )
    .expect("sink");
    let error = sink.publish(&event(0)).await.expect_err("unknown hub");
    assert!(
        error.contains("404") && error.contains("could not be found"),
        "{error}"
    );
    assert!(
        !error.contains("not-a-real-token"),
        "no token in errors: {error}"
    );
    // no token at all: 401, not retried into success
    let anonymous =
        EventHubsSink::new(&standin.url(), "lifecycle", Arc::new(NoCredential), quick())
            .expect("sink");
    let error = anonymous.publish(&event(1)).await.expect_err("no token");
    assert!(
        error.contains("401") && error.contains("MalformedToken"),
        "{error}"
    );
    let received = standin
        .world()
        .event_hubs
        .received("lifecycle")
        .expect("hub");
    assert!(received.is_empty(), "nothing was taken: {received:?}");
}

#[tokio::test]
async fn the_event_hubs_stand_in_refuses_what_the_service_refuses() {
    let standin = Standin::start(StandinConfig::default())
        .await
        .expect("stand-in");
    let http = reqwest::Client::new();
    let url = format!("{}/lifecycle/messages?api-version=2014-01", standin.url());
    let atom = "application/atom+xml;type=entry;charset=utf-8";
    let send = |content_type: &'static str, body: Vec<u8>, url: String| {
        http.post(url)
            .bearer_auth("t")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(send(atom, b"{}".to_vec(), url.clone()).await.expect("ok")),
        201
    );
    assert_eq!(
        status(
            send("application/json", b"{}".to_vec(), url.clone())
                .await
                .expect("ct")
        ),
        400
    );
    assert_eq!(
        status(send(atom, Vec::new(), url.clone()).await.expect("empty")),
        400
    );
    assert_eq!(
        status(
            send(atom, vec![b'x'; 1024 * 1024 + 1], url.clone())
                .await
                .expect("big")
        ),
        413
    );
    let old = url.replace("2014-01", "2013-10");
    assert_eq!(
        status(send(atom, b"{}".to_vec(), old).await.expect("version")),
        400
    );
    let unauthenticated = http
        .post(&url)
        .header("content-type", atom)
        .body("{}")
        .send()
        .await
        .expect("anon");
    assert_eq!(unauthenticated.status().as_u16(), 401);
    assert_eq!(
        standin
            .world()
            .event_hubs
            .received("lifecycle")
            .expect("hub")
            .len(),
        1
    );
}
