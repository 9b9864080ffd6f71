//! The dashboard in a real browser: `patchwave serve` (the binary, on SQLite, function keys
//! checked, App Service Authentication on) with the Azure stand-in behind it; a rollout whose
//! pilot wave fails and rolls back (two devices fail going back too), and one still moving.
//! `tests/browser/dashboard.mjs` then drives Debian's headless Chromium through playwright-core
//! and checks what a person sees; afterwards the API must show the pause sent from the page.
//! Needs `/usr/bin/chromium` and `npm ci`; `.ci/run` installs both and runs it with `--ignored`.
//! The screenshot goes to `target/dashboard.png`.

use base64::Engine as _;
use patchwave::demo::{machines, MAINTENANCE_CONFIGURATION};
use patchwave_standin::maintenance::MaintenanceRequest;
use patchwave_standin::{GroupConfig, MachineConfig, Standin, StandinConfig};
use serde_json::{json, Value};
use sha2::Digest;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY: &str = "dashboard-browser-key";
const PAUSE_REASON: &str = "change freeze from the dashboard";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn standin_config() -> StandinConfig {
    let group = |id: &str, count: usize, forward: f64, back: f64| {
        let mut group = GroupConfig::numbered(id, count, 0.0);
        group
            .failure_rate_by_version
            .insert("2.4.1".into(), forward);
        group.failure_rate_by_version.insert("2.4.0".into(), back);
        group
    };
    StandinConfig {
        seed: 23,
        groups: vec![
            group("canary", 10, 0.0, 0.0),
            // 6 of 50 fail the new firmware, 2 of 50 fail going back
            group("pilot", 50, 0.12, 0.04),
            group("fleet", 40, 0.0, 0.0),
        ],
        machines: machines()
            .into_iter()
            .map(|id| MachineConfig::linux(&id))
            .collect(),
        report_delay_min: Duration::from_millis(30),
        report_delay_max: Duration::from_millis(500),
        patch_duration: Duration::from_millis(300),
        ..StandinConfig::default()
    }
}

