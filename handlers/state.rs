//! What every handler shares, the triggers and the API alike: the input sink, the rollout
//! service and the API's authorization settings. Built once at startup; no I/O here.

use crate::config::AuthSettings;
use crate::inputs::InputSink;
use crate::service::RolloutService;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where decoded inputs go.
    pub sink: Arc<dyn InputSink>,
    /// The rollout service, when the handler runs with a store.
    pub service: Option<Arc<RolloutService>>,
    /// Who may call the operator API.
    pub auth: Arc<AuthSettings>,
}

impl AppState {
    /// Inputs go to `sink`; no store behind the API.
    pub fn with_sink(sink: Arc<dyn InputSink>, auth: AuthSettings) -> Self {
        AppState {
            sink,
            service: None,
            auth: Arc::new(auth),
        }
    }

    /// Inputs go to the rollout service, which also serves the API.
    pub fn with_service(service: Arc<RolloutService>, auth: AuthSettings) -> Self {
        AppState {
            sink: service.clone(),
            service: Some(service),
            auth: Arc::new(auth),
        }
    }
}
