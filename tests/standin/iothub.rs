//! IoT Hub twin query: the ADUGroup form, paging with `x-ms-continuation`, refusals.

use crate::support::*;
use patchwave::standin::GroupConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn twin_query_pages_with_continuation_tokens() {
    let standin = start(fast_config(vec![
        GroupConfig::numbered("canary", 250, 0.0),
        GroupConfig::numbered("fleet", 7, 0.0),
    ]))
    .await;
    let http = client();
    let url = format!("{}/devices/query?api-version=2021-04-12", standin.url());
    let query = json!({"query": "SELECT * FROM devices WHERE tags.ADUGroup = 'canary'"});
    let mut continuation: Option<String> = None;
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    loop {
        let mut request = http
            .post(&url)
            .bearer_auth("ignored")
            .header("x-ms-max-item-count", "100")
            .json(&query);
        if let Some(token) = &continuation {
            request = request.header("x-ms-continuation", token);
        }
        let response = request.send().await.expect("query");
        assert_eq!(response.status(), 200);
        continuation = response
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().expect("text").to_string());
        let twins: Vec<Value> = response.json().await.expect("json");
        pages.push(twins.len());
        for twin in &twins {
            assert_eq!(twin["tags"]["ADUGroup"], "canary");
            assert!(
                twin["etag"].is_string() && twin["version"].is_u64(),
                "{twin}"
            );
            assert_eq!(
                twin["properties"]["reported"]["deviceUpdate"]["agent"]["state"],
                0
            );
            ids.push(twin["deviceId"].as_str().expect("id").to_string());
        }
        if continuation.is_none() {
            break;
        }
    }
    assert_eq!(pages, vec![100, 100, 50]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250);

    // No WHERE: every device, one default page of 100.
    let all: Vec<Value> = http
        .post(&url)
        .json(&json!({"query": "SELECT * FROM devices"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(all.len(), 100);

    let small: Vec<Value> = http
        .post(&url)
        .json(&json!({"query": "select * from devices where tags.ADUGroup = 'fleet'"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(small.len(), 7);

    for body in [
        json!({"query": "SELECT deviceId FROM devices"}),
        json!({"query": "SELECT * FROM devices WHERE properties.reported.x = 1"}),
        json!({"sql": "SELECT * FROM devices"}),
    ] {
        let refused = http.post(&url).json(&body).send().await.expect("query");
        assert_eq!(refused.status(), 400, "{body}");
    }
    let foreign_token = http
        .post(&url)
        .header("x-ms-continuation", "bm90LWEtdG9rZW4=")
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_eq!(foreign_token.status(), 400);

    let versionless = http
        .post(format!("{}/devices/query", standin.url()))
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_invalid_api_version(versionless).await;
    let old = http
        .post(format!(
            "{}/devices/query?api-version=2020-03-13",
            standin.url()
        ))
        .json(&query)
        .send()
        .await
        .expect("query");
    assert_invalid_api_version(old).await;
}
