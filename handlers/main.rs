//! The `patchwave` binary: `serve` (what the Functions host starts) and the other commands.

use clap::{Parser, Subcommand};
use patchwave::cli::{ApiTarget, RolloutsCommand};
use patchwave::state::AppState;
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
    /// Run a whole rollout on this machine: the Azure stand-in with a simulated fleet and the
    /// handler on SQLite, through the real HTTP contract. Needs no Azure subscription.
    Demo {
        /// Devices in all (5% canary, 25% pilot, 70% fleet).
        #[arg(long, default_value_t = 2000)]
        devices: usize,
        /// Share of the pilot wave's devices that fail (enough to open a rollback).
        #[arg(long, default_value_t = 0.12)]
        failure_rate: f64,
        /// No failing wave: the rollout completes.
        #[arg(long)]
        healthy: bool,
        /// Seed of the simulation.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Folder for the database, the events and the JSON report.
        #[arg(long, default_value = "patchwave-demo")]
        out: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Keep the handler, its dashboard and the stand-in running after the rollout ends,
        /// until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Serve the local Azure stand-in alone (Device Update, Resource Manager, IoT Hub), e.g.
    /// to point a `patchwave serve` at it with PATCHWAVE_*_ENDPOINT variables.
    Standin {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 7090)]
        port: u16,
        /// The handler to deliver twin changes and maintenance events to.
        #[arg(long)]
        handler: Option<String>,
        /// Devices per group (groups canary, pilot, fleet).
        #[arg(long, default_value_t = 2000)]
        devices: usize,
    },
    /// Operate rollouts through the API of a local or deployed instance.
    Rollouts {
        #[command(flatten)]
        target: ApiTarget,
        #[command(subcommand)]
        command: RolloutsCommand,
    },
    /// Hosts and devices side by side: on the target update, behind, failed. With a filter,
    /// every matching device as a JSON line (all pages).
    Compliance {
        #[command(flatten)]
        target: ApiTarget,
        #[command(flatten)]
        filter: patchwave::cli::ComplianceFilter,
    },
    /// List dead letters from the configured store (PATCHWAVE_STORE), newest first, as JSON lines.
    Deadletters {
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print the API description: OpenAPI 3.1 (what GET /api/openapi.json serves), or with
    /// --v2 OpenAPI 2.0 for Logic Apps custom connectors (GET /api/swagger.json).
    Openapi {
        /// OpenAPI 2.0 (Swagger), the form Logic Apps imports.
        #[arg(long)]
        v2: bool,
        /// The Function App's host (e.g. APP.azurewebsites.net) for the 2.0 document's `host`;
        /// omitted without it.
        #[arg(long, requires = "v2")]
        host: Option<String>,
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
        Command::Demo {
            devices,
            failure_rate,
            healthy,
            seed,
            out,
            timeout,
            serve,
        } => {
            let options = patchwave::demo::DemoOptions {
                devices,
                failure_rate,
                healthy,
                seed,
                out,
                limit: std::time::Duration::from_secs(timeout),
                serve,
            };
            demo(options).await
        }
        Command::Standin {
            port,
            handler,
            devices,
        } => standin(port, handler, devices).await,
        Command::Rollouts { target, command } => {
            patchwave::cli::run_rollouts(&target, &command).await
        }
        Command::Compliance { target, filter } => {
            patchwave::cli::run_compliance(&target, &filter).await
        }
        Command::Deadletters { limit } => dead_letters(limit).await,
        Command::Openapi { v2, host } => print_openapi(v2, host.as_deref()),
        Command::Package { out, zip, binary } => {
            let binary = binary.map_or_else(std::env::current_exe, Ok)?;
            let report = package::assemble(&out, &binary, zip.as_deref())?;
            println!("{report}");
            Ok(())
        }
    }
}

/// `patchwave demo`: fails unless the rollout ended completed or rolled back.
async fn demo(options: patchwave::demo::DemoOptions) -> anyhow::Result<()> {
    let last = patchwave::demo::run(options).await?;
    let state = last["state"].as_str().unwrap_or_default();
    anyhow::ensure!(
        matches!(state, "Completed" | "RolledBack"),
        "the demo rollout ended {state}"
    );
    Ok(())
}

/// `patchwave standin`: the demo's Azure stand-in alone, until Ctrl-C.
async fn standin(port: u16, handler: Option<String>, devices: usize) -> anyhow::Result<()> {
    let options = patchwave::demo::DemoOptions {
        devices,
        failure_rate: 0.12,
        healthy: false,
        seed: 7,
        out: PathBuf::new(),
        limit: std::time::Duration::ZERO,
        serve: false,
    };
    let mut config = patchwave::demo::standin_config(&options);
    config.port = port;
    config.handler_url = handler;
    let standin = patchwave_standin::Standin::start(config).await?;
    println!(
        "Azure stand-in at {} (Device Update instance `{}`); Ctrl-C stops it",
        standin.url(),
        patchwave::demo::world::INSTANCE
    );
    standin
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

/// `patchwave deadletters`: from the configured store, as JSON lines.
async fn dead_letters(limit: usize) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let credential = startup::credential(&settings.azure)?;
    let store = startup::open_store(&settings.store, credential).await?;
    for letter in store.dead_letters(limit).await? {
        println!("{}", serde_json::to_string(&letter)?);
    }
    Ok(())
}

fn print_openapi(v2: bool, host: Option<&str>) -> anyhow::Result<()> {
    use patchwave::api::{openapi::ApiDoc, swagger};
    use utoipa::OpenApi as _;
    let document = if v2 {
        let host = match host {
            Some(raw) => Some(
                swagger::host_of(raw)
                    .ok_or_else(|| anyhow::anyhow!("--host {raw:?} is not a host[:port]"))?,
            ),
            None => None,
        };
        swagger::swagger(host.as_deref())?
    } else {
        serde_json::to_value(ApiDoc::openapi())?
    };
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

async fn serve(port: Option<u16>) -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let port = port.unwrap_or(settings.port);
    if settings.auth.open {
        tracing::warn!("PATCHWAVE_AUTH=open: every caller may read, operate and approve; use only on a local machine");
    } else if !settings.auth.platform_auth {
        tracing::warn!("App Service Authentication is off (WEBSITE_AUTH_ENABLED is not True): only function-key callers are accepted, with PATCHWAVE_KEY_ROLES, and requests carrying X-MS-CLIENT-PRINCIPAL are refused; approvals need a named principal, so no wave can be approved until it is on");
    }
    let service = startup::build_service(&settings).await?;
    let app =
        startup::Application::bind(port, AppState::with_service(service, settings.auth.clone()))
            .await?;
    tracing::info!(address = %app.local_addr()?, store = %settings.store.describe(), "patchwave listening");
    app.serve(startup::shutdown_signal()).await
}
