//! The stand-in as the Functions host: device reports reach `POST /TwinChanges` in real host
//! envelopes that patchwave's decoders read, failed deliveries are redelivered, and without a
//! handler the invocations wait to be drained.

use crate::support::*;
use patchwave::decode::agent_report::AgentState;
use patchwave::decode::twin_change::{decode_twin_batch, HubMessage, TwinChange};
use patchwave::host::Invocation;
use patchwave_standin::{DevicePhase, Faults, GroupConfig, Standin, StandinConfig};
use rollout_core::UpdateId;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const API: &str = "api-version=2022-10-01";

/// Decodes an invocation body into its twin changes, insisting every item is a twin change
/// carrying a Device Update report.
fn decode(body: &[u8]) -> Vec<TwinChange> {
    let invocation = Invocation::parse(body).expect("envelope");
    let batch = decode_twin_batch(&invocation).expect("batch");
    assert!(batch.notes.is_empty(), "{:?}", batch.notes);
    let partition = batch.partition.expect("partition context");
    assert_eq!(partition.consumer_group.as_deref(), Some("patchwave"));
    batch
        .items
        .into_iter()
        .map(|item| match item {
            Ok(HubMessage::TwinChange(change)) => {
                assert!(change.device_update.is_some(), "{change:?}");
                assert!(change.twin_version.is_some() && change.reported_version.is_some());
                assert!(change.enqueued_time.is_some() && change.sequence_number.is_some());
                change
            }
            other => panic!("not a device update report: {other:?}"),
        })
        .collect()
}

async fn deploy(standin: &Standin, group: &str, id: &str) -> UpdateId {
    let body = json!({
        "deploymentId": id, "groupId": group, "startDateTime": "2026-11-23T10:00:00Z",
        "update": {"updateId": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"}}
    });
    let response = client()
        .put(format!(
            "{}/deviceUpdate/blue/management/groups/{group}/deployments/{id}?{API}",
            standin.url()
        ))
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 200);
    UpdateId {
        provider: "Contoso".into(),
        name: "Gateway".into(),
        version: "2.4.1".into(),
    }
}

fn failed_devices(standin: &Standin) -> BTreeSet<String> {
    standin
        .world()
        .devices()
        .into_iter()
        .filter(|d| d.status == Some(DevicePhase::Failed))
        .map(|d| d.id)
        .collect()
}

