//! Every route, every identity: only the allowed combinations get through.

use crate::{spawn, Who};
use reqwest::Method;
use serde_json::json;

const READER: Who = Who::Principal("rita", &["Rollout.Read"]);
const OPERATOR: Who = Who::Principal("olga", &["Rollout.Read", "Rollout.Operate"]);
const APPROVER: Who = Who::Principal("bob", &["Rollout.Approve"]);
const NO_ROLES: Who = Who::Principal("nina", &[]);

/// Which identities may call a route (authentication and role only; the route's own answer
/// for an allowed caller may still be 404 or 409).
fn allowed(route_role: &str, who: Who) -> bool {
    match (route_role, who) {
        (_, Who::Nobody | Who::Forged) => false,
        ("Rollout.Read", Who::Key) => true,
        ("Rollout.Operate", Who::Key) => true,
        ("Rollout.Approve", Who::Key) => false,
        (role, Who::Principal(_, roles)) => roles.contains(&role),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_checks_for_every_route_and_identity() {
    let api = spawn(&[("canary", 2)]).await;
    let location = api.create_on("canary", OPERATOR).await;
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
    ];
    for (method, path, role, body) in &routes {
        for who in identities {
            let (status, headers, answer) = api.call(method.clone(), path, who, body.clone()).await;
            let expected_denial = match who {
                Who::Nobody | Who::Forged => 401,
                _ => 403,
            };
            if allowed(role, who) {
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
