//! `PatchEvents`: every maintenance example, both schemas and casings, over HTTP.

use crate::support::{event_grid_envelope, fixture, reference, spawn_app};
use chrono::{TimeZone, Utc};
use patchwave::decode::event_grid::{EventSchema, MaintenanceEvent, MaintenancePhase, RunStatus};
use patchwave::inputs::TriggerInput;
use serde_json::{json, Value};

const CONFIG: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/testrg/providers/Microsoft.Maintenance/maintenanceConfigurations/contosomaintenanceconfiguration";

fn run_id() -> String {
    format!("{CONFIG}/providers/microsoft.maintenance/applyupdates/20230509150000")
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid time")
}

/// Posts each event of a docs example (an array) as the host does, one per invocation.
async fn deliver_each(example: &Value) -> Vec<MaintenanceEvent> {
    let app = spawn_app().await;
    for event in example.as_array().expect("docs examples are arrays") {
        let response = app
            .invoke_ok("PatchEvents", &event_grid_envelope(event))
            .await;
        assert_eq!(
            response["ReturnValue"]["maintenanceEvents"], 1,
            "{response}"
        );
    }
    app.inputs()
        .into_iter()
        .map(|input| match input {
            TriggerInput::Maintenance(event) => event,
            other => panic!("unexpected input {other:?}"),
        })
        .collect()
}

fn assert_pre(event: &MaintenanceEvent, schema: EventSchema) {
    assert_eq!(event.schema, schema);
    assert_eq!(event.phase, MaintenancePhase::Pre);
    assert_eq!(event.id, run_id());
    assert_eq!(event.correlation_id, run_id());
    assert_eq!(event.maintenance_configuration_id, CONFIG);
    assert_eq!(event.start, Some(utc(2023, 5, 9, 15, 0, 0)));
    assert_eq!(event.end, Some(utc(2023, 5, 9, 18, 55, 0)));
    assert_eq!(event.cancellation_cutoff, Some(utc(2023, 5, 9, 14, 59, 0)));
    assert_eq!(
        event.event_time.map(|t| t.timestamp()),
        Some(utc(2023, 5, 9, 14, 25, 0).timestamp())
    );
    assert_eq!(
        event.resource_subscription_ids,
        vec!["subscription guid 1", "subscription guid 2"]
    );
    assert_eq!(event.status, None);
}

fn assert_post(event: &MaintenanceEvent, schema: EventSchema) {
    assert_eq!(event.schema, schema);
    assert_eq!(event.phase, MaintenancePhase::Post);
    assert_eq!(event.correlation_id, run_id());
    assert_eq!(event.maintenance_configuration_id, CONFIG);
    assert_eq!(event.status, Some(RunStatus::Succeeded));
    assert_eq!(event.cancellation_cutoff, None);
    assert_eq!(event.end, Some(utc(2023, 5, 9, 18, 55, 0)));
    assert_eq!(
        event.event_time.map(|t| t.timestamp()),
        Some(utc(2023, 5, 9, 15, 55, 0).timestamp())
    );
}

#[tokio::test]
async fn pre_maintenance_event_grid_schema_in_both_casings() {
    for example in [
        reference("azure/eventgrid-pre-maintenance-event.json"),
        reference("azure/eventgrid-pre-maintenance-event.camelcase-docs-variant.json"),
    ] {
        let events = deliver_each(&example).await;
        assert_eq!(events.len(), 1);
        assert_pre(&events[0], EventSchema::EventGrid);
    }
}

#[tokio::test]
async fn post_maintenance_event_grid_schema_in_both_casings() {
    for example in [
        reference("azure/eventgrid-post-maintenance-event.json"),
        fixture("eventgrid-post-maintenance-event.camelcase-docs-variant.json"),
    ] {
        let events = deliver_each(&example).await;
        assert_eq!(events.len(), 1);
        assert_post(&events[0], EventSchema::EventGrid);
    }
}

#[tokio::test]
async fn maintenance_events_in_cloudevents_schema() {
    let pre = deliver_each(&fixture("cloudevents-pre-maintenance-event.json")).await;
    assert_pre(&pre[0], EventSchema::CloudEvents);
    let post = deliver_each(&fixture("cloudevents-post-maintenance-event.json")).await;
    assert_post(&post[0], EventSchema::CloudEvents);
}

#[tokio::test]
async fn host_envelope_with_cloudevent_and_metadata() {
    let app = spawn_app().await;
    app.invoke_ok(
        "PatchEvents",
        &fixture("eventgrid-cloudevents-request.json"),
    )
    .await;
    let inputs = app.inputs();
    let [TriggerInput::Maintenance(event)] = inputs.as_slice() else {
        panic!("expected one maintenance event, got {inputs:?}");
    };
    assert_pre(event, EventSchema::CloudEvents);
}

