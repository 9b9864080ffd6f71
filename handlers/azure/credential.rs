//! Tokens for every Azure call (Device Update, Resource Manager, IoT Hub, Event Hubs and the
//! Table store), from the one credential `PATCHWAVE_CREDENTIAL` chooses; `none` only for local
//! stand-ins. `azure_identity` reads its platform's variables (`IDENTITY_ENDPOINT`, …) itself.

use super::error::AzureError;

/// Something that hands out bearer tokens for a scope.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A token for `scope`, or `None` when requests go unauthenticated (stand-ins).
    async fn token(&self, scope: &str) -> Result<Option<String>, AzureError>;
}

/// No token: for local stand-ins only.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCredential;

#[async_trait::async_trait]
impl TokenSource for NoCredential {
    async fn token(&self, _scope: &str) -> Result<Option<String>, AzureError> {
        Ok(None)
    }
}

/// `PATCHWAVE_CREDENTIAL`: which identity patchwave uses toward Azure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// The Function App's managed identity (App Service, VM, Arc).
    ManagedIdentity,
    /// The developer's `az login` / `azd auth login`.
    DeveloperTools,
    /// A service principal: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// No token (local stand-ins only).
    None,
}

impl CredentialKind {
    /// Parses the variable's value.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "managed-identity" => Ok(CredentialKind::ManagedIdentity),
            "developer-tools" => Ok(CredentialKind::DeveloperTools),
            "client-secret" => Ok(CredentialKind::ClientSecret),
            "none" => Ok(CredentialKind::None),
            other => Err(format!(
                "`{other}` is not one of managed-identity, developer-tools, client-secret, none"
            )),
        }
    }
}

/// A token credential of `azure_identity`, with tokens cached per scope until five minutes
/// before they expire.
pub struct AzureCredential {
    inner: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    cache: tokio::sync::Mutex<
        std::collections::HashMap<String, (String, azure_core::time::OffsetDateTime)>,
    >,
}

/// Tokens are renewed this long before they expire.
const RENEW_BEFORE_SECONDS: i64 = 300;

impl AzureCredential {
    /// Builds the credential of `kind` (`None` for [`CredentialKind::None`]);
    /// `client_secret` is (tenant, client id, secret) for [`CredentialKind::ClientSecret`].
    pub fn build(
        kind: CredentialKind,
        client_secret: Option<&(String, String, String)>,
    ) -> Result<Option<std::sync::Arc<dyn azure_core::credentials::TokenCredential>>, String> {
        use azure_identity::{
            ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential,
        };
        let credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential> = match kind {
            CredentialKind::None => return Ok(None),
            CredentialKind::ManagedIdentity => {
                ManagedIdentityCredential::new(None).map_err(|e| e.to_string())?
            }
            CredentialKind::DeveloperTools => {
                DeveloperToolsCredential::new(None).map_err(|e| e.to_string())?
            }
            CredentialKind::ClientSecret => {
                let (tenant, client, secret) = client_secret.ok_or(
                    "client-secret needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                )?;
                let secret = azure_core::credentials::Secret::new(secret.clone());
                ClientSecretCredential::new(tenant, client.clone(), secret, None)
                    .map_err(|e| e.kind().to_string())?
            }
        };
        Ok(Some(credential))
    }

    /// Wraps a credential with the token cache.
    pub fn new(inner: std::sync::Arc<dyn azure_core::credentials::TokenCredential>) -> Self {
        AzureCredential {
            inner,
            cache: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for AzureCredential {
    async fn token(&self, scope: &str) -> Result<Option<String>, AzureError> {
        let mut cache = self.cache.lock().await;
        #[allow(clippy::disallowed_methods)] // token expiry is wall-clock time
        let now = azure_core::time::OffsetDateTime::now_utc();
        if let Some((token, expires)) = cache.get(scope) {
            if *expires - azure_core::time::Duration::seconds(RENEW_BEFORE_SECONDS) > now {
                return Ok(Some(token.clone()));
            }
        }
        let access = self.inner.get_token(&[scope], None).await.map_err(|e| {
            AzureError::Credential(format!("no token for {scope}: {}", kind_of(e.kind())))
        })?;
        let token = access.token.secret().to_string();
        cache.insert(scope.to_string(), (token.clone(), access.expires_on));
        Ok(Some(token))
    }
}

/// What went wrong, without the message (which may quote a response): the kind, and for an
/// error status the status code.
fn kind_of(kind: &azure_core::error::ErrorKind) -> String {
    match kind {
        azure_core::error::ErrorKind::HttpResponse { status, .. } => {
            format!("HTTP {}", u16::from(*status))
        }
        other => other.to_string(),
    }
}
