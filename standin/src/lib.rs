//! A local Azure stand-in: Device Update, Resource Manager and IoT Hub routes over a simulated
//! fleet, which also plays the Functions host toward a patchwave handler.
//!
//! Served routes (each requires its `api-version`; a wrong one is `400 InvalidApiVersion`):
//!
//! - Device Update `2022-10-01` under `/deviceUpdate/{instance}/management/`: deployments
//!   (PUT/GET/DELETE, `/status`), `deviceClassSubgroups` (list, `:cancel`, `:retry`, status,
//!   `devicestates` with `filter` and paging ([`device_states`])),
//!   `devices?filter=groupId eq '…'` with paging ([`adu`]);
//! - Resource Manager: `installPatches` / `assessPatches` on `Microsoft.Compute/virtualMachines`
//!   (`2025-04-01`) and `Microsoft.HybridCompute/machines` (`2024-07-10`) as long-running
//!   operations, and cancelling a maintenance run through `applyUpdates` (`2023-10-01-preview`)
//!   ([`arm`]);
//! - Event Hubs' REST send (`POST /{hub}/messages`, `2014-01`): lifecycle events, kept for
//!   reading at `GET /_standin/eventhubs/{hub}` ([`eventhubs`]);
//! - IoT Hub `POST /devices/query` (`2021-04-12`) over device and module twins, with
//!   `x-ms-continuation` paging and IoT Hub's own error form ([`iothub`]);
//! - control routes under `/_standin/` ([`control`]).
//!
//! Device Update's deployment calls (`PUT`, `DELETE`, subgroup `:cancel` / `:retry`) are also
//! sent, stamped on arrival, to subscribers of [`World::adu_calls`] ([`calls`]).
//!
//! Creating a deployment makes the group's devices report (state 6, then 0/700 or 255) as twin
//! change notifications, delivered to `{handler}/TwinChanges` in Event Hubs batches the way the
//! Functions host does; maintenance runs send Pre/PostMaintenanceEvents to `{handler}/PatchEvents`
//! ([`host`]). Failed deliveries are retried with bounded backoff until the handler takes them.

pub mod adu;
pub mod adu_bodies;
pub mod arm;
pub mod calls;
pub mod control;
pub mod device_states;
pub mod eventhubs;
pub mod fleet;
pub mod host;
pub mod http;
pub mod iothub;
pub mod maintenance;
pub mod model;
pub mod rng;
pub mod subgroups;
pub mod world;

pub use model::*;
pub use world::World;

use anyhow::Context as _;
use axum::routing::get;
use axum::Router;
use rollout_core::UpdateId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Everything the stand-in simulates, and how.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Base URL of the patchwave handler (`http://127.0.0.1:7071`). `None`: reports and events
    /// accumulate in the world until a handler is set or a test drains them.
    pub handler_url: Option<String>,
    /// Seed of every random choice of the simulation.
    pub seed: u64,
    /// IoT Hub name in twin change notifications.
    pub hub_name: String,
    /// Azure region in operation URLs.
    pub location: String,
    /// Device Update groups and their devices.
    pub groups: Vec<GroupConfig>,
    /// Machines with a known patch outcome; others are accepted and patch fine.
    pub machines: Vec<MachineConfig>,
    /// The update every device runs at start.
    pub installed_update: UpdateId,
    /// Shortest delay before a device's next report.
    pub report_delay_min: Duration,
    /// Longest delay before a device's next report.
    pub report_delay_max: Duration,
    /// How long an installPatches / assessPatches operation runs.
    pub patch_duration: Duration,
    /// Time between a PreMaintenanceEvent and the run's start.
    pub maintenance_pre_wait: Duration,
    /// Whether a cancelled run still sends a PostMaintenanceEvent (with `Status: Cancelled`).
    pub cancelled_runs_post_event: bool,
    /// Most messages in one TwinChanges invocation (the host's `maxEventBatchSize`).
    pub batch_size: usize,
    /// How long a partition waits to fill a batch before delivering it.
    pub batch_window: Duration,
    /// Event Hubs partitions (devices hash to one; each delivers in order on its own).
    pub partitions: usize,
    /// First wait before redelivering a failed invocation (doubles up to the max).
    pub redelivery_backoff_min: Duration,
    /// Longest wait between redeliveries.
    pub redelivery_backoff_max: Duration,
    /// Most deployments Device Update keeps (it refuses more).
    pub max_deployments: usize,
    /// Page size of Device Update device lists and the default of IoT Hub queries.
    pub page_size: usize,
    /// Event hubs that take lifecycle events (`POST /{hub}/messages`); others answer 404.
    pub event_hubs: Vec<String>,
    /// Fault injection.
    pub faults: Faults,
}

/// A Device Update group: the devices tagged `ADUGroup = id`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Group id (the twin tag value).
    pub id: String,
    /// Its device ids.
    pub devices: Vec<String>,
    /// Share of devices whose deployment fails (exactly `round(rate × devices)`).
    pub failure_rate: f64,
    /// Failure rate per deployed update version, overriding `failure_rate`.
    pub failure_rate_by_version: BTreeMap<String, f64>,
    /// Device classes in the group (devices are spread over them round-robin).
    pub device_classes: usize,
    /// Where the group's devices run their Device Update agent: `None` as the device identity
    /// (the `ADUGroup` tag is on the device twin), `Some(module)` as that module identity (the
    /// tag is on the module twin, served by `SELECT * FROM devices.modules`; the device twin
    /// carries no tag). A module agent still belongs to its device: membership and reports are
    /// by device id.
    pub module_id: Option<String>,
    /// Devices of a module group whose device twin carries the `ADUGroup` tag too (both twins
    /// tagged: still one member).
    pub device_twin_tagged: Vec<String>,
}

