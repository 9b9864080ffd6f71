//! The real binary: `serve` on the host's port variable, JSON log lines per invocation.

use crate::support::{event_hub_envelope, reference, HubMessage};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Stops the server even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `patchwave serve` on a free port with its log on a pipe: the server, its stdout (past the
/// startup lines) and its address.
fn serve(dir: &tempfile::TempDir) -> (KillOnDrop, BufReader<std::process::ChildStdout>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .arg("serve")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .env(
            "PATCHWAVE_STORE",
            format!("sqlite:{}", dir.path().join("logs.db").display()),
        )
        .env("RUST_LOG", "info")
        .env("PATCHWAVE_CREDENTIAL", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start patchwave serve");
    let mut child = KillOnDrop(child);
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    // startup lines come first; the one announcing the address ends them
    let startup: Value = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("log line") > 0,
            "serve exited before listening"
        );
        let log: Value = serde_json::from_str(&line).expect("JSON log line");
        if log["fields"]["message"] == "patchwave listening" {
            break log;
        }
    };
    let address = startup["fields"]["address"]
        .as_str()
        .expect("address")
        .to_string();
    (child, stdout, address)
}

/// Invokes a function of the server once (expecting `200`), stops the server, and returns
/// every line it logged after starting.
async fn invoke_then_stop(
    mut child: KillOnDrop,
    stdout: BufReader<std::process::ChildStdout>,
    url: &str,
    invocation_id: &str,
    envelope: &Value,
) -> Vec<String> {
    let response = reqwest::Client::new()
        .post(url)
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .body(envelope.to_string())
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), 200);
    child.0.kill().expect("stop");
    let _ = child.0.wait();
    stdout.lines().map(|line| line.expect("utf-8")).collect()
}

#[tokio::test]
async fn every_invocation_log_line_names_function_and_invocation_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, stdout, address) = serve(&dir);

    let success = reference("azure/adu-agent-reported-success.json");
    let envelope = event_hub_envelope(&[
        HubMessage::agent_report("dev-1", 30, &success),
        HubMessage {
            body: "garbage".into(),
            ..HubMessage::agent_report("dev-2", 31, &success)
        },
    ]);
    let invocation_id = "5b0c3f7e-1111-4e2e-9c1a-7d3e2f1a0b9c";
    let url = format!("http://{address}/TwinChanges");
    let lines: Vec<Value> = invoke_then_stop(child, stdout, &url, invocation_id, &envelope)
        .await
        .iter()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    assert!(
        lines.len() >= 2,
        "expected the batch summary and the rejected item: {lines:?}"
    );
    for line in &lines {
        assert_eq!(line["span"]["function"], "TwinChanges", "{line}");
        assert_eq!(line["span"]["invocation_id"], invocation_id, "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["fields"]["index"] == 1),
        "{lines:?}"
    );
}

/// The alert rule on failed patch runs (infra/modules/alerts.bicep, `patch-run-failed`) matches
/// the line the handler really logs for Update Manager's failed post-maintenance event: every
/// term of its maintenance clause is in that line as written to stdout (Application Insights
/// keeps the line as the trace's message).
#[tokio::test]
async fn the_failed_patch_run_alert_matches_the_logged_post_maintenance_event() {
    let alerts = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/modules/alerts.bicep"),
    )
    .expect("alerts.bicep");
    let rule = alerts
        .split("name: 'patch-run-failed'")
        .nth(1)
        .expect("the patch-run-failed rule");
    let query = rule
        .lines()
        .find_map(|line| line.trim().strip_prefix("query: '"))
        .expect("its query")
        .replace("\\'", "'");
    let clause = query
        .split_once(" or (")
        .map(|(_, clause)| clause)
        .expect("a maintenance clause");
    let terms: Vec<String> = clause
        .split("contains ")
        .skip(1)
        .map(|rest| {
            let quote = rest.chars().next().expect("a quoted term");
            rest[1..].split(quote).next().expect("closed").to_string()
        })
        .collect();
    assert!(terms.len() >= 2, "{terms:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let (child, stdout, address) = serve(&dir);
    let mut events = reference("azure/eventgrid-post-maintenance-event.json");
    events[0]["data"]["Status"] = "Failed".into();
    let envelope = serde_json::json!({"Data": {"event": events[0].to_string()}, "Metadata": {}});
    let url = format!("http://{address}/PatchEvents");
    let lines = invoke_then_stop(child, stdout, &url, "patch-1", &envelope).await;
    let logged = lines
        .iter()
        .find(|line| line.contains("maintenance event"))
        .unwrap_or_else(|| panic!("no maintenance event line in {lines:?}"));
    for term in &terms {
        assert!(
            logged.contains(term.as_str()),
            "{term:?} is not in {logged}"
        );
    }
}
