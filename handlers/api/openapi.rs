//! `GET /api/openapi.json`: the OpenAPI 3 document, generated from the handlers' and types'
//! annotations (so it cannot drift from the code), for Logic Apps custom connectors.

use super::rollouts;
use super::views::*;
use crate::problem::Problem;
use crate::store::DeadLetter;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "patchwave operator API", description = "Rollouts of host patches and device updates as one, for operators and Logic Apps."),
    paths(
        rollouts::create, rollouts::list, rollouts::show, rollouts::events,
        rollouts::pause, rollouts::resume, rollouts::approve, rollouts::cancel, rollouts::rollback,
        super::compliance::summary, super::compliance::devices, super::compliance::hosts,
        super::health, super::dead_letters
    ),
    components(schemas(
        RolloutView, WaveView, InfrastructureView, HostView, RollbackView, RollbackGroupView, RolloutSummary,
        RolloutList, CommandBody, EventList, ComplianceView, RolloutCompliance, GroupCompliance, DeviceStatus, DeviceCompliance, DeviceComplianceList,
        HostCompliance, HostComplianceList, Problem, DeadLetter,
        super::DeadLetterList
    )),
    modifiers(&Security),
    security(("functionKey" = []), ("clientPrincipal" = []))
)]
pub struct ApiDoc;

/// Declares how callers authenticate.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "functionKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-functions-key"))),
        );
        components.add_security_scheme(
            "clientPrincipal",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MS-CLIENT-PRINCIPAL",
                "set by App Service Authentication: base64 JSON with role claims",
            ))),
        );
    }
}

/// The document.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
