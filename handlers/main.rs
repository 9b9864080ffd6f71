//! The `patchwave` binary: `serve` (what the Functions host starts) and `package`.

use clap::{Parser, Subcommand};
use patchwave::{config::Settings, inputs::LoggingSink, package, startup, telemetry};
use std::path::PathBuf;
use std::sync::Arc;

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
    let app = startup::Application::bind(port, Arc::new(LoggingSink)).await?;
    tracing::info!(address = %app.local_addr()?, "patchwave listening");
    app.serve(startup::shutdown_signal()).await
}