fn serve(dir: &Path, standin: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .arg("serve")
        .env("PATCHWAVE_PORT", "0")
        .env(
            "PATCHWAVE_STORE",
            format!("sqlite:{}", dir.join("browser.db").display()),
        )
        .env(
            "PATCHWAVE_FUNCTION_KEYS",
            hex::encode(sha2::Sha256::digest(KEY.as_bytes())),
        )
        .env("PATCHWAVE_KEY_ROLES", "Rollout.Read,Rollout.Operate")
        .env("WEBSITE_AUTH_ENABLED", "True")
        .env("PATCHWAVE_CREDENTIAL", "none")
        .env("PATCHWAVE_ADU_ENDPOINT", standin)
        .env("PATCHWAVE_ADU_INSTANCE", patchwave::demo::world::INSTANCE)
        .env("PATCHWAVE_ARM_ENDPOINT", standin)
        .env("PATCHWAVE_IOTHUB_HOST", standin)
        .env("PATCHWAVE_EVENTS_FILE", dir.join("events.jsonl"))
        .env("RUST_LOG", "warn,patchwave=info")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("patchwave serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("a log line").expect("utf-8");
        let log: Value = serde_json::from_str(&line).unwrap_or_default();
        if log["fields"]["message"] == "patchwave listening" {
            break format!(
                "http://{}",
                log["fields"]["address"].as_str().expect("addr")
            );
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

async fn api(http: &reqwest::Client, url: &str, path: &str, body: Option<Value>) -> Value {
    let request = match body {
        Some(body) => http.post(format!("{url}{path}")).json(&body),
        None => http.get(format!("{url}{path}")),
    };
    let response = request
        .header("x-functions-key", KEY)
        .send()
        .await
        .expect("api");
    let status = response.status();
    let value: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

/// Fires `RolloutTick` as the Functions host does (every second here, not every minute).
async fn tick(http: &reqwest::Client, url: &str) {
    #[allow(clippy::disallowed_methods)] // the host stamps its invocations with the time
    let now = chrono::Utc::now();
    let envelope = json!({
        "Data": {"tick": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "RolloutTick", "UtcNow": now.to_rfc3339()}}
    });
    let _ = http
        .post(format!("{url}/RolloutTick"))
        .json(&envelope)
        .send()
        .await;
}

fn wave(name: &str, success: u32, judged: u32, soak: u32) -> Value {
    json!({"name": name, "deviceGroup": name, "successThresholdPercent": success,
        "failureThresholdPercent": 5, "minDevicesJudged": judged, "soakMinutes": soak,
        "deviceTimeoutMinutes": 10, "approvalRequired": false, "onFailure": "rollback"})
}

fn update(version: &str) -> Value {
    json!({"provider": "Contoso", "name": "Gateway", "version": version})
}

async fn state_of(http: &reqwest::Client, url: &str, id: &str) -> Value {
    api(http, url, &format!("/api/rollouts/{id}"), None).await
}

async fn wait_for(http: &reqwest::Client, url: &str, id: &str, states: &[&str]) -> Value {
    for _ in 0..240 {
        tick(http, url).await;
        let view = state_of(http, url, id).await;
        if states.iter().any(|s| view["state"] == *s) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("rollout {id} never reached {states:?}");
}

fn reader_principal() -> String {
    let principal = json!({
        "auth_typ": "aad", "name_typ": "name", "role_typ": "roles",
        "claims": [{"typ": "name", "val": "rita"}, {"typ": "roles", "val": "Rollout.Read"}]
    });
    base64::engine::general_purpose::STANDARD.encode(principal.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and npm packages; .ci/run runs it"]
async fn a_person_sees_the_rollback_drills_down_to_a_failed_device_and_pauses_from_the_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "run npm ci first"
    );
    let dir = tempfile::tempdir().expect("dir");
    let standin = Standin::start(standin_config()).await.expect("stand-in");
    let server = serve(dir.path(), &standin.url());
    standin.world().set_handler_url(Some(server.url.clone()));
    let http = reqwest::Client::new();

    let rolled_back = api(&http, &server.url, "/api/rollouts", Some(json!({
        "name": "CVE-2026-1234 gateway firmware",
        "update": update("2.4.1"), "rollbackUpdate": update("2.4.0"),
        "infrastructure": {"maintenanceConfigurationIds": [MAINTENANCE_CONFIGURATION], "machines": machines(), "onFailure": "block"},
        "waves": [wave("canary", 100, 5, 0), wave("pilot", 95, 10, 0)],
        "rollback": {"successThresholdPercent": 90, "deviceTimeoutMinutes": 10}
    })))
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    standin
        .world()
        .schedule_maintenance(MaintenanceRequest {
            configuration_id: MAINTENANCE_CONFIGURATION.into(),
            start: None,
            machines: machines(),
            subscription_ids: None,
            pre_wait_ms: Some(200),
            window_minutes: None,
        })
        .expect("maintenance");
    let last = wait_for(&http, &server.url, &rolled_back, &["RolledBack", "Failed"]).await;
    assert_eq!(last["state"], "RolledBack", "{last}");

    // the fleet wave soaks for an hour: still moving while the page pauses it
    let moving = api(
        &http,
        &server.url,
        "/api/rollouts",
        Some(json!({
            "name": "browser pause", "update": update("2.4.1"), "rollbackUpdate": update("2.4.0"),
            "waves": [wave("fleet", 100, 5, 60)]
        })),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for(&http, &server.url, &moving, &["Deploying", "Soaking"]).await;

    let screenshot = root.join("target/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let output = Command::new("node")
        .arg(root.join("tests/browser/dashboard.mjs"))
        .current_dir(root)
        .env(
            "DASHBOARD_URL",
            format!("{}/api/dashboard?code={KEY}", server.url),
        )
        .env("ROLLED_BACK", &rolled_back)
        .env("MOVING", &moving)
        .env("PAUSE_REASON", PAUSE_REASON)
        .env("READER_PRINCIPAL", reader_principal())
        .env("SCREENSHOT", &screenshot)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser:\n{stdout}\n{stderr}");
    println!("{stdout}");
    assert!(screenshot.is_file(), "no screenshot");

    // the pause sent from the page took effect, with the reason typed there
    let paused = state_of(&http, &server.url, &moving).await;
    assert_eq!(paused["state"], "Paused", "{paused}");
    let decision = paused["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .find(|d| d["kind"] == "rollout.paused")
        .cloned()
        .expect("a pause decision");
    assert!(decision["reason"]
        .as_str()
        .is_some_and(|r| r.contains(PAUSE_REASON)));
    assert!(decision["actor"]
        .as_str()
        .is_some_and(|a| a.starts_with("key:")));
    drop(server);
}
