//! End-to-end benchmark: `TwinChanges` invocations over HTTP on loopback (100 real twin
//! change notifications per batch, real host envelopes) into the real service on SQLite and
//! on Table Storage (Azurite), beside two floors measured in the same run on the same bytes:
//! a minimal axum handler that only decodes the envelope, and decoding in-process without
//! HTTP; five passes of each, alternating, medians reported. Also: cold start (process start to the first `200` on `GET /`, median of 20) and
//! the peak RSS of this process. Run with `cargo bench --bench e2e`.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

#[path = "support/memory.rs"]
mod e2e_memory;

#[path = "support/table.rs"]
mod e2e_table;

#[path = "../tests/store_conformance/azurite.rs"]
#[allow(dead_code)]
mod azurite;

use patchwave::config::AuthSettings;
use patchwave::decode::twin_change::decode_twin_batch;
use patchwave::host::Invocation;
use patchwave::ports::{EffectExecutor, EffectOutcome, SystemClock};
use patchwave::service::RolloutService;
use patchwave::startup::Application;
use patchwave::state::AppState;
use patchwave::store::Store;
use rollout_core::{Effect, EffectKind, Rollout};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEVICES: usize = 20_000;
const BATCH: usize = 100;
const IN_FLIGHT: usize = 4;
/// Timed passes of each side; the median is reported.
const PASSES: u64 = 5;

struct Members(Vec<String>);

#[async_trait::async_trait]
impl EffectExecutor for Members {
    async fn execute(
        &self,
        _rollout: &Rollout,
        effect: &Effect,
        _checkpoint: Option<&str>,
    ) -> EffectOutcome {
        match effect.kind {
            EffectKind::FetchGroupMembers { .. } => EffectOutcome::MembersPage {
                devices: self.0.clone(),
                page: 0,
                resume: None,
            },
            _ => EffectOutcome::Done,
        }
    }
}

fn devices() -> Vec<String> {
    (0..DEVICES).map(|i| format!("device-{i:06}")).collect()
}

/// Host envelopes of batches of 100 twin changes: every device reports once, in progress.
fn batches(devices: &[String], version: u64) -> Vec<Vec<u8>> {
    devices
        .chunks(BATCH)
        .map(|chunk| {
            let body = |_: &String| {
                Value::String(json!({"version": version, "properties": {"reported": {"deviceUpdate": {"__t": "c", "agent": {
                    "state": 6, "workflow": {"action": 3, "id": "wf"},
                    "lastInstallResult": {"resultCode": 400, "extendedResultCodes": "00000000", "stepResults": null}}}, "$version": version}}}).to_string())
            };
            let bodies: Vec<Value> = chunk.iter().map(body).collect();
            let application: Vec<Value> = chunk.iter().map(|d| json!({"hubName": "hub", "deviceId": d, "opType": "updateTwin", "iothub-message-schema": "twinChangeNotification"})).collect();
            let system: Vec<Value> = chunk.iter().map(|d| json!({"iothub-connection-device-id": d, "iothub-message-source": "twinChangeEvents", "iothub-enqueuedtime": "2026-11-23T01:00:00Z"})).collect();
            json!({"Data": {"events": Value::Array(bodies).to_string()},
                   "Metadata": {"PropertiesArray": Value::Array(application).to_string(), "SystemPropertiesArray": Value::Array(system).to_string(),
                                "sys": {"MethodName": "TwinChanges", "UtcNow": "2026-11-23T01:00:01Z"}}})
            .to_string()
            .into_bytes()
        })
        .collect()
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time of this process (both sides of the loopback) per event.
    cpu_us_per_event: f64,
}

