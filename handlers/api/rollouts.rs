//! `/api/rollouts`: create, list, show, operator commands, audit trail.

use super::auth::CallerKind;
use super::authorized::{Approve, Authorized, AuthorizedBody, Operate, Read, Role};
use super::extract::ApiQuery;
use super::views::{CommandBody, EventList, RolloutList, RolloutSummary, RolloutView};
use crate::problem::Problem;
use crate::service::ServiceError;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rollout_core::{Command, CommandAction, RolloutPlan, RolloutState};
use serde::Deserialize;

/// Seconds a Logic App should wait before polling a rollout that is moving.
const RETRY_AFTER_SECONDS: &str = "30";

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound(id) => Problem::new(StatusCode::NOT_FOUND, "Not Found")
                .detail(format!("rollout {id} not found")),
            ServiceError::InvalidPlan(problems) => {
                let mut problem = Problem::new(StatusCode::BAD_REQUEST, "Invalid plan")
                    .detail(format!("{} problem(s) in the plan", problems.len()));
                problem.errors = problems;
                problem
            }
            ServiceError::Rejected(reason) => {
                Problem::new(StatusCode::CONFLICT, "Command refused").detail(reason)
            }
            ServiceError::Conflict(reason) => {
                Problem::new(StatusCode::CONFLICT, "Conflict").detail(reason)
            }
            ServiceError::Store(error) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Store unavailable")
                    .detail(error.to_string())
            }
        }
    }
}

fn location(id: &str) -> String {
    format!("/api/rollouts/{id}")
}

/// Create a rollout from a plan.
#[utoipa::path(post, path = "/api/rollouts", tag = "rollouts",
    request_body = RolloutPlan,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe create")),
    responses(
        (status = 201, description = "created", body = RolloutView, headers(("Location" = String, description = "the rollout"))),
        (status = 400, description = "invalid plan; every problem listed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a device group is in another active rollout", body = Problem, content_type = "application/problem+json")))]
pub async fn create(headers: HeaderMap, request: AuthorizedBody<Operate>) -> Response {
    let AuthorizedBody {
        authorized: Authorized {
            caller, service, ..
        },
        body,
    } = request;
    let result = async {
        let plan: RolloutPlan = serde_json::from_slice(&body).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST, "Invalid plan").detail(format!(
                "the plan is not valid JSON for the plan schema: {e}"
            ))
        })?;
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty());
        let rollout = service.create(plan, &caller.name, key).await?;
        Ok::<_, Problem>(rollout)
    }
    .await;
    match result {
        Ok(rollout) => {
            let view = RolloutView::of(&rollout, None);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location(rollout.id().as_str()))],
                Json(view),
            )
                .into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// `?state=` filter of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only rollouts in this state.
    #[param(nullable = false)]
    state: Option<RolloutState>,
}

