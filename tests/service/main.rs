//! The service shell over real stores: full rollouts, restarts, concurrent instances, dead
//! letters and their retention.

#[path = "../store_conformance/azurite.rs"]
mod azurite;
mod concurrency;
mod flow;
mod gated;
mod health;
mod http;
mod paging;
mod restart;
mod retention;
mod support;
