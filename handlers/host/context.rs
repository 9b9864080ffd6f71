//! Who is being invoked and by which invocation, taken from the host's request headers.

use axum::http::HeaderMap;

/// Header the host puts on every invocation (also on forwarded HTTP requests).
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";
/// Header naming the host's version.
pub const HOST_VERSION_HEADER: &str = "x-azure-functions-hostversion";

/// Identity of one invocation, for logs, dead letters and idempotency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationContext {
    /// The function name (folder name in `function-definitions/`).
    pub function: &'static str,
    /// `X-Azure-Functions-InvocationId`, or `-` when called without the host.
    pub invocation_id: String,
    /// `X-Azure-Functions-HostVersion`, when present.
    pub host_version: Option<String>,
}

impl InvocationContext {
    /// Reads the invocation's identity from the request headers.
    pub fn from_headers(function: &'static str, headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(|value| super::json::clip(value, 100))
        };
        InvocationContext {
            function,
            invocation_id: text(INVOCATION_ID_HEADER).unwrap_or_else(|| "-".to_string()),
            host_version: text(HOST_VERSION_HEADER),
        }
    }
}
