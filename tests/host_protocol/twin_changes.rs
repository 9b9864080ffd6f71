//! `TwinChanges`: Event Hubs batches of IoT Hub messages, every example, over HTTP.

use crate::support::{event_hub_envelope, fixture, reference, spawn_app, HubMessage};
use patchwave::decode::agent_report::{AgentReport, AgentState};
use patchwave::decode::twin_change::{decode_twin_batch, HubMessage as Decoded, TwinBatch, TwinOp};
use patchwave::host::Invocation;
use patchwave::inputs::TriggerInput;
use rollout_core::UpdateId;
use serde_json::{json, Value};

fn decode(envelope: &Value) -> TwinBatch {
    let invocation = Invocation::parse(envelope.to_string().as_bytes()).expect("envelope");
    decode_twin_batch(&invocation).expect("batch")
}

fn decoded(batch: &TwinBatch) -> Vec<Decoded> {
    batch
        .items
        .iter()
        .map(|item| item.clone().expect("decoded"))
        .collect()
}

#[tokio::test]
async fn host_examples_of_telemetry_batches_are_recognised_and_skipped() {
    let app = spawn_app().await;
    let examples = [
        (reference("functions-host/eventhub-many-request.json"), 2),
        (
            reference("functions-host/eventhub-many-string-request.json"),
            2,
        ),
        (fixture("eventhub-many-binary-request.json"), 2),
        (reference("functions-host/eventhub-one-request.json"), 1),
    ];
    for (example, count) in examples {
        let response = app.invoke_ok("TwinChanges", &example).await;
        assert_eq!(response["ReturnValue"]["received"], count, "{response}");
        assert_eq!(response["ReturnValue"]["skipped"], count, "{response}");
        assert_eq!(response["ReturnValue"]["rejected"], json!([]), "{response}");
        let batch = decode(&example);
        let partition = batch.partition.clone().expect("partition context");
        assert_eq!(partition.partition_id.as_deref(), Some("2"));
        assert_eq!(partition.event_hub.as_deref(), Some("myhub"));
        for (index, message) in decoded(&batch).into_iter().enumerate() {
            let Decoded::Other(other) = message else {
                panic!("telemetry taken for a twin change")
            };
            assert_eq!(other.index, index);
            assert_eq!(other.source.as_deref(), Some("Telemetry"));
            assert_eq!(other.device_id, Some(format!("dev-0{}", index + 1)));
        }
    }
    assert!(app.inputs().is_empty(), "telemetry is not a device report");
}

#[tokio::test]
async fn docs_twin_change_capture_decodes_whole_and_split_into_host_columns() {
    let capture = reference("azure/iothub-twin-change-eventhub-message.json");
    let properties = reference("azure/iothub-twin-change-eventhub-message-properties.json");
    let mut system = properties["properties"]["system"].clone();
    for (key, value) in properties["annotations"].as_object().expect("annotations") {
        system[key] = value.clone();
    }
    let split = HubMessage {
        body: reference("azure/iothub-twin-change-eventhub-message-body.json").to_string(),
        application: properties["properties"]["application"].clone(),
        system,
    };
    let whole = HubMessage {
        body: capture.to_string(),
        application: json!({}),
        system: json!({}),
    };
    for message in [whole, split] {
        let batch = decode(&event_hub_envelope(&[message]));
        let [Decoded::TwinChange(change)] =
            <[Decoded; 1]>::try_from(decoded(&batch)).expect("one message")
        else {
            panic!("not a twin change: {batch:?}");
        };
        assert_eq!(change.device_id, "contoso-device-3");
        assert_eq!(change.module_id.as_deref(), Some("module-1"));
        assert_eq!(change.hub.as_deref(), Some("contoso-routing-hub"));
        assert_eq!(change.op_type, Some(TwinOp::UpdateTwin));
        assert_eq!(change.twin_version, Some(7));
        assert_eq!(change.reported_version, None);
        assert_eq!(
            change.enqueued_time.map(|t| t.timestamp_millis()),
            Some(1_654_122_470_282)
        );
        assert_eq!(
            change.operation_time.map(|t| t.timestamp()),
            Some(1_654_122_470)
        );
        assert_eq!(
            change.device_update, None,
            "a desired-property change carries no report"
        );
    }
}

