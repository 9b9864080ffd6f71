//! The whole HTTP surface in one router: the readiness probe, the function routes
//! (`crate::triggers`), the operator API under `/api` (`crate::api`), and the span that puts
//! each request's log lines under its function and invocation id.

use crate::host::context::INVOCATION_ID_HEADER;
use crate::state::AppState;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tracing::Instrument;

/// The whole router: function routes, forwarded `/api` routes, readiness probe.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ready))
        .merge(crate::triggers::routes())
        .merge(crate::api::mounted())
        .layer(middleware::from_fn(invocation_span))
        .with_state(state)
}

/// `GET /`: the host polls this until the handler answers, then pings it now and then.
async fn ready() -> Json<serde_json::Value> {
    Json(
        serde_json::json!({"status": "ready", "service": "patchwave", "version": env!("CARGO_PKG_VERSION")}),
    )
}

/// Puts every log line of a request under a span naming the function and invocation id.
async fn invocation_span(request: Request, next: Next) -> Response {
    let function = function_of_path(request.uri().path());
    let invocation_id = request
        .headers()
        .get(INVOCATION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let span = tracing::info_span!("invocation", function, invocation_id = %invocation_id);
    next.run(request).instrument(span).await
}

/// The function a path belongs to (forwarded `/api/...` calls are the `Operator` function).
pub fn function_of_path(path: &str) -> &'static str {
    match path {
        "/PatchEvents" => "PatchEvents",
        "/TwinChanges" => "TwinChanges",
        "/RolloutTick" => "RolloutTick",
        "/Operator" => "Operator",
        p if p == "/api" || p.starts_with("/api/") => "Operator",
        _ => "-",
    }
}
