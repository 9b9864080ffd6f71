//! The `patchwave` binary: `serve` (what the Functions host starts) and `package`.

use clap::{Parser, Subcommand};
use patchwave::cli::{ApiTarget, RolloutsCommand};
use patchwave::triggers::AppState;
use patchwave::{config::Settings, package, startup, telemetry};
use std::path::PathBuf;

/// patchwave: one rollout for host patches and device updates.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Functions host protocol on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
    Serve {
        /// Port to listen on (overrides FUNCTIONS_CUSTOMHANDLER_PORT and PATCHWAVE_PORT).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Operate rollouts through the API of a local or deployed instance.
    Rollouts {
        #[command(flatten)]
        target: ApiTarget,
        #[command(subcommand)]
        command: RolloutsCommand,
    },
    /// Hosts and devices side by side: on the target update, behind, failed.
    Compliance {
        #[command(flatten)]
        target: ApiTarget,
    },
    /// List dead letters from the configured store (PATCHWAVE_STORE), newest first, as JSON lines.
    Deadletters {
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Assemble the deployable Function App: host.json, one folder per function, the binary.
    Package {
        /// Folder to write the app into (created if missing).
        #[arg(long, default_value = "dist")]
        out: PathBuf,
        /// Also write a zip for zip deploy to this path.
        #[arg(long)]
        zip: Option<PathBuf>,
        /// The binary to ship (default: this executable).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { port } => serve(port).await,
        Command::Rollouts { target, command } => {
            patchwave::cli::run_rollouts(&target, &command).await
        }
        Command::Compliance { target } => {
            let answer =
                patchwave::cli::call(&target, reqwest::Method::GET, "/api/compliance", None, &[])
                    .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Command::Deadletters { limit } => {
            let settings = Settings::from_env()?;
            let store = startup::open_store(&settings.store).await?;
            for letter in store.dead_letters(limit).await? {
                println!("{}", serde_json::to_string(&letter)?);
            }
            Ok(())
        }
        Command::Package { out, zip, binary } => {
            let binary = binary.map_or_else(std::env::current_exe, Ok)?;
            let report = package::assemble(&out, &binary, zip.as_deref())?;
            println!("{report}");
            Ok(())
        }
    }
}

async fn serve(port: Option<u16>) -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let port = port.unwrap_or(settings.port);
    if settings.auth.open {
        tracing::warn!("PATCHWAVE_AUTH=open: every caller may read, operate and approve; use only on a local machine");
    }
    let service = startup::build_service(&settings).await?;
    let app =
        startup::Application::bind(port, AppState::with_service(service, settings.auth.clone()))
            .await?;
    tracing::info!(address = %app.local_addr()?, store = %settings.store.describe(), "patchwave listening");
    app.serve(startup::shutdown_signal()).await
}
