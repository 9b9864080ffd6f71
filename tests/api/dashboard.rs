//! `GET /api/dashboard` and `GET /api/me`: the page for a reader (by principal or by a key as
//! `?code=`), refused as problem+json otherwise, self-contained under a strict policy; and the
//! commands `/api/me` offers each identity.

use crate::{spawn, spawn_with, Who, KEY};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;

const READER: Who = Who::Principal("rita", &["Rollout.Read"]);
const OPERATOR: Who = Who::Principal("olga", &["Rollout.Read", "Rollout.Operate"]);
const APPROVER: Who = Who::Principal("bob", &["Rollout.Read", "Rollout.Approve"]);
const NO_ROLES: Who = Who::Principal("nina", &[]);

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The text between the first `open` and the next `close`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map(|i| i + open.len()).expect(open);
    let end = text[start..].find(close).expect(close) + start;
    &text[start..end]
}

fn source_hash(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[tokio::test]
async fn a_reader_gets_one_self_contained_page_under_a_strict_policy() {
    let api = spawn(&[]).await;
    let (status, headers, body) = api.call(Method::GET, "/api/dashboard", READER, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    let page = body.as_str().expect("HTML, not JSON");
    assert!(page.starts_with("<!doctype html>"), "{}", &page[..40]);

    let policy = header(&headers, "content-security-policy");
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'none'"), "{policy}");
    assert!(directives.contains(&"connect-src 'self'"), "{policy}");
    assert!(directives.contains(&"frame-ancestors 'none'"), "{policy}");
    assert!(
        !policy.contains("unsafe") && !policy.contains('*'),
        "{policy}"
    );
    // the browser runs the inline script and style only if the policy names their hashes
    let script = between(page, "<script>", "</script>");
    let style = between(page, "<style>", "</style>");
    assert!(script.contains("fetch(") && style.contains(".bar"));
    assert!(directives.contains(&format!("script-src {}", source_hash(script)).as_str()));
    assert!(directives.contains(&format!("style-src {}", source_hash(style)).as_str()));
    assert_eq!(page.matches("<script").count(), 1, "one inline script");

    // every asset embedded: nothing to fetch from anywhere else
    for external in [
        "http://",
        "https://",
        "src=",
        "rel=\"stylesheet\"",
        "@import",
        "url(",
    ] {
        assert!(!page.contains(external), "the page refers to {external}");
    }
    for href in page.split("href=\"").skip(1) {
        assert!(href.starts_with("data:"), "href=\"{}", &href[..20]);
    }
    // the API the page reads
    for route in ["/api/me", "/api/rollouts", "/api/compliance/devices?"] {
        assert!(script.contains(route), "{route}");
    }
}

#[tokio::test]
async fn a_function_key_opens_it_as_code_and_without_a_reader_it_is_a_problem() {
    let api = spawn_with(&[], false).await;
    let url = format!("{}/api/dashboard?code={KEY}", api.url);
    let response = api.http.get(&url).send().await.expect("page");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("text").contains("<main>"));

    let wrong = format!("{}/api/dashboard?code=guessed", api.url);
    let response = api.http.get(&wrong).send().await.expect("page");
    assert_eq!(response.status(), 401);
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["status"], 401);

    let api = spawn(&[]).await;
    for (who, status) in [(Who::Nobody, 401), (Who::Forged, 401), (NO_ROLES, 403)] {
        let (got, headers, body) = api.call(Method::GET, "/api/dashboard", who, None).await;
        assert_eq!(got, status, "{who:?}: {body}");
        assert_eq!(header(&headers, "content-type"), "application/problem+json");
        assert!(body["detail"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn me_offers_the_commands_each_identity_may_send() {
    let api = spawn(&[]).await;
    let cases = [
        (READER, "principal", json!([])),
        (
            OPERATOR,
            "principal",
            json!(["pause", "resume", "cancel", "rollback"]),
        ),
        (APPROVER, "principal", json!(["approve"])),
        // a key may hold the roles of PATCHWAVE_KEY_ROLES, never an approval
        (
            Who::Key,
            "key",
            json!(["pause", "resume", "cancel", "rollback"]),
        ),
    ];
    for (who, kind, commands) in cases {
        let (status, _, me) = api.call(Method::GET, "/api/me", who, None).await;
        assert_eq!(status, 200, "{who:?}: {me}");
        assert_eq!(me["kind"], kind, "{me}");
        assert_eq!(me["commands"], commands, "{who:?}");
        assert!(me["roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("Rollout.Read")));
    }
    let (_, _, key) = api.call(Method::GET, "/api/me", Who::Key, None).await;
    let name = key["name"].as_str().expect("name");
    assert!(name.starts_with("key:") && !name.contains(KEY), "{name}");
    let (status, _, _) = api.call(Method::GET, "/api/me", NO_ROLES, None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_list_says_what_each_rollout_deploys_and_who_created_it() {
    let api = spawn(&[("canary", 2)]).await;
    api.create_on("canary", OPERATOR).await;
    let (status, _, list) = api.call(Method::GET, "/api/rollouts", READER, None).await;
    assert_eq!(status, 200);
    let line = &list["value"][0];
    assert_eq!(line["createdBy"], "olga");
    assert_eq!(
        line["update"],
        json!({"provider": "Contoso", "name": "Gateway", "version": "2.4.1"})
    );
}
