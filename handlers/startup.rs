//! Binding the listener and serving the router until shutdown.

use crate::config::{Settings, StoreSpec};
use crate::ports::SystemClock;
use crate::service::RolloutService;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::triggers::{router, AppState};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens the store `PATCHWAVE_STORE` names.
pub async fn open_store(spec: &StoreSpec) -> anyhow::Result<Arc<dyn Store>> {
    match spec {
        StoreSpec::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
        StoreSpec::Table(_) => {
            anyhow::bail!("the Azure Table store is not built into this version yet")
        }
    }
}

/// The production service: the configured store, the system clock, the executor.
pub async fn build_service(settings: &Settings) -> anyhow::Result<Arc<RolloutService>> {
    let store = open_store(&settings.store).await?;
    store.ping().await?;
    let executor = Arc::new(crate::executor::UnconfiguredAzure);
    Ok(Arc::new(RolloutService::new(
        store,
        executor,
        Arc::new(SystemClock),
    )))
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
