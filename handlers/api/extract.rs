//! Operator requests read so that every error is problem+json: the query's own fields are
//! parsed only once the caller is known (a bad filter tells an unauthenticated caller
//! nothing), and whatever axum itself rejects (a body over the limit, a bad path) is
//! answered as problem+json too.

use crate::problem::Problem;
use axum::body::to_bytes;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Longest rejection text kept as a problem's detail (a longer one is left out).
const MAX_DETAIL_BYTES: usize = 4 * 1024;

/// The request's query string, read on demand.
#[derive(Debug, Clone)]
pub struct ApiQuery(Uri);

/// The one query field read before the caller is known.
#[derive(Deserialize)]
struct KeyField {
    code: Option<String>,
}

impl ApiQuery {
    /// The query of `uri`.
    pub fn of(uri: &Uri) -> Self {
        ApiQuery(uri.clone())
    }

    /// The `code` parameter, which Functions accepts in place of `x-functions-key` (`None`
    /// when absent or unreadable: the caller is then unauthenticated).
    pub fn key(&self) -> Option<String> {
        Query::<KeyField>::try_from_uri(&self.0)
            .ok()
            .and_then(|Query(field)| field.code)
    }

    /// The query's fields as `T` (unknown fields, `code` among them, are ignored).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        Query::<T>::try_from_uri(&self.0)
            .map(|Query(fields)| fields)
            .map_err(|rejection| {
                Problem::new(StatusCode::BAD_REQUEST, "Invalid query").detail(rejection.body_text())
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiQuery(parts.uri.clone()))
    }
}

/// Turns an error response in plain text (axum's own rejections) into problem+json, with the
/// same status and the text as its detail; answers of ours (JSON, such as the health check's
/// `503`) pass as they are.
pub async fn errors_as_problems(response: Response) -> Response {
    let status = response.status();
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain_text {
        return response;
    }
    let title = status.canonical_reason().unwrap_or("Error");
    let text = to_bytes(response.into_body(), MAX_DETAIL_BYTES)
        .await
        .unwrap_or_default();
    let problem = Problem::new(status, title);
    let detail = String::from_utf8_lossy(&text).trim().to_string();
    if detail.is_empty() {
        problem.into_response()
    } else {
        problem.detail(detail).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn answer(status: StatusCode, content_type: Option<&str>, body: &str) -> Response {
        let mut response = Response::builder().status(status);
        if let Some(content_type) = content_type {
            response = response.header(header::CONTENT_TYPE, content_type);
        }
        let response = response
            .body(Body::from(body.to_string()))
            .expect("response");
        errors_as_problems(response).await
    }

    async fn text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn a_plain_text_rejection_becomes_problem_json_with_its_status_and_text() {
        let body = "length limit exceeded";
        let response = answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("text/plain; charset=utf-8"),
            body,
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let problem: serde_json::Value = serde_json::from_str(&text(response).await).expect("json");
        assert_eq!(problem["status"], 413);
        assert_eq!(problem["title"], "Payload Too Large");
        assert_eq!(problem["detail"], body);
    }

    #[tokio::test]
    async fn json_answers_and_successes_pass_unchanged() {
        let health = r#"{"status":"degraded"}"#;
        let response = answer(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("application/json"),
            health,
        )
        .await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(text(response).await, health);
        let response = answer(StatusCode::OK, Some("text/plain"), "fine").await;
        assert_eq!(text(response).await, "fine");
    }

    #[tokio::test]
    async fn an_empty_error_gets_a_problem_without_detail() {
        let response = answer(StatusCode::BAD_REQUEST, None, "").await;
        let problem: serde_json::Value = serde_json::from_str(&text(response).await).expect("json");
        assert_eq!(problem["status"], 400);
        assert!(problem.get("detail").is_none(), "{problem}");
    }
}
