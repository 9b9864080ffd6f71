//! `GET /`, forwarded `/api` routes, and the non-forwarded `/Operator` envelope.

use crate::support::{fixture, reference, spawn_app};
use patchwave::decode::http_request::decode_http_request;
use patchwave::host::Invocation;
use serde_json::Value;

#[tokio::test]
async fn readiness_probe_and_health_answer_json() {
    let app = spawn_app().await;
    let ready = app
        .client
        .get(format!("{}/", app.address))
        .send()
        .await
        .expect("probe");
    assert_eq!(ready.status(), 200);
    let health = app
        .client
        .get(format!("{}/api/health", app.address))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json() {
    let app = spawn_app().await;
    for (method, path, status) in [
        (reqwest::Method::GET, "/api/nothing-here", 404),
        (reqwest::Method::GET, "/elsewhere", 404),
        (reqwest::Method::DELETE, "/api/health", 405),
    ] {
        let response = app
            .client
            .request(method, format!("{}{path}", app.address))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"].to_str().expect("ascii"),
            "application/problem+json"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["status"], status);
    }
}

#[tokio::test]
async fn observed_non_forwarded_http_invocation_is_decoded_and_answered_as_res() {
    let example = reference("functions-host/http-nonforwarded-request.json");
    let invocation = Invocation::parse(example.to_string().as_bytes()).expect("envelope");
    let request = decode_http_request(&invocation).expect("request");
    assert_eq!(request.method, "GET");
    assert_eq!(request.path_and_query, "/api/SimpleHttpTrigger");
    assert!(request.headers.contains(&(
        "Postman-Token".into(),
        "f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef".into()
    )));
    assert!(request.body.is_empty());

    let app = spawn_app().await;
    let response = app.invoke_ok("Operator", &example).await;
    let res = &response["Outputs"]["res"];
    assert_eq!(res["statusCode"], 404, "{response}");
    assert_eq!(res["headers"]["content-type"], "application/problem+json");
    assert!(res["body"]
        .as_str()
        .expect("body")
        .contains("/api/SimpleHttpTrigger"));
}

#[tokio::test]
async fn non_forwarded_post_with_a_key_reaches_the_api_router() {
    let example = fixture("http-nonforwarded-request-post-with-key.json");
    let invocation = Invocation::parse(example.to_string().as_bytes()).expect("envelope");
    let request = decode_http_request(&invocation).expect("request");
    assert_eq!(request.method, "POST");
    assert_eq!(request.path_and_query, "/api/health?code=abc123");
    assert_eq!(request.body, br#"{"reason":"check"}"#);

    let app = spawn_app().await;
    let response = app.invoke_ok("Operator", &example).await;
    assert_eq!(
        response["Outputs"]["res"]["statusCode"], 405,
        "health is GET only: {response}"
    );

    let mut get = example.clone();
    get["Data"]["req"]["Method"] = "GET".into();
    let response = app.invoke_ok("Operator", &get).await;
    let res = &response["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(res["body"].as_str().expect("body")).expect("json body");
    assert_eq!(body["status"], "ok");
}
