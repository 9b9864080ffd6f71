//! Requests the handler cannot use: every answer is problem+json, and the caller is checked
//! before the query's own fields are.

use crate::{spawn, Api, Who, KEY};
use reqwest::Method;
use serde_json::Value;

fn is_problem(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json")
}

/// `GET path` as `who`: the status, whether the answer is problem+json, and its body.
async fn get(api: &Api, path: &str, who: Who) -> (u16, bool, Value) {
    let (status, headers, body) = api.call(Method::GET, path, who, None).await;
    (status, is_problem(&headers), body)
}

#[tokio::test]
async fn a_bad_query_field_is_a_problem_but_only_for_an_authorized_caller() {
    let api = spawn(&[]).await;
    for path in [
        "/api/rollouts?state=Sideways",
        "/api/deadletters?limit=many",
        "/api/deadletters?limit=0",
        "/api/deadletters?limit=1001",
        "/api/compliance/devices?limit=0",
    ] {
        let (status, problem_json, body) = get(&api, path, Who::Nobody).await;
        assert_eq!(
            (status, problem_json),
            (401, true),
            "the caller first: {body}"
        );
        let (status, problem_json, body) = get(&api, path, Who::Key).await;
        assert_eq!((status, problem_json), (400, true), "{path}: {body}");
        assert_eq!(body["title"], "Invalid query");
    }
    let (_, _, problem) = get(&api, "/api/rollouts?state=Sideways", Who::Key).await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("Sideways"), "{problem}");
}

#[tokio::test]
async fn the_key_in_the_query_sits_beside_other_fields() {
    let api = spawn(&[]).await;
    let path = format!("/api/rollouts?state=Completed&code={KEY}");
    let (status, _, list) = get(&api, &path, Who::Nobody).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"], serde_json::json!([]));
    let path = format!("/api/deadletters?code={KEY}&limit=5");
    let (status, _, letters) = get(&api, &path, Who::Nobody).await;
    assert_eq!(status, 200, "{letters}");
    let path = "/api/rollouts?state=Completed&code=not-the-key";
    let (status, _, problem) = get(&api, path, Who::Nobody).await;
    assert_eq!(status, 401, "a key that is not accepted: {problem}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_problem_json() {
    let api = spawn(&[]).await;
    let oversized = vec![b' '; patchwave::api::MAX_API_BODY_BYTES + 1];
    let response = api
        .http
        .post(format!("{}/api/rollouts", api.url))
        .header("x-functions-key", KEY)
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 413);
    assert!(is_problem(response.headers()), "{:?}", response.headers());
    let problem: Value = response.json().await.expect("problem json");
    assert_eq!(problem["status"], 413, "{problem}");
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_400_problem_json() {
    let api = spawn(&[]).await;
    let (status, problem_json, problem) = get(&api, "/api/rollouts/%FF%FE", Who::Key).await;
    assert_eq!((status, problem_json), (400, true), "{problem}");
    assert_eq!(problem["status"], 400, "{problem}");
}

#[tokio::test]
async fn the_list_filter_is_described_as_the_optional_query_field_it_is() {
    let api = spawn(&[]).await;
    let (_, _, document) = get(&api, "/api/openapi.json", Who::Nobody).await;
    let parameters = &document["paths"]["/api/rollouts"]["get"]["parameters"];
    assert_eq!(parameters[0]["name"], "state");
    assert_eq!(parameters[0]["in"], "query", "{parameters}");
    assert_eq!(parameters[0]["required"], false);
}
