//! Update Manager maintenance runs: scheduling one sends a PreMaintenanceEvent, waits, patches
//! the run's machines and sends a PostMaintenanceEvent (`Succeeded` or `Failed`); a run
//! cancelled through `applyUpdates` status `Cancel` before it starts never reports `Succeeded`.

use super::host::enqueue_event;
use super::http::{error, json, seconds_time};
use super::model::*;
use super::World;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Event type of the event raised before a run.
pub const PRE: &str = "Microsoft.Maintenance.PreMaintenanceEvent";
/// Event type of the event raised after a run.
pub const POST: &str = "Microsoft.Maintenance.PostMaintenanceEvent";

/// `POST /_standin/maintenance`: a maintenance run to schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRequest {
    /// The maintenance configuration's resource id.
    pub configuration_id: String,
    /// The schedule instance's start (names the run); default 30 minutes from now.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Machines (resource ids or names) the run patches.
    #[serde(default)]
    pub machines: Vec<String>,
    /// Subscriptions named in the events; default the configuration's.
    #[serde(default)]
    pub subscription_ids: Option<Vec<String>>,
    /// Real time between the Pre event and the run (default `maintenance_pre_wait`).
    #[serde(default)]
    pub pre_wait_ms: Option<u64>,
    /// Length of the window in the events (default 240 minutes).
    #[serde(default)]
    pub window_minutes: Option<i64>,
}

const RUNS: &str = "/providers/microsoft.maintenance/applyupdates/";

impl World {
    /// Schedules a maintenance run: the Pre event is queued now, the run starts after the
    /// pre-wait, and the Post event follows the patching.
    pub fn schedule_maintenance(
        self: &Arc<Self>,
        request: MaintenanceRequest,
    ) -> Result<MaintenanceRun, String> {
        let configuration = request.configuration_id.trim_end_matches('/').to_string();
        let lower = configuration.to_ascii_lowercase();
        if !lower.contains("/providers/microsoft.maintenance/maintenanceconfigurations/") {
            return Err(format!(
                "configurationId '{configuration}' is not a maintenance configuration resource id"
            ));
        }
        let now = self.now();
        let start = request.start.unwrap_or_else(|| {
            (now + ChronoDuration::minutes(30))
                .with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(now)
        });
        let end = start + ChronoDuration::minutes(request.window_minutes.unwrap_or(240));
        let id = format!("{configuration}{RUNS}{}", start.format("%Y%m%d%H%M%S"));
        let subscription_ids = request.subscription_ids.clone().unwrap_or_else(|| {
            configuration
                .split('/')
                .skip_while(|s| !s.eq_ignore_ascii_case("subscriptions"))
                .nth(1)
                .map(|s| vec![s.to_string()])
                .unwrap_or_default()
        });
        let run = MaintenanceRun {
            id: id.clone(),
            configuration_id: configuration.clone(),
            start,
            end,
            machines: request.machines.clone(),
            subscription_ids,
            state: RunState::Scheduled,
            cancelled: false,
            post_status: None,
        };
        {
            let mut state = self.lock();
            if state.runs.contains_key(&id.to_ascii_lowercase()) {
                return Err(format!("maintenance run '{id}' already exists"));
            }
            state.runs.insert(id.to_ascii_lowercase(), run.clone());
        }
        enqueue_event(self, event(&run, PRE, None, now));
        let wait = request
            .pre_wait_ms
            .map(Duration::from_millis)
            .unwrap_or(self.config.maintenance_pre_wait);
        let world = self.clone();
        self.spawn(async move {
            tokio::time::sleep(wait).await;
            world.run_maintenance(&id).await;
        });
        Ok(run)
    }

    async fn run_maintenance(self: &Arc<Self>, id: &str) {
        let key = id.to_ascii_lowercase();
        let machines = {
            let mut state = self.lock();
            let Some(run) = state.runs.get_mut(&key) else {
                return;
            };
            if run.cancelled {
                run.state = RunState::Cancelled;
                if !self.config.cancelled_runs_post_event {
                    return;
                }
                run.post_status = Some("Cancelled".into());
                let event = event(run, POST, Some("Cancelled"), self.now());
                drop(state);
                enqueue_event(self, event);
                return;
            }
            run.state = RunState::Running;
            run.machines.clone()
        };
        tokio::time::sleep(self.config.patch_duration).await;
        let failed = machines.iter().any(|m| self.machine_config(m).0);
        let status = if failed { "Failed" } else { "Succeeded" };
        let event = {
            let mut state = self.lock();
            let Some(run) = state.runs.get_mut(&key) else {
                return;
            };
            run.state = if failed {
                RunState::Failed
            } else {
                RunState::Succeeded
            };
            run.post_status = Some(status.into());
            event(run, POST, Some(status), self.now())
        };
        tracing::info!(run = %id, status, "stand-in: maintenance run finished");
        enqueue_event(self, event);
    }
}

