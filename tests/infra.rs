//! The Bicep under infra/ deploys what the binary and the function definitions expect:
//!
//! - the Function App's app settings are exactly the variables the binary reads
//!   (handlers/config.rs), less a short list it deliberately leaves unset, plus the settings the
//!   Functions host and the bindings of function-definitions/ read;
//! - the Event Grid subscription delivers to the `eventGridTrigger` function, and the IoT Hub
//!   route, hub and consumer group are the ones the `eventHubTrigger` function reads;
//! - every function folder is one the infra wires, or one that needs no wiring.
//!
//! There is no Bicep compiler on these machines, so the files are scanned as text (CI parses
//! them with pycep and runs checkov: .ci/check_bicep.py).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn json(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Prefixes of the string literals in handlers/config.rs that name an environment variable.
const VARIABLE_PREFIXES: &[&str] = &[
    "PATCHWAVE_",
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "AZURE_",
    "RUST_LOG",
];

/// Read by the binary but deliberately not set by infra/, each with the reason.
const NOT_SET_BY_INFRA: &[(&str, &str)] = &[
    (
        "PATCHWAVE_DEADLETTER_RETENTION_DAYS",
        "its default (30 days) suits a storage account; set it to change it",
    ),
    (
        "PATCHWAVE_DEADLETTER_MAX",
        "its default (100,000) suits a storage account; set it to change it",
    ),
    (
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "the Functions host sets it when it starts the handler",
    ),
    ("PATCHWAVE_PORT", "only for running outside the host"),
    (
        "PATCHWAVE_FUNCTION_KEYS",
        "standalone only: under the host, the host checks function keys",
    ),
    (
        "PATCHWAVE_EVENTS_FILE",
        "local only: in Azure lifecycle events go to the Event Hub",
    ),
    (
        "AZURE_TENANT_ID",
        "client-secret credential only; Azure uses the managed identity",
    ),
    (
        "AZURE_CLIENT_ID",
        "client-secret only; set, it would also send the managed identity looking for a user-assigned one",
    ),
    ("AZURE_CLIENT_SECRET", "client-secret credential only"),
];

/// Settings the Functions host itself reads (not the binary, not a binding). The last three
/// are Elastic Premium's content share and package mode; Flex Consumption takes the runtime
/// and the package from functionAppConfig instead.
const HOST_SETTINGS: &[&str] = &[
    "AzureWebJobsStorage__accountName",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_RUN_FROM_PACKAGE",
];

const FUNCTION_APP_BICEP: &str = "infra/modules/functionapp.bicep";

