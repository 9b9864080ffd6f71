//! Requests the handler cannot use: every answer is problem+json, and the caller is checked
//! before the query's own fields are.

use crate::{spawn, Who, KEY};
use reqwest::Method;

fn is_problem(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json")
}

#[tokio::test]
async fn a_bad_query_field_is_a_problem_but_only_for_an_authorized_caller() {
    let api = spawn(&[]).await;
    let (status, headers, problem) = api
        .call(
            Method::GET,
            "/api/rollouts?state=Sideways",
            Who::Nobody,
            None,
        )
        .await;
    assert_eq!(status, 401, "the caller first: {problem}");
    assert!(is_problem(&headers), "{headers:?}");

    let (status, headers, problem) = api
        .call(Method::GET, "/api/rollouts?state=Sideways", Who::Key, None)
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(is_problem(&headers), "{headers:?}");
    assert_eq!(problem["title"], "Invalid query");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Sideways"),
        "{problem}"
    );

    let (status, headers, problem) = api
        .call(Method::GET, "/api/deadletters?limit=many", Who::Key, None)
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(is_problem(&headers), "{headers:?}");
    let (status, _, problem) = api
        .call(
            Method::GET,
            "/api/deadletters?limit=many",
            Who::Nobody,
            None,
        )
        .await;
    assert_eq!(status, 401, "{problem}");
}

#[tokio::test]
async fn the_key_in_the_query_sits_beside_other_fields() {
    let api = spawn(&[]).await;
    let path = format!("/api/rollouts?state=Completed&code={KEY}");
    let (status, _, list) = api.call(Method::GET, &path, Who::Nobody, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"], serde_json::json!([]));
    let path = format!("/api/deadletters?code={KEY}&limit=5");
    let (status, _, letters) = api.call(Method::GET, &path, Who::Nobody, None).await;
    assert_eq!(status, 200, "{letters}");
    let path = "/api/rollouts?state=Completed&code=not-the-key";
    let (status, _, problem) = api.call(Method::GET, path, Who::Nobody, None).await;
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
    let problem: serde_json::Value = response.json().await.expect("problem json");
    assert_eq!(problem["status"], 413, "{problem}");
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_400_problem_json() {
    let api = spawn(&[]).await;
    let (status, headers, problem) = api
        .call(Method::GET, "/api/rollouts/%FF%FE", Who::Key, None)
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(is_problem(&headers), "{headers:?}");
    assert_eq!(problem["status"], 400, "{problem}");
}
