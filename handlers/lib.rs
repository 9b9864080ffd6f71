//! patchwave's handler library: the Functions host protocol, trigger adapters, the operator
//! API, and packaging. The pure rollout engine lives in the `rollout-core` crate.

pub mod api;
pub mod azure;
pub mod cli;
pub mod config;
pub mod decode;
pub mod demo;
pub mod host;
pub mod inputs;
pub mod package;
pub mod ports;
pub mod problem;
pub mod router;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod triggers;