#[tokio::test]
async fn device_update_report_in_a_twin_change_reaches_the_sink() {
    let app = spawn_app().await;
    let capture = reference("azure/iothub-twin-change-deviceupdate-reported.constructed.json");
    let message = HubMessage {
        body: capture.to_string(),
        application: json!({}),
        system: json!({}),
    };
    let response = app
        .invoke_ok("TwinChanges", &event_hub_envelope(&[message]))
        .await;
    assert_eq!(
        response["ReturnValue"]["deviceUpdateReports"], 1,
        "{response}"
    );
    let inputs = app.inputs();
    let [TriggerInput::DeviceReport(change)] = inputs.as_slice() else {
        panic!("{inputs:?}")
    };
    assert_eq!(change.device_id, "edge-gw-01");
    assert_eq!(change.hub.as_deref(), Some("contoso-edge-hub"));
    assert_eq!(change.twin_version, Some(58));
    assert_eq!(change.reported_version, Some(41));
    assert_eq!(change.sequence_number, Some(1000));
    assert_eq!(
        change.enqueued_time.map(|t| t.timestamp_millis()),
        Some(1_715_658_072_200)
    );
    let report = change.device_update.as_ref().expect("report");
    assert_eq!(report.state, Some(AgentState::Idle));
    assert_eq!(
        report.installed_update_id,
        Some(UpdateId::new("Contoso", "edge-gw-security", "2024.5.14").expect("id"))
    );
    let workflow = report.workflow.as_ref().expect("workflow");
    assert_eq!(
        (workflow.action, workflow.id.as_deref()),
        (Some(3), Some("6f2c7b0e-4d1a-4f7e-9a55-0d3c1e2b9f10"))
    );
    let result = report.last_install_result.as_ref().expect("result");
    assert_eq!(
        (result.result_code, result.extended_result_codes.as_slice()),
        (Some(700), &[0][..])
    );
    assert_eq!(report.step_results["step_0"].result_code, Some(700));
}

#[tokio::test]
async fn connection_state_events_are_ordinary_traffic() {
    let capture = reference("azure/iothub-connection-state-eventhub-message.json");
    let batch = decode(&event_hub_envelope(&[HubMessage {
        body: capture.to_string(),
        application: json!({}),
        system: json!({}),
    }]));
    let [Decoded::Other(other)] = <[Decoded; 1]>::try_from(decoded(&batch)).expect("one") else {
        panic!("{batch:?}")
    };
    assert_eq!(other.source.as_deref(), Some("deviceConnectionStateEvents"));
    assert_eq!(other.device_id.as_deref(), Some("contoso-device-1"));
}

