//! `patchwave package`: the app layout the Functions host expects, as a folder and a zip.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

fn trigger_of(definition: &Value) -> Value {
    definition["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .find(|b| b["direction"] == "in")
        .cloned()
        .expect("an input binding")
}

#[test]
fn package_writes_the_layout_the_host_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("app");
    let zip_path = dir.path().join("app.zip");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .args(["package", "--out"])
        .arg(&out)
        .arg("--zip")
        .arg(&zip_path)
        .status()
        .expect("run patchwave package");
    assert!(status.success());

    let host = read_json(&out.join("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(
        host["customHandler"]["description"]["arguments"][0],
        "serve"
    );
    let executable = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .expect("executable path");
    let binary = out.join(executable);
    assert!(binary.is_file(), "{} missing", binary.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&binary)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "binary must be executable");
    }
    assert_eq!(
        std::fs::read(&binary).expect("binary"),
        std::fs::read(env!("CARGO_BIN_EXE_patchwave")).expect("built binary"),
    );

    let expectations = [
        ("PatchEvents", "eventGridTrigger", "event"),
        ("TwinChanges", "eventHubTrigger", "events"),
        ("RolloutTick", "timerTrigger", "tick"),
        ("Operator", "httpTrigger", "req"),
    ];
    for (function, trigger_type, binding) in expectations {
        let definition = read_json(&out.join(function).join("function.json"));
        let trigger = trigger_of(&definition);
        assert_eq!(trigger["type"], trigger_type, "{function}");
        assert_eq!(trigger["name"], binding, "{function}");
    }
    let twin = trigger_of(&read_json(&out.join("TwinChanges/function.json")));
    assert_eq!(
        (twin["cardinality"].as_str(), twin["dataType"].as_str()),
        (Some("many"), Some("string"))
    );
    assert_ne!(
        twin["consumerGroup"], "adum",
        "Device Update's own consumer group"
    );
    assert_ne!(twin["consumerGroup"], "$Default");
    let operator = read_json(&out.join("Operator/function.json"));
    assert_eq!(trigger_of(&operator)["authLevel"], "function");
    assert_eq!(trigger_of(&operator)["route"], "{*path}");
    assert!(operator["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .any(|b| b["type"] == "http" && b["direction"] == "out"));
    let timer = read_json(&out.join("RolloutTick/function.json"));
    assert_eq!(
        trigger_of(&timer)["schedule"],
        "0 * * * * *",
        "every minute"
    );
    assert!(
        timer["retry"].is_object()
            && read_json(&out.join("TwinChanges/function.json"))["retry"].is_object()
    );

    let archive =
        zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("zip")).expect("valid zip");
    let names: BTreeSet<&str> = archive.file_names().collect();
    let expected: BTreeSet<&str> = [
        "host.json",
        "PatchEvents/function.json",
        "DeviceEvents/function.json",
        "TwinChanges/function.json",
        "RolloutTick/function.json",
        "Operator/function.json",
        executable,
    ]
    .into_iter()
    .collect();
    assert_eq!(names, expected);
}

#[test]
fn packaged_definitions_are_the_committed_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed: BTreeSet<String> = std::fs::read_dir(root.join("function-definitions"))
        .expect("function-definitions")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let packaged: BTreeSet<String> = patchwave::package::FUNCTIONS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        committed, packaged,
        "every folder in function-definitions/ is packaged"
    );
}
