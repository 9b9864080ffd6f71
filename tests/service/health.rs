//! Health gates through the service: connection events routed by device to their rollout,
//! devices that installed and then dropped off counted unhealthy, the wave rolled back.

use crate::support::*;
use patchwave::decode::agent_report::AgentState;
use patchwave::decode::device_events::{decode_device_event, DeviceEvent};
use rollout_core::{HealthGate, Outcome, RolloutState};
use serde_json::{json, Value};
use std::sync::Arc;

/// The official DeviceDisconnected shape (the connected example with its type changed),
/// for `device` at `minute` after t0.
fn disconnected(device: &str, sequence: u32, minute: i64) -> DeviceEvent {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/azure/eventgrid-iothub-device-connected.json"
    );
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    event["eventType"] = json!("Microsoft.Devices.DeviceDisconnected");
    event["subject"] = json!(format!("devices/{device}"));
    event["eventTime"] = json!((t0() + chrono::Duration::minutes(minute)).to_rfc3339());
    event["data"]["deviceId"] = json!(device);
    event["data"]["deviceConnectionStateEventInfo"]["sequenceNumber"] =
        json!(format!("{sequence:064X}"));
    decode_device_event(&event).expect("decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_drop_off_after_installing_fail_a_health_gated_wave() {
    let dir = tempfile::tempdir().expect("dir");
    let azure = Arc::new(FakeAzure::with_group("canary", devices("gw", 10)));
    let (service, clock, store) = sqlite_service(&dir, azure.clone());
    let mut plan = one_wave_plan("canary", 50.0);
    plan.waves[0].failure_threshold_percent = 20.0;
    plan.waves[0].min_devices_judged = 1;
    plan.waves[0].health_gate = Some(HealthGate {
        observe_minutes: 30,
        max_disconnected_minutes: 0,
    });
    let rollout = service.create(plan, "alice", None).await.expect("created");
    let changes: Vec<_> = devices("gw", 10)
        .iter()
        .map(|d| twin_change(d, 5, AgentState::Idle, Some(update("2.4.1"))))
        .collect();
    service
        .deliver_reports(&context(), &changes)
        .await
        .expect("reports");
    clock.advance(chrono::Duration::minutes(5));
    let events: Vec<_> = (0..3)
        .map(|i| match disconnected(&devices("gw", 10)[i], 7, 5) {
            DeviceEvent::Connection(event) => event,
            other => panic!("{other:?}"),
        })
        .collect();
    // a device in no rollout is ordinary traffic
    let stranger = match disconnected("not-in-any-rollout", 7, 5) {
        DeviceEvent::Connection(event) => event,
        other => panic!("{other:?}"),
    };
    let mut batch = events.clone();
    batch.push(stranger);
    service
        .deliver_connections(&context(), &batch)
        .await
        .expect("connections");

    let after = service.get(rollout.id()).await.expect("get");
    assert_eq!(after.state(), RolloutState::RollingBack);
    assert_eq!(after.wave_progress()[0].counts.unhealthy, 3);
    let audit = store.audit(rollout.id()).await.expect("audit");
    let failed = audit
        .iter()
        .find(|d| d.kind == "wave.failed")
        .expect("wave.failed");
    assert_eq!(
        failed.reason,
        "wave canary: 3 of 10 unhealthy after install (disconnected > 0 min within 30 min) = 30.0% > 20%; rolling back"
    );
    let records = store
        .load_devices(rollout.id().as_str(), &devices("gw", 10)[..4])
        .await
        .expect("records");
    let outcomes: Vec<Outcome> = records.iter().map(|(_, r)| r.value.forward).collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Unhealthy)
            .count(),
        3,
        "{outcomes:?}"
    );
    let connection = records[0].1.value.connection.expect("connection kept");
    assert!(!connection.connected);
    // redelivered: nothing changes
    service
        .deliver_connections(&context(), &events)
        .await
        .expect("again");
    let again = service.get(rollout.id()).await.expect("get");
    assert_eq!(again.wave_progress()[0].counts.unhealthy, 3);
}
