//! The simulated world: one lock around the fleet, the deployments, the operations, the runs and
//! the queues of host deliveries; read views for tests and `GET /_standin/world`.

use super::model::*;
use super::rng::{fnv1a, SplitMix64};
use super::{Faults, StandinConfig};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rollout_core::UpdateId;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// The simulated Azure world behind the stand-in.
pub struct World {
    pub(super) config: StandinConfig,
    pub(super) base_url: String,
    state: Mutex<State>,
    /// One wake-up per Event Hubs partition.
    pub(super) twin_wake: Vec<Notify>,
    /// Wake-up of the Event Grid lane.
    pub(super) event_wake: Notify,
    pub(super) http: reqwest::Client,
    /// Lifecycle events received over Event Hubs' REST send.
    pub event_hubs: EventHubs,
    /// Device Update deployment calls as they arrive, for subscribers.
    pub adu_calls: super::calls::AduCalls,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// A device group as simulated.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub devices: Vec<String>,
    pub classes: Vec<String>,
    pub failure_rate: f64,
    pub failure_rate_by_version: BTreeMap<String, f64>,
    pub created: DateTime<Utc>,
    /// The module its devices' agents run as (`None`: the device identity).
    pub module_id: Option<String>,
    /// Devices whose device twin is tagged although their agent is a module.
    pub device_twin_tagged: BTreeSet<String>,
}

/// A twin change notification waiting in its partition.
#[derive(Debug, Clone)]
pub(super) struct HubMessage {
    pub body: String,
    pub application: Value,
    pub system: Value,
    pub sequence: i64,
    pub enqueued: DateTime<Utc>,
}

/// Everything mutable, under one lock.
pub(super) struct State {
    pub rng: SplitMix64,
    pub faults: Faults,
    pub handler_url: Option<String>,
    pub groups: BTreeMap<String, Group>,
    pub devices: BTreeMap<String, Device>,
    pub deployments: Vec<Deployment>,
    /// Lower-cased machine id or name → whether its patching fails.
    pub machines: BTreeMap<String, (bool, super::MachineOs)>,
    pub operations: BTreeMap<String, Operation>,
    /// Lower-cased run id → run.
    pub runs: BTreeMap<String, MaintenanceRun>,
    pub twin_queues: Vec<VecDeque<HubMessage>>,
    pub events: VecDeque<Value>,
    pub events_produced: Vec<Value>,
    pub reports: Vec<ReportRecord>,
    pub stats: Stats,
    pub next_sequence: i64,
}

impl State {
    /// The live (not deleted) deployment `id` of `group`.
    pub fn deployment_mut(&mut self, group: &str, id: &str) -> Option<&mut Deployment> {
        self.deployments
            .iter_mut()
            .rev()
            .find(|d| !d.deleted && d.group == group && d.id == id)
    }

    /// The latest live deployment of `group`.
    pub fn latest_deployment(&self, group: &str) -> Option<&Deployment> {
        self.deployments
            .iter()
            .rev()
            .find(|d| !d.deleted && d.group == group)
    }
}

/// A device class id in the form Device Update uses (40 hex digits), stable per group.
fn device_class_id(group: &str, index: usize) -> String {
    let a = fnv1a(&format!("{group}/{index}/a"));
    let b = fnv1a(&format!("{group}/{index}/b"));
    format!("{a:016x}{b:016x}{:08x}", (a ^ b) as u32)
}

/// The agent's reported object of an idle device with `installed`.
pub(super) fn idle_agent(installed: &UpdateId) -> Value {
    json!({
        "deviceProperties": {
            "manufacturer": "contoso", "model": "gateway",
            "contractModelId": "dtmi:azure:iot:deviceUpdateContractModel;3",
            "aduVer": "DU;agent/1.1.0"
        },
        "compatPropertyNames": "manufacturer,model",
        "state": 0,
        "installedUpdateId": update_id_string(installed),
    })
}

/// `installedUpdateId` as the agent writes it: the update id serialized into a string.
pub(super) fn update_id_string(update: &UpdateId) -> String {
    json!({"provider": update.provider, "name": update.name, "version": update.version}).to_string()
}

