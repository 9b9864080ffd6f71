//! Maintenance runs: Pre and Post events reach `POST /PatchEvents` as the host delivers an
//! eventGridTrigger, and a run cancelled through Resource Manager never reports `Succeeded`.

use crate::support::*;
use patchwave::decode::event_grid::{
    decode_events, MaintenanceEvent, MaintenancePhase, PatchEvent, RunStatus,
};
use patchwave::host::Invocation;
use patchwave_standin::{MachineConfig, MachineOs, RunState};
use serde_json::{json, Value};
use std::time::Duration;

const CONFIG_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/testrg/providers/Microsoft.Maintenance/maintenanceConfigurations/gw-hosts";

fn decode(call: &Call) -> MaintenanceEvent {
    assert!(call.invocation_id.is_some());
    let invocation = Invocation::parse(&call.body).expect("envelope");
    let binding = invocation.binding("event").expect("binding event");
    assert!(binding.is_string(), "the event arrives as a JSON string");
    let mut events = decode_events(binding);
    assert_eq!(events.len(), 1);
    match events.remove(0) {
        Ok(PatchEvent::Maintenance(event)) => event,
        other => panic!("not a maintenance event: {other:?}"),
    }
}

async fn schedule(url: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{url}/_standin/maintenance"))
        .json(&body)
        .send()
        .await
        .expect("schedule");
    assert_eq!(response.status(), 202);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_maintenance_run_sends_pre_then_post_events() {
    let recorder = Recorder::start(0).await;
    let mut config = fast_config(vec![]);
    config.handler_url = Some(recorder.url.clone());
    config.machines = vec![MachineConfig {
        id: "gw-bad".into(),
        fails: true,
        os: MachineOs::Linux,
    }];
    let standin = start(config).await;
    let scheduled = schedule(
        &standin.url(),
        json!({"configurationId": CONFIG_ID, "start": "2026-11-23T01:00:00Z", "machines": ["gw-01"]}),
    )
    .await;
    let run_id = format!("{CONFIG_ID}/providers/microsoft.maintenance/applyupdates/20261123010000");
    assert_eq!(scheduled["correlationId"], run_id);
    eventually("pre and post events", Duration::from_secs(10), || {
        recorder.accepted("PatchEvents").len() == 2
    })
    .await;
    let events: Vec<MaintenanceEvent> = recorder
        .accepted("PatchEvents")
        .iter()
        .map(decode)
        .collect();
    assert_eq!(events[0].phase, MaintenancePhase::Pre);
    assert_eq!(events[1].phase, MaintenancePhase::Post);
    for event in &events {
        assert_eq!(event.id, run_id);
        assert_eq!(event.correlation_id, run_id);
        assert_eq!(event.maintenance_configuration_id, CONFIG_ID);
        assert_eq!(
            event.resource_subscription_ids,
            vec!["00000000-0000-0000-0000-000000000000"]
        );
        assert_eq!(
            event.start.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-23T01:00:00+00:00")
        );
    }
    assert!(events[0].cancellation_cutoff.is_some());
    assert_eq!(events[1].status, Some(RunStatus::Succeeded));

    // The event JSON follows the official Event Grid example's shape.
    let raw: Value =
        serde_json::from_slice(&recorder.accepted("PatchEvents")[1].body).expect("json");
    let inner: String =
        serde_json::from_str(raw["Data"]["event"].as_str().expect("string")).expect("encoded");
    assert!(inner.contains("\n  \""), "indented event JSON");
    let event: Value = serde_json::from_str(&inner).expect("event");
    let official = example("eventgrid-post-maintenance-event.json");
    assert_shape(&official[0], &event, "");
    assert_eq!(raw["Metadata"]["sys"]["MethodName"], "PatchEvents");

    // A run with a failing machine ends Failed.
    schedule(
        &standin.url(),
        json!({"configurationId": CONFIG_ID, "start": "2026-11-24T01:00:00Z", "machines": ["gw-01", "gw-bad"], "preWaitMs": 10}),
    )
    .await;
    eventually("the second run's events", Duration::from_secs(10), || {
        recorder.accepted("PatchEvents").len() == 4
    })
    .await;
    let last = decode(&recorder.accepted("PatchEvents")[3]);
    assert_eq!(last.status, Some(RunStatus::Failed));
}

#[tokio::test]
async fn a_cancelled_run_never_reports_succeeded() {
    let recorder = Recorder::start(0).await;
    let mut config = fast_config(vec![]);
    config.handler_url = Some(recorder.url.clone());
    let standin = start(config).await;
    schedule(
        &standin.url(),
        json!({"configurationId": CONFIG_ID, "machines": ["gw-01"], "preWaitMs": 1200}),
    )
    .await;
    eventually("the pre event", Duration::from_secs(5), || {
        !recorder.accepted("PatchEvents").is_empty()
    })
    .await;
    let pre = decode(&recorder.accepted("PatchEvents")[0]);
    assert_eq!(pre.phase, MaintenancePhase::Pre);

    // Cancel the way patchwave does: PUT the run id from the event.
    let response = client()
        .put(format!(
            "{}{}?api-version=2023-10-01-preview",
            standin.url(),
            pre.correlation_id
        ))
        .json(&json!({"properties": {"status": "Cancel"}}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["properties"]["status"], "Cancelled");

    tokio::time::sleep(Duration::from_millis(1200 + 500 + 400)).await;
    let posts: Vec<MaintenanceEvent> = recorder
        .accepted("PatchEvents")
        .iter()
        .map(decode)
        .filter(|e| e.phase == MaintenancePhase::Post)
        .collect();
    assert!(
        posts.iter().all(|e| e.status != Some(RunStatus::Succeeded)),
        "{posts:?}"
    );
    let world = standin.world();
    assert_eq!(
        world.cancelled_maintenance_runs(),
        vec![pre.correlation_id.clone()]
    );
    assert_eq!(world.maintenance_runs()[0].state, RunState::Cancelled);
    assert_eq!(world.maintenance_runs()[0].post_status, None);
}

#[tokio::test]
async fn a_cancelled_run_can_report_cancelled_and_a_started_run_cannot_be_cancelled() {
    let recorder = Recorder::start(0).await;
    let mut config = fast_config(vec![]);
    config.handler_url = Some(recorder.url.clone());
    config.cancelled_runs_post_event = true;
    let standin = start(config).await;
    let cancel = |run: String| {
        client()
            .put(format!(
                "{}{run}?api-version=2023-10-01-preview",
                standin.url()
            ))
            .json(&json!({"properties": {"status": "Cancel"}}))
            .send()
    };
    let first = schedule(
        &standin.url(),
        json!({"configurationId": CONFIG_ID, "start": "2026-12-01T01:00:00Z", "preWaitMs": 800}),
    )
    .await;
    let run = first["correlationId"].as_str().expect("id").to_string();
    assert_eq!(cancel(run.clone()).await.expect("cancel").status(), 200);
    eventually("pre and cancelled post", Duration::from_secs(10), || {
        recorder.accepted("PatchEvents").len() == 2
    })
    .await;
    let post = decode(&recorder.accepted("PatchEvents")[1]);
    assert_eq!(post.phase, MaintenancePhase::Post);
    assert_eq!(post.status, Some(RunStatus::Cancelled));
    assert_eq!(post.correlation_id, run);

    let second = schedule(
        &standin.url(),
        json!({"configurationId": CONFIG_ID, "start": "2026-12-02T01:00:00Z", "preWaitMs": 10}),
    )
    .await;
    let run = second["correlationId"].as_str().expect("id").to_string();
    let world = standin.world();
    eventually("the run starts", Duration::from_secs(5), || {
        world
            .maintenance_runs()
            .iter()
            .any(|r| r.id == run && r.state != RunState::Scheduled)
    })
    .await;
    assert_eq!(cancel(run).await.expect("cancel").status(), 409);
}
