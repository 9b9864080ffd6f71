//! The real binary: `serve` on the host's port variable, JSON log lines per invocation.

use crate::support::{event_hub_envelope, reference, HubMessage};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn every_invocation_log_line_names_function_and_invocation_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .arg("serve")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .env(
            "PATCHWAVE_STORE",
            format!("sqlite:{}", dir.path().join("logs.db").display()),
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start patchwave serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first log line");
    let startup: Value = serde_json::from_str(&first).expect("JSON log line");
    assert_eq!(
        startup["fields"]["message"], "patchwave listening",
        "{first}"
    );
    let address = startup["fields"]["address"]
        .as_str()
        .expect("address")
        .to_string();

    let success = reference("azure/adu-agent-reported-success.json");
    let envelope = event_hub_envelope(&[
        HubMessage::agent_report("dev-1", 30, &success),
        HubMessage {
            body: "garbage".into(),
            ..HubMessage::agent_report("dev-2", 31, &success)
        },
    ]);
    let invocation_id = "5b0c3f7e-1111-4e2e-9c1a-7d3e2f1a0b9c";
    let response = reqwest::Client::new()
        .post(format!("http://{address}/TwinChanges"))
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .body(envelope.to_string())
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), 200);
    child.kill().expect("stop");
    let _ = child.wait();

    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(&line.expect("utf-8")).expect("every line is JSON"))
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
