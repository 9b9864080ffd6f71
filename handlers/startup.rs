//! Binding the listener and serving the router until shutdown.

use crate::azure::credential::{AzureCredential, NoCredential, TokenSource};
use crate::azure::device_update::{self, DeviceUpdateClient};
use crate::azure::events::{EventHubsSink, JsonLinesSink, LifecycleSink};
use crate::azure::iot_hub::{self, IotHubClient};
use crate::azure::resource_manager::{self, ResourceManagerClient};
use crate::azure::rest::{RestClient, RetryPolicy};
use crate::azure::AzureExecutor;
use crate::config::{AzureSettings, Settings, StoreSpec};
use crate::ports::SystemClock;
use crate::router::router;
use crate::service::RolloutService;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens the store `PATCHWAVE_STORE` names. A Table Storage endpoint URL is reached with
/// tokens from the credential `PATCHWAVE_CREDENTIAL` names; a connection string with its key.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    use crate::store::table::{TableStore, DEFAULT_PREFIX};
    match &settings.store {
        StoreSpec::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
        StoreSpec::Table(target)
            if target.starts_with("http://") || target.starts_with("https://") =>
        {
            let credential = AzureCredential::build(
                settings.azure.credential,
                settings.azure.client_secret.as_ref(),
            )
            .map_err(|e| anyhow::anyhow!("PATCHWAVE_CREDENTIAL: {e}"))?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "a Table Storage endpoint needs a credential (PATCHWAVE_CREDENTIAL is none)"
                )
            })?;
            let tokens = Arc::new(StorageTokens(AzureCredential::new(credential)));
            Ok(Arc::new(
                TableStore::connect_with_tokens(target, tokens, DEFAULT_PREFIX).await?,
            ))
        }
        StoreSpec::Table(connection_string) => {
            Ok(Arc::new(TableStore::connect(connection_string).await?))
        }
    }
}

/// Storage tokens from the shared Azure credential.
struct StorageTokens(AzureCredential);

/// Token scope of Azure Storage.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

#[async_trait::async_trait]
impl crate::store::table::TokenProvider for StorageTokens {
    async fn token(&self) -> Result<String, crate::store::StoreError> {
        match self.0.token(STORAGE_SCOPE).await {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err(crate::store::StoreError::Backend(
                "no credential for Table Storage".into(),
            )),
            Err(error) => Err(crate::store::StoreError::Backend(error.to_string())),
        }
    }
}

/// The production service: the configured store, the system clock, the executor.
pub async fn build_service(settings: &Settings) -> anyhow::Result<Arc<RolloutService>> {
    let store = open_store(settings).await?;
    store.ping().await?;
    let executor = Arc::new(build_executor(&settings.azure)?);
    Ok(Arc::new(
        RolloutService::new(store, executor, Arc::new(SystemClock)).with_dead_letter_retention(
            chrono::Duration::days(settings.dead_letter_retention_days.into()),
            settings.dead_letter_max,
        ),
    ))
}

/// The Azure clients the settings name; an effect whose service is not configured waits in
/// the outbox with a message naming the variable to set.
pub fn build_executor(azure: &AzureSettings) -> anyhow::Result<AzureExecutor> {
    let credential = AzureCredential::build(azure.credential, azure.client_secret.as_ref())
        .map_err(|e| anyhow::anyhow!("PATCHWAVE_CREDENTIAL: {e}"))?;
    let tokens: Arc<dyn TokenSource> = match &credential {
        Some(inner) => Arc::new(AzureCredential::new(inner.clone())),
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
    let events: Arc<dyn LifecycleSink> = match (&azure.eventhub, &credential, &azure.events_file) {
        (Some((namespace, hub)), Some(_), _) => Arc::new(EventHubsSink::new(
            namespace,
            hub,
            tokens.clone(),
            RetryPolicy::default(),
        )?),
        (Some(_), None, _) => anyhow::bail!(
            "lifecycle events to Event Hubs need a credential (PATCHWAVE_CREDENTIAL is none)"
        ),
        (None, _, Some(path)) => Arc::new(JsonLinesSink::file(path.clone())?),
        (None, _, None) => Arc::new(JsonLinesSink::stdout()),
    };
    Ok(AzureExecutor::new(
        device_update,
        resource_manager,
        iot_hub,
        events,
    ))
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
