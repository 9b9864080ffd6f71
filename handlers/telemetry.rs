//! Logs: `tracing` as JSON lines on stdout, which the Functions host collects.
//!
//! Lines logged while serving an invocation carry a `span` object with the `function` name
//! and the `invocation_id`. `RUST_LOG` sets the filter (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber for the process. Call once, from `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .init();
}
