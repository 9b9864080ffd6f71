//! Tokens for Azure calls, chosen by `PATCHWAVE_CREDENTIAL`; `none` only for local stand-ins.

use super::rest::AzureError;

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
