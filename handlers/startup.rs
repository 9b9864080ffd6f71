//! Binding the listener and serving the router until shutdown.

use crate::azure::credential::{AzureCredential, NoCredential, TokenSource};
use crate::azure::device_update::{self, DeviceUpdateClient};
use crate::azure::events::{EventHubsSink, JsonLinesSink, LifecycleSink};
use crate::azure::iot_hub::{self, IotHubClient};
use crate::azure::resource_manager::{self, ResourceManagerClient};
use crate::azure::rest::{RestClient, RetryPolicy};
use crate::azure::AzureExecutor;
use crate::config::{AzureSettings, Settings, StoreLocation};
use crate::ports::SystemClock;
use crate::router::router;
use crate::service::RolloutService;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The one credential for every Azure call (`PATCHWAVE_CREDENTIAL`), the Table store's
/// included: `None` for `none` (local stand-ins only, requests go unauthenticated).
pub fn credential(azure: &AzureSettings) -> anyhow::Result<Option<Arc<AzureCredential>>> {
    let credential = AzureCredential::build(azure.credential, azure.client_secret.as_ref())
        .map_err(|e| anyhow::anyhow!("PATCHWAVE_CREDENTIAL: {e}"))?;
    Ok(credential.map(|inner| Arc::new(AzureCredential::new(inner))))
}

/// Opens the store `PATCHWAVE_STORE` names. A Table Storage endpoint URL is reached with
/// tokens from `credential`; a connection string with its key.
pub async fn open_store(
    location: &StoreLocation,
    credential: Option<Arc<AzureCredential>>,
) -> anyhow::Result<Arc<dyn Store>> {
    use crate::store::table::{TableStore, DEFAULT_PREFIX};
    Ok(match location {
        StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        StoreLocation::TableConnectionString(connection_string) => {
            Arc::new(TableStore::connect(connection_string).await?)
        }
        StoreLocation::TableEndpoint(endpoint) => {
            let tokens: Arc<dyn TokenSource> = credential.ok_or_else(|| {
                anyhow::anyhow!(
                    "a Table Storage endpoint needs a credential (PATCHWAVE_CREDENTIAL is none)"
                )
            })?;
            Arc::new(
                TableStore::connect_with_tokens(endpoint.clone(), tokens, DEFAULT_PREFIX).await?,
            )
        }
    })
}

/// The production service: the configured store, the system clock, the executor, all on
/// one credential built here.
pub async fn build_service(settings: &Settings) -> anyhow::Result<Arc<RolloutService>> {
    let credential = credential(&settings.azure)?;
    let store = open_store(&settings.store, credential.clone()).await?;
    store.ping().await?;
    let executor = Arc::new(build_executor(&settings.azure, credential)?);
    Ok(Arc::new(
        RolloutService::new(store, executor, Arc::new(SystemClock)).with_dead_letter_retention(
            chrono::Duration::days(settings.dead_letter_retention_days.into()),
            settings.dead_letter_max,
        ),
    ))
}

/// The Azure clients the settings name, on `credential`; an effect whose service is not
/// configured waits in the outbox with a message naming the variable to set.
pub fn build_executor(
    azure: &AzureSettings,
    credential: Option<Arc<AzureCredential>>,
) -> anyhow::Result<AzureExecutor> {
    let tokens: Arc<dyn TokenSource> = match &credential {
        Some(credential) => credential.clone(),
        None => Arc::new(NoCredential),
    };
    let rest = |base: &str, scope: &str| {
        RestClient::new(base, scope, tokens.clone(), RetryPolicy::default())
    };
    let device_update = match (&azure.adu_endpoint, &azure.adu_instance) {
        (Some(endpoint), Some(instance)) => Some(DeviceUpdateClient::new(
            rest(endpoint, device_update::SCOPE)?,
            instance,
        )),
        (None, None) => None,
        _ => {
            anyhow::bail!("set both PATCHWAVE_ADU_ENDPOINT and PATCHWAVE_ADU_INSTANCE, or neither")
        }
    };
    let resource_manager = Some(ResourceManagerClient::new(rest(
        &azure.arm_endpoint,
        resource_manager::SCOPE,
    )?));
    let iot_hub = azure
        .iothub
        .as_deref()
        .map(|host| rest(host, iot_hub::SCOPE).map(IotHubClient::new))
        .transpose()?;
    let events = lifecycle_sink(azure, credential.is_some(), &tokens)?;
    Ok(AzureExecutor::new(
        device_update,
        resource_manager,
        iot_hub,
        events,
    ))
}

/// Where lifecycle events go: the Event Hub (which needs a credential), else a JSON-lines
/// file, else stdout.
fn lifecycle_sink(
    azure: &AzureSettings,
    has_credential: bool,
    tokens: &Arc<dyn TokenSource>,
) -> anyhow::Result<Arc<dyn LifecycleSink>> {
    Ok(
        match (&azure.eventhub, has_credential, &azure.events_file) {
            (Some((namespace, hub)), true, _) => Arc::new(EventHubsSink::new(
                namespace,
                hub,
                tokens.clone(),
                RetryPolicy::default(),
            )?),
            (Some(_), false, _) => anyhow::bail!(
                "lifecycle events to Event Hubs need a credential (PATCHWAVE_CREDENTIAL is none)"
            ),
            (None, _, Some(path)) => Arc::new(JsonLinesSink::file(path.clone())?),
            (None, _, None) => Arc::new(JsonLinesSink::stdout()),
        },
    )
}

/// A bound, not yet serving, handler.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

impl Application {
    /// Binds `127.0.0.1:port` (`0` picks a free port) and builds the router.
    pub async fn bind(port: u16, state: AppState) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        Ok(Application {
            listener,
            router: router(state),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until the future `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM (the host stops workers with SIGTERM).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