/// Whole string literals (`"NAME"`) of `source` that name a variable.
fn variable_literals(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (start, _) in source.match_indices('"') {
        let rest = &source[start + 1..];
        if !VARIABLE_PREFIXES.iter().any(|p| rest.starts_with(p)) {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if rest[name.len()..].starts_with('"') {
            found.insert(name);
        }
    }
    found
}

/// What the binary reads: the literals of handlers/config.rs, plus RUST_LOG, which
/// handlers/telemetry.rs reads through tracing's `EnvFilter::try_from_default_env`.
fn variables_the_binary_reads(config_rs: &str, telemetry_rs: &str) -> BTreeSet<String> {
    let mut names = variable_literals(config_rs);
    if telemetry_rs.contains("EnvFilter::try_from_default_env") {
        names.insert("RUST_LOG".to_string());
    }
    names
}

/// Settings of the Function App: the `name:` entries of every `var …Settings = [` list.
fn bicep_settings(bicep: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut lists = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    let mut pending_name: Option<String> = None;
    for line in bicep.lines() {
        if let Some((list, entries)) = current.as_mut() {
            if line == "]" {
                lists.insert(list.clone(), std::mem::take(entries));
                current = None;
                continue;
            }
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix("name: ") {
                pending_name = Some(name.trim_matches('\'').to_string());
            } else if let Some(value) = trimmed.strip_prefix("value: ") {
                let name = pending_name.take().expect("a value without a name");
                entries.push((name, value.to_string()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("var ") {
            if let Some((list, tail)) = rest.split_once(" = ") {
                if list.ends_with("Settings") && tail.trim() == "[" {
                    current = Some((list.to_string(), Vec::new()));
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated settings list");
    lists
}

fn setting_names(lists: &BTreeMap<String, Vec<(String, String)>>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (list, entries) in lists {
        for (name, _) in entries {
            assert!(names.insert(name.clone()), "{name} is set twice ({list})");
        }
    }
    names
}

/// Settings the bindings read: `connection` (identity-based: `<connection>__fullyQualifiedNamespace`)
/// and every `%NAME%` in a binding property.
fn binding_settings() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, definition) in functions() {
        for binding in definition["bindings"].as_array().expect("bindings") {
            for (key, value) in binding.as_object().expect("binding") {
                let Some(text) = value.as_str() else { continue };
                if key == "connection" {
                    names.insert(format!("{text}__fullyQualifiedNamespace"));
                }
                let mut parts = text.split('%');
                parts.next();
                while let (Some(name), Some(_)) = (parts.next(), parts.next()) {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

/// Every folder of function-definitions/ with its function.json.
fn functions() -> Vec<(String, Value)> {
    let dir = root().join("function-definitions");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("function-definitions") {
        let entry = entry.expect("entry");
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        found.push((
            name.clone(),
            json(&format!("function-definitions/{name}/function.json")),
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "no functions in function-definitions/");
    found
}

fn trigger(definition: &Value) -> &Value {
    definition["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .find(|b| b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")))
        .expect("a trigger binding")
}

/// The difference between the settings infra sets and the ones expected, as a message.
fn compare(
    binary: &BTreeSet<String>,
    bindings: &BTreeSet<String>,
    bicep: &BTreeSet<String>,
) -> Result<(), String> {
    let not_set: BTreeSet<String> = NOT_SET_BY_INFRA
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let mut expected: BTreeSet<String> = binary.difference(&not_set).cloned().collect();
    expected.extend(bindings.iter().cloned());
    expected.extend(HOST_SETTINGS.iter().map(|s| s.to_string()));
    let missing: Vec<_> = expected.difference(bicep).collect();
    let unexpected: Vec<_> = bicep.difference(&expected).collect();
    if missing.is_empty() && unexpected.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{FUNCTION_APP_BICEP}: not set but read: {missing:?}; set but read by nothing: {unexpected:?}"
        ))
    }
}

#[test]
fn the_app_settings_are_exactly_what_the_binary_the_host_and_the_bindings_read() {
    let binary =
        variables_the_binary_reads(&read("handlers/config.rs"), &read("handlers/telemetry.rs"));
    for (name, reason) in NOT_SET_BY_INFRA {
        assert!(
            binary.contains(*name),
            "{name} is listed as read but left unset ({reason}), yet the binary no longer reads it: drop it from NOT_SET_BY_INFRA"
        );
    }
    let lists = bicep_settings(&read(FUNCTION_APP_BICEP));
    assert!(lists.len() >= 2, "settings lists: {:?}", lists.keys());
    let bicep = setting_names(&lists);
    if let Err(problem) = compare(&binary, &binding_settings(), &bicep) {
        panic!("{problem}");
    }

    // every list reaches the site, and the site takes its settings from them alone
    let source = read(FUNCTION_APP_BICEP);
    let concat = source
        .lines()
        .find_map(|l| l.strip_prefix("var appSettings = concat("))
        .expect("var appSettings = concat(…)");
    for list in lists.keys() {
        assert!(
            concat.contains(list.as_str()),
            "{list} is not in appSettings"
        );
    }
    assert!(source.contains("      appSettings: appSettings\n"));
}

#[test]
fn the_settings_carry_the_values_azure_needs() {
    let lists = bicep_settings(&read(FUNCTION_APP_BICEP));
    let value = |name: &str| {
        lists
            .values()
            .flatten()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not set"))
    };
    assert_eq!(value("PATCHWAVE_CREDENTIAL"), "'managed-identity'");
    assert_eq!(value("PATCHWAVE_AUTH"), "'azure'");
    assert!(value("PATCHWAVE_STORE").starts_with("'table:"));
    assert_eq!(value("FUNCTIONS_WORKER_RUNTIME"), "'custom'");
    assert_eq!(value("FUNCTIONS_EXTENSION_VERSION"), "'~4'");
    // Flex Consumption: the same custom handler, declared in functionAppConfig
    let source = read(FUNCTION_APP_BICEP);
    assert!(
        source.contains("  runtime: {\n    name: 'custom'\n"),
        "Flex runtime"
    );
    // the host starts the binary host.json names, which `patchwave package` ships
    let host = json("host.json");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "patchwave"
    );
}

#[test]
fn a_variable_added_to_the_binary_and_not_to_the_bicep_is_caught() {
    let config = format!(
        "{}\nlet extra = lookup(\"PATCHWAVE_SOMETHING_NEW\");\n",
        read("handlers/config.rs")
    );
    let binary = variables_the_binary_reads(&config, &read("handlers/telemetry.rs"));
    let bicep = setting_names(&bicep_settings(&read(FUNCTION_APP_BICEP)));
    let problem = compare(&binary, &binding_settings(), &bicep).expect_err("must fail");
    assert!(problem.contains("PATCHWAVE_SOMETHING_NEW"), "{problem}");

    // and a setting nothing reads
    let mut bicep = bicep;
    bicep.insert("PATCHWAVE_STALE".to_string());
    let binary =
        variables_the_binary_reads(&read("handlers/config.rs"), &read("handlers/telemetry.rs"));
    let problem = compare(&binary, &binding_settings(), &bicep).expect_err("must fail");
    assert!(problem.contains("PATCHWAVE_STALE"), "{problem}");
}

/// `/functions/<Name>` targets of Event Grid subscriptions anywhere under infra/.
fn event_grid_targets() -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    for file in bicep_files() {
        let source = read(&file);
        for (start, _) in source.match_indices("/functions/") {
            let name: String = source[start + "/functions/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            assert!(
                source.contains("endpointType: 'AzureFunction'"),
                "{file}: /functions/{name} outside an AzureFunction destination"
            );
            targets.insert(name);
        }
    }
    targets
}

fn bicep_files() -> Vec<String> {
    let mut files = vec!["infra/main.bicep".to_string()];
    for entry in std::fs::read_dir(root().join("infra/modules")).expect("infra/modules") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if name.ends_with(".bicep") {
            files.push(format!("infra/modules/{name}"));
        }
    }
    files.sort();
    files
}

#[test]
fn the_event_grid_subscription_delivers_maintenance_events_to_the_event_grid_function() {
    let event_grid_functions: BTreeSet<String> = functions()
        .into_iter()
        .filter(|(_, d)| trigger(d)["type"] == "eventGridTrigger")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        event_grid_targets(),
        event_grid_functions,
        "Event Grid subscriptions must target exactly the eventGridTrigger functions"
    );
    let maintenance = read("infra/modules/maintenance.bicep");
    for needed in [
        "topicType: 'Microsoft.Maintenance.MaintenanceConfigurations'",
        "'Microsoft.Maintenance.PreMaintenanceEvent'",
        "'Microsoft.Maintenance.PostMaintenanceEvent'",
        "eventDeliverySchema: 'EventGridSchema'",
        "maintenanceScope: 'InGuestPatch'",
        "rebootSetting: 'IfRequired'",
    ] {
        assert!(maintenance.contains(needed), "maintenance.bicep: {needed}");
    }
}

/// `var name = 'value'` in main.bicep.
fn main_var(name: &str) -> String {
    let main = read("infra/main.bicep");
    let prefix = format!("var {name} = '");
    main.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("main.bicep: {prefix}…'"))
        .to_string()
}

#[test]
fn the_twin_route_hub_and_consumer_group_are_the_ones_the_event_hub_function_reads() {
    let event_hub_functions: Vec<(String, Value)> = functions()
        .into_iter()
        .filter(|(_, d)| trigger(d)["type"] == "eventHubTrigger")
        .collect();
    assert_eq!(
        event_hub_functions.len(),
        1,
        "one Event Hubs function (twin changes) is what infra wires"
    );
    let (name, definition) = &event_hub_functions[0];
    let binding = trigger(definition);

    // consumer group: function.json ↔ main.bicep ↔ the consumer group resource
    assert_eq!(
        binding["consumerGroup"].as_str(),
        Some(main_var("twinConsumerGroup").as_str()),
        "{name}: consumerGroup"
    );
    let eventhubs = read("infra/modules/eventhubs.bicep");
    let consumer = eventhubs
        .split("resource twinConsumer 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@")
        .nth(1)
        .expect("twinConsumer resource");
    assert!(consumer.contains("parent: twinHub\n  name: twinConsumerGroup\n"));

    // hub name: %SETTING% in function.json ↔ the setting ↔ the hub the route feeds
    let hub_setting = binding["eventHubName"]
        .as_str()
        .and_then(|s| s.strip_prefix('%'))
        .and_then(|s| s.strip_suffix('%'))
        .expect("eventHubName is %SETTING%");
    let lists = bicep_settings(&read(FUNCTION_APP_BICEP));
    let value = lists
        .values()
        .flatten()
        .find(|(n, _)| n == hub_setting)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{hub_setting} not set"));
    assert_eq!(value, "twinHubName");
    let main = read("infra/main.bicep");
    for module in ["iotHub", "functionApp"] {
        let block = main
            .split(&format!("\nmodule {module} "))
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .unwrap_or_else(|| panic!("main.bicep: module {module}"));
        assert!(
            block.contains("    twinHubName: eventHubs.outputs.twinHubName\n"),
            "module {module} must take the twin hub of the Event Hubs module"
        );
    }
    assert!(main.contains("    twinHubName: twinHubName\n"));

    // connection: identity-based, on the namespace of that hub
    let connection = binding["connection"].as_str().expect("connection");
    let namespace = lists
        .values()
        .flatten()
        .find(|(n, _)| *n == format!("{connection}__fullyQualifiedNamespace"))
        .map(|(_, v)| v.as_str());
    assert_eq!(namespace, Some("eventHubsNamespace"));

    // the route: twin change notifications to that hub, with an identity
    let iothub = read("infra/modules/iothub.bicep");
    for needed in [
        "source: 'TwinChangeEvents'",
        "entityPath: twinHub.name",
        "authenticationType: 'identityBased'",
    ] {
        assert!(iothub.contains(needed), "iothub.bicep: {needed}");
    }
}

#[test]
fn every_function_is_wired_or_needs_no_wiring() {
    let targets = event_grid_targets();
    let host = json("host.json");
    let prefix = host["extensions"]["http"]["routePrefix"]
        .as_str()
        .unwrap_or("api")
        .to_string();
    let workflow = read("infra/workflows/rollout-approval.json");
    let settings = setting_names(&bicep_settings(&read(FUNCTION_APP_BICEP)));
    for (name, definition) in functions() {
        let kind = trigger(&definition)["type"].as_str().unwrap_or_default();
        match kind {
            "eventGridTrigger" => assert!(targets.contains(&name), "{name}: no subscription"),
            // its connection and hub settings are set (route and consumer group: above)
            "eventHubTrigger" => {
                let binding = trigger(&definition);
                let connection = binding["connection"].as_str().unwrap_or_default();
                let hub = binding["eventHubName"].as_str().unwrap_or_default();
                assert!(
                    settings.contains(&format!("{connection}__fullyQualifiedNamespace"))
                        && settings.contains(hub.trim_matches('%')),
                    "{name}: connection {connection} or hub {hub} not set"
                );
            }
            // the schedule lives in function.json; nothing to deploy
            "timerTrigger" => {}
            // the Operator API: reached at https://<app>/<routePrefix>/…, as the Logic App does
            "httpTrigger" => assert!(
                workflow.contains(&format!("/{prefix}/rollouts")),
                "{name}: the example workflow does not call /{prefix}/rollouts"
            ),
            other => panic!("{name}: infra/ does not know how to wire a {other}"),
        }
    }
}

#[test]
fn the_example_workflow_creates_polls_and_approves_through_the_operator_api() {
    let workflow = json("infra/workflows/rollout-approval.json");
    let text = workflow.to_string();
    for needed in [
        "/api/rollouts",
        "AwaitingApproval",
        "/approve",
        "x-functions-key",
        "ManagedServiceIdentity",
        "Idempotency-Key",
    ] {
        assert!(text.contains(needed), "workflow: {needed}");
    }
    assert!(workflow["actions"]["Until_a_gate_or_the_end"]["actions"]["Get_rollout"].is_object());
}
