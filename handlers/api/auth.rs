//! Who is calling the operator API, and with which roles (design §3).
//!
//! - App Service Authentication forwards `X-MS-CLIENT-PRINCIPAL` (base64 JSON with claims);
//!   roles are the claims whose type is the principal's `role_typ`. The header is trusted only
//!   where the platform says its authentication is on (`WEBSITE_AUTH_ENABLED=True`): only there
//!   are callers' own copies stripped. Elsewhere a request carrying it is refused `401`.
//! - A caller with only `x-functions-key` (Logic Apps) is a key caller: under the Functions
//!   host the key was checked before forwarding; standalone it must match one of
//!   `PATCHWAVE_FUNCTION_KEYS` (SHA-256 hex). Key callers get `PATCHWAVE_KEY_ROLES`.
//! - `PATCHWAVE_AUTH=open` makes every caller a local operator with every role.

use crate::config::AuthSettings;
use crate::problem::Problem;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::Value;
use sha2::Digest;
use std::collections::BTreeSet;

/// Role for reading rollouts, events, compliance and dead letters.
pub const READ: &str = "Rollout.Read";
/// Role for creating, pausing, resuming, cancelling and rolling back.
pub const OPERATE: &str = "Rollout.Operate";
/// Role for approving gates.
pub const APPROVE: &str = "Rollout.Approve";

/// The default role claim type when a principal names none.
const DEFAULT_ROLE_TYPE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A named principal from App Service Authentication.
    Principal,
    /// A function key.
    Key,
    /// `PATCHWAVE_AUTH=open`.
    Open,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Name for the audit log (never the key itself).
    pub name: String,
    /// Roles.
    pub roles: BTreeSet<String>,
    /// How they authenticated.
    pub kind: CallerKind,
}

impl Caller {
    /// `403` unless the caller has `role`.
    pub fn require(&self, role: &str) -> Result<(), Problem> {
        if self.roles.contains(role) {
            Ok(())
        } else {
            Err(Problem::new(StatusCode::FORBIDDEN, "Forbidden")
                .detail(format!("{} lacks the role {role}", self.name)))
        }
    }
}

/// Authenticates a request from its headers (and `code` query parameter).
pub fn authenticate(
    headers: &HeaderMap,
    query_code: Option<&str>,
    settings: &AuthSettings,
) -> Result<Caller, Problem> {
    if let Some(encoded) = header(headers, "x-ms-client-principal") {
        if !settings.platform_auth && !settings.open {
            // never the header's content: it may be anyone's forgery, or a real principal
            tracing::warn!("refused a request carrying X-MS-CLIENT-PRINCIPAL: App Service Authentication is off (WEBSITE_AUTH_ENABLED is not True), so the header is not the platform's");
            return Err(unauthorized(
                "X-MS-CLIENT-PRINCIPAL is trusted only where App Service Authentication is on (WEBSITE_AUTH_ENABLED=True); here a caller could have written it. Call with a function key, or turn App Service Authentication on",
            ));
        }
        return principal(encoded, header(headers, "x-ms-client-principal-name"));
    }
    if let Some(key) = header(headers, "x-functions-key").or(query_code) {
        return key_caller(key, settings);
    }
    if settings.open {
        let roles = [READ, OPERATE, APPROVE]
            .into_iter()
            .map(String::from)
            .collect();
        return Ok(Caller {
            name: "local-operator".into(),
            roles,
            kind: CallerKind::Open,
        });
    }
    Err(unauthorized(
        "no X-MS-CLIENT-PRINCIPAL and no x-functions-key",
    ))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized").detail(detail)
}

fn key_caller(key: &str, settings: &AuthSettings) -> Result<Caller, Problem> {
    let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    if !settings.behind_host && !settings.function_key_hashes.contains(&digest) {
        return Err(unauthorized("the function key is not accepted"));
    }
    Ok(Caller {
        name: format!("key:{}", &digest[..8]),
        roles: settings.key_roles.iter().cloned().collect(),
        kind: CallerKind::Key,
    })
}

