//! The preamble of every guarded API route as extractors: [`Authorized`] authenticates the
//! caller (headers, or the query's `code`), checks the route's [`Role`] and hands over the
//! rollout service; [`AuthorizedBody`] does the same for a route with a body, reading the body
//! first so a body over the limit is `413` whoever sends it. Each refusal is the problem+json
//! the route answers (`401`, `403`, `503` without a store). No business logic here.

use super::auth::{self, authenticate, Caller};
use super::extract::ApiQuery;
use crate::problem::Problem;
use crate::service::RolloutService;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::marker::PhantomData;
use std::sync::Arc;

/// A role a route requires, as a type.
pub trait Role: Send + Sync + 'static {
    /// The role's name in App Service Authentication's claims.
    const NAME: &'static str;
}

/// `Rollout.Read`: GETs.
pub struct Read;
/// `Rollout.Operate`: create, pause, resume, cancel, rollback.
pub struct Operate;
/// `Rollout.Approve`: approvals.
pub struct Approve;

impl Role for Read {
    const NAME: &'static str = auth::READ;
}
impl Role for Operate {
    const NAME: &'static str = auth::OPERATE;
}
impl Role for Approve {
    const NAME: &'static str = auth::APPROVE;
}

/// Authenticates the caller (by header, or by the query's `code`) and checks `role`.
pub fn authorize(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    query: &ApiQuery,
    role: &str,
) -> Result<Caller, Problem> {
    let caller = authenticate(headers, query.key().as_deref(), &state.auth)?;
    caller.require(role)?;
    Ok(caller)
}

/// The rollout service, or `503` when the handler runs without a store.
pub fn service(state: &AppState) -> Result<Arc<RolloutService>, Problem> {
    state.service.clone().ok_or_else(|| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "No store")
            .detail("this handler runs without a store")
    })
}

/// A caller holding role `R`, and the service to act on.
pub struct Authorized<R: Role> {
    /// Who calls.
    pub caller: Caller,
    /// The rollout service.
    pub service: Arc<RolloutService>,
    role: PhantomData<R>,
}

impl<R: Role> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let query = ApiQuery::of(&parts.uri);
        let caller = authorize(state, &parts.headers, &query, R::NAME)?;
        Ok(Authorized {
            caller,
            service: service(state)?,
            role: PhantomData,
        })
    }
}

/// [`Authorized`] for a route with a body, and the body.
pub struct AuthorizedBody<R: Role> {
    /// The caller and the service.
    pub authorized: Authorized<R>,
    /// The body as sent.
    pub body: Bytes,
}

impl<R: Role> FromRequest<AppState> for AuthorizedBody<R> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let authorized = Authorized::<R>::from_request_parts(&mut parts, state).await;
        // the body's refusal (413) comes first, as it did when the body was read before
        // the caller was looked at
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(AuthorizedBody {
            authorized: authorized.map_err(IntoResponse::into_response)?,
            body,
        })
    }
}
