//! Control routes for tests and the demo, under `/_standin/`: the world snapshot, scheduling
//! maintenance runs, pointing deliveries at a handler, fault knobs, and draining queued
//! invocations when no handler is set.

use super::host::{drain_event_envelopes, drain_twin_envelopes};
use super::http::{error, json};
use super::maintenance::MaintenanceRequest;
use super::{Faults, World};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The control routes.
pub fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/_standin/world", get(world_snapshot))
        .route("/_standin/maintenance", post(schedule_maintenance))
        .route("/_standin/handler", put(set_handler))
        .route("/_standin/faults", get(get_faults).put(set_faults))
        .route("/_standin/drain", post(drain))
}

async fn world_snapshot(State(world): State<Arc<World>>) -> Response {
    json(StatusCode::OK, world.snapshot())
}

async fn schedule_maintenance(
    State(world): State<Arc<World>>,
    body: Result<Json<MaintenanceRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(StatusCode::BAD_REQUEST, "BadRequest", rejection.body_text())
        }
    };
    match world.schedule_maintenance(request) {
        Ok(run) => json(
            StatusCode::ACCEPTED,
            json!({"id": run.id, "correlationId": run.id, "configurationId": run.configuration_id,
                   "start": run.start, "end": run.end, "machines": run.machines}),
        ),
        Err(message) => error(StatusCode::BAD_REQUEST, "BadRequest", message),
    }
}

/// `PUT /_standin/handler` body.
#[derive(Debug, Deserialize)]
struct HandlerBody {
    url: Option<String>,
}

async fn set_handler(
    State(world): State<Arc<World>>,
    body: Result<Json<HandlerBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => {
            world.set_handler_url(body.url.filter(|u| !u.is_empty()));
            json(StatusCode::OK, json!({"handlerUrl": world.handler_url()}))
        }
        Err(rejection) => error(StatusCode::BAD_REQUEST, "BadRequest", rejection.body_text()),
    }
}

async fn get_faults(State(world): State<Arc<World>>) -> Response {
    json(StatusCode::OK, json!(world.faults()))
}

async fn set_faults(
    State(world): State<Arc<World>>,
    body: Result<Json<Faults>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(faults)) => {
            world.set_faults(faults);
            json(StatusCode::OK, json!(world.faults()))
        }
        Err(rejection) => error(StatusCode::BAD_REQUEST, "BadRequest", rejection.body_text()),
    }
}

/// `POST /_standin/drain`: takes every queued invocation, as the host would POST them.
async fn drain(State(world): State<Arc<World>>) -> Response {
    json(
        StatusCode::OK,
        json!({"TwinChanges": drain_twin_envelopes(&world), "PatchEvents": drain_event_envelopes(&world)}),
    )
}

impl World {
    /// Takes every queued invocation body: `TwinChanges` batches and `PatchEvents` events.
    pub fn drain_invocations(&self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        (drain_twin_envelopes(self), drain_event_envelopes(self))
    }
}
