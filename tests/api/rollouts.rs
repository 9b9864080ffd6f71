//! Create, read, commands and the approval gate over HTTP.

use crate::support::{context, devices, twin_change, update};
use crate::{plan, spawn, Who};
use patchwave::decode::agent_report::AgentState;
use reqwest::Method;
use serde_json::json;

const OPERATOR: Who = Who::Principal("olga@contoso.com", &["Rollout.Read", "Rollout.Operate"]);
const APPROVER: Who = Who::Principal("bob@contoso.com", &["Rollout.Read", "Rollout.Approve"]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validates_lists_every_problem_and_is_idempotent() {
    let api = spawn(&[("canary", 3)]).await;
    let mut bad = plan(&[("canary", false)]);
    bad["waves"][0]["successThresholdPercent"] = json!(0);
    bad["rollbackUpdate"] = bad["update"].clone();
    let (status, headers, problem) = api
        .call(Method::POST, "/api/rollouts", OPERATOR, Some(bad))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(3),
        "{problem}"
    );
    let (status, _, problem) = api
        .call(
            Method::POST,
            "/api/rollouts",
            OPERATOR,
            Some(json!({"name": "x", "nonsense": 1})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("unknown field"),
        "{problem}"
    );

    let request = |key: &'static str| {
        api.http
            .post(format!("{}/api/rollouts", api.url))
            .header(
                "X-MS-CLIENT-PRINCIPAL",
                crate::principal("olga@contoso.com", &["Rollout.Operate"]),
            )
            .header("Idempotency-Key", key)
            .json(&plan(&[("canary", false)]))
    };
    let first = request("k1").send().await.expect("send");
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let created: serde_json::Value = first.json().await.expect("json");
    assert_eq!(
        location,
        format!("/api/rollouts/{}", created["id"].as_str().expect("id"))
    );
    assert_eq!(created["state"], "Deploying");
    assert_eq!(created["createdBy"], "olga@contoso.com");
    assert_eq!(created["waves"][0]["counts"]["total"], 3);
    let again = request("k1").send().await.expect("send");
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(
        again["id"], created["id"],
        "same Idempotency-Key, same rollout"
    );
    let busy = request("k2").send().await.expect("send");
    assert_eq!(busy.status(), 409, "group canary is taken");

    let (status, _, list) = api
        .call(Method::GET, "/api/rollouts?state=Deploying", OPERATOR, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().map(Vec::len), Some(1));
    let (_, _, none) = api
        .call(Method::GET, "/api/rollouts?state=Completed", OPERATOR, None)
        .await;
    assert_eq!(none["value"], json!([]));
    let (status, _, shown) = api.call(Method::GET, &location, OPERATOR, None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["decisions"][0]["kind"], "rollout.created");
    let (status, _, events) = api
        .call(Method::GET, &format!("{location}/events"), OPERATOR, None)
        .await;
    assert_eq!(status, 200);
    assert!(events["value"].as_array().expect("events").len() >= 3);
    let (status, _, _) = api
        .call(Method::GET, "/api/rollouts/ro-missing", OPERATOR, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_gate_needs_an_approver_who_is_not_the_creator() {
    let api = spawn(&[("canary", 2), ("fleet", 3)]).await;
    let (status, headers, created) = api
        .call(
            Method::POST,
            "/api/rollouts",
            OPERATOR,
            Some(plan(&[("canary", false), ("fleet", true)])),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let location = headers["location"].to_str().expect("location").to_string();
    let changes: Vec<_> = devices("canary", 2)
        .iter()
        .map(|d| twin_change(d, 5, AgentState::Idle, Some(update("2.4.1"))))
        .collect();
    api.service
        .deliver_reports(&context(), &changes)
        .await
        .expect("reports");
    api.clock.advance(chrono::Duration::minutes(31));
    api.service.tick().await.expect("tick");
    let (_, _, waiting) = api.call(Method::GET, &location, OPERATOR, None).await;
    assert_eq!(waiting["state"], "AwaitingApproval");

    let approve = format!("{location}/approve");
    let reason = Some(json!({"reason": "canary looks healthy"}));
    let (status, _, _) = api
        .call(Method::POST, &approve, OPERATOR, reason.clone())
        .await;
    assert_eq!(status, 403, "Rollout.Operate is not Rollout.Approve");
    let (status, _, problem) = api
        .call(Method::POST, &approve, Who::Key, reason.clone())
        .await;
    assert_eq!(status, 403, "{problem}");
    let creator = Who::Principal("olga@contoso.com", &["Rollout.Approve"]);
    let (status, _, problem) = api
        .call(Method::POST, &approve, creator, reason.clone())
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains("separation of duties"));
    let (status, _, problem) = api
        .call(
            Method::POST,
            &approve,
            APPROVER,
            Some(json!({"reason": " "})),
        )
        .await;
    assert_eq!(status, 400, "a reason is required: {problem}");
    let (status, headers, moved) = api.call(Method::POST, &approve, APPROVER, reason).await;
    assert_eq!(status, 202, "{moved}");
    assert_eq!(headers["location"].to_str().expect("location"), location);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(moved["state"], "Deploying");
    assert_eq!(moved["waves"][1]["approvedBy"], "bob@contoso.com");
    let (_, _, events) = api
        .call(Method::GET, &format!("{location}/events"), OPERATOR, None)
        .await;
    let approval = events["value"]
        .as_array()
        .expect("events")
        .iter()
        .find(|d| d["kind"] == "wave.approved")
        .cloned()
        .expect("approved");
    assert_eq!(approval["actor"], "bob@contoso.com");
    assert!(approval["reason"]
        .as_str()
        .expect("reason")
        .contains("canary looks healthy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_refused_in_the_state_say_why_and_rollback_reverts() {
    let api = spawn(&[("canary", 2)]).await;
    let location = api.create_on("canary", OPERATOR).await;
    let reason = Some(json!({"reason": "test"}));
    let (status, _, problem) = api
        .call(
            Method::POST,
            &format!("{location}/resume"),
            OPERATOR,
            reason.clone(),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        problem["detail"],
        "Resume refused: the rollout is Deploying, not Paused"
    );
    let (status, _, paused) = api
        .call(
            Method::POST,
            &format!("{location}/pause"),
            OPERATOR,
            reason.clone(),
        )
        .await;
    assert_eq!((status, paused["state"].as_str()), (202, Some("Paused")));
    let (status, _, rolling) = api
        .call(
            Method::POST,
            &format!("{location}/rollback"),
            Who::Key,
            reason.clone(),
        )
        .await;
    assert_eq!(status, 202, "{rolling}");
    assert_eq!(rolling["state"], "RollingBack");
    assert_eq!(rolling["rollback"]["groups"][0]["deviceGroup"], "canary");
    let (status, _, compliance) = api
        .call(Method::GET, "/api/compliance", OPERATOR, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        compliance["rollouts"][0]["target"]["version"], "2.4.0",
        "rolled back: the target is the rollback update"
    );
    let (status, _, cancelled) = api
        .call(
            Method::POST,
            &format!("{location}/cancel"),
            OPERATOR,
            reason,
        )
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("Cancelled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let api = spawn(&[]).await;
    let (status, _, document) = api
        .call(Method::GET, "/api/openapi.json", Who::Nobody, None)
        .await;
    assert_eq!(status, 200);
    assert!(document["openapi"]
        .as_str()
        .expect("version")
        .starts_with('3'));
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/api/rollouts",
        "/api/rollouts/{id}",
        "/api/rollouts/{id}/events",
        "/api/rollouts/{id}/pause",
        "/api/rollouts/{id}/resume",
        "/api/rollouts/{id}/approve",
        "/api/rollouts/{id}/cancel",
        "/api/rollouts/{id}/rollback",
        "/api/compliance",
        "/api/compliance/devices",
        "/api/compliance/hosts",
        "/api/deadletters",
        "/api/health",
    ] {
        assert!(paths.contains_key(path), "{path} missing from openapi.json");
    }
    assert!(document["components"]["schemas"]["RolloutPlan"]["properties"]["waves"].is_object());
    assert!(document["components"]["securitySchemes"]["functionKey"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_compliance_pages_filters_and_refuses_what_does_not_parse() {
    let api = spawn(&[("canary", 7)]).await;
    let location = api.create_on("canary", OPERATOR).await;
    let id = location.rsplit('/').next().expect("id").to_string();
    let mut next = Some(format!("/api/compliance/devices?rollout={id}&limit=3"));
    let mut listed = Vec::new();
    while let Some(path) = next.take() {
        let (status, _, page) = api.call(Method::GET, &path, OPERATOR, None).await;
        assert_eq!(status, 200, "{page}");
        for device in page["value"].as_array().expect("value") {
            assert_eq!(device["status"], "behind", "nothing reported yet: {device}");
            assert_eq!(device["group"], "canary");
            assert!(device["installedUpdate"].is_null() && device["lastReportAt"].is_null());
            listed.push(device["deviceId"].as_str().expect("id").to_string());
        }
        next = page["nextLink"].as_str().map(str::to_string);
    }
    let mut expected = devices("canary", 7);
    expected.sort();
    assert_eq!(listed, expected, "three pages, in order, none twice");
    let (_, _, none) = api
        .call(
            Method::GET,
            &format!("/api/compliance/devices?rollout={id}&status=failed"),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(none["value"], json!([]));
    assert!(none.get("nextLink").is_none());
    for bad in [
        "limit=0",
        "limit=1001",
        "status=broken",
        "after=no-slash",
        "limit=x",
    ] {
        let (status, headers, problem) = api
            .call(
                Method::GET,
                &format!("/api/compliance/devices?rollout={id}&{bad}"),
                OPERATOR,
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    let (status, _, _) = api
        .call(
            Method::GET,
            "/api/compliance/devices?rollout=ro-unknown",
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, 404);
}
