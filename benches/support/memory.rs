//! Peak RSS while a 1,000,000-device rollout is created (members learned in pages of 1,000),
//! and while it is served by a fresh
//! instance, each measured in its own child process of the e2e benchmark (`--rss-create DIR`,
//! `--rss-serve DIR`) so nothing else counts.

use crate::{batches, post_all, EffectExecutor, EffectOutcome, BATCH};
use patchwave::config::AuthSettings;
use patchwave::ports::SystemClock;
use patchwave::service::RolloutService;
use patchwave::startup::Application;
use patchwave::state::AppState;
use rollout_core::{Effect, EffectKind, Rollout};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const FLEET: usize = 1_000_000;
/// Reports served after creation, spread over the whole fleet.
const SERVED: usize = 200_000;
/// Devices whose envelopes are built at a time (the load generator's own memory).
const CHUNK: usize = 10_000;

fn device(i: usize) -> String {
    format!("device-{i:07}")
}

/// Devices per page of the group lookup (IoT Hub's twin query answers 1,000 at most).
const MEMBERS_PAGE: usize = 1_000;

/// Answers a group lookup with the fleet page by page, each page built when asked (as an
/// IoT Hub twin query with continuation tokens would answer).
struct GeneratedMembers;

#[async_trait::async_trait]
impl EffectExecutor for GeneratedMembers {
    async fn execute(&self, _: &Rollout, effect: &Effect, at: Option<&str>) -> EffectOutcome {
        let EffectKind::FetchGroupMembers { .. } = effect.kind else {
            return EffectOutcome::Done;
        };
        let page: usize = at.and_then(|at| at.parse().ok()).unwrap_or(0);
        let first = page * MEMBERS_PAGE;
        let last = (first + MEMBERS_PAGE).min(FLEET);
        EffectOutcome::MembersPage {
            devices: (first..last).map(device).collect(),
            page: page as u32,
            resume: (last < FLEET).then(|| (page + 1).to_string()),
        }
    }
}

/// Peak resident set of this process, in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn service(dir: &Path) -> Arc<RolloutService> {
    let store = patchwave::store::sqlite::SqliteStore::open(&dir.join("rss.db")).expect("sqlite");
    Arc::new(RolloutService::new(
        Arc::new(store),
        Arc::new(GeneratedMembers),
        Arc::new(SystemClock),
    ))
}

/// First child: create the rollout (learn 1,000,000 members, write their records).
pub async fn create(dir: &Path) {
    let service = service(dir);
    let plan = serde_json::from_value(json!({
        "name": "rss", "update": {"provider": "C", "name": "G", "version": "2"}, "rollbackUpdate": {"provider": "C", "name": "G", "version": "1"},
        "waves": [{"name": "fleet", "deviceGroup": "fleet", "successThresholdPercent": 100, "failureThresholdPercent": 5,
                   "minDevicesJudged": 50, "soakMinutes": 60, "deviceTimeoutMinutes": 600, "onFailure": "rollback"}]
    }))
    .expect("plan");
    let started = Instant::now();
    let rollout = service.create(plan, "bench", None).await.expect("rollout");
    assert_eq!(rollout.wave_progress()[0].counts.total, FLEET as u64);
    println!(
        "  1,000,000-device rollout on SQLite: created (members learned, records written) in {:.1} s, peak RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
}

/// Second child, a fresh instance on the same database: serve `SERVED` reports over HTTP.
pub async fn serve(dir: &Path) {
    let service = service(dir);
    let app = Application::bind(0, AppState::with_service(service, AuthSettings::default()))
        .await
        .expect("bind");
    let url = format!("http://{}/TwinChanges", app.local_addr().expect("addr"));
    let server = tokio::spawn(app.serve(std::future::pending()));
    let step = FLEET / SERVED;
    let started = Instant::now();
    for first in (0..SERVED).step_by(CHUNK) {
        let chunk: Vec<String> = (first..first + CHUNK).map(|i| device(i * step)).collect();
        post_all(&url, &batches(&chunk, 5)).await;
    }
    let served_in = started.elapsed().as_secs_f64();
    server.abort();
    println!(
        "  a fresh instance serving {SERVED} reports over HTTP in batches of {BATCH} ({:.0} events/s): peak RSS {:.0} MiB",
        SERVED as f64 / served_in,
        peak_rss_mib()
    );
}

/// Runs [`create`] and then [`serve`], each in a fresh process, and passes their lines through.
pub fn measure() {
    let dir = tempfile::tempdir().expect("dir");
    for phase in ["--rss-create", "--rss-serve"] {
        let status = std::process::Command::new(std::env::current_exe().expect("exe"))
            .arg(phase)
            .arg(dir.path())
            .status()
            .expect("child");
        assert!(status.success(), "memory child {phase} failed: {status}");
    }
}

/// The child phase named on the command line, if this process is one.
pub async fn run_child() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a.starts_with("--rss-")) else {
        return false;
    };
    let dir = Path::new(args.get(at + 1).expect("directory"));
    match args[at].as_str() {
        "--rss-create" => create(dir).await,
        _ => serve(dir).await,
    }
    true
}
