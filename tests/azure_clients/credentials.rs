//! Tokens from `azure_identity` credentials are cached per scope until close to expiry.

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use patchwave::azure::credential::{AzureCredential, CredentialKind, TokenSource};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
struct Issuer {
    issued: AtomicUsize,
    lifetime_minutes: i64,
}

#[async_trait::async_trait]
impl TokenCredential for Issuer {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken {
            token: Secret::new(format!("token-{n}-{}", scopes.join(","))),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::minutes(self.lifetime_minutes),
        })
    }
}

#[tokio::test]
async fn tokens_are_reused_per_scope_until_near_expiry() {
    let long = Arc::new(Issuer {
        issued: AtomicUsize::new(0),
        lifetime_minutes: 60,
    });
    let credential = AzureCredential::new(long.clone());
    let first = credential
        .token("https://management.azure.com/.default")
        .await
        .expect("token");
    let again = credential
        .token("https://management.azure.com/.default")
        .await
        .expect("token");
    assert_eq!(first, again);
    let other = credential
        .token("https://api.adu.microsoft.com/.default")
        .await
        .expect("token");
    assert_ne!(first, other, "one token per scope");
    assert_eq!(long.issued.load(Ordering::SeqCst), 2);

    let short = Arc::new(Issuer {
        issued: AtomicUsize::new(0),
        lifetime_minutes: 3,
    });
    let credential = AzureCredential::new(short.clone());
    credential.token("s").await.expect("token");
    credential.token("s").await.expect("token");
    assert_eq!(
        short.issued.load(Ordering::SeqCst),
        2,
        "a token within 5 minutes of expiry is renewed"
    );
}

#[test]
fn credential_kinds_are_built_from_their_names() {
    assert_eq!(
        CredentialKind::parse("Managed-Identity"),
        Ok(CredentialKind::ManagedIdentity)
    );
    assert!(CredentialKind::parse("password").is_err());
    assert!(AzureCredential::build(CredentialKind::None, None)
        .expect("none")
        .is_none());
    let error =
        AzureCredential::build(CredentialKind::ClientSecret, None).expect_err("needs the secret");
    assert!(error.contains("AZURE_CLIENT_SECRET"), "{error}");
    let secret = (
        "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string(),
        "client".to_string(),
        "hunter2".to_string(),
    );
    assert!(
        AzureCredential::build(CredentialKind::ClientSecret, Some(&secret))
            .expect("built")
            .is_some()
    );
}
