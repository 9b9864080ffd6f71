//! Time to rollback: the time from sending the `TwinChanges` batch whose report crosses a
//! wave's failure threshold until the rollback deployment's `PUT` and the forward deployment's
//! `:cancel` arrive at the Device Update stand-in, over real HTTP both ways (the handler behind
//! its router, Azure clients pointed at the stand-in), on SQLite and on Table Storage
//! (Azurite). Each run is a fresh rollout of its own 100-device group on the same service.
//! Run with `cargo bench --bench rollback` (`-- --sqlite-only`, `-- --runs N`).

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

#[path = "../tests/store_conformance/azurite.rs"]
#[allow(dead_code)]
mod azurite;

use patchwave::azure::credential::TokenSource;
use patchwave::azure::device_update::{self, DeviceUpdateClient};
use patchwave::azure::events::EventHubsSink;
use patchwave::azure::iot_hub::{self, IotHubClient};
use patchwave::azure::rest::{AzureError, RestClient, RetryPolicy};
use patchwave::azure::AzureExecutor;
use patchwave::config::AuthSettings;
use patchwave::ports::SystemClock;
use patchwave::service::RolloutService;
use patchwave::startup::Application;
use patchwave::state::AppState;
use patchwave::store::Store;
use patchwave_standin::calls::{AduAction, AduCall};
use patchwave_standin::{GroupConfig, Standin, StandinConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Devices in each run's group.
const DEVICES: usize = 100;
/// Runs before the measured ones (connections opened, caches warm), not counted.
const WARMUP: usize = 3;
/// Measured runs unless `--runs N` says otherwise.
const DEFAULT_RUNS: usize = 200;
/// Failed share of the group that fails the wave (more than this).
const FAILURE_THRESHOLD_PERCENT: u32 = 5;
/// The goal on SQLite, for the p99 of both calls.
const GOAL_MS: f64 = 100.0;
/// The Device Update instance in the clients' paths.
const INSTANCE: &str = "bench";
const FORWARD: &str = "{\"provider\":\"Contoso\",\"name\":\"Gateway\",\"version\":\"2.4.1\"}";

/// A fixed bearer token for every client (the stand-in's Event Hubs wants one; a real
/// credential's token is cached, so a fixed one costs what a real one costs per call).
struct FixedToken;

#[async_trait::async_trait]
impl TokenSource for FixedToken {
    async fn token(&self, _scope: &str) -> Result<Option<String>, AzureError> {
        Ok(Some("bench-token".into()))
    }
}

/// The stand-in, and patchwave on one store with its Azure clients pointed at it.
struct Rig {
    standin: Standin,
    handler: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    /// Twin versions only go up: one counter for every report sent.
    version: u64,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn group_name(run: usize) -> String {
    format!("rb{run:04}")
}

async fn start(store: Arc<dyn Store>, groups: usize) -> Rig {
    let standin = Standin::start(StandinConfig {
        groups: (0..groups)
            .map(|run| GroupConfig::numbered(&group_name(run), DEVICES, 0.0))
            .collect(),
        machines: Vec::new(),
        // the stand-in's devices stay silent: the bench writes every report
        report_delay_min: Duration::from_secs(24 * 3600),
        report_delay_max: Duration::from_secs(24 * 3600),
        max_deployments: 2 * groups + 10,
        ..StandinConfig::default()
    })
    .await
    .expect("stand-in");
    let url = standin.url();
    let tokens: Arc<dyn TokenSource> = Arc::new(FixedToken);
    let rest = |scope: &str| {
        RestClient::new(&url, scope, tokens.clone(), RetryPolicy::default()).expect("client")
    };
    let events = EventHubsSink::new(&url, "lifecycle", tokens.clone(), RetryPolicy::default())
        .expect("event hub");
    let executor = AzureExecutor::new(
        Some(DeviceUpdateClient::new(
            rest(device_update::SCOPE),
            INSTANCE,
        )),
        None,
        Some(IotHubClient::new(rest(iot_hub::SCOPE))),
        Arc::new(events),
    );
    let service = Arc::new(RolloutService::new(
        store,
        Arc::new(executor),
        Arc::new(SystemClock),
    ));
    let auth = AuthSettings {
        open: true,
        ..AuthSettings::default()
    };
    let app = Application::bind(0, AppState::with_service(service, auth))
        .await
        .expect("bind");
    let handler = format!("http://{}", app.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = app.serve(std::future::pending()).await;
    });
    Rig {
        standin,
        handler,
        http: reqwest::Client::new(),
        server,
        version: 0,
    }
}

fn plan(group: &str) -> Value {
    json!({
        "name": format!("rollback bench {group}"),
        "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
        "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
        "waves": [{"name": "fleet", "deviceGroup": group, "successThresholdPercent": 100,
                   "failureThresholdPercent": FAILURE_THRESHOLD_PERCENT, "minDevicesJudged": 10,
                   "soakMinutes": 0, "deviceTimeoutMinutes": 120, "approvalRequired": false,
                   "onFailure": "rollback"}]
    })
}

/// One device's report: succeeded (state 0, result 700, the update installed) or failed
/// (state 255, result 0), about `workflow`.
fn twin_body(version: u64, ok: bool, workflow: &str) -> String {
    let agent = if ok {
        json!({"state": 0, "workflow": {"action": 3, "id": workflow}, "installedUpdateId": FORWARD,
               "lastInstallResult": {"resultCode": 700, "extendedResultCodes": "00000000"}})
    } else {
        json!({"state": 255, "workflow": {"action": 3, "id": workflow},
               "lastInstallResult": {"resultCode": 0, "extendedResultCodes": "30200002"}})
    };
    json!({"version": version, "properties": {"reported": {
        "deviceUpdate": {"__t": "c", "agent": agent}, "$version": version}}})
    .to_string()
}

impl Rig {
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.handler));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("api");
        let status = response.status();
        let body: Value = response.json().await.expect("api body");
        assert!(status.is_success(), "{path}: {status} {body:#}");
        body
    }

    async fn tick(&self) {
        let now = chrono::Utc::now();
        let envelope = json!({
            "Data": {"tick": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
            "Metadata": {"sys": {"MethodName": "RolloutTick", "UtcNow": now.to_rfc3339()}}
        });
        let response = self
            .http
            .post(format!("{}/RolloutTick", self.handler))
            .json(&envelope)
            .send()
            .await
            .expect("tick");
        assert!(response.status().is_success());
    }

    /// A host envelope of one Event Hubs batch: a report per `(device, ok)`.
    fn envelope(&mut self, reports: &[(String, bool)], workflow: &str) -> Vec<u8> {
        let written = chrono::Utc::now().to_rfc3339();
        let (mut bodies, mut application, mut system) = (Vec::new(), Vec::new(), Vec::new());
        for (device, ok) in reports {
            self.version += 1;
            bodies.push(Value::String(twin_body(self.version, *ok, workflow)));
            application.push(
                json!({"hubName": "hub", "deviceId": device, "opType": "updateTwin",
                "iothub-message-schema": "twinChangeNotification", "operationTimestamp": written}),
            );
            system.push(json!({"iothub-connection-device-id": device,
                "iothub-message-source": "twinChangeEvents", "iothub-enqueuedtime": written}));
        }
        json!({"Data": {"events": Value::Array(bodies).to_string()},
               "Metadata": {"PropertiesArray": Value::Array(application).to_string(),
                            "SystemPropertiesArray": Value::Array(system).to_string(),
                            "sys": {"MethodName": "TwinChanges", "UtcNow": written}}})
        .to_string()
        .into_bytes()
    }

    async fn post_batch(&self, envelope: Vec<u8>) {
        let response = self
            .http
            .post(format!("{}/TwinChanges", self.handler))
            .header("Content-Type", "application/json")
            .body(envelope)
            .send()
            .await
            .expect("TwinChanges");
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.bytes().await;
    }

    /// The forward deployment of `group` at the stand-in (id, workflow), ticking the handler
    /// until it is there (at most 30 s).
    async fn forward_deployment(&self, group: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .standin
                .world()
                .deployments()
                .into_iter()
                .find(|d| d.group == group && !d.deleted);
            if let Some(deployment) = found {
                return (deployment.id, deployment.workflow_id);
            }
            assert!(Instant::now() < deadline, "no deployment for {group}");
            self.tick().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What one run measured, from just before the crossing batch was sent.
struct Sample {
    rollback_put: Duration,
    forward_cancel: Duration,
    answered: Duration,
    /// The answer to the batch before it (same size, nothing crossed).
    plain: Duration,
}

/// Waits (at most 30 s) for the rollback `PUT` on `group` and the `:cancel` of `forward`.
async fn arrivals(
    calls: &mut broadcast::Receiver<AduCall>,
    group: &str,
    forward: &str,
) -> (Instant, Instant) {
    let (mut put, mut cancel) = (None, None);
    let wait = async {
        while put.is_none() || cancel.is_none() {
            let call = calls.recv().await.expect("stand-in calls");
            if call.group != group || call.status >= 300 {
                continue;
            }
            match call.action {
                AduAction::PutDeployment if call.deployment != forward => {
                    put.get_or_insert(call.arrived);
                }
                AduAction::CancelSubgroup { .. } if call.deployment == forward => {
                    cancel = Some(call.arrived);
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("rollback PUT and forward cancel within 30 s");
    (put.expect("put"), cancel.expect("cancel"))
}

/// One run: a rollout on group `run` brought to deploying; 50 devices report success, then a
/// batch of 20 reports (16 succeeded, 4 failed: 4% of 100, under the threshold), then the timed
/// batch of 20 (18 succeeded, 2 failed): its second failure makes 6%, above 5%. The batch
/// before it has the same size and shape and crosses nothing: its answer time is the report
/// path without a rollback.
async fn run_once(rig: &mut Rig, run: usize) -> Sample {
    let group = group_name(run);
    let created = rig
        .api(reqwest::Method::POST, "/api/rollouts", Some(plan(&group)))
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    let (forward, workflow) = rig.forward_deployment(&group).await;
    let devices: Vec<String> = (1..=DEVICES).map(|n| format!("{group}-{n:04}")).collect();
    let batch = |ok: std::ops::Range<usize>, failed: std::ops::Range<usize>| {
        let ok = devices[ok].iter().map(|d| (d.clone(), true));
        let failed = devices[failed].iter().map(|d| (d.clone(), false));
        ok.chain(failed).collect::<Vec<(String, bool)>>()
    };
    let succeeded = rig.envelope(&batch(0..50, 0..0), &workflow);
    rig.post_batch(succeeded).await;
    let under = rig.envelope(&batch(50..66, 66..70), &workflow);
    let sent = Instant::now();
    rig.post_batch(under).await;
    let plain = sent.elapsed();
    let crossing = rig.envelope(&batch(70..88, 88..90), &workflow);
    let mut calls = rig.standin.world().adu_calls.subscribe();
    let sent = Instant::now();
    rig.post_batch(crossing).await;
    let answered = sent.elapsed();
    let (put, cancel) = arrivals(&mut calls, &group, &forward).await;
    let view = rig
        .api(reqwest::Method::GET, &format!("/api/rollouts/{id}"), None)
        .await;
    assert_eq!(view["state"], "RollingBack", "{view:#}");
    Sample {
        rollback_put: put - sent,
        forward_cancel: cancel - sent,
        answered,
        plain,
    }
}

/// Nearest-rank quantile `q` of sorted samples, in ms.
fn at(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn summary(mut values: Vec<Duration>) -> (f64, f64, f64) {
    values.sort();
    (at(&values, 0.5), at(&values, 0.99), at(&values, 1.0))
}

/// Runs `runs` measured runs (after the warm-up) and prints the figures; returns the worse
/// p99 of the two calls.
async fn measure(label: &str, store: Arc<dyn Store>, runs: usize) -> f64 {
    let mut rig = start(store, WARMUP + runs).await;
    let started = Instant::now();
    for run in 0..WARMUP {
        run_once(&mut rig, run).await;
    }
    let mut samples = Vec::with_capacity(runs);
    for run in WARMUP..WARMUP + runs {
        samples.push(run_once(&mut rig, run).await);
    }
    let (put50, put99, put_max) = summary(samples.iter().map(|s| s.rollback_put).collect());
    let (cancel50, cancel99, cancel_max) =
        summary(samples.iter().map(|s| s.forward_cancel).collect());
    let (answer50, answer99, answer_max) = summary(samples.iter().map(|s| s.answered).collect());
    let (plain50, plain99, _) = summary(samples.iter().map(|s| s.plain).collect());
    let gaps = samples
        .iter()
        .map(|s| s.rollback_put.saturating_sub(s.forward_cancel));
    let (gap50, gap99, _) = summary(gaps.collect());
    let answered_after = samples
        .iter()
        .filter(|s| s.answered >= s.rollback_put.max(s.forward_cancel))
        .count();
    println!(
        "  ({label}: {} runs in {:.1} s, {WARMUP} warm-up runs before them not counted)",
        runs + WARMUP,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  (the same-sized batch before it, crossing nothing, answered: p50 {plain50:.2} ms p99 {plain99:.2} ms)"
    );
    println!(
        "  (the crossing batch answered: p50 {answer50:.2} ms p99 {answer99:.2} ms max {answer_max:.2} ms, after both calls arrived in {answered_after} of {runs} runs; forward cancel → rollback PUT p50 {gap50:.2} ms p99 {gap99:.2} ms)"
    );
    println!(
        "time to rollback, {label}: rollback PUT p50 {put50:.2} ms p99 {put99:.2} ms max {put_max:.2} ms; forward cancel p50 {cancel50:.2} ms p99 {cancel99:.2} ms max {cancel_max:.2} ms ({runs} runs)"
    );
    put99.max(cancel99)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|arg| arg == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>().expect("--runs N"))
        .unwrap_or(DEFAULT_RUNS)
        .max(1);
    println!(
        "time to rollback: from sending the TwinChanges batch whose report crosses the failure threshold ({FAILURE_THRESHOLD_PERCENT}% of {DEVICES} devices) to the arrival at the Device Update stand-in of the rollback deployment's PUT and the forward deployment's :cancel; loopback HTTP, one run at a time"
    );
    let dir = tempfile::tempdir().expect("dir");
    let sqlite =
        patchwave::store::sqlite::SqliteStore::open(&dir.path().join("bench.db")).expect("sqlite");
    let worst = measure("SQLite", Arc::new(sqlite), runs).await;
    let verdict = if worst <= GOAL_MS { "met" } else { "NOT met" };
    println!(
        "goal p99 <= {GOAL_MS:.0} ms on SQLite (both calls): {verdict} (worse p99 {worst:.2} ms)"
    );
    if args.iter().any(|arg| arg == "--sqlite-only") {
        return;
    }
    let table = patchwave::store::table::TableStore::connect_with_prefix(
        &azurite::connection_string(),
        &azurite::unique_prefix(),
    )
    .await
    .expect("azurite");
    measure("Table (Azurite)", Arc::new(table), runs).await;
}