fn principal(encoded: &str, name_header: Option<&str>) -> Result<Caller, Problem> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(encoded))
        .map_err(|_| unauthorized("X-MS-CLIENT-PRINCIPAL is not base64"))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| unauthorized("X-MS-CLIENT-PRINCIPAL is not JSON"))?;
    let auth_type = value.get("auth_typ").and_then(Value::as_str);
    if auth_type.is_none_or(|t| t.trim().is_empty()) {
        return Err(unauthorized("X-MS-CLIENT-PRINCIPAL has no auth_typ"));
    }
    let Some(claims) = value.get("claims").and_then(Value::as_array) else {
        return Err(unauthorized("X-MS-CLIENT-PRINCIPAL has no claims array"));
    };
    let claim_values = |claim_type: &str| -> Vec<String> {
        claims
            .iter()
            .filter(|c| {
                c.get("typ")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case(claim_type))
            })
            .filter_map(|c| c.get("val").and_then(Value::as_str).map(String::from))
            .collect()
    };
    let role_type = value
        .get("role_typ")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_ROLE_TYPE);
    let mut roles: BTreeSet<String> = claim_values(role_type).into_iter().collect();
    roles.extend(claim_values("roles"));
    let name_type = value
        .get("name_typ")
        .and_then(Value::as_str)
        .unwrap_or("name");
    let name = claim_values(name_type)
        .into_iter()
        .chain(claim_values("preferred_username"))
        .next()
        .or(name_header.map(String::from))
        .ok_or_else(|| unauthorized("X-MS-CLIENT-PRINCIPAL names nobody"))?;
    Ok(Caller {
        name,
        roles,
        kind: CallerKind::Principal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    fn platform() -> AuthSettings {
        AuthSettings {
            platform_auth: true,
            ..AuthSettings::default()
        }
    }

    fn encode(value: Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    #[test]
    fn principal_roles_follow_role_typ() {
        let principal = encode(serde_json::json!({
            "auth_typ": "aad", "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            "claims": [
                {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "val": "dana@contoso.com"},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "Rollout.Approve"},
                {"typ": "groups", "val": "Rollout.Operate"}
            ]
        }));
        let caller = authenticate(
            &headers(&[("x-ms-client-principal", principal)]),
            None,
            &platform(),
        )
        .expect("caller");
        assert_eq!(caller.name, "dana@contoso.com");
        assert!(caller.require(APPROVE).is_ok());
        assert_eq!(
            caller.require(OPERATE).map_err(|p| p.status),
            Err(403),
            "a group claim is not a role"
        );
    }

    #[test]
    fn a_principal_is_refused_where_the_platform_does_not_vouch_for_it_and_decoded_strictly() {
        let approver = encode(serde_json::json!({
            "auth_typ": "aad", "role_typ": "roles",
            "claims": [{"typ": "name", "val": "mallory"}, {"typ": "roles", "val": "Rollout.Approve"}]
        }));
        let digest = hex::encode(sha2::Sha256::digest(b"s3cret"));
        let key_only = AuthSettings {
            function_key_hashes: vec![digest],
            ..AuthSettings::default()
        };
        let forged = headers(&[
            ("x-functions-key", "s3cret".into()),
            ("x-ms-client-principal", approver.clone()),
        ]);
        let refused = authenticate(&forged, None, &key_only).expect_err("forged");
        assert_eq!(refused.status, 401);
        assert!(refused
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("WEBSITE_AUTH_ENABLED")));
        let vouched = AuthSettings {
            platform_auth: true,
            ..key_only
        };
        let caller = authenticate(&forged, None, &vouched).expect("the platform's principal");
        assert_eq!(
            (caller.kind, caller.name.as_str()),
            (CallerKind::Principal, "mallory")
        );
        assert!(caller.require(APPROVE).is_ok());
        for loose in [
            serde_json::json!({"claims": [{"typ": "roles", "val": "Rollout.Read"}]}),
            serde_json::json!({"auth_typ": "aad", "claims": {"typ": "roles"}}),
            serde_json::json!({"userDetails": "swa", "userRoles": ["Rollout.Approve"]}),
        ] {
            let request = headers(&[("x-ms-client-principal", encode(loose.clone()))]);
            assert_eq!(
                authenticate(&request, None, &platform()).map_err(|p| p.status),
                Err(401),
                "{loose}"
            );
        }
    }

    #[test]
    fn key_callers_standalone_need_a_listed_key_and_behind_the_host_do_not() {
        let digest = hex::encode(sha2::Sha256::digest(b"s3cret"));
        let standalone = AuthSettings {
            function_key_hashes: vec![digest],
            ..AuthSettings::default()
        };
        let with_key = headers(&[("x-functions-key", "s3cret".into())]);
        let caller = authenticate(&with_key, None, &standalone).expect("listed key");
        assert_eq!(caller.kind, CallerKind::Key);
        assert!(!caller.name.contains("s3cret"));
        assert!(caller.require(OPERATE).is_ok() && caller.require(APPROVE).is_err());
        let wrong = headers(&[("x-functions-key", "guess".into())]);
        assert_eq!(
            authenticate(&wrong, None, &standalone).map_err(|p| p.status),
            Err(401)
        );
        let behind = AuthSettings {
            behind_host: true,
            ..AuthSettings::default()
        };
        assert!(
            authenticate(&wrong, None, &behind).is_ok(),
            "the host checked it"
        );
        assert!(
            authenticate(&HeaderMap::new(), Some("s3cret"), &standalone).is_ok(),
            "code query parameter"
        );
    }

    #[test]
    fn nobody_is_401_unless_open() {
        assert_eq!(
            authenticate(&HeaderMap::new(), None, &AuthSettings::default()).map_err(|p| p.status),
            Err(401)
        );
        let open = AuthSettings {
            open: true,
            ..AuthSettings::default()
        };
        assert_eq!(
            authenticate(&HeaderMap::new(), None, &open).map(|c| c.kind),
            Ok(CallerKind::Open)
        );
        let garbage = headers(&[("x-ms-client-principal", "%%%".into())]);
        assert_eq!(
            authenticate(&garbage, None, &open).map_err(|p| p.status),
            Err(401),
            "a bad principal is not open"
        );
    }
}