/// List rollouts, newest first.
#[utoipa::path(get, path = "/api/rollouts", tag = "rollouts", params(ListQuery),
    responses((status = 200, body = RolloutList), (status = 400, description = "an unknown state", body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(Authorized { service, .. }: Authorized<Read>, query: ApiQuery) -> Response {
    let result = async {
        let filter: ListQuery = query.parse()?;
        let rollouts = service.list(filter.state).await?;
        Ok::<_, Problem>(RolloutList {
            value: rollouts.iter().map(RolloutSummary::of).collect(),
        })
    }
    .await;
    respond(result.map(Json))
}

/// A rollout: state, waves with counts, and its decision log.
#[utoipa::path(get, path = "/api/rollouts/{id}", tag = "rollouts", params(("id" = String, Path, description = "rollout id")),
    responses((status = 200, body = RolloutView), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn show(
    Path(id): Path<String>,
    Authorized { service, .. }: Authorized<Read>,
) -> Response {
    let result = async {
        let rollout = service.get(&id).await?;
        let decisions = service
            .store()
            .audit(&id)
            .await
            .map_err(ServiceError::from)?;
        Ok::<_, Problem>(RolloutView::of(&rollout, Some(decisions)))
    }
    .await;
    respond(result.map(Json))
}

/// The audit trail of a rollout.
#[utoipa::path(get, path = "/api/rollouts/{id}/events", tag = "rollouts", params(("id" = String, Path, description = "rollout id")),
    responses((status = 200, body = EventList), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn events(
    Path(id): Path<String>,
    Authorized { service, .. }: Authorized<Read>,
) -> Response {
    let result = async {
        service.get(&id).await?;
        let decisions = service
            .store()
            .audit(&id)
            .await
            .map_err(ServiceError::from)?;
        Ok::<_, Problem>(EventList { value: decisions })
    }
    .await;
    respond(result.map(Json))
}

fn respond<T: IntoResponse>(result: Result<T, Problem>) -> Response {
    match result {
        Ok(body) => body.into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn command<R: Role>(
    headers: HeaderMap,
    id: String,
    request: AuthorizedBody<R>,
    action: CommandAction,
) -> Response {
    let AuthorizedBody {
        authorized: Authorized {
            caller, service, ..
        },
        body,
    } = request;
    let result = async {
        if action == CommandAction::Approve && caller.kind == CallerKind::Key {
            return Err(Problem::new(StatusCode::FORBIDDEN, "Forbidden")
                .detail("an approval needs a named principal, not a function key"));
        }
        let body = command_body(&body)?;
        let command_id = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(|k| format!("{}:{k}", caller.name))
            .unwrap_or_else(|| service.new_command_id());
        let command = Command {
            id: command_id,
            action,
            actor: caller.name.clone(),
            reason: body.reason,
        };
        Ok(service.command(&id, command).await?)
    }
    .await;
    match result {
        Ok(rollout) => accepted(&rollout),
        Err(problem) => problem.into_response(),
    }
}

/// A command's body: `{"reason": "…"}` with a reason that is not blank.
fn command_body(body: &[u8]) -> Result<CommandBody, Problem> {
    let body: CommandBody = serde_json::from_slice(body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "Invalid command")
            .detail(format!("expected {{\"reason\": \"…\"}}: {e}"))
    })?;
    if body.reason.trim().is_empty() {
        return Err(
            Problem::new(StatusCode::BAD_REQUEST, "Invalid command").detail("a reason is required")
        );
    }
    Ok(body)
}

/// The answer to a command: `202` + `Location` + `Retry-After` while the rollout moves
/// (Logic Apps' asynchronous pattern), `200` once it is in a final state.
fn accepted(rollout: &rollout_core::Rollout) -> Response {
    let moving = !rollout.state().is_terminal();
    let status = if moving {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        [(header::LOCATION, location(rollout.id().as_str()))],
        Json(RolloutView::of(rollout, None)),
    )
        .into_response();
    if moving {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

macro_rules! command_route {
    ($name:ident, $action:expr, $role:ty, $path:literal, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "commands", params(("id" = String, Path, description = "rollout id"),
                ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe command: a retry with the same key is applied once")),
            request_body = CommandBody,
            responses(
                (status = 202, description = "accepted; the rollout moves on (Logic Apps: poll Location)", body = RolloutView,
                    headers(("Location" = String, description = "the rollout"), ("Retry-After" = String, description = "seconds"))),
                (status = 200, description = "done; the rollout is in a final state", body = RolloutView),
                (status = 400, body = Problem, content_type = "application/problem+json"), (status = 413, description = "body over 1 MiB", body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, description = "refused in the rollout's state", body = Problem, content_type = "application/problem+json")))]
        pub async fn $name(headers: HeaderMap, Path(id): Path<String>, request: AuthorizedBody<$role>) -> Response {
            command(headers, id, request, $action).await
        }
    };
}

command_route!(
    pause,
    CommandAction::Pause,
    Operate,
    "/api/rollouts/{id}/pause",
    "Pause: no new wave starts; deploying devices carry on."
);
command_route!(
    resume,
    CommandAction::Resume,
    Operate,
    "/api/rollouts/{id}/resume",
    "Resume after a pause (accepts a failed wave or a blocked host gate)."
);
command_route!(
    approve,
    CommandAction::Approve,
    Approve,
    "/api/rollouts/{id}/approve",
    "Approve the next wave (role Rollout.Approve, a named principal)."
);
command_route!(
    cancel,
    CommandAction::Cancel,
    Operate,
    "/api/rollouts/{id}/cancel",
    "Cancel the rollout and its active deployments."
);
command_route!(
    rollback,
    CommandAction::Rollback,
    Operate,
    "/api/rollouts/{id}/rollback",
    "Roll every touched group back to the rollback update."
);
