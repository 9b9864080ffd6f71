//! How an Azure call fails, typed as retryable or not; shared by the credential and the REST
//! pipeline (no I/O here).

/// A failed Azure call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzureError {
    /// The service answered with an error status.
    #[error("{method} {path}: HTTP {status} {code}: {message}")]
    Http {
        /// Method.
        method: String,
        /// Path (no query string, no secrets).
        path: String,
        /// Status code.
        status: u16,
        /// Error code from the body, if any.
        code: String,
        /// Error message from the body, if any.
        message: String,
    },
    /// No answer (connection, timeout).
    #[error("{method} {path}: {message}")]
    Transport {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// What happened.
        message: String,
    },
    /// An answer that could not be read.
    #[error("{0}")]
    Decode(String),
    /// No token could be had.
    #[error("credential: {0}")]
    Credential(String),
}

impl AzureError {
    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            AzureError::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            AzureError::Transport { .. } | AzureError::Credential(_) => true,
            AzureError::Decode(_) => false,
        }
    }

    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}
