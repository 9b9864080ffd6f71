//! `POST /api/alerts` with the common alert schema's example: a fired alert of a rule a
//! rollout names fails its wave and rolls it back, a redelivery changes nothing, a resolved
//! alert is recorded, malformed bodies are `400` problem+json, and a caller without
//! `Rollout.Operate` is `403`.

use crate::{plan, spawn, Api, Who};
use reqwest::Method;
use serde_json::{json, Value};

const OPERATOR: Who = Who::Principal("olga@contoso.com", &["Rollout.Read", "Rollout.Operate"]);
const READER: Who = Who::Principal("rita@contoso.com", &["Rollout.Read"]);
/// The rule of the example alert.
const RULE: &str = "test-metricAlertRule";

/// The official example: a fired metric alert of `test-metricAlertRule`.
fn example() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/azure/azure-monitor-common-alert-schema.metric.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    serde_json::from_str(&text).expect("json")
}

/// A rollout on `group` whose plan names `rules` in `alertRules`; returns its id.
async fn create_with_rules(api: &Api, group: &str, rules: &[&str]) -> String {
    let mut body = plan(&[(group, false)]);
    body["alertRules"] = json!(rules);
    let (status, _, view) = api
        .call(Method::POST, "/api/rollouts", Who::Key, Some(body))
        .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["state"], "Deploying", "{view}");
    assert_eq!(view["plan"]["alertRules"], json!(rules));
    view["id"].as_str().expect("id").to_string()
}

async fn post_alert(api: &Api, who: Who, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    api.call(Method::POST, "/api/alerts", who, Some(body)).await
}

fn action_for<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["affected"]
        .as_array()
        .expect("affected")
        .iter()
        .find(|a| a["rollout"] == id)
        .map(|a| &a["action"])
        .unwrap_or_else(|| panic!("{id} not in {answer}"))
}

async fn decisions(api: &Api, id: &str) -> Vec<Value> {
    let (status, _, events) = api
        .call(
            Method::GET,
            &format!("/api/rollouts/{id}/events"),
            Who::Key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{events}");
    events["value"].as_array().expect("value").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fired_alert_of_a_named_rule_rolls_the_rollout_back_once() {
    let api = spawn(&[("canary", 2), ("pilot", 2)]).await;
    let named = create_with_rules(&api, "canary", &[RULE]).await;
    let other = create_with_rules(&api, "pilot", &["some-other-rule"]).await;

    let (status, _, answer) = post_alert(&api, Who::Key, example()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["alertId"],
        example()["data"]["essentials"]["alertId"]
    );
    assert_eq!(answer["rule"], RULE);
    assert_eq!(answer["monitorCondition"], "Fired");
    assert_eq!(action_for(&answer, &named), "waveFailed", "{answer}");
    assert_eq!(action_for(&answer, &other), "recorded", "{answer}");

    let (_, _, view) = api
        .call(
            Method::GET,
            &format!("/api/rollouts/{named}"),
            Who::Key,
            None,
        )
        .await;
    assert_eq!(view["state"], "RollingBack", "{view}");
    assert_eq!(view["waves"][0]["status"], "Failed", "{view}");
    let reason = view["rollback"]["reason"].as_str().expect("reason");
    assert_eq!(
        reason,
        "wave canary: alert test-metricAlertRule fired at 2024-11-29T08:29:58Z"
    );
    let trail = decisions(&api, &named).await;
    let failed = trail
        .iter()
        .find(|d| d["kind"] == "wave.failed")
        .expect("wave.failed");
    assert!(
        failed["reason"]
            .as_str()
            .expect("reason")
            .ends_with("fired at 2024-11-29T08:29:58Z; rolling back"),
        "{failed}"
    );
    assert!(trail.iter().any(|d| d["kind"] == "rollback.opened"));

    let (_, _, unaffected) = api
        .call(
            Method::GET,
            &format!("/api/rollouts/{other}"),
            Who::Key,
            None,
        )
        .await;
    assert_eq!(unaffected["state"], "Deploying");
    let recorded: Vec<_> = decisions(&api, &other)
        .await
        .into_iter()
        .filter(|d| d["kind"] == "alert.recorded")
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");

    // Azure Monitor delivers the same alert again: nothing changes
    let before = (decisions(&api, &named).await, decisions(&api, &other).await);
    let (status, _, again) = post_alert(&api, Who::Key, example()).await;
    assert_eq!(status, 202, "{again}");
    // the rolled-back-to-be rollout is still moving, so it is offered the alert and ignores it
    assert_eq!(action_for(&again, &named), "ignored", "{again}");
    assert_eq!(action_for(&again, &other), "ignored", "{again}");
    let after = (decisions(&api, &named).await, decisions(&api, &other).await);
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_alert_and_an_alert_of_another_rule_are_recorded_only() {
    let api = spawn(&[("canary", 2)]).await;
    let id = create_with_rules(&api, "canary", &[RULE]).await;
    let mut resolved = example();
    resolved["data"]["essentials"]["monitorCondition"] = json!("Resolved");
    resolved["data"]["essentials"]["resolvedDateTime"] = json!("2024-11-29T08:44:58.123Z");
    let (status, _, answer) = post_alert(&api, OPERATOR, resolved).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["monitorCondition"], "Resolved");
    assert_eq!(action_for(&answer, &id), "recorded");

    let mut unnamed = example();
    unnamed["data"]["essentials"]["alertRule"] = json!("cpu-high");
    let (status, _, answer) = post_alert(&api, Who::Key, unnamed).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(action_for(&answer, &id), "recorded");

    let (_, _, view) = api
        .call(Method::GET, &format!("/api/rollouts/{id}"), Who::Key, None)
        .await;
    assert_eq!(view["state"], "Deploying", "{view}");
    let reasons: Vec<String> = decisions(&api, &id)
        .await
        .iter()
        .filter(|d| d["kind"] == "alert.recorded")
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "alert test-metricAlertRule resolved at 2024-11-29T08:44:58Z: recorded only",
            "alert cpu-high fired at 2024-11-29T08:29:58Z: not a rule of this rollout's alertRules; recorded only"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_alerts_are_400_problems_and_readers_are_403() {
    let api = spawn(&[("canary", 2)]).await;
    let id = create_with_rules(&api, "canary", &[RULE]).await;

    let response = api
        .http
        .post(format!("{}/api/alerts", api.url))
        .header("x-functions-key", crate::KEY)
        .header("Content-Type", "application/json")
        .body("this is not JSON")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("not JSON"),
        "{problem}"
    );

    let mut other_schema = example();
    other_schema["schemaId"] = json!("Microsoft.Insights/activityLogs");
    let (status, headers, problem) = post_alert(&api, Who::Key, other_schema).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("common alert schema"),
        "{problem}"
    );

    let mut numeric_id = example();
    numeric_id["data"]["essentials"]["alertId"] = json!(42);
    let (status, _, problem) = post_alert(&api, Who::Key, numeric_id).await;
    assert_eq!(
        status, 400,
        "a field of another type than the schema's: {problem}"
    );

    let (status, headers, problem) = post_alert(&api, READER, example()).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");

    let (_, _, view) = api
        .call(Method::GET, &format!("/api/rollouts/{id}"), Who::Key, None)
        .await;
    assert_eq!(
        view["state"], "Deploying",
        "nothing refused changed the rollout"
    );
}