/// The groups and devices of `config`, each device's twin version drawn from `rng` in order.
fn simulated_fleet(
    config: &StandinConfig,
    rng: &mut SplitMix64,
    now: DateTime<Utc>,
) -> (BTreeMap<String, Group>, BTreeMap<String, Device>) {
    let mut groups = BTreeMap::new();
    let mut devices = BTreeMap::new();
    for group in &config.groups {
        let classes: Vec<String> = (0..group.device_classes.max(1))
            .map(|i| device_class_id(&group.id, i))
            .collect();
        for (index, id) in group.devices.iter().enumerate() {
            let twin_version = 2 + rng.below(20);
            let class = classes[index % classes.len()].clone();
            let device = idle_device(id, &group.id, class, &config.installed_update, twin_version);
            devices.insert(id.clone(), device);
        }
        groups.insert(
            group.id.clone(),
            Group {
                devices: group.devices.clone(),
                classes,
                failure_rate: group.failure_rate,
                failure_rate_by_version: group.failure_rate_by_version.clone(),
                created: now,
                module_id: group.module_id.clone(),
                device_twin_tagged: group.device_twin_tagged.iter().cloned().collect(),
            },
        );
    }
    (groups, devices)
}

/// A device of `group` and `class` that runs `installed` and has never been deployed to.
fn idle_device(
    id: &str,
    group: &str,
    class: String,
    installed: &UpdateId,
    twin_version: u64,
) -> Device {
    Device {
        id: id.to_string(),
        group: group.to_string(),
        device_class: class,
        installed: installed.clone(),
        last_attempted: None,
        last_deployment: None,
        status: None,
        twin_version,
        reported_version: twin_version.saturating_sub(1),
        agent: idle_agent(installed),
    }
}

/// The state at start: the fleet, `partitions` empty twin queues, nothing deployed or run.
fn initial_state(
    config: &StandinConfig,
    rng: SplitMix64,
    groups: BTreeMap<String, Group>,
    devices: BTreeMap<String, Device>,
    partitions: usize,
) -> State {
    let machines = config
        .machines
        .iter()
        .map(|m| (m.id.to_ascii_lowercase(), (m.fails, m.os)))
        .collect();
    State {
        rng,
        faults: config.faults.clone(),
        handler_url: config.handler_url.clone(),
        groups,
        devices,
        deployments: Vec::new(),
        machines,
        operations: BTreeMap::new(),
        runs: BTreeMap::new(),
        twin_queues: (0..partitions).map(|_| VecDeque::new()).collect(),
        events: VecDeque::new(),
        events_produced: Vec::new(),
        reports: Vec::new(),
        stats: Stats::default(),
        next_sequence: 1,
    }
}

