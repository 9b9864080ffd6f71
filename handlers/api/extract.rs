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

/// Longest rejection text kept as a problem's detail.
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

/// Turns an error response that is not problem+json (axum's own rejections are plain text)
/// into one, with the same status and the text as its detail.
pub async fn errors_as_problems(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
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