fn report_of(change: &Decoded) -> &AgentReport {
    match change {
        Decoded::TwinChange(change) => change.device_update.as_ref().expect("report"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_agent_report_example_of_both_agent_generations() {
    let app = spawn_app().await;
    let reported = [
        reference("azure/adu-agent-reported-success.json"),
        reference("azure/adu-agent-reported-success.agent-testdata.json"),
        reference("azure/adu-agent-reported-in-progress.constructed.json"),
        reference("azure/adu-agent-reported-failure.constructed.json"),
        fixture("adu-agent-reported-success.deviceUpdate2.constructed.json"),
        fixture("adu-agent-reported-failure.deviceUpdate1.constructed.json"),
    ];
    let messages: Vec<HubMessage> = reported
        .iter()
        .enumerate()
        .map(|(i, fragment)| {
            HubMessage::agent_report(&format!("dev-{i}"), 100 + i as u64, fragment)
        })
        .collect();
    let envelope = event_hub_envelope(&messages);
    let response = app.invoke_ok("TwinChanges", &envelope).await;
    assert_eq!(
        response["ReturnValue"]["deviceUpdateReports"], 6,
        "{response}"
    );
    let batch = decode(&envelope);
    let all = decoded(&batch);
    let vacuum = |v: &str| Some(UpdateId::new("Contoso", "Virtual-Vacuum", v).expect("id"));

    let docs_success = report_of(&all[0]);
    assert_eq!(docs_success.state, Some(AgentState::Idle));
    assert_eq!(docs_success.installed_update_id, vacuum("5.0"));
    assert_eq!(
        docs_success
            .last_install_result
            .as_ref()
            .map(|r| (r.result_code, r.extended_result_codes.clone())),
        Some((Some(700), vec![0]))
    );
    let workflow = docs_success.workflow.as_ref().expect("workflow");
    assert_eq!(
        workflow.retry_timestamp.map(|t| t.timestamp()),
        Some(1_643_196_809)
    );

    let agent_success = report_of(&all[1]);
    assert_eq!(agent_success.installed_update_id, vacuum("20.0"));
    assert!(agent_success.step_results.is_empty());

    let in_progress = report_of(&all[2]);
    assert_eq!(in_progress.state, Some(AgentState::DeploymentInProgress));
    assert_eq!(
        in_progress
            .last_install_result
            .as_ref()
            .and_then(|r| r.result_code),
        Some(400)
    );
    assert_eq!(in_progress.installed_update_id, None);

    let failure = report_of(&all[3]);
    assert_eq!(failure.state, Some(AgentState::Failed));
    assert_eq!(
        failure
            .last_install_result
            .as_ref()
            .map(|r| r.extended_result_codes.clone()),
        Some(vec![0x3020_0002])
    );

    let v2_success = report_of(&all[4]);
    assert_eq!(
        v2_success.step_results["step_1"].extended_result_codes,
        vec![0, 0xC00D_0011]
    );
    assert_eq!(v2_success.step_results["step_1"].result_code, Some(603));

    let v1_failure = report_of(&all[5]);
    assert_eq!(v1_failure.state, Some(AgentState::Failed));
    let result = v1_failure.last_install_result.as_ref().expect("result");
    assert_eq!(
        (result.result_code, result.extended_result_codes.clone()),
        (Some(0), vec![807_403_522])
    );
    assert_eq!(
        result.result_details.as_deref(),
        Some("apt handler: invalid package data")
    );

    for (index, change) in all.iter().enumerate() {
        let Decoded::TwinChange(change) = change else {
            panic!()
        };
        assert_eq!(change.device_id, format!("dev-{index}"));
        assert_eq!(change.twin_version, Some(100 + index as u64));
        assert_eq!(change.reported_version, Some(83 + index as u64));
    }
}

#[tokio::test]
async fn service_side_and_ack_fragments_are_not_device_reports() {
    let app = spawn_app().await;
    let ack = reference("azure/adu-agent-reported-service-ack.constructed.json");
    let cancel = reference("azure/adu-service-desired-cancel.constructed.json");
    let process = reference("azure/adu-service-desired-processdeployment.agent-testdata.json");
    let devguide = fixture("iothub-twin-change-body.devguide-example.json");
    let messages = [
        HubMessage::agent_report("dev-a", 10, &ack),
        HubMessage::twin_change(
            "dev-b",
            &json!({"version": 11, "properties": {"desired": cancel}}),
        ),
        HubMessage::twin_change(
            "dev-c",
            &json!({"version": 12, "properties": {"desired": {"deviceUpdate": {"__t": "c", "service": process}}}}),
        ),
        HubMessage::twin_change("dev-d", &devguide),
    ];
    let envelope = event_hub_envelope(&messages);
    let response = app.invoke_ok("TwinChanges", &envelope).await;
    assert_eq!(response["ReturnValue"]["skipped"], 4, "{response}");
    assert_eq!(response["ReturnValue"]["deviceUpdateReports"], 0);
    assert!(app.inputs().is_empty());
    let devices: Vec<String> = decoded(&decode(&envelope))
        .into_iter()
        .map(|message| match message {
            Decoded::TwinChange(change) => change.device_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(devices, ["dev-a", "dev-b", "dev-c", "dev-d"]);
}

#[tokio::test]
async fn one_bad_message_never_drops_its_neighbours() {
    let app = spawn_app().await;
    let success = reference("azure/adu-agent-reported-success.json");
    let failure = reference("azure/adu-agent-reported-failure.constructed.json");
    let mut anonymous = HubMessage::agent_report("x", 5, &success);
    anonymous.application = json!({"opType": "updateTwin"});
    anonymous.system = json!({"iothub-message-source": "twinChangeEvents"});
    let messages = vec![
        HubMessage::agent_report("dev-1", 10, &success),
        HubMessage {
            body: "{\"version\": 3, \"properties\": ".into(),
            ..HubMessage::twin_change("dev-2", &json!({}))
        },
        HubMessage::agent_report(
            "dev-3",
            12,
            &json!({"deviceUpdate": {"agent": {"state": "idle"}}}),
        ),
        anonymous,
        HubMessage::agent_report("dev-5", 14, &failure),
    ];
    let response = app
        .invoke_ok("TwinChanges", &event_hub_envelope(&messages))
        .await;
    assert_eq!(response["ReturnValue"]["received"], 5);
    assert_eq!(
        response["ReturnValue"]["deviceUpdateReports"], 2,
        "{response}"
    );
    let rejected = response["ReturnValue"]["rejected"]
        .as_array()
        .expect("rejected");
    let indices: Vec<_> = rejected
        .iter()
        .map(|r| r["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indices, [1, 2, 3]);
    let reasons: Vec<_> = rejected
        .iter()
        .map(|r| r["reason"].as_str().expect("reason"))
        .collect();
    assert!(reasons[0].contains("not JSON"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("deviceUpdate.agent.state"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("names no device"), "{}", reasons[2]);
    let logs = response["Logs"].to_string();
    for index in 1..=3 {
        assert!(logs.contains(&format!("rejected item {index}:")), "{logs}");
    }
    let devices: Vec<_> = app
        .inputs()
        .into_iter()
        .map(|input| match input {
            TriggerInput::DeviceReport(change) => change.device_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(devices, ["dev-1", "dev-5"]);
    let (_, delivery) = &app.sink.deliveries()[0];
    assert_eq!(
        delivery.rejected[0].raw, "{\"version\": 3, \"properties\": ",
        "raw payload kept for the dead letter"
    );
}

#[tokio::test]
async fn device_id_from_either_property_set_and_column_mismatch_is_noted() {
    let success = reference("azure/adu-agent-reported-success.json");
    let mut only_system = HubMessage::agent_report("dev-sys", 3, &success);
    only_system.application = json!({});
    let mut only_application = HubMessage::agent_report("dev-app", 4, &success);
    only_application.system = json!({});
    let mut envelope = event_hub_envelope(&[only_system, only_application]);
    envelope["Metadata"]["SequenceNumberArray"] = json!("[7]");
    let batch = decode(&envelope);
    let devices: Vec<_> = decoded(&batch)
        .into_iter()
        .map(|m| match m {
            Decoded::TwinChange(c) => (c.device_id, c.sequence_number),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        devices,
        [
            ("dev-sys".to_string(), Some(7)),
            ("dev-app".to_string(), None)
        ]
    );
    assert_eq!(
        batch.notes,
        ["metadata SequenceNumberArray has 1 entries for 2 events"]
    );
}
