//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' and types'
//! annotations (so it cannot drift from the code); `swagger.rs` converts it to OpenAPI 2.0 for
//! Logic Apps custom connectors.

use super::rollouts;
use super::views::*;
use crate::problem::Problem;
use crate::store::DeadLetter;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "patchwave operator API", description = "Rollouts of host patches and device updates as one, for operators and Logic Apps."),
    paths(
        rollouts::create, rollouts::list, rollouts::show, rollouts::events,
        rollouts::pause, rollouts::resume, rollouts::approve, rollouts::cancel, rollouts::rollback,
        super::compliance::summary, super::compliance::devices, super::compliance::hosts,
        super::health, super::dead_letters, super::alerts::post,
        super::dashboard::page, super::dashboard::me
    ),
    components(schemas(
        RolloutView, WaveView, InfrastructureView, HostView, RollbackView, RollbackGroupView, RolloutSummary,
        RolloutList, CommandBody, EventList, ComplianceView, RolloutCompliance, GroupCompliance, DeviceStatus, DeviceCompliance, DeviceComplianceList,
        HostCompliance, HostComplianceList, Problem, DeadLetter,
        super::DeadLetterList, super::alerts::AlertNotification, super::alerts::AlertSchemaId,
        super::alerts::AlertData, super::alerts::AlertEssentials, super::alerts::AlertCondition,
        super::alerts::AlertAnswer, super::alerts::AffectedRollout, super::alerts::AlertAction,
        super::dashboard::CallerView, super::dashboard::CallerKindView, super::dashboard::CommandName
    )),
    modifiers(&Security),
    security(("functionKey" = []), ("entraId" = []))
)]
pub struct ApiDoc;

/// Declares how callers authenticate: a function key, or an Entra ID access token where App
/// Service Authentication is on. The principal header the platform then passes on is its own,
/// never a client's, so it is no scheme here.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "functionKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-functions-key",
                "a function key of the Function App: the roles of PATCHWAVE_KEY_ROLES, never an approval",
            ))),
        );
        let token = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("an Entra ID access token for the Operator API's app registration, where App Service Authentication is on: its app roles, approvals included"));
        components.add_security_scheme("entraId", SecurityScheme::Http(token.build()));
    }
}

/// The document.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