/// The Event Grid schema event of `run` (PascalCase data, as Update Manager sends it).
fn event(
    run: &MaintenanceRun,
    event_type: &str,
    status: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let mut data = json!({
        "CorrelationId": run.id,
        "MaintenanceConfigurationId": run.configuration_id,
    });
    if let Some(status) = status {
        data["Status"] = json!(status);
    }
    data["StartDateTime"] = json!(seconds_time(run.start));
    data["EndDateTime"] = json!(seconds_time(run.end));
    if event_type == PRE {
        data["CancellationCutOffDateTime"] =
            json!(seconds_time(run.start - ChronoDuration::minutes(10)));
    }
    data["ResourceSubscriptionIds"] = json!(run.subscription_ids);
    let subject = run
        .configuration_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    json!({
        "id": run.id, "topic": run.configuration_id, "subject": subject, "data": data,
        "eventType": event_type, "eventTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "dataVersion": "1.0", "metadataVersion": "1",
    })
}

fn apply_update_body(run_id: &str, configuration: &str, name: &str, status: &str) -> Value {
    json!({
        "id": run_id.to_ascii_lowercase(), "name": name,
        "type": "Microsoft.Maintenance/applyUpdates",
        "properties": {"status": status, "resourceId": configuration.to_ascii_lowercase()},
    })
}

fn configuration_name(configuration: &str) -> String {
    configuration
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `PUT {run id}` with `{"properties":{"status":"Cancel"}}`.
pub(super) fn cancel_route(
    world: &World,
    configuration: &str,
    run_id: &str,
    body: &[u8],
) -> Response {
    let status = serde_json::from_slice::<Value>(body).ok().and_then(|b| {
        b.pointer("/properties/status")
            .and_then(Value::as_str)
            .map(String::from)
    });
    if status.as_deref() != Some("Cancel") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The stand-in only supports {\"properties\":{\"status\":\"Cancel\"}} on a maintenance run.",
        );
    }
    let name = configuration_name(configuration);
    if let Err(response) = cancel_run(world, configuration, run_id) {
        return *response;
    }
    tracing::info!(run = %run_id, "stand-in: maintenance run cancelled");
    json(
        StatusCode::OK,
        apply_update_body(run_id, configuration, &name, "Cancelled"),
    )
}

/// Cancels run `run_id` (`409` once it has started), recording one the stand-in never scheduled.
fn cancel_run(world: &World, configuration: &str, run_id: &str) -> Result<(), Box<Response>> {
    let mut state = world.lock();
    let key = run_id.to_ascii_lowercase();
    match state.runs.get_mut(&key) {
        Some(run) if matches!(run.state, RunState::Scheduled | RunState::Cancelled) => {
            run.cancelled = true;
            run.state = RunState::Cancelled;
        }
        Some(run) => {
            return Err(Box::new(error(
                StatusCode::CONFLICT,
                "MaintenanceRunNotCancellable",
                format!(
                    "Maintenance run '{}' has already started ({:?}).",
                    run.id, run.state
                ),
            )))
        }
        None => {
            let run = unscheduled_cancelled_run(world, configuration, run_id);
            state.runs.insert(key, run);
        }
    }
    Ok(())
}

/// A cancelled run the stand-in never scheduled, starting at the time its id names (else now).
fn unscheduled_cancelled_run(world: &World, configuration: &str, run_id: &str) -> MaintenanceRun {
    let stamp = run_id.rsplit('/').next().unwrap_or_default();
    let start = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc())
        .unwrap_or_else(|_| world.now());
    MaintenanceRun {
        id: run_id.to_string(),
        configuration_id: configuration.to_string(),
        start,
        end: start,
        machines: Vec::new(),
        subscription_ids: Vec::new(),
        state: RunState::Cancelled,
        cancelled: true,
        post_status: None,
    }
}

/// `GET {run id}`: the run's status.
pub(super) fn get_route(world: &World, configuration: &str, run_id: &str) -> Response {
    let state = world.lock();
    let Some(run) = state.runs.get(&run_id.to_ascii_lowercase()) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("Maintenance run '{run_id}' was not found."),
        );
    };
    let status = match run.state {
        RunState::Scheduled => "Pending",
        RunState::Running => "InProgress",
        RunState::Succeeded | RunState::Failed => "Completed",
        RunState::Cancelled => "Cancelled",
    };
    json(
        StatusCode::OK,
        apply_update_body(
            run_id,
            configuration,
            &configuration_name(configuration),
            status,
        ),
    )
}
