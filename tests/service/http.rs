//! Over HTTP with the real service behind the triggers: a batch of 100 with one malformed
//! message, and the dead letters listed through the API with role checks.

use crate::support::*;
use base64::Engine as _;
use patchwave::config::AuthSettings;
use patchwave::startup::Application;
use patchwave::state::AppState;
use serde_json::{json, Value};
use std::sync::Arc;

fn report_body(twin_version: u64) -> String {
    json!({
        "version": twin_version,
        "properties": {"reported": {"deviceUpdate": {"__t": "c", "agent": {
            "state": 0,
            "workflow": {"action": 3, "id": "wf"},
            "installedUpdateId": "{\"provider\":\"Contoso\",\"name\":\"Gateway\",\"version\":\"2.4.1\"}",
            "lastInstallResult": {"resultCode": 700, "extendedResultCodes": "00000000"}
        }}}}
    })
    .to_string()
}

fn batch(devices: &[String], broken_at: usize) -> Value {
    let bodies: Vec<Value> = devices
        .iter()
        .enumerate()
        .map(|(i, _)| {
            Value::String(if i == broken_at {
                "{\"version\": 9, \"properties\"".into()
            } else {
                report_body(10 + i as u64)
            })
        })
        .collect();
    let application: Vec<Value> = devices.iter().map(|d| json!({"deviceId": d, "hubName": "hub", "opType": "updateTwin", "iothub-message-schema": "twinChangeNotification"})).collect();
    let system: Vec<Value> = devices.iter().map(|d| json!({"iothub-connection-device-id": d, "iothub-message-source": "twinChangeEvents"})).collect();
    json!({
        "Data": {"events": Value::Array(bodies).to_string()},
        "Metadata": {
            "PropertiesArray": Value::Array(application).to_string(),
            "SystemPropertiesArray": Value::Array(system).to_string()
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_malformed_message_in_100_is_one_dead_letter_and_99_are_applied() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = devices("gw", 100);
    let azure = Arc::new(FakeAzure::with_group("fleet", fleet.clone()));
    let (service, _clock, store) = sqlite_service(&dir, azure);
    let mut plan = one_wave_plan("fleet", 100.0);
    plan.waves[0].min_devices_judged = 100;
    let rollout = service.create(plan, "alice", None).await.expect("created");
    let app = Application::bind(
        0,
        AppState::with_service(
            service.clone(),
            // App Service Authentication on: the principal header is the platform's
            AuthSettings {
                platform_auth: true,
                ..AuthSettings::default()
            },
        ),
    )
    .await
    .expect("bind");
    let address = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.serve(std::future::pending()));
    let client = reqwest::Client::new();

    let response = client
        .post(format!("{address}/TwinChanges"))
        .header("X-Azure-Functions-InvocationId", "inv-100")
        .body(batch(&fleet, 42).to_string())
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["ReturnValue"]["deviceUpdateReports"], 99, "{body}");

    let after = service.get(rollout.id()).await.expect("get");
    assert_eq!(after.wave_progress()[0].counts.succeeded, 99);
    let letters = store.dead_letters(10).await.expect("letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (
            letters[0].function.as_str(),
            letters[0].invocation_id.as_str()
        ),
        ("TwinChanges", "inv-100")
    );
    assert!(
        letters[0].reason.contains("item 42") && letters[0].reason.contains("not JSON"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].raw, "{\"version\": 9, \"properties\"");

    // redelivery of the same batch: nothing counted twice, no second dead letter
    client
        .post(format!("{address}/TwinChanges"))
        .body(batch(&fleet, 42).to_string())
        .send()
        .await
        .expect("again");
    assert_eq!(
        service
            .get(rollout.id())
            .await
            .expect("get")
            .wave_progress()[0]
            .counts
            .succeeded,
        99
    );
    assert_eq!(store.dead_letters(10).await.expect("letters").len(), 1);

    let unauthenticated = client
        .get(format!("{address}/api/deadletters"))
        .send()
        .await
        .expect("get");
    assert_eq!(unauthenticated.status(), 401);
    let principal = |roles: &[&str]| {
        let claims: Vec<Value> = std::iter::once(json!({"typ": "name", "val": "dana"}))
            .chain(roles.iter().map(|r| json!({"typ": "roles", "val": r})))
            .collect();
        base64::engine::general_purpose::STANDARD.encode(
            json!({"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims})
                .to_string(),
        )
    };
    let forbidden = client
        .get(format!("{address}/api/deadletters"))
        .header("X-MS-CLIENT-PRINCIPAL", principal(&["Rollout.Approve"]))
        .send()
        .await
        .expect("get");
    assert_eq!(forbidden.status(), 403);
    let listed = client
        .get(format!("{address}/api/deadletters"))
        .header("X-MS-CLIENT-PRINCIPAL", principal(&["Rollout.Read"]))
        .send()
        .await
        .expect("get");
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.expect("json");
    assert_eq!(listed["value"][0]["invocationId"], "inv-100");
}
