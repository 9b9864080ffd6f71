//! The operator CLI: `patchwave rollouts …` and `patchwave compliance` over the operator API
//! of a local or deployed instance (URL and function key from flags or the environment).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where the API is and how to call it.
#[derive(Debug, Clone, Args)]
pub struct ApiTarget {
    /// Base URL of the instance (the Function App, or a local `patchwave serve`).
    #[arg(long, env = "PATCHWAVE_URL", default_value = "http://127.0.0.1:7071")]
    pub url: String,
    /// Function key, sent as `x-functions-key`.
    #[arg(long, env = "PATCHWAVE_FUNCTION_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// Rollout commands.
#[derive(Debug, Clone, Subcommand)]
pub enum RolloutsCommand {
    /// Create a rollout from a plan file (JSON).
    Create {
        /// The plan.
        plan: PathBuf,
        /// Makes a repeated create return the first rollout.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List rollouts.
    List {
        /// Only rollouts in this state (e.g. Deploying).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show a rollout with its waves and decisions.
    Show {
        /// Rollout id.
        id: String,
    },
    /// Show a rollout's audit trail.
    Events {
        /// Rollout id.
        id: String,
    },
    /// Pause a rollout.
    Pause(Reasoned),
    /// Resume a paused rollout.
    Resume(Reasoned),
    /// Approve the next wave.
    Approve(Reasoned),
    /// Cancel a rollout.
    Cancel(Reasoned),
    /// Roll a rollout back.
    Rollback(Reasoned),
}

/// One API call: method, path, JSON body, extra headers.
pub type ApiRequest = (
    reqwest::Method,
    String,
    Option<Value>,
    Vec<(String, String)>,
);

/// A command on a rollout with its reason.
#[derive(Debug, Clone, Args)]
pub struct Reasoned {
    /// Rollout id.
    pub id: String,
    /// Why (kept in the audit log).
    #[arg(long)]
    pub reason: String,
}

impl RolloutsCommand {
    /// The HTTP call this command makes: method, path, body, extra headers.
    pub fn request(&self) -> anyhow::Result<ApiRequest> {
        use reqwest::Method;
        let command = |verb: &str, r: &Reasoned| {
            (
                Method::POST,
                format!("/api/rollouts/{}/{verb}", r.id),
                Some(json!({"reason": r.reason})),
                Vec::new(),
            )
        };
        Ok(match self {
            RolloutsCommand::Create {
                plan,
                idempotency_key,
            } => {
                let text = std::fs::read_to_string(plan)
                    .with_context(|| format!("reading {}", plan.display()))?;
                let body: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", plan.display()))?;
                let headers = idempotency_key
                    .iter()
                    .map(|k| ("Idempotency-Key".to_string(), k.clone()))
                    .collect();
                (Method::POST, "/api/rollouts".into(), Some(body), headers)
            }
            RolloutsCommand::List { state: Some(state) } => (
                Method::GET,
                format!("/api/rollouts?state={state}"),
                None,
                Vec::new(),
            ),
            RolloutsCommand::List { state: None } => {
                (Method::GET, "/api/rollouts".into(), None, Vec::new())
            }
            RolloutsCommand::Show { id } => {
                (Method::GET, format!("/api/rollouts/{id}"), None, Vec::new())
            }
            RolloutsCommand::Events { id } => (
                Method::GET,
                format!("/api/rollouts/{id}/events"),
                None,
                Vec::new(),
            ),
            RolloutsCommand::Pause(r) => command("pause", r),
            RolloutsCommand::Resume(r) => command("resume", r),
            RolloutsCommand::Approve(r) => command("approve", r),
            RolloutsCommand::Cancel(r) => command("cancel", r),
            RolloutsCommand::Rollback(r) => command("rollback", r),
        })
    }
}

/// Which devices `patchwave compliance` lists.
#[derive(Debug, Clone, clap::Args)]
pub struct ComplianceFilter {
    /// Only this rollout's devices.
    #[arg(long)]
    pub rollout: Option<String>,
    /// Only this device group.
    #[arg(long)]
    pub group: Option<String>,
    /// Only devices in this status: onTarget, behind, failed or timedOut.
    #[arg(long, value_parser = ["onTarget", "behind", "failed", "timedOut", "unhealthy"])]
    pub status: Option<String>,
}

/// `patchwave compliance`: the summary, or with a filter every matching device (following
/// `nextLink`) as one JSON line each.
pub async fn run_compliance(target: &ApiTarget, filter: &ComplianceFilter) -> anyhow::Result<()> {
    let pairs: Vec<(&str, &String)> = [
        ("rollout", &filter.rollout),
        ("group", &filter.group),
        ("status", &filter.status),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
    .collect();
    if pairs.is_empty() {
        let answer = call(target, reqwest::Method::GET, "/api/compliance", None, &[]).await?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value =
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
            format!("{name}={value}")
        })
        .collect();
    let mut next = Some(format!(
        "/api/compliance/devices?limit=1000&{}",
        query.join("&")
    ));
    while let Some(path) = next.take() {
        let page = call(target, reqwest::Method::GET, &path, None, &[]).await?;
        for device in page["value"].as_array().into_iter().flatten() {
            println!("{device}");
        }
        next = page["nextLink"]
            .as_str()
            .map(|link| match link.find("/api/") {
                Some(start) => link[start..].to_string(),
                None => link.to_string(),
            });
    }
    Ok(())
}

/// Sends one API call and returns the JSON answer; a problem+json answer becomes an error
/// naming its title, detail and listed problems.
pub async fn call(
    target: &ApiTarget,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    headers: &[(String, String)],
) -> anyhow::Result<Value> {
    let url = format!("{}{path}", target.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(key) = &target.key {
        request = request.header("x-functions-key", key);
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(answer);
    }
    let mut message = format!(
        "{} {}",
        status.as_u16(),
        answer
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("error")
    );
    if let Some(detail) = answer.get("detail").and_then(Value::as_str) {
        message.push_str(&format!(": {detail}"));
    }
    for problem in answer
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message.push_str(&format!("\n  - {}", problem.as_str().unwrap_or_default()));
    }
    bail!(message)
}

/// Runs a rollouts command and prints the answer.
pub async fn run_rollouts(target: &ApiTarget, command: &RolloutsCommand) -> anyhow::Result<()> {
    let (method, path, body, headers) = command.request()?;
    let answer = call(target, method, &path, body, &headers).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
