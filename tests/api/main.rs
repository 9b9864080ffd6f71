//! The operator API over HTTP with the real service behind it: create, read, commands,
//! approval gates, role checks for every route, the dashboard page, and the generated OpenAPI
//! 3.1 and 2.0 documents.

#[path = "../service/support.rs"]
#[allow(dead_code)]
mod support;

mod alerts;
mod dashboard;
mod rejections;
mod roles;
mod rollouts;
mod swagger;

use base64::Engine as _;
use patchwave::config::AuthSettings;
use patchwave::ports::ManualClock;
use patchwave::service::RolloutService;
use patchwave::startup::Application;
use patchwave::state::AppState;
use serde_json::{json, Value};
use sha2::Digest;
use std::sync::Arc;
use support::FakeAzure;

/// The function key the tests' standalone handler accepts.
pub const KEY: &str = "logic-apps-key";

pub struct Api {
    pub url: String,
    pub service: Arc<RolloutService>,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Nobody,
    Forged,
    Key,
    Principal(&'static str, &'static [&'static str]),
    /// A function key, and a principal the caller wrote itself.
    KeyWithPrincipal(&'static str, &'static [&'static str]),
}

/// A handler whose App Service Authentication is on (`WEBSITE_AUTH_ENABLED=True`).
pub async fn spawn(groups: &[(&str, usize)]) -> Api {
    spawn_with(groups, true).await
}

/// A handler with App Service Authentication on or off.
pub async fn spawn_with(groups: &[(&str, usize)], platform_auth: bool) -> Api {
    let dir = tempfile::tempdir().expect("dir");
    let mut azure = FakeAzure::default();
    for (group, count) in groups {
        azure
            .groups
            .insert(group.to_string(), support::devices(group, *count));
    }
    let (service, clock, _store) = support::sqlite_service(&dir, Arc::new(azure));
    let auth = AuthSettings {
        function_key_hashes: vec![hex::encode(sha2::Sha256::digest(KEY.as_bytes()))],
        platform_auth,
        ..AuthSettings::default()
    };
    let app = Application::bind(0, AppState::with_service(service.clone(), auth))
        .await
        .expect("bind");
    let url = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.serve(std::future::pending()));
    Api {
        url,
        service,
        clock,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

pub fn principal(name: &str, roles: &[&str]) -> String {
    let mut claims = vec![
        json!({"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "val": name}),
    ];
    claims.extend(roles.iter().map(|r| json!({"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": r})));
    let principal = json!({
        "auth_typ": "aad",
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "claims": claims
    });
    base64::engine::general_purpose::STANDARD.encode(principal.to_string())
}

impl Api {
    /// Creates a one-wave rollout on `group` as `who`; returns its `Location`.
    pub async fn create_on(&self, group: &str, who: Who) -> String {
        let (status, headers, answer) = self
            .call(
                reqwest::Method::POST,
                "/api/rollouts",
                who,
                Some(plan(&[(group, false)])),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        headers["location"].to_str().expect("location").to_string()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        who: Who,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        request = match who {
            Who::Nobody => request,
            Who::Forged => request.header("X-MS-CLIENT-PRINCIPAL", "eyJub3QiOiAianNvbg"),
            Who::Key => request.header("x-functions-key", KEY),
            Who::Principal(name, roles) => {
                request.header("X-MS-CLIENT-PRINCIPAL", principal(name, roles))
            }
            Who::KeyWithPrincipal(name, roles) => request
                .header("x-functions-key", KEY)
                .header("X-MS-CLIENT-PRINCIPAL", principal(name, roles)),
        };
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// The design's plan shape, with the groups and thresholds a test wants.
pub fn plan(waves: &[(&str, bool)]) -> Value {
    json!({
        "name": "CVE-2026-1234 gateway firmware",
        "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
        "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
        "waves": waves.iter().map(|(group, approval)| json!({
            "name": group, "deviceGroup": group, "successThresholdPercent": 100,
            "failureThresholdPercent": 5, "minDevicesJudged": 2, "soakMinutes": 30,
            "deviceTimeoutMinutes": 120, "approvalRequired": approval, "onFailure": "rollback"
        })).collect::<Vec<_>>()
    })
}
