//! Crash test: `patchwave serve` is killed with SIGKILL at random moments while a rollout
//! runs; the stand-in keeps redelivering what was not answered, as the host and Event Grid
//! do. After the restarts the rollout ends as an uninterrupted one does, and no Device Update
//! deployment was created twice under different ids.

use patchwave::demo::machines;
use patchwave_standin::{GroupConfig, MachineConfig, Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KILLS: usize = 20;

struct Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    standin: String,
}

impl Server {
    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_patchwave"))
            .arg("serve")
            .env("PATCHWAVE_PORT", self.port.to_string())
            .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
            .env(
                "PATCHWAVE_STORE",
                format!("sqlite:{}", self.dir.path().join("crash.db").display()),
            )
            .env("PATCHWAVE_ADU_ENDPOINT", &self.standin)
            .env("PATCHWAVE_ADU_INSTANCE", patchwave::demo::world::INSTANCE)
            .env("PATCHWAVE_ARM_ENDPOINT", &self.standin)
            .env("PATCHWAVE_IOTHUB_HOST", &self.standin)
            .env("PATCHWAVE_CREDENTIAL", "none")
            .env("PATCHWAVE_AUTH", "open")
            .env(
                "PATCHWAVE_EVENTS_FILE",
                self.dir.path().join("events.jsonl"),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    async fn ready(&self, http: &reqwest::Client) {
        for _ in 0..200 {
            if http
                .get(format!("http://127.0.0.1:{}/", self.port))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("serve did not come up");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A little xorshift so kill moments vary but the test stays reproducible.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        100 + self.0 % 500
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_the_rollout_still_ends_as_an_uninterrupted_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let handler = format!("http://127.0.0.1:{port}");
    let mut pilot = GroupConfig::numbered("pilot", 80, 0.0);
    pilot.failure_rate_by_version.insert("2.4.1".into(), 0.2);
    let config = StandinConfig {
        seed: 5,
        handler_url: Some(handler.clone()),
        groups: vec![
            GroupConfig::numbered("canary", 20, 0.0),
            pilot,
            GroupConfig::numbered("fleet", 100, 0.0),
        ],
        machines: machines()
            .into_iter()
            .map(|id| MachineConfig::linux(&id))
            .collect(),
        report_delay_min: Duration::from_millis(50),
        report_delay_max: Duration::from_millis(2500),
        patch_duration: Duration::from_millis(700),
        redelivery_backoff_min: Duration::from_millis(100),
        redelivery_backoff_max: Duration::from_millis(800),
        ..StandinConfig::default()
    };
    let standin = Standin::start(config).await.expect("stand-in");
    let mut server = Server {
        child: None,
        port,
        dir: tempfile::tempdir().expect("dir"),
        standin: standin.url(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    server.spawn();
    server.ready(&http).await;

    let waves: Vec<Value> = ["canary", "pilot", "fleet"]
        .iter()
        .map(|g| {
            json!({"name": g, "deviceGroup": g, "successThresholdPercent": 95, "failureThresholdPercent": 5,
                "minDevicesJudged": 10, "soakMinutes": 0, "deviceTimeoutMinutes": 10, "approvalRequired": false,
                "onFailure": "rollback"})
        })
        .collect();
    let plan = json!({
        "name": "crash test",
        "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
        "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
        "infrastructure": {"machines": machines(), "onFailure": "block"},
        "waves": waves
    });
    let created: Value = http
        .post(format!("{handler}/api/rollouts"))
        .json(&plan)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();

    let ticker = {
        let (http, handler) = (http.clone(), handler.clone());
        tokio::spawn(async move {
            let tick = json!({"Data": {"tick": {"IsPastDue": false, "ScheduleStatus": null}}, "Metadata": {}});
            loop {
                let _ = http
                    .post(format!("{handler}/RolloutTick"))
                    .json(&tick)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut moments = Moments(0x9E37_79B9_7F4A_7C15);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(moments.next_ms())).await;
        server.kill();
        server.spawn();
        server.ready(&http).await;
    }

    let mut last = Value::Null;
    for _ in 0..600 {
        if let Ok(response) = http
            .get(format!("{handler}/api/rollouts/{id}"))
            .send()
            .await
        {
            last = response.json().await.unwrap_or(Value::Null);
            if matches!(
                last["state"].as_str(),
                Some("RolledBack" | "Completed" | "Failed" | "Cancelled")
            ) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ticker.abort();
    assert_eq!(
        last["state"], "RolledBack",
        "an uninterrupted run rolls back after the pilot wave: {last}"
    );
    let rolled: Vec<&str> = last["rollback"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["deviceGroup"].as_str().expect("group"))
        .collect();
    assert_eq!(rolled, ["canary", "pilot"]);

    let mut ids: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for deployment in standin.world().deployments() {
        ids.entry((deployment.group.clone(), deployment.update.version.clone()))
            .or_default()
            .push(deployment.id.clone());
    }
    for ((group, version), deployments) in &ids {
        assert_eq!(
            deployments.len(),
            1,
            "{group} got {version} under several ids: {deployments:?}"
        );
    }
    assert!(
        ids.keys().all(|(group, _)| group != "fleet"),
        "the fleet was never touched: {ids:?}"
    );
    // the rollback passes at the wave's threshold; stragglers finish installing 2.4.0 after
    assert!(
        all_back(&standin, 20).await,
        "every canary device ends on 2.4.0"
    );
}

async fn all_back(standin: &Standin, count: usize) -> bool {
    for _ in 0..100 {
        let back = (1..=count).map(|n| format!("canary-{n:04}")).all(|device| {
            standin.world().installed_update(&device).map(|u| u.version) == Some("2.4.0".into())
        });
        if back {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
