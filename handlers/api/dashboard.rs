//! `GET /api/dashboard`, the live rollout page, and `GET /api/me`, who the page's caller is
//! and which commands it may offer. The page is one HTML document with its style and script
//! inlined (files under `dashboard/`, embedded at build time): no CDN, no framework, nothing
//! fetched but the operator API itself. Its Content-Security-Policy allows exactly that
//! script and that style (by their SHA-256), requests to this origin only, and nothing else.

use super::auth::{CallerKind, APPROVE, OPERATE};
use super::authorized::{Authorized, Read};
use crate::problem::Problem;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Serialize;
use sha2::Digest;
use std::sync::LazyLock;
use utoipa::ToSchema;

const TEMPLATE: &str = include_str!("dashboard/index.html");
const STYLE: &str = include_str!("dashboard/dashboard.css");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// The page and the policy that admits its inline style and script.
pub struct Page {
    /// The HTML document.
    pub html: String,
    /// The `Content-Security-Policy` header value.
    pub policy: String,
}

/// Built once: the template with its style and script in place.
pub static PAGE: LazyLock<Page> = LazyLock::new(|| Page {
    html: TEMPLATE
        .replacen("/*STYLE*/", STYLE, 1)
        .replacen("/*SCRIPT*/", SCRIPT, 1),
    policy: policy(STYLE, SCRIPT),
});

fn hash(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Self only: the one inline script and style by hash, fetches to this origin, no frames,
/// forms, plugins or base URL changes.
fn policy(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(script),
        hash(style)
    )
}

/// The live rollout page (HTML, for a browser; its data comes from this API).
///
/// Opened with a function key as `?code=` (which the page sends on as `x-functions-key`) or
/// signed in through App Service Authentication.
#[utoipa::path(get, path = "/api/dashboard", tag = "dashboard", operation_id = "dashboard",
    responses((status = 200, description = "the page: rollouts, hosts, waves against their thresholds, the rollback, the decision log, devices, and the commands the caller's roles allow", body = String, content_type = "text/html"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")),
    extensions(("x-ms-visibility" = json!("internal"))))]
pub async fn page(_reader: Authorized<Read>) -> Response {
    let page = &*PAGE;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, page.policy.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page.html.clone(),
    )
        .into_response()
}

/// How the caller signed in.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum CallerKindView {
    /// A named principal of App Service Authentication.
    Principal,
    /// A function key.
    Key,
    /// `PATCHWAVE_AUTH=open` (local only).
    Open,
}

/// An operator command, by its route's last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum CommandName {
    /// `POST /api/rollouts/{id}/pause`.
    Pause,
    /// `POST /api/rollouts/{id}/resume`.
    Resume,
    /// `POST /api/rollouts/{id}/approve`.
    Approve,
    /// `POST /api/rollouts/{id}/cancel`.
    Cancel,
    /// `POST /api/rollouts/{id}/rollback`.
    Rollback,
}

/// The caller as the API sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerView {
    /// The name decisions record (`key:` and a digest prefix for a function key, never the key).
    pub name: String,
    /// How the caller signed in.
    pub kind: CallerKindView,
    /// The caller's roles.
    pub roles: Vec<String>,
    /// The commands these roles allow (an approval also needs a named principal).
    pub commands: Vec<CommandName>,
}

/// Who is calling: name, roles and the commands they allow (for the dashboard's buttons).
#[utoipa::path(get, path = "/api/me", tag = "dashboard", operation_id = "me",
    responses((status = 200, body = CallerView), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn me(Authorized { caller, .. }: Authorized<Read>) -> Json<CallerView> {
    let mut commands = Vec::new();
    if caller.roles.contains(OPERATE) {
        commands.extend([
            CommandName::Pause,
            CommandName::Resume,
            CommandName::Cancel,
            CommandName::Rollback,
        ]);
    }
    if caller.roles.contains(APPROVE) && caller.kind != CallerKind::Key {
        commands.push(CommandName::Approve);
    }
    Json(CallerView {
        kind: match caller.kind {
            CallerKind::Principal => CallerKindView::Principal,
            CallerKind::Key => CallerKindView::Key,
            CallerKind::Open => CallerKindView::Open,
        },
        roles: caller.roles.iter().cloned().collect(),
        name: caller.name,
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_style_and_script_are_inlined_once_and_admitted_by_their_hashes_only() {
        let page = &*PAGE;
        assert!(!page.html.contains("/*STYLE*/") && !page.html.contains("/*SCRIPT*/"));
        assert_eq!(page.html.matches(SCRIPT).count(), 1);
        assert!(page.html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.html.contains(&format!("<style>{STYLE}</style>")));
        for text in [STYLE, SCRIPT] {
            assert!(!text.to_ascii_lowercase().contains("</script"));
            assert!(!text.to_ascii_lowercase().contains("</style"));
        }
        assert!(page.policy.contains(&hash(SCRIPT)) && page.policy.contains(&hash(STYLE)));
        assert!(!page.policy.contains("unsafe"), "{}", page.policy);
        assert!(page.policy.starts_with("default-src 'none'"));
        // a known vector: SHA-256 of the empty string
        assert_eq!(
            hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }

    #[test]
    fn the_script_never_writes_markup_from_data() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(forbidden), "{forbidden}");
        }
    }
}