#[tokio::test]
async fn the_whole_docs_array_in_one_invocation_and_the_event_as_plain_json() {
    let app = spawn_app().await;
    let array = reference("azure/eventgrid-post-maintenance-event.json");
    // the array itself, not double-encoded: accepted as well
    let envelope = json!({"Data": {"event": array}, "Metadata": {}});
    app.invoke_ok("PatchEvents", &envelope).await;
    let inputs = app.inputs();
    let [TriggerInput::Maintenance(event)] = inputs.as_slice() else {
        panic!("expected one maintenance event, got {inputs:?}");
    };
    assert_post(event, EventSchema::EventGrid);
}

#[tokio::test]
async fn other_event_types_are_ignored_with_a_log_line() {
    let app = spawn_app().await;
    let response = app
        .invoke_ok(
            "PatchEvents",
            &reference("functions-host/eventgrid-request.json"),
        )
        .await;
    assert_eq!(response["ReturnValue"]["ignored"], 1, "{response}");
    assert_eq!(response["ReturnValue"]["maintenanceEvents"], 0);
    let logs = response["Logs"].to_string();
    assert!(logs.contains("Microsoft.Storage.BlobCreated"), "{logs}");
    for example in [
        "azure/eventgrid-iothub-device-connected.json",
        "azure/cloudevents-iothub-device-connected.json",
        "azure/eventgrid-iothub-device-telemetry.json",
        "functions-host/eventgrid-webhook-validation-request.json",
    ] {
        let event = reference(example);
        let response = app
            .invoke_ok("PatchEvents", &event_grid_envelope(&event))
            .await;
        assert_eq!(
            response["ReturnValue"]["ignored"], 1,
            "{example}: {response}"
        );
        assert_eq!(response["ReturnValue"]["rejected"], json!([]), "{example}");
    }
    assert!(app.inputs().is_empty());
}

#[tokio::test]
async fn a_malformed_event_among_valid_ones_is_named_and_the_rest_delivered() {
    let app = spawn_app().await;
    let pre = reference("azure/eventgrid-pre-maintenance-event.json")[0].clone();
    let post = reference("azure/eventgrid-post-maintenance-event.json")[0].clone();
    let mut broken = post.clone();
    broken["data"]["EndDateTime"] = json!("tomorrow-ish");
    let envelope =
        json!({"Data": {"event": json!([pre, broken, "not an event", post]).to_string()}});
    let response = app.invoke_ok("PatchEvents", &envelope).await;
    assert_eq!(
        response["ReturnValue"]["maintenanceEvents"], 2,
        "{response}"
    );
    let rejected = response["ReturnValue"]["rejected"]
        .as_array()
        .expect("array");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 1);
    assert!(rejected[0]["reason"]
        .as_str()
        .expect("reason")
        .contains("data.EndDateTime"));
    assert_eq!(rejected[1]["index"], 2);
    let logs = response["Logs"].to_string();
    assert!(logs.contains("item 1") && logs.contains("item 2"), "{logs}");
    let phases: Vec<_> = app
        .inputs()
        .into_iter()
        .map(|input| match input {
            TriggerInput::Maintenance(event) => event.phase,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(phases, vec![MaintenancePhase::Pre, MaintenancePhase::Post]);
    let deliveries = app.sink.deliveries();
    assert_eq!(
        deliveries[0].1.rejected[0].index, 1,
        "rejected items reach the sink for dead-lettering"
    );
    assert_eq!(
        deliveries[0].0.invocation_id,
        "0f5e9a9c-4f0b-4a51-9d1e-2b8f8e6c3a10"
    );
}

#[tokio::test]
async fn malformed_envelopes_get_an_error_naming_the_problem() {
    let app = spawn_app().await;
    let cases = [
        ("{not json", "not JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"Metadata":{}}"#, "no `Data` object"),
        (
            r#"{"Data":{"a":1,"b":2}}"#,
            "no binding `event` (found: a, b)",
        ),
    ];
    for (body, expected) in cases {
        let (status, response) = app.invoke("PatchEvents", body).await;
        assert_eq!(status, 200, "not retried: {response}");
        assert_eq!(response["ReturnValue"]["status"], "rejected");
        let error = response["ReturnValue"]["error"]
            .as_str()
            .expect("error text");
        assert!(error.contains(expected), "{body}: {error}");
        assert!(response["Logs"][0]
            .as_str()
            .expect("log")
            .contains(expected));
    }
    assert!(app.inputs().is_empty());
}
