//! Every route, every identity: only the allowed combinations get through.

use crate::{spawn_with, Who};
use reqwest::Method;
use serde_json::json;

const READER: Who = Who::Principal("rita", &["Rollout.Read"]);
const OPERATOR: Who = Who::Principal("olga", &["Rollout.Read", "Rollout.Operate"]);
const APPROVER: Who = Who::Principal("bob", &["Rollout.Approve"]);
const NO_ROLES: Who = Who::Principal("nina", &[]);

/// A key caller who also sends a principal it wrote itself, claiming the approver role.
const FORGER: Who = Who::KeyWithPrincipal("mallory", &["Rollout.Read", "Rollout.Approve"]);

/// Which identities may call a route (authentication and role only; the route's own answer
/// for an allowed caller may still be 404 or 409). A principal counts only where the platform
/// vouches for it (`platform_auth`); elsewhere a request carrying one is refused.
fn allowed(route_role: &str, who: Who, platform_auth: bool) -> bool {
    match (route_role, who) {
        (_, Who::Nobody | Who::Forged) => false,
        ("Rollout.Read", Who::Key) => true,
        ("Rollout.Operate", Who::Key) => true,
        ("Rollout.Approve", Who::Key) => false,
        (role, Who::Principal(_, roles) | Who::KeyWithPrincipal(_, roles)) => {
            platform_auth && roles.contains(&role)
        }
        _ => false,
    }
}

/// The answer a denied caller gets: `401` when it is not authenticated at all.
fn denial(who: Who, platform_auth: bool) -> u16 {
    match who {
        Who::Nobody | Who::Forged => 401,
        Who::Principal(..) | Who::KeyWithPrincipal(..) if !platform_auth => 401,
        _ => 403,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_checks_for_every_route_and_identity_with_app_service_authentication() {
    role_matrix(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_app_service_authentication_principals_are_refused_and_keys_still_work() {
    role_matrix(false).await;
}

async fn role_matrix(platform_auth: bool) {
    let api = spawn_with(&[("canary", 2)], platform_auth).await;
    let location = api.create_on("canary", Who::Key).await;
    let reason = json!({"reason": "role test"});
    let routes: Vec<(Method, String, &str, Option<serde_json::Value>)> = vec![
        (Method::GET, "/api/rollouts".into(), "Rollout.Read", None),
        (Method::GET, location.clone(), "Rollout.Read", None),
        (
            Method::GET,
            format!("{location}/events"),
            "Rollout.Read",
            None,
        ),
        (Method::GET, "/api/compliance".into(), "Rollout.Read", None),
        (
            Method::GET,
            "/api/compliance/devices".into(),
            "Rollout.Read",
            None,
        ),
        (
            Method::GET,
            "/api/compliance/hosts".into(),
            "Rollout.Read",
            None,
        ),
        (Method::GET, "/api/deadletters".into(), "Rollout.Read", None),
        (Method::GET, "/api/dashboard".into(), "Rollout.Read", None),
        (Method::GET, "/api/me".into(), "Rollout.Read", None),
        (
            Method::POST,
            "/api/rollouts".into(),
            "Rollout.Operate",
            Some(json!({"name": "invalid on purpose"})),
        ),
        (
            Method::POST,
            format!("{location}/resume"),
            "Rollout.Operate",
            Some(reason.clone()),
        ),
        (
            Method::POST,
            "/api/alerts".into(),
            "Rollout.Operate",
            Some(json!({"schemaId": "not the common alert schema"})),
        ),
        (
            Method::POST,
            format!("{location}/approve"),
            "Rollout.Approve",
            Some(reason.clone()),
        ),
    ];
    let identities = [
        Who::Nobody,
        Who::Forged,
        NO_ROLES,
        READER,
        OPERATOR,
        APPROVER,
        Who::Key,
        FORGER,
    ];
    for (method, path, role, body) in &routes {
        for who in identities {
            let (status, headers, answer) = api.call(method.clone(), path, who, body.clone()).await;
            let expected_denial = denial(who, platform_auth);
            if allowed(role, who, platform_auth) {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} as {who:?}: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status, expected_denial,
                    "{method} {path} as {who:?}: {answer}"
                );
                assert_eq!(headers["content-type"], "application/problem+json");
            }
        }
    }
    // a key caller can never approve, even with the role configured for keys
    let (status, _, _) = api
        .call(Method::GET, "/api/health", Who::Nobody, None)
        .await;
    assert_eq!(status, 200, "health stays open to probes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_tells_anyone_it_is_up_and_only_readers_the_store_and_counters() {
    let api = spawn_with(&[], true).await;
    let (status, _, anonymous) = api
        .call(Method::GET, "/api/health", Who::Nobody, None)
        .await;
    assert_eq!(status, 200);
    let fields: Vec<&String> = anonymous.as_object().expect("object").keys().collect();
    assert_eq!(fields, ["status", "version"], "{anonymous}");
    let (_, _, forged) = api
        .call(Method::GET, "/api/health", Who::Forged, None)
        .await;
    assert!(forged.get("counters").is_none(), "{forged}");
    let (status, _, reader) = api.call(Method::GET, "/api/health", READER, None).await;
    assert_eq!(status, 200);
    assert_eq!(reader["store"], "reachable");
    assert!(reader["counters"].is_object(), "{reader}");
}
