//! Bearer authorization: the App Service managed identity protocol against a small local
//! identity endpoint (token cached until five minutes before it expires), and a Table store
//! on an endpoint URL sending those tokens.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use patchwave::store::table::{ManagedIdentity, TableStore, TokenProvider, STORAGE_RESOURCE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const SECRET: &str = "identity-header-secret";

#[derive(Clone)]
struct Identity {
    issued: Arc<AtomicU64>,
    lifetime_seconds: i64,
}

async fn token(
    State(identity): State<Identity>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, (StatusCode, String)> {
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(SECRET)
    {
        return Err((StatusCode::UNAUTHORIZED, "bad identity header".into()));
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01")
        || query.get("resource").map(String::as_str) != Some(STORAGE_RESOURCE)
    {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("unexpected query {query:?}"),
        ));
    }
    let n = identity.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let now = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .expect("clock after 1970")
        .as_secs() as i64;
    Ok(Json(json!({
        "access_token": format!("token-{n}"),
        "expires_on": (now + identity.lifetime_seconds).to_string(),
        "resource": STORAGE_RESOURCE,
        "token_type": "Bearer",
    })))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

async fn identity_endpoint(lifetime_seconds: i64) -> (String, Arc<AtomicU64>) {
    let issued = Arc::new(AtomicU64::new(0));
    let state = Identity {
        issued: issued.clone(),
        lifetime_seconds,
    };
    let base = serve(
        Router::new()
            .route("/msi/token", get(token))
            .with_state(state),
    )
    .await;
    (format!("{base}/msi/token"), issued)
}

#[tokio::test]
async fn managed_identity_tokens_are_fetched_and_cached() {
    let (endpoint, issued) = identity_endpoint(3600).await;
    let identity =
        ManagedIdentity::app_service(reqwest::Client::new(), &endpoint, SECRET, STORAGE_RESOURCE);
    assert_eq!(identity.token().await.expect("token"), "token-1");
    assert_eq!(identity.token().await.expect("cached"), "token-1");
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one fetch for both");
}

#[tokio::test]
async fn tokens_close_to_expiry_are_fetched_again() {
    // four minutes left: inside the five-minute margin, so never served from the cache
    let (endpoint, issued) = identity_endpoint(240).await;
    let identity =
        ManagedIdentity::app_service(reqwest::Client::new(), &endpoint, SECRET, STORAGE_RESOURCE);
    assert_eq!(identity.token().await.expect("token"), "token-1");
    assert_eq!(identity.token().await.expect("token"), "token-2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn identity_failures_are_errors_without_the_secret() {
    let (endpoint, _) = identity_endpoint(3600).await;
    let identity = ManagedIdentity::app_service(
        reqwest::Client::new(),
        &endpoint,
        "wrong-secret",
        STORAGE_RESOURCE,
    );
    let error = identity.token().await.expect_err("refused").to_string();
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains("wrong-secret"), "{error}");
}

#[tokio::test]
async fn a_store_on_an_endpoint_url_sends_bearer_tokens() {
    let (identity_url, _) = identity_endpoint(3600).await;
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = seen.clone();
    let tables = Router::new().route(
        "/Tables",
        post(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                record
                    .lock()
                    .expect("lock")
                    .push((header("authorization"), header("x-ms-version")));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let endpoint = serve(tables).await;
    let provider = Arc::new(ManagedIdentity::app_service(
        reqwest::Client::new(),
        &identity_url,
        SECRET,
        STORAGE_RESOURCE,
    ));
    TableStore::connect_with_tokens(&endpoint, provider, "bearer")
        .await
        .expect("tables created");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 5, "one create per table");
    for (authorization, version) in seen {
        assert_eq!(authorization, "Bearer token-1");
        assert!(version.as_str() >= "2019-02-02", "{version}");
    }
}
