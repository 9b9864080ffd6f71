//! `DeviceEvents`: IoT Hub's connection events, both schemas, over HTTP.

use crate::support::{event_grid_envelope, reference, spawn_app};
use patchwave::decode::device_events::Connection;
use patchwave::decode::event_grid::EventSchema;
use patchwave::inputs::TriggerInput;
use rollout_core::ConnectionSequence;
use serde_json::{json, Value};

const SEQUENCE: &str = "000000000000000001D4132452F67CE200000002000000000000000000000001";

#[tokio::test]
async fn both_official_examples_become_connection_inputs() {
    let app = spawn_app().await;
    for (example, schema) in [
        (
            "azure/eventgrid-iothub-device-connected.json",
            EventSchema::EventGrid,
        ),
        (
            "azure/cloudevents-iothub-device-connected.json",
            EventSchema::CloudEvents,
        ),
    ] {
        let response = app
            .invoke_ok("DeviceEvents", &event_grid_envelope(&reference(example)))
            .await;
        assert_eq!(
            response["ReturnValue"]["connectionEvents"], 1,
            "{example}: {response}"
        );
        let inputs = app.inputs();
        let Some(TriggerInput::Connection(event)) = inputs.last() else {
            panic!("{example}: {inputs:?}");
        };
        assert_eq!(event.schema, schema);
        assert_eq!(event.connection, Connection::Connected);
        assert_eq!(event.device_id, "LogicAppTestDevice");
        assert_eq!(event.module_id.as_deref(), Some("DeviceModuleID"));
        assert_eq!(event.hub_name, "egtesthub1");
        assert_eq!(
            event.sequence_number,
            ConnectionSequence::parse(SEQUENCE).expect("seq")
        );
        assert!(event.event_time.is_some());
    }
}

#[tokio::test]
async fn a_bad_event_among_good_ones_is_named_and_other_types_are_ignored() {
    let app = spawn_app().await;
    let good = reference("azure/eventgrid-iothub-device-connected.json");
    let mut disconnected = good.clone();
    disconnected["eventType"] = json!("Microsoft.Devices.DeviceDisconnected");
    disconnected["data"]["deviceConnectionStateEventInfo"]["sequenceNumber"] =
        json!(format!("{SEQUENCE}0"));
    let mut no_sequence = good.clone();
    no_sequence["data"]["deviceConnectionStateEventInfo"] = json!({});
    let telemetry = reference("azure/eventgrid-iothub-device-telemetry.json");
    let batch = Value::Array(vec![good, no_sequence, disconnected, telemetry]);
    let response = app
        .invoke_ok("DeviceEvents", &event_grid_envelope(&batch))
        .await;
    let value = &response["ReturnValue"];
    assert_eq!(value["connectionEvents"], 2, "{response}");
    assert_eq!(value["ignored"], 1);
    assert_eq!(value["rejected"][0]["index"], 1);
    let reason = value["rejected"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("sequenceNumber"), "{reason}");
    let inputs = app.inputs();
    let connections: Vec<_> = inputs
        .iter()
        .filter_map(|input| match input {
            TriggerInput::Connection(event) => Some(event.connection),
            _ => None,
        })
        .collect();
    assert_eq!(
        connections,
        [Connection::Connected, Connection::Disconnected]
    );
}