#[tokio::test]
async fn a_deployment_reports_every_device_through_twin_changes() {
    let recorder = Recorder::start(0).await;
    let mut config = fast_config(vec![GroupConfig::numbered("canary", 50, 0.2)]);
    config.handler_url = Some(recorder.url.clone());
    config.batch_size = 30;
    let standin = start(config.clone()).await;
    let world = standin.world();
    let update = deploy(&standin, "canary", "pw-r1-w0a1").await;
    eventually("100 reports delivered", Duration::from_secs(10), || {
        world.stats().twin_messages_delivered == 100
    })
    .await;

    let calls = recorder.accepted("TwinChanges");
    let mut invocation_ids = BTreeSet::new();
    let mut by_device: BTreeMap<String, Vec<TwinChange>> = BTreeMap::new();
    for call in &calls {
        assert!(call
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")));
        assert!(invocation_ids.insert(call.invocation_id.clone().expect("invocation id")));
        let changes = decode(&call.body);
        assert!(
            !changes.is_empty() && changes.len() <= 30,
            "{}",
            changes.len()
        );
        for change in changes {
            assert_eq!(change.hub.as_deref(), Some("patchwave-hub"));
            by_device
                .entry(change.device_id.clone())
                .or_default()
                .push(change);
        }
    }
    assert_eq!(by_device.len(), 50);
    let mut failed = BTreeSet::new();
    for (device, changes) in &by_device {
        assert_eq!(changes.len(), 2, "{device}");
        let first = changes[0].device_update.as_ref().expect("report");
        assert_eq!(first.state, Some(AgentState::DeploymentInProgress));
        assert_eq!(
            first
                .last_install_result
                .as_ref()
                .and_then(|r| r.result_code),
            Some(400)
        );
        let finals: Vec<_> = changes
            .iter()
            .filter_map(|c| c.device_update.as_ref())
            .filter(|r| matches!(r.state, Some(AgentState::Idle | AgentState::Failed)))
            .collect();
        assert_eq!(finals.len(), 1, "{device}: exactly one final report");
        let last = finals[0];
        assert_eq!(last.workflow, first.workflow);
        assert!(changes[1].twin_version > changes[0].twin_version);
        match last.state {
            Some(AgentState::Idle) => {
                assert_eq!(last.installed_update_id.as_ref(), Some(&update));
                assert_eq!(
                    last.last_install_result
                        .as_ref()
                        .and_then(|r| r.result_code),
                    Some(700)
                );
            }
            _ => {
                assert_eq!(
                    last.last_install_result
                        .as_ref()
                        .and_then(|r| r.result_code),
                    Some(0)
                );
                assert_eq!(
                    last.last_install_result
                        .as_ref()
                        .map(|r| r.extended_result_codes.clone()),
                    Some(vec![0x3020_0002])
                );
                failed.insert(device.clone());
            }
        }
    }
    assert_eq!(failed.len(), 10, "20% of 50 devices fail");
    assert_eq!(failed, failed_devices(&standin));
    for device in by_device.keys() {
        let installed = world.installed_update(device).expect("device");
        assert_eq!(installed == update, !failed.contains(device), "{device}");
    }

    // The same seed fails the same devices, with or without a handler.
    config.handler_url = None;
    let again = start(config).await;
    deploy(&again, "canary", "pw-r1-w0a1").await;
    let world = again.world();
    deployment_finishes(&world, 0).await;
    assert_eq!(failed_devices(&again), failed);
}

#[tokio::test]
async fn a_batch_the_handler_refuses_is_delivered_again() {
    let recorder = Recorder::start(1).await;
    let mut config = fast_config(vec![GroupConfig::numbered("canary", 5, 0.0)]);
    config.handler_url = Some(recorder.url.clone());
    config.batch_window = Duration::from_millis(300);
    let standin = start(config).await;
    let world = standin.world();
    deploy(&standin, "canary", "d1").await;
    eventually("10 reports delivered", Duration::from_secs(10), || {
        world.stats().twin_messages_delivered == 10
    })
    .await;
    let calls: Vec<Call> = recorder.calls();
    assert_eq!(calls[0].answered, 500);
    assert_eq!(calls[1].answered, 200);
    let envelope = |call: &Call| -> Value { serde_json::from_slice(&call.body).expect("json") };
    let (first, second) = (envelope(&calls[0]), envelope(&calls[1]));
    assert_eq!(first["Data"]["events"], second["Data"]["events"]);
    assert_eq!(
        first["Metadata"]["SequenceNumberArray"],
        second["Metadata"]["SequenceNumberArray"]
    );
    assert_eq!(second["Metadata"]["RetryContext"]["RetryCount"], 1);
    assert_ne!(calls[0].invocation_id, calls[1].invocation_id);
    assert_eq!(world.stats().failed_deliveries, 1);
    let delivered: usize = recorder
        .accepted("TwinChanges")
        .iter()
        .map(|c| decode(&c.body).len())
        .sum();
    assert_eq!(delivered, 10);
}

#[tokio::test]
async fn nothing_is_lost_while_the_handler_is_down() {
    let mut config = fast_config(vec![GroupConfig::numbered("canary", 5, 0.4)]);
    config.handler_url = Some("http://127.0.0.1:1".into());
    let standin = start(config).await;
    let world = standin.world();
    deploy(&standin, "canary", "d1").await;
    eventually("failed attempts", Duration::from_secs(10), || {
        world.stats().failed_deliveries >= 2
            && world.deployments()[0]
                .devices
                .values()
                .all(|p| p.is_final())
    })
    .await;
    assert_eq!(world.stats().twin_messages_delivered, 0);
    let recorder = Recorder::start(0).await;
    world.set_handler_url(Some(recorder.url.clone()));
    eventually("all 10 reports delivered", Duration::from_secs(10), || {
        world.stats().twin_messages_delivered == 10
    })
    .await;
    let devices: BTreeSet<String> = recorder
        .accepted("TwinChanges")
        .iter()
        .flat_map(|c| decode(&c.body))
        .map(|c| c.device_id)
        .collect();
    assert_eq!(devices.len(), 5);
}

#[tokio::test]
async fn without_a_handler_invocations_wait_and_fault_knobs_apply() {
    let mut config: StandinConfig = fast_config(vec![
        GroupConfig::numbered("dup", 5, 0.0),
        GroupConfig::numbered("drop", 4, 0.0),
    ]);
    config.faults = Faults {
        duplicate_rate: 1.0,
        reorder: true,
        ..Faults::default()
    };
    let standin = start(config).await;
    let world = standin.world();
    deploy(&standin, "dup", "d1").await;
    deployment_finishes(&world, 0).await;
    assert_eq!(world.pending_twin_messages(), 20);
    let snapshot: Value = client()
        .get(format!("{}/_standin/world", standin.url()))
        .send()
        .await
        .expect("world")
        .json()
        .await
        .expect("json");
    assert_eq!(snapshot["pendingTwinMessages"], 20);
    assert_eq!(snapshot["deployments"][0]["id"], "d1");

    let drained: Value = client()
        .post(format!("{}/_standin/drain", standin.url()))
        .send()
        .await
        .expect("drain")
        .json()
        .await
        .expect("json");
    let envelopes = drained["TwinChanges"].as_array().expect("envelopes");
    let total: usize = envelopes
        .iter()
        .map(|e| decode(e.to_string().as_bytes()).len())
        .sum();
    assert_eq!(total, 20, "every report twice");
    assert_eq!(world.pending_twin_messages(), 0);

    world.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    deploy(&standin, "drop", "d2").await;
    deployment_finishes(&world, 1).await;
    assert_eq!(world.pending_twin_messages(), 0);
    let (twins, events) = world.drain_invocations();
    assert!(twins.is_empty() && events.is_empty());
    let dropped = world.reports().iter().filter(|r| r.dropped).count();
    assert_eq!(dropped, 8);
    assert_eq!(world.stats().reports_dropped, 8);
}

#[tokio::test]
async fn a_fleet_of_two_thousand_devices_reports_on_every_partition() {
    let recorder = Recorder::start(0).await;
    let mut config = fast_config(vec![GroupConfig::numbered("fleet", 2000, 0.02)]);
    config.handler_url = Some(recorder.url.clone());
    config.partitions = 4;
    let standin = start(config).await;
    let world = standin.world();
    deploy(&standin, "fleet", "big").await;
    eventually("4,000 reports delivered", Duration::from_secs(60), || {
        world.stats().twin_messages_delivered == 4000
    })
    .await;
    let calls = recorder.accepted("TwinChanges");
    let mut partitions = BTreeSet::new();
    let mut finals = 0;
    for call in &calls {
        let envelope: Value = serde_json::from_slice(&call.body).expect("json");
        partitions
            .insert(envelope["Metadata"]["TriggerPartitionContext"]["PartitionId"].to_string());
        let changes = decode(&call.body);
        assert!(changes.len() <= 100);
        finals += changes
            .iter()
            .filter(|c| {
                c.device_update.as_ref().and_then(|r| r.state)
                    != Some(AgentState::DeploymentInProgress)
            })
            .count();
    }
    assert_eq!(finals, 2000);
    assert_eq!(partitions.len(), 4);
    assert_eq!(failed_devices(&standin).len(), 40);
}