impl World {
    /// Builds the world of `config`, served at `base_url`.
    pub fn new(config: StandinConfig, base_url: String) -> anyhow::Result<Arc<World>> {
        let now = wall_clock();
        let mut rng = SplitMix64::derived(config.seed, "world");
        let (groups, devices) = simulated_fleet(&config, &mut rng, now);
        let partitions = config.partitions.max(1);
        let state = initial_state(&config, rng, groups, devices, partitions);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let event_hubs = EventHubs::new(&config.event_hubs);
        Ok(Arc::new(World {
            event_hubs,
            adu_calls: Default::default(),
            config,
            base_url,
            state: Mutex::new(state),
            twin_wake: (0..partitions).map(|_| Notify::new()).collect(),
            event_wake: Notify::new(),
            http,
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// The state, locked (a panic elsewhere does not make it unusable).
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A machine's configuration (by full id or by name): whether it fails and its OS; a machine
    /// not configured patches fine and runs Windows, as the official examples' machines do.
    pub(super) fn machine_config(&self, machine_id: &str) -> (bool, super::MachineOs) {
        let state = self.lock();
        let lower = machine_id.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or_default().to_string();
        state
            .machines
            .get(&lower)
            .or_else(|| state.machines.get(&name))
            .copied()
            .unwrap_or((false, super::MachineOs::Windows))
    }

    /// The current time.
    pub(super) fn now(&self) -> DateTime<Utc> {
        wall_clock()
    }

    /// Runs `task` in the background until the stand-in stops.
    pub(super) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Stops every background task.
    pub(super) fn abort_tasks(&self) {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for task in tasks.iter() {
            task.abort();
        }
    }

    /// The stand-in's base URL.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &StandinConfig {
        &self.config
    }

    /// Points deliveries at another handler (or none).
    pub fn set_handler_url(&self, url: Option<String>) {
        self.lock().handler_url = url;
        for wake in &self.twin_wake {
            wake.notify_one();
        }
        self.event_wake.notify_one();
    }

    /// The handler deliveries go to.
    pub fn handler_url(&self) -> Option<String> {
        self.lock().handler_url.clone()
    }

    /// The fault knobs now.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Changes the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Draws whether this Azure request gets an injected `429` or `500`.
    pub(super) fn draw_fault(&self, faults: &Faults) -> Option<StatusCode> {
        if faults.throttle_rate <= 0.0 && faults.server_error_rate <= 0.0 {
            return None;
        }
        let mut state = self.lock();
        let draw = state.rng.next_f64();
        if draw < faults.throttle_rate {
            state.stats.injected_429 += 1;
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if draw < faults.throttle_rate + faults.server_error_rate {
            state.stats.injected_500 += 1;
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        } else {
            None
        }
    }

    /// Every deployment ever created, in order (deleted ones flagged).
    pub fn deployments(&self) -> Vec<Deployment> {
        self.lock().deployments.clone()
    }

    /// Every device.
    pub fn devices(&self) -> Vec<Device> {
        self.lock().devices.values().cloned().collect()
    }

    /// The update `device` has installed now.
    pub fn installed_update(&self, device: &str) -> Option<UpdateId> {
        self.lock().devices.get(device).map(|d| d.installed.clone())
    }

    /// Every installPatches / assessPatches operation, by id.
    pub fn operations(&self) -> Vec<Operation> {
        self.lock().operations.values().cloned().collect()
    }

    /// The installPatches operations, in id order.
    pub fn install_runs(&self) -> Vec<Operation> {
        let mut runs: Vec<Operation> = self
            .operations()
            .into_iter()
            .filter(|op| op.kind == OperationKind::Install)
            .collect();
        runs.sort_by_key(|op| op.started);
        runs
    }

    /// Every maintenance run, scheduled or cancelled.
    pub fn maintenance_runs(&self) -> Vec<MaintenanceRun> {
        self.lock().runs.values().cloned().collect()
    }

    /// Ids of the maintenance runs cancelled through the ARM route.
    pub fn cancelled_maintenance_runs(&self) -> Vec<String> {
        self.lock()
            .runs
            .values()
            .filter(|run| run.cancelled)
            .map(|run| run.id.clone())
            .collect()
    }

    /// Every device report the simulation produced, in order.
    pub fn reports(&self) -> Vec<ReportRecord> {
        self.lock().reports.clone()
    }

    /// Every Event Grid event produced, in order.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events_produced.clone()
    }

    /// Delivery and fault counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Twin change notifications not yet delivered (queued or waiting for a handler).
    pub fn pending_twin_messages(&self) -> usize {
        self.lock().twin_queues.iter().map(VecDeque::len).sum()
    }

    /// Everything, as JSON (`GET /_standin/world`).
    pub fn snapshot(&self) -> Value {
        let state = self.lock();
        let groups: Vec<Value> = state
            .groups
            .iter()
            .map(|(id, g)| {
                json!({"groupId": id, "deviceCount": g.devices.len(),
                       "deviceClasses": g.classes, "failureRate": g.failure_rate,
                       "failureRateByVersion": g.failure_rate_by_version})
            })
            .collect();
        json!({
            "url": self.base_url,
            "handlerUrl": state.handler_url,
            "faults": state.faults,
            "groups": groups,
            "devices": state.devices.values().collect::<Vec<_>>(),
            "deployments": state.deployments,
            "operations": state.operations.values().collect::<Vec<_>>(),
            "maintenanceRuns": state.runs.values().collect::<Vec<_>>(),
            "events": state.events_produced,
            "reports": state.reports,
            "pendingTwinMessages": state.twin_queues.iter().map(VecDeque::len).sum::<usize>(),
            "pendingEvents": state.events.len(),
            "stats": state.stats,
        })
    }
}

/// The stand-in's one clock read: the simulated services stamp their answers with real time.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}
