//! A scriptable Azure stand-in at the effect level, and helpers to build rollouts and
//! twin changes.

use chrono::{TimeZone, Utc};
use patchwave::decode::agent_report::{AgentReport, AgentState, InstallResult};
use patchwave::decode::twin_change::{TwinChange, TwinOp};
use patchwave::ports::{EffectExecutor, EffectOutcome, ManualClock};
use patchwave::service::RolloutService;
use patchwave::store::sqlite::SqliteStore;
use patchwave::store::Store;
use rollout_core::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Answers effects like Azure would: group members from a map, everything else done.
#[derive(Default)]
pub struct FakeAzure {
    pub groups: BTreeMap<String, Vec<String>>,
    pub executed: Mutex<Vec<String>>,
}

impl FakeAzure {
    pub fn with_group(group: &str, devices: Vec<String>) -> Self {
        FakeAzure {
            groups: [(group.to_string(), devices)].into_iter().collect(),
            executed: Mutex::new(Vec::new()),
        }
    }

    pub fn executed(&self) -> Vec<String> {
        self.executed.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl EffectExecutor for FakeAzure {
    async fn execute(
        &self,
        _rollout: &Rollout,
        effect: &Effect,
        _checkpoint: Option<&str>,
    ) -> EffectOutcome {
        self.executed
            .lock()
            .expect("lock")
            .push(effect.id.to_string());
        match &effect.kind {
            EffectKind::FetchGroupMembers { group, .. } => EffectOutcome::MembersPage {
                devices: self.groups.get(group.as_str()).cloned().unwrap_or_default(),
                page: 0,
                resume: None,
            },
            _ => EffectOutcome::Done,
        }
    }
}

pub fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("time")
}

pub fn update(version: &str) -> UpdateId {
    UpdateId::new("Contoso", "Gateway", version).expect("id")
}

pub fn one_wave_plan(group: &str, success: f64) -> RolloutPlan {
    RolloutPlan {
        name: "service test".into(),
        update: update("2.4.1"),
        rollback_update: update("2.4.0"),
        infrastructure: None,
        waves: vec![WavePlan {
            name: group.into(),
            device_group: group.into(),
            success_threshold_percent: success,
            failure_threshold_percent: 5.0,
            min_devices_judged: 10,
            soak_minutes: 30,
            device_timeout_minutes: 120,
            approval_required: false,
            on_failure: WaveFailure::Rollback,
            health_gate: None,
        }],
        window: None,
        allow_self_approval: false,
        rollback: None,
        alert_rules: Vec::new(),
    }
}

pub fn devices(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// A decoded twin change carrying an agent report of `state` (0 success, 255 failure, 6).
pub fn twin_change(
    device: &str,
    twin_version: u64,
    state: AgentState,
    installed: Option<UpdateId>,
) -> TwinChange {
    let result_code = match state {
        AgentState::Idle => 700,
        AgentState::Failed => 0,
        _ => 400,
    };
    TwinChange {
        index: 0,
        device_id: device.into(),
        module_id: None,
        hub: Some("hub".into()),
        op_type: Some(TwinOp::UpdateTwin),
        twin_version: Some(twin_version),
        reported_version: None,
        enqueued_time: None,
        operation_time: None,
        sequence_number: None,
        device_update: Some(AgentReport {
            state: Some(state),
            workflow: None,
            installed_update_id: installed,
            last_install_result: Some(InstallResult {
                result_code: Some(result_code),
                extended_result_codes: vec![0],
                result_details: None,
            }),
            step_results: Default::default(),
        }),
    }
}

pub fn context() -> patchwave::host::InvocationContext {
    patchwave::host::InvocationContext {
        function: "TwinChanges",
        invocation_id: "test-invocation".into(),
        host_version: None,
    }
}

/// A service on a SQLite file in `dir`, with its own clock.
pub fn sqlite_service(
    dir: &tempfile::TempDir,
    azure: Arc<FakeAzure>,
) -> (Arc<RolloutService>, Arc<ManualClock>, Arc<dyn Store>) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("patchwave.db")).expect("open"));
    let clock = Arc::new(ManualClock::new(t0()));
    let service = Arc::new(RolloutService::new(store.clone(), azure, clock.clone()));
    (service, clock, store)
}
