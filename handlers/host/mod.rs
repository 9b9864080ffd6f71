//! The Functions host's custom-handler protocol: envelope in, `Outputs/Logs/ReturnValue` out.

pub mod context;
pub mod envelope;
pub mod json;
pub mod response;

pub use context::InvocationContext;
pub use envelope::{EnvelopeError, Invocation, RetryContext};
pub use response::InvokeResponse;
