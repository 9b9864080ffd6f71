//! A complete local world: the Azure stand-in with a simulated fleet, the handler on the
//! embedded SQLite store wired to it, talking only through the real HTTP contract (host
//! envelopes, the operator API). Used by `patchwave demo` and the end-to-end tests.

use crate::azure::credential::NoCredential;
use crate::azure::device_update::DeviceUpdateClient;
use crate::azure::events::JsonLinesSink;
use crate::azure::iot_hub::IotHubClient;
use crate::azure::resource_manager::ResourceManagerClient;
use crate::azure::rest::{RestClient, RetryPolicy};
use crate::azure::AzureExecutor;
use crate::config::AuthSettings;
use crate::ports::SystemClock;
use crate::service::RolloutService;
use crate::startup::Application;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;
use anyhow::Context;
use patchwave_standin::maintenance::MaintenanceRequest;
use patchwave_standin::{Standin, StandinConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The Device Update instance name the stand-in serves.
pub const INSTANCE: &str = "demo";

/// The stand-in and a handler wired to it.
pub struct LocalWorld {
    /// The Azure stand-in.
    pub standin: Standin,
    /// The handler's base URL.
    pub handler: String,
    /// The service behind the handler.
    pub service: Arc<RolloutService>,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalWorld {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalWorld {
    /// Starts the stand-in with `standin`, and a handler on `dir/patchwave.db` whose Azure
    /// clients point at it (lifecycle events go to `dir/events.jsonl`).
    pub async fn start(standin: StandinConfig, dir: &Path) -> anyhow::Result<LocalWorld> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let standin = Standin::start(standin).await?;
        let store = Arc::new(SqliteStore::open(&dir.join("patchwave.db"))?);
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let rest =
            |scope: &str| RestClient::new(&standin.url(), scope, Arc::new(NoCredential), policy);
        let mut executor = AzureExecutor::new(
            Some(DeviceUpdateClient::new(
                rest(crate::azure::device_update::SCOPE)?,
                INSTANCE,
            )),
            Some(ResourceManagerClient::new(rest(
                crate::azure::resource_manager::SCOPE,
            )?)),
            Some(IotHubClient::new(rest(crate::azure::iot_hub::SCOPE)?)),
            Arc::new(JsonLinesSink::file(dir.join("events.jsonl"))?),
        );
        executor.patch_budget = Duration::from_secs(10);
        executor.poll_interval = Duration::from_millis(200);
        let service = Arc::new(RolloutService::new(
            store,
            Arc::new(executor),
            Arc::new(SystemClock),
        ));
        let auth = AuthSettings {
            open: true,
            ..AuthSettings::default()
        };
        let app = Application::bind(0, AppState::with_service(service.clone(), auth)).await?;
        let handler = format!("http://{}", app.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = app.serve(std::future::pending()).await;
        });
        standin.world().set_handler_url(Some(handler.clone()));
        Ok(LocalWorld {
            standin,
            handler,
            service,
            http: reqwest::Client::new(),
            server,
        })
    }

    /// Calls the operator API; non-2xx answers become errors with the problem's detail.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let target = crate::cli::ApiTarget {
            url: self.handler.clone(),
            key: None,
        };
        crate::cli::call(&target, method, path, body, &[]).await
    }

    /// Fires the timer once, as the Functions host does every minute.
    pub async fn tick(&self) -> anyhow::Result<()> {
        #[allow(clippy::disallowed_methods)] // the host stamps its invocations with the time
        let now = chrono::Utc::now();
        let envelope = json!({
            "Data": {"tick": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
            "Metadata": {"sys": {"MethodName": "RolloutTick", "UtcNow": now.to_rfc3339()}}
        });
        let response = self
            .http
            .post(format!("{}/RolloutTick", self.handler))
            .header(
                "X-Azure-Functions-InvocationId",
                format!("tick-{}", now.timestamp_millis()),
            )
            .json(&envelope)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "RolloutTick answered {}",
            response.status()
        );
        Ok(())
    }

    /// Asks the stand-in to run a maintenance configuration (Pre event now, the run and its
    /// Post event shortly after).
    pub fn run_maintenance(
        &self,
        configuration_id: &str,
        machines: &[String],
        pre_wait: Duration,
    ) -> anyhow::Result<()> {
        self.run_maintenance_at(configuration_id, machines, pre_wait, None)
    }

    /// Like [`LocalWorld::run_maintenance`], for the schedule instance starting at `start`
    /// (which also names the run).
    pub fn run_maintenance_at(
        &self,
        configuration_id: &str,
        machines: &[String],
        pre_wait: Duration,
        start: Option<chrono::DateTime<chrono::Utc>>,
    ) -> anyhow::Result<()> {
        let request = MaintenanceRequest {
            configuration_id: configuration_id.to_string(),
            start,
            machines: machines.to_vec(),
            subscription_ids: None,
            pre_wait_ms: Some(pre_wait.as_millis() as u64),
            window_minutes: None,
        };
        self.standin
            .world()
            .schedule_maintenance(request)
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(())
    }

    /// Ticks until the rollout reaches a final state, calling `observe` with each view;
    /// gives up after `limit`.
    pub async fn drive(
        &self,
        rollout: &str,
        limit: Duration,
        mut observe: impl FnMut(&Value),
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.tick().await?;
            let view = self
                .api(
                    reqwest::Method::GET,
                    &format!("/api/rollouts/{rollout}"),
                    None,
                )
                .await?;
            observe(&view);
            let state = view["state"].as_str().unwrap_or_default();
            if matches!(state, "Completed" | "RolledBack" | "Cancelled" | "Failed") {
                return Ok(view);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "rollout {rollout} still {state} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
