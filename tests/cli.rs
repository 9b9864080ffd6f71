//! The operator CLI against a real `patchwave serve`: create from a plan file, list, show,
//! pause, and a refused command's reason, with a function key.

use serde_json::Value;
use sha2::Digest;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .arg("serve")
        .env("PATCHWAVE_PORT", "0")
        .env(
            "PATCHWAVE_STORE",
            format!("sqlite:{}", dir.path().join("cli.db").display()),
        )
        .env(
            "PATCHWAVE_FUNCTION_KEYS",
            hex::encode(sha2::Sha256::digest(b"cli-key")),
        )
        .env("PATCHWAVE_KEY_ROLES", "Rollout.Read,Rollout.Operate")
        .env("PATCHWAVE_CREDENTIAL", "none")
        .env("PATCHWAVE_EVENTS_FILE", dir.path().join("events.jsonl"))
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("a log line").expect("utf-8");
        let log: Value = serde_json::from_str(&line).expect("json log");
        if log["fields"]["message"] == "patchwave listening" {
            break format!(
                "http://{}",
                log["fields"]["address"].as_str().expect("address")
            );
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url,
        _dir: dir,
    }
}

fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .args(args)
        .env("PATCHWAVE_URL", &server.url)
        .env("PATCHWAVE_FUNCTION_KEY", "cli-key")
        .output()
        .expect("cli");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[test]
fn operators_drive_rollouts_from_the_command_line() {
    let server = serve();
    let dir = tempfile::tempdir().expect("dir");
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({
            "name": "CLI test",
            "update": {"provider": "Contoso", "name": "Gateway", "version": "2.4.1"},
            "rollbackUpdate": {"provider": "Contoso", "name": "Gateway", "version": "2.4.0"},
            "waves": [{"name": "canary", "deviceGroup": "canary", "successThresholdPercent": 100,
                "failureThresholdPercent": 5, "minDevicesJudged": 5, "soakMinutes": 30,
                "deviceTimeoutMinutes": 120, "approvalRequired": false, "onFailure": "rollback"}]
        })
        .to_string(),
    )
    .expect("plan");
    let (ok, out, err) = cli(
        &server,
        &["rollouts", "create", plan.to_str().expect("path")],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["state"], "Deploying");

    let (ok, out, _) = cli(&server, &["rollouts", "list", "--state", "Deploying"]);
    assert!(ok);
    assert!(out.contains(&id));
    let (ok, out, _) = cli(
        &server,
        &["rollouts", "pause", &id, "--reason", "change freeze"],
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["state"],
        "Paused"
    );
    let (ok, out, _) = cli(&server, &["rollouts", "show", &id]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).expect("json");
    let paused = shown["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .find(|d| d["kind"] == "rollout.paused")
        .cloned()
        .expect("paused");
    assert!(paused["reason"]
        .as_str()
        .expect("reason")
        .contains("change freeze"));
    assert!(
        paused["actor"].as_str().expect("actor").starts_with("key:"),
        "the key caller is named, not the key"
    );

    let (ok, _, err) = cli(&server, &["rollouts", "approve", &id, "--reason", "go"]);
    assert!(!ok);
    assert!(err.contains("403"), "a key caller cannot approve: {err}");
    let (ok, _, err) = cli(&server, &["rollouts", "create", "/nonexistent/plan.json"]);
    assert!(!ok);
    assert!(err.contains("reading /nonexistent/plan.json"), "{err}");
    let output = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .args(["rollouts", "list"])
        .env("PATCHWAVE_URL", &server.url)
        .env_remove("PATCHWAVE_FUNCTION_KEY")
        .output()
        .expect("cli");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
}
