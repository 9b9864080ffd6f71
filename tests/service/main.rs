//! The service shell over real stores: full rollouts, restarts, concurrent instances, dead
//! letters.

mod concurrency;
mod flow;
mod http;
mod restart;
mod support;