/// User + system CPU seconds this process used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name: state is field 3; utime and stime are fields 14 and 15
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Sends the batches with `IN_FLIGHT` outstanding at any moment (as `IN_FLIGHT` Event Hubs
/// partitions would, each waiting for its batch's answer); events per second and latency
/// per batch.
async fn post_all(url: &str, batches: &[Vec<u8>]) -> Figures {
    use futures::stream::StreamExt;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let sends = batches.iter().map(|body| {
        let client = client.clone();
        let body = body.clone();
        let url = url.to_string();
        async move {
            let t = Instant::now();
            let response = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            assert!(response.status().is_success(), "{}", response.status());
            let _ = response.bytes().await;
            t.elapsed()
        }
    });
    let mut latencies: Vec<Duration> = futures::stream::iter(sends)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Figures {
        per_second: (batches.len() * BATCH) as f64 / elapsed,
        cpu_us_per_event: cpu * 1e6 / (batches.len() * BATCH) as f64,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// A handler listening on loopback for the passes, stopped when dropped.
struct Server {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// patchwave on `store`, with a rollout of the whole fleet created and listening.
async fn serve_patchwave(store: Arc<dyn Store>, label: &str) -> (Server, Arc<RolloutService>) {
    let fleet = devices();
    let service = Arc::new(RolloutService::new(
        store,
        Arc::new(Members(fleet)),
        Arc::new(SystemClock),
    ));
    let mut plan: rollout_core::RolloutPlan = serde_json::from_value(json!({
        "name": "bench", "update": {"provider": "C", "name": "G", "version": "2"}, "rollbackUpdate": {"provider": "C", "name": "G", "version": "1"},
        "waves": [{"name": "fleet", "deviceGroup": "fleet", "successThresholdPercent": 100, "failureThresholdPercent": 5,
                   "minDevicesJudged": 50, "soakMinutes": 60, "deviceTimeoutMinutes": 600, "onFailure": "rollback"}]
    }))
    .expect("plan");
    plan.name = format!("bench {label}");
    let started = Instant::now();
    service.create(plan, "bench", None).await.expect("rollout");
    eprintln!(
        "  ({label}: rollout with {DEVICES} devices created in {:.1}s)",
        started.elapsed().as_secs_f64()
    );
    let app = Application::bind(
        0,
        AppState::with_service(service.clone(), AuthSettings::default()),
    )
    .await
    .expect("bind");
    let url = format!("http://{}/TwinChanges", app.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = app.serve(std::future::pending()).await;
    });
    (Server { url, task }, service)
}

fn print_commits(label: &str, service: &RolloutService) {
    let metrics = service.metrics().snapshot();
    eprintln!(
        "  ({label}: {} reports applied in {} commits, {} conditional writes redone after a conflict)",
        metrics.reports_applied, metrics.report_commits, metrics.conflicts_retried
    );
}

/// The protocol's floor: an axum handler that decodes the envelope and its batch, and answers.
async fn serve_envelope_floor() -> Server {
    let app = axum::Router::new().route(
        "/TwinChanges",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let invocation = Invocation::parse(&body).expect("envelope");
            let batch = decode_twin_batch(&invocation).expect("batch");
            axum::Json(json!({"Outputs": {}, "Logs": [], "ReturnValue": batch.items.len()}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/TwinChanges",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Server { url, task }
}

/// The pass with the median rate.
fn median(mut passes: Vec<Figures>) -> Figures {
    passes.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    passes.swap_remove(passes.len() / 2)
}

fn decode_floor(batches: &[Vec<u8>]) -> f64 {
    let started = Instant::now();
    let mut decoded = 0;
    for body in batches {
        let invocation = Invocation::parse(body).expect("envelope");
        decoded += decode_twin_batch(&invocation).expect("batch").items.len();
    }
    decoded as f64 / started.elapsed().as_secs_f64()
}

fn cold_start() -> Duration {
    let mut samples = Vec::new();
    for _ in 0..20 {
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let started = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_patchwave"))
            .arg("serve")
            .env("PATCHWAVE_PORT", port.to_string())
            .env(
                "PATCHWAVE_STORE",
                format!("sqlite:{}", dir.path().join("c.db").display()),
            )
            .env("PATCHWAVE_CREDENTIAL", "none")
            .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("serve");
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(started.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn print(label: &str, f: &Figures, envelope: &Figures, decode: f64) {
    println!(
        "  {label:<26} {:>9.0} events/s   p50 {:>6.2} ms   p99 {:>6.2} ms per batch   {:>5.1} µs CPU/event   = {:.2} of the envelope floor, {:.3} of in-process decoding",
        f.per_second, f.p50_ms, f.p99_ms, f.cpu_us_per_event, f.per_second / envelope.per_second, f.per_second / decode
    );
}

#[tokio::main]
async fn main() {
    if e2e_memory::run_child().await {
        return;
    }
    if std::env::args().any(|arg| arg == "--memory-only") {
        return e2e_memory::measure();
    }
    println!("patchwave end to end: {DEVICES} twin change notifications in batches of {BATCH}, {IN_FLIGHT} batches in flight, loopback HTTP");
    if std::env::args().any(|arg| arg == "--patchwave-only") {
        // for profiling: the SQLite path alone, 5 reports per device, no floors
        let dir = tempfile::tempdir().expect("dir");
        let sqlite = patchwave::store::sqlite::SqliteStore::open(&dir.path().join("bench.db"));
        let (server, _) = serve_patchwave(Arc::new(sqlite.expect("sqlite")), "sqlite").await;
        let all: Vec<Vec<u8>> = (5..10).flat_map(|v| batches(&devices(), v)).collect();
        let f = post_all(&server.url, &all).await;
        let (rate, p99, cpu) = (f.per_second, f.p99_ms, f.cpu_us_per_event);
        return println!("  patchwave, SQLite {rate:>9.0} events/s   p99 {p99:>6.2} ms   {cpu:>5.1} µs CPU/event");
    }
    if std::env::args().any(|arg| arg == "--table-only") {
        // patchwave on Table beside the Azurite floor, nothing else
        e2e_table::measure().await;
        return;
    }
    let fleet = devices();
    let bytes = batches(&fleet, 5);
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = patchwave::store::sqlite::SqliteStore::open(&dir.path().join("bench.db"));
    let (patchwave, service) = serve_patchwave(Arc::new(sqlite.expect("sqlite")), "sqlite").await;
    let floor = serve_envelope_floor().await;
    // passes alternate, so both sides see the same machine (a neighbour's load, the
    // page cache) and each side's median is taken over the same stretch of time
    let (mut decodes, mut envelopes, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for pass in 0..PASSES {
        decodes.push(decode_floor(&bytes));
        envelopes.push(post_all(&floor.url, &bytes).await);
        // every pass is a new twin version of every device: each report changes a record
        ours.push(post_all(&patchwave.url, &batches(&fleet, 6 + pass)).await);
    }
    print_commits("sqlite", &service);
    let per_pass: Vec<String> = (envelopes.iter().zip(&ours))
        .map(|(floor, ours)| format!("{:.2}", ours.per_second / floor.per_second))
        .collect();
    decodes.sort_by(f64::total_cmp);
    let decode = decodes[PASSES as usize / 2];
    let (envelope, on_sqlite) = (median(envelopes), median(ours));
    println!("  (medians of {PASSES} passes of each, alternating; patchwave / envelope floor per pass: {})", per_pass.join(" "));
    println!(
        "  {:<26} {:>9.0} events/s (decoding the same bytes without HTTP)",
        "floor: in-process decode", decode
    );
    println!(
        "  {:<26} {:>9.0} events/s   p50 {:>6.2} ms   p99 {:>6.2} ms per batch   {:>5.1} µs CPU/event",
        "floor: envelope-only axum", envelope.per_second, envelope.p50_ms, envelope.p99_ms, envelope.cpu_us_per_event
    );
    print("patchwave, SQLite", &on_sqlite, &envelope, decode);
    if std::env::args().any(|arg| arg == "--sqlite-only") {
        return;
    }
    drop(patchwave);
    let on_table = e2e_table::measure().await;
    println!(
        "  {:<26} = {:.4} of the envelope floor, {:.4} of in-process decoding",
        "(patchwave, Table)",
        on_table.per_second / envelope.per_second,
        on_table.per_second / decode
    );
    println!(
        "  cold start (process start to first 200 on GET /, median of 20): {:.1} ms",
        cold_start().as_secs_f64() * 1000.0
    );
    println!("  peak RSS of this benchmark process (handler, {DEVICES}-device rollouts, both stores): {:.0} MiB", e2e_memory::peak_rss_mib());
    e2e_memory::measure();
}