impl GroupConfig {
    /// A group of `count` devices named `{id}-0001`, `{id}-0002`, …
    pub fn numbered(id: &str, count: usize, failure_rate: f64) -> Self {
        GroupConfig {
            id: id.to_string(),
            devices: (1..=count).map(|n| format!("{id}-{n:04}")).collect(),
            failure_rate,
            failure_rate_by_version: BTreeMap::new(),
            device_classes: 1,
            module_id: None,
            device_twin_tagged: Vec::new(),
        }
    }
}

/// A machine and whether its patching fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// Resource id, or only the machine name (matches in any resource group).
    pub id: String,
    /// Whether installPatches reports failed patches.
    pub fails: bool,
    /// Its operating system: `installPatches` takes only this OS's parameters.
    pub os: MachineOs,
}

impl MachineConfig {
    /// A Linux machine (what IoT Edge gateways usually run) whose patching succeeds.
    pub fn linux(id: &str) -> Self {
        MachineConfig {
            id: id.to_string(),
            fails: false,
            os: MachineOs::Linux,
        }
    }
}

/// A machine's operating system, as Resource Manager reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineOs {
    /// Linux (`linuxParameters`).
    #[default]
    Linux,
    /// Windows (`windowsParameters`).
    Windows,
}

/// Fault injection knobs (changeable at runtime through [`World::set_faults`] or
/// `PUT /_standin/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Share of Azure requests answered `429` with `Retry-After: 1`.
    pub throttle_rate: f64,
    /// Share of Azure requests answered `500`.
    pub server_error_rate: f64,
    /// Latency added to every Azure request, in milliseconds.
    pub latency_ms: u64,
    /// Share of device reports dropped (never delivered).
    pub drop_rate: f64,
    /// Share of device reports delivered twice.
    pub duplicate_rate: f64,
    /// Shuffle the messages within each delivered batch.
    pub reorder: bool,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            port: 0,
            handler_url: None,
            seed: 42,
            hub_name: "patchwave-hub".into(),
            location: "westeurope".into(),
            groups: vec![
                GroupConfig::numbered("canary", 10, 0.0),
                GroupConfig::numbered("fleet", 200, 0.02),
            ],
            // Windows, as the official installPatches examples are
            machines: vec![
                MachineConfig {
                    os: MachineOs::Windows,
                    ..MachineConfig::linux("gw-01")
                },
                MachineConfig {
                    os: MachineOs::Windows,
                    ..MachineConfig::linux("gw-02")
                },
            ],
            installed_update: UpdateId {
                provider: "Contoso".into(),
                name: "Gateway".into(),
                version: "2.4.0".into(),
            },
            report_delay_min: Duration::from_millis(200),
            report_delay_max: Duration::from_secs(2),
            patch_duration: Duration::from_secs(2),
            maintenance_pre_wait: Duration::from_secs(2),
            cancelled_runs_post_event: false,
            batch_size: 100,
            batch_window: Duration::from_millis(50),
            partitions: 1,
            redelivery_backoff_min: Duration::from_millis(250),
            redelivery_backoff_max: Duration::from_secs(5),
            max_deployments: 100,
            page_size: 100,
            event_hubs: vec!["lifecycle".into()],
            faults: Faults::default(),
        }
    }
}

/// A running stand-in. Dropping it stops the server and the simulation.
pub struct Standin {
    world: Arc<World>,
    url: String,
    server: JoinHandle<()>,
}

impl Standin {
    /// Binds 127.0.0.1:`config.port`, starts serving and delivering, and returns the handle.
    pub async fn start(config: StandinConfig) -> anyhow::Result<Standin> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
        let url = format!("http://{}", listener.local_addr()?);
        let world = World::new(config, url.clone())?;
        host::spawn_delivery(&world);
        let app = router(world.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "stand-in server stopped");
            }
        });
        tracing::info!(%url, "Azure stand-in listening");
        Ok(Standin { world, url, server })
    }

    /// The stand-in's base URL (`http://127.0.0.1:PORT`), for every endpoint setting.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The simulated world.
    pub fn world(&self) -> Arc<World> {
        self.world.clone()
    }

    /// Serves until `shutdown` completes, then stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        tracing::info!("Azure stand-in stopping");
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.server.abort();
        self.world.abort_tasks();
    }
}

/// The stand-in's routes.
pub fn router(world: Arc<World>) -> Router {
    let azure = Router::new()
        .merge(adu::routes())
        .merge(eventhubs::routes())
        .route("/subscriptions/{*rest}", axum::routing::any(arm::dispatch))
        .layer(axum::middleware::from_fn_with_state(
            world.clone(),
            http::inject_faults,
        ));
    Router::new()
        .merge(azure)
        // IoT Hub answers its faults in its own error form, so it injects them itself
        .merge(iothub::routes(world.clone()))
        .merge(control::routes())
        .route(
            "/",
            get(|| async { axum::Json(serde_json::json!({"status": "standin"})) }),
        )
        .with_state(world)
}
