//! The operator API under `/api` (design §3): health, dead letters, the dashboard; errors as
//! problem+json.

pub mod alerts;
pub mod auth;
pub mod authorized;
pub mod compliance;
pub mod dashboard;
pub mod extract;
pub mod openapi;
pub mod rollouts;
pub mod swagger;
pub mod views;

use crate::problem::Problem;
use crate::state::AppState;
use auth::READ;
use authorized::Authorized;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use extract::ApiQuery;
use serde::Deserialize;
use serde_json::json;

/// Largest operator request body accepted.
pub const MAX_API_BODY_BYTES: usize = 1024 * 1024;
/// Most dead letters one listing returns.
const MAX_LIST: usize = 1000;

/// The API mounted at `/api`, unknown paths answered `404` as problem+json: what the whole
/// router serves, and what the `Operator` function replays a non-forwarded call into.
pub fn mounted() -> Router<AppState> {
    Router::new().nest("/api", router()).fallback(not_found)
}

/// Routes under `/api` (mounted there by [`mounted`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/deadletters", get(dead_letters))
        .route("/rollouts", get(rollouts::list).post(rollouts::create))
        .route("/rollouts/{id}", get(rollouts::show))
        .route("/rollouts/{id}/events", get(rollouts::events))
        .route("/rollouts/{id}/pause", post(rollouts::pause))
        .route("/rollouts/{id}/resume", post(rollouts::resume))
        .route("/rollouts/{id}/approve", post(rollouts::approve))
        .route("/rollouts/{id}/cancel", post(rollouts::cancel))
        .route("/rollouts/{id}/rollback", post(rollouts::rollback))
        .route("/alerts", post(alerts::post))
        .route("/compliance", get(compliance::summary))
        .route("/compliance/devices", get(compliance::devices))
        .route("/compliance/hosts", get(compliance::hosts))
        .route("/dashboard", get(dashboard::page))
        .route("/me", get(dashboard::me))
        .route("/openapi.json", get(openapi::document))
        .route("/swagger.json", get(swagger::document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
        .layer(axum::middleware::map_response(extract::errors_as_problems))
}

pub use authorized::authorize;

/// Liveness and version, for anyone.
///
/// Probes get the status and the version; a caller with `Rollout.Read` also gets the
/// store's reachability and the counters.
#[utoipa::path(get, path = "/api/health", tag = "service", security(()),
    responses((status = 200, description = "up"), (status = 503, description = "the store is unreachable")))]
pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: ApiQuery,
) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let Some(service) = &state.service else {
        return Json(json!({"status": "ok", "version": version})).into_response();
    };
    let store = service.store().ping().await;
    let status = if store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if store.is_ok() { "ok" } else { "degraded" },
        "version": version,
    });
    let reader = authorize(&state, &headers, &query, READ).is_ok();
    if reader {
        body["store"] = json!(match &store {
            Ok(()) => "reachable".to_string(),
            Err(e) => e.to_string(),
        });
        body["counters"] = json!(service.metrics().snapshot());
    }
    (status, Json(body)).into_response()
}

/// `{"value": [...]}` of dead letters.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLetterList {
    /// Newest first.
    pub value: Vec<crate::store::DeadLetter>,
}

/// `?limit=` of the dead-letter listing.
#[derive(Debug, Default, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

/// Inputs that could not be used, newest first.
#[utoipa::path(get, path = "/api/deadletters", tag = "service",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "at most this many (1–1000, default 100)")),
    responses((status = 200, body = DeadLetterList), (status = 400, description = "a limit that is not a number from 1 to 1000", body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn dead_letters(
    Authorized { service, .. }: Authorized<authorized::Read>,
    query: ApiQuery,
) -> Response {
    let limit = query
        .parse::<LimitQuery>()
        .and_then(|fields| match fields.limit.unwrap_or(100) {
            limit @ 1..=MAX_LIST => Ok(limit),
            other => Err(Problem::new(StatusCode::BAD_REQUEST, "Invalid query")
                .detail(format!("limit must be 1 to {MAX_LIST} (got {other})"))),
        });
    let limit = match limit {
        Ok(limit) => limit,
        Err(problem) => return problem.into_response(),
    };
    match service.store().dead_letters(limit).await {
        Ok(letters) => Json(DeadLetterList { value: letters }).into_response(),
        Err(error) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Store unavailable")
            .detail(error.to_string())
            .into_response(),
    }
}

/// Any unknown path: `404` as problem+json.
pub async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "Not Found")
        .detail(format!("no route for {}", uri.path()))
        .into_response()
}

/// A known path with the wrong method: `405` as problem+json.
pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        .detail(format!("{method} is not allowed on {}", uri.path()))
        .into_response()
}
