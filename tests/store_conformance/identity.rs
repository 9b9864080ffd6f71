//! Bearer authorization: a Table store on an endpoint URL takes its tokens from the shared
//! Azure credential (`AzureCredential`, scope `https://storage.azure.com/.default`), cached
//! until five minutes before they expire, and a credential that fails is an error without
//! its secret.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use patchwave::azure::credential::AzureCredential;
use patchwave::store::table::{TableStore, STORAGE_SCOPE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const SECRET: &str = "identity-header-secret";

/// A credential that issues `token-1`, `token-2`, … for the storage scope, or refuses.
#[derive(Debug)]
struct Identity {
    issued: AtomicU64,
    lifetime_seconds: i64,
    refuse: bool,
}

#[async_trait::async_trait]
impl TokenCredential for Identity {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        use azure_core::error::{Error, ErrorKind};
        if self.refuse {
            let kind = ErrorKind::HttpResponse {
                status: azure_core::http::StatusCode::Unauthorized,
                error_code: None,
                raw_response: None,
            };
            return Err(Error::with_message(
                kind,
                format!("bad identity header {SECRET}"),
            ));
        }
        if scopes != [STORAGE_SCOPE] {
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!("unexpected scopes {scopes:?}"),
            ));
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken {
            token: Secret::new(format!("token-{n}")),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::seconds(self.lifetime_seconds),
        })
    }
}

fn identity(lifetime_seconds: i64, refuse: bool) -> Arc<Identity> {
    Arc::new(Identity {
        issued: AtomicU64::new(0),
        lifetime_seconds,
        refuse,
    })
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// A table service that records the `Authorization` and `x-ms-version` of each table create.
async fn tables() -> (reqwest::Url, Arc<Mutex<Vec<(String, String)>>>) {
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
    (endpoint.parse().expect("endpoint URL"), seen)
}

#[tokio::test]
async fn a_store_on_an_endpoint_url_sends_bearer_tokens_from_the_shared_credential() {
    let issuer = identity(3600, false);
    let (endpoint, seen) = tables().await;
    let credential = Arc::new(AzureCredential::new(issuer.clone()));
    TableStore::connect_with_tokens(endpoint, credential, "bearer")
        .await
        .expect("tables created");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 5, "one create per table");
    for (authorization, version) in seen {
        assert_eq!(authorization, "Bearer token-1");
        assert!(version.as_str() >= "2019-02-02", "{version}");
    }
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 1, "one fetch for all");
}

#[tokio::test]
async fn tokens_close_to_expiry_are_fetched_again() {
    // four minutes left: inside the five-minute margin, so never served from the cache
    let issuer = identity(240, false);
    let (endpoint, seen) = tables().await;
    let credential = Arc::new(AzureCredential::new(issuer.clone()));
    TableStore::connect_with_tokens(endpoint, credential, "bearer")
        .await
        .expect("tables created");
    let tokens: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(tokens[..2], ["Bearer token-1", "Bearer token-2"]);
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn identity_failures_are_errors_without_the_secret() {
    let (endpoint, seen) = tables().await;
    let credential = Arc::new(AzureCredential::new(identity(3600, true)));
    let error = TableStore::connect_with_tokens(endpoint, credential, "bearer")
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing sent without a token"
    );
}
