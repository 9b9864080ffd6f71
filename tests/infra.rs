//! The Bicep under infra/ deploys what the binary and the function definitions expect:
//!
//! - the Function App's app settings are exactly the variables the binary reads
//!   (handlers/config.rs), less a short list it deliberately leaves unset, plus the settings the
//!   Functions host and the bindings of function-definitions/ read;
//! - the Event Grid subscriptions deliver to the `eventGridTrigger` functions (maintenance
//!   events to `PatchEvents`, the IoT Hub's connection events to `DeviceEvents`), and the IoT
//!   Hub route, hub and consumer group are the ones the `eventHubTrigger` function reads;
//! - the rollout gate's action group posts alerts in the common alert schema to `/api/alerts`;
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
        "client-secret credential only; Azure uses the system-assigned managed identity",
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

/// The block that starts with the line beginning `start` (a `resource …` or `module …` header at
/// the start of a line), up to its closing `}` at the start of a line.
fn block<'a>(source: &'a str, file: &str, start: &str) -> &'a str {
    let at = source
        .match_indices(start)
        .find(|(at, _)| *at == 0 || source[..*at].ends_with('\n'))
        .map(|(at, _)| at)
        .unwrap_or_else(|| panic!("{file}: no {start}…"));
    let rest = &source[at..];
    let end = rest
        .find("\n}\n")
        .unwrap_or_else(|| panic!("{file}: {start}… has no end"));
    &rest[..end + 2]
}

/// The route prefix of the Functions host (host.json), `api` unless set.
fn route_prefix() -> String {
    json("host.json")["extensions"]["http"]["routePrefix"]
        .as_str()
        .unwrap_or("api")
        .to_string()
}

#[test]
fn the_hubs_connection_events_reach_device_events_once_the_code_is_deployed() {
    // the function: an Event Grid trigger like PatchEvents, binding `event`
    let functions: BTreeMap<String, Value> = functions().into_iter().collect();
    let definition = functions
        .get("DeviceEvents")
        .expect("function-definitions/DeviceEvents/function.json");
    let binding = trigger(definition);
    assert_eq!(binding["type"], "eventGridTrigger");
    assert_eq!(binding["name"], "event");
    assert_eq!(binding["direction"], "in");
    assert_eq!(
        definition, &functions["PatchEvents"],
        "DeviceEvents is bound as PatchEvents is"
    );

    // a system topic on the hub, and the subscription to the function: both connection event
    // types, the schema and delivery of PatchEvents' subscription, a dead-letter destination
    let file = "infra/modules/deviceevents.bicep";
    let module = read(file);
    let topic = block(
        &module,
        file,
        "resource topic 'Microsoft.EventGrid/systemTopics@",
    );
    for needed in [
        "    source: hub.id\n",
        "    topicType: 'Microsoft.Devices.IoTHubs'\n",
    ] {
        assert!(topic.contains(needed), "{file}: system topic: {needed}");
    }
    let subscription = block(
        &module,
        file,
        "resource deviceEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@",
    );
    assert!(
        subscription
            .lines()
            .next()
            .is_some_and(|header| header.ends_with("= if (subscribeEvents) {")),
        "{file}: the DeviceEvents subscription does not wait for the code"
    );
    for needed in [
        "  parent: topic\n",
        "endpointType: 'AzureFunction'",
        "resourceId: '${functionAppId}/functions/DeviceEvents'",
        "includedEventTypes: [\n        'Microsoft.Devices.DeviceConnected'\n        'Microsoft.Devices.DeviceDisconnected'\n      ]",
        "deadLetterWithResourceIdentity: {",
        "endpointType: 'StorageBlob'",
        "blobContainerName: deadLetterContainerName",
    ] {
        assert!(subscription.contains(needed), "{file}: subscription: {needed}");
    }
    let maintenance_file = "infra/modules/maintenance.bicep";
    let maintenance = read(maintenance_file);
    let patch_events = block(
        &maintenance,
        maintenance_file,
        "resource patchEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@",
    );
    let line_with = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key}"))
            .to_string()
    };
    for key in [
        "eventDeliverySchema:",
        "maxEventsPerBatch:",
        "maxDeliveryAttempts:",
        "eventTimeToLiveInMinutes:",
    ] {
        assert_eq!(
            line_with(subscription, key),
            line_with(patch_events, key),
            "DeviceEvents' subscription and PatchEvents' differ in {key}"
        );
    }
    // the topic's identity may write dead letters into their container, nothing wider
    let dead_letters = block(
        &module,
        file,
        "resource topicDeadLetters 'Microsoft.Authorization/roleAssignments@",
    );
    assert!(dead_letters.contains("  scope: deadLetterContainer\n"));
    assert!(dead_letters.contains("principalId: topic.identity.principalId"));

    // main.bicep: on this deployment's hub, to this app, gated on codeDeployed
    let main = read("infra/main.bicep");
    let wiring = block(&main, "infra/main.bicep", "module deviceEvents ");
    for needed in [
        "'modules/deviceevents.bicep'",
        "    iotHubName: iotHub.outputs.name\n",
        "    functionAppId: functionApp.outputs.id\n",
        "    subscribeEvents: codeDeployed\n",
        "    deadLetterContainerName: deadLetterContainerName\n",
    ] {
        assert!(
            wiring.contains(needed),
            "main.bicep: module deviceEvents: {needed}"
        );
    }
}

#[test]
fn the_rollout_gate_posts_alerts_in_the_common_alert_schema_to_the_alerts_route() {
    let file = "infra/modules/alerts.bicep";
    let alerts = read(file);
    let gate = block(
        &alerts,
        file,
        "resource rolloutGate 'Microsoft.Insights/actionGroups@",
    );
    // the Operator function's key is read from the running host: the second phase only
    assert!(
        gate.lines()
            .next()
            .is_some_and(|header| header.ends_with("= if (codeDeployed) {")),
        "{file}: the rollout gate does not wait for the code"
    );
    // one receiver: the catch-all Operator function at /<routePrefix>/alerts, common schema
    let functions: BTreeMap<String, Value> = functions().into_iter().collect();
    let operator = trigger(&functions["Operator"]);
    assert_eq!(operator["type"], "httpTrigger");
    assert_eq!(operator["route"], "{*path}");
    let receivers = gate
        .split("azureFunctionReceivers: [")
        .nth(1)
        .expect("azureFunctionReceivers");
    for needed in [
        "functionAppResourceId: functionAppId\n",
        "functionName: 'Operator'\n",
        "httpTriggerUrl: '${functionAppUrl}/${routePrefix}/alerts'\n",
        "useCommonAlertSchema: true\n",
    ] {
        assert!(receivers.contains(needed), "{file}: rollout gate: {needed}");
    }
    assert!(
        alerts.contains(&format!(
            "param routePrefix string = '{}'\n",
            route_prefix()
        )),
        "{file}: routePrefix is not host.json's"
    );
    // no key of its own: no webhook URL carrying one, no listKeys, no secret parameter
    let code: String = alerts
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    for gone in ["serviceUri", "code=", "listKeys", "@secure()"] {
        assert!(!code.contains(gone), "{file}: {gone}");
    }
    assert!(!alerts.contains("useCommonAlertSchema: false"));

    // the example rule: the hub's connected devices, calling the gate, same phase
    let rule = block(
        &alerts,
        file,
        "resource connectedDevicesLow 'Microsoft.Insights/metricAlerts@",
    );
    assert!(rule
        .lines()
        .next()
        .is_some_and(|header| header.ends_with("= if (codeDeployed) {")));
    for needed in [
        "      iotHubId\n",
        "metricNamespace: 'Microsoft.Devices/IotHubs'\n",
        "metricName: 'connectedDeviceCount'\n",
        "timeAggregation: 'Average'\n",
        "operator: 'LessThan'\n",
        "threshold: minConnectedDevices\n",
        "windowSize: 'PT5M'\n",
        "actionGroupId: rolloutGate.id\n",
    ] {
        assert!(rule.contains(needed), "{file}: example rule: {needed}");
    }
    assert!(alerts.contains(
        "output exampleAlertRuleName string = codeDeployed ? connectedDevicesLow.name : ''\n"
    ));

    // main.bicep: this app, this hub, the phase parameter, and the name for plan authors
    let main = read("infra/main.bicep");
    let wiring = block(&main, "infra/main.bicep", "module alerts ");
    for needed in [
        "    codeDeployed: codeDeployed\n",
        "    functionAppId: functionApp.outputs.id\n",
        "    functionAppUrl: functionApp.outputs.url\n",
        "    iotHubId: iotHub.outputs.id\n",
    ] {
        assert!(
            wiring.contains(needed),
            "main.bicep: module alerts: {needed}"
        );
    }
    assert!(main
        .contains("\noutput exampleAlertRuleName string = alerts.outputs.exampleAlertRuleName\n"));
    assert!(read(FUNCTION_APP_BICEP)
        .contains("output url string = 'https://${site.properties.defaultHostName}'\n"));

    // any action group calling a function anywhere under infra/ waits for the code
    for file in bicep_files() {
        let source = read(&file);
        for header in source
            .lines()
            .filter(|l| l.starts_with("resource ") && l.contains("actionGroups@"))
        {
            let group = block(&source, &file, header);
            if group.contains("azureFunctionReceivers") {
                assert!(
                    header.ends_with("= if (codeDeployed) {"),
                    "{file}: an action group calling a function does not wait for the code: {header}"
                );
            }
        }
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
        "ApiConnection",
        "@parameters('$connections')['patchwave']['connectionId']",
        "ManagedServiceIdentity",
        "Idempotency-Key",
    ] {
        assert!(text.contains(needed), "workflow: {needed}");
    }
    assert!(workflow["actions"]["Until_a_gate_or_the_end"]["actions"]["Get_rollout"].is_object());
    // the function key lives in the connection: the definition neither sends nor takes one
    for gone in ["x-functions-key", "functionKey", "?code="] {
        assert!(!text.contains(gone), "workflow: {gone}");
    }
}

/// The OpenAPI 2.0 document the connector is made from, committed for deployment.
const CONNECTOR_DOCUMENT: &str = "infra/connector/patchwave.swagger.json";
/// The command that writes it.
const REGENERATE_CONNECTOR: &str =
    "cargo run -- openapi --v2 > infra/connector/patchwave.swagger.json";
/// Largest file Bicep's loadJsonContent loads (characters, line endings included).
const LOAD_JSON_CONTENT_LIMIT: usize = 1_048_576;

/// A JSON value in a message: short.
fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Where `committed` first differs from `generated`, as a JSON pointer and what differs there.
fn first_difference(committed: &Value, generated: &Value, at: &str) -> Option<String> {
    match (committed, generated) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y, &pointer),
                    (Some(_), None) => Some(format!("{pointer}: only in the committed file")),
                    _ => Some(format!("{pointer}: only in the generated document")),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}/{i}")))
            .or_else(|| {
                (a.len() != b.len())
                    .then(|| format!("{at}: {} items committed, {} generated", a.len(), b.len()))
            }),
        _ => (committed != generated).then(|| {
            format!(
                "{at}: committed {}, generated {}",
                excerpt(committed),
                excerpt(generated)
            )
        }),
    }
}

/// The committed document against the generated one, as parsed JSON.
fn connector_document_is_current(committed: &Value, generated: &Value) -> Result<(), String> {
    match first_difference(committed, generated, "") {
        None => Ok(()),
        Some(difference) => Err(format!(
            "{CONNECTOR_DOCUMENT} is not the document the code generates (first difference: \
             {difference}); it is generated, never edited: regenerate it with `{REGENERATE_CONNECTOR}`"
        )),
    }
}

#[test]
fn the_committed_connector_document_is_the_one_the_code_generates() {
    let text = read(CONNECTOR_DOCUMENT);
    let committed: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{CONNECTOR_DOCUMENT}: {e}; regenerate it with `{REGENERATE_CONNECTOR}`")
    });
    let generated = patchwave::api::swagger::swagger(None).expect("the OpenAPI 2.0 document");
    if let Err(problem) = connector_document_is_current(&committed, &generated) {
        panic!("{problem}");
    }
    assert!(
        text.chars().count() < LOAD_JSON_CONTENT_LIMIT,
        "{CONNECTOR_DOCUMENT} is over what loadJsonContent loads"
    );
    // no host: the connector calls the Function App at its backendService.serviceUrl
    assert!(
        committed.get("host").is_none(),
        "{CONNECTOR_DOCUMENT} names a host"
    );
    assert_eq!(committed["basePath"], "/");

    // and a stale file is caught, with the command that regenerates it
    let mut stale = generated.clone();
    stale["paths"]
        .as_object_mut()
        .expect("paths")
        .remove("/api/rollouts/{id}/cancel");
    let problem = connector_document_is_current(&stale, &generated).expect_err("stale");
    assert!(problem.contains(REGENERATE_CONNECTOR), "{problem}");
    assert!(
        problem.contains("/paths/~1api~1rollouts~1{id}~1cancel: only in the generated document"),
        "{problem}"
    );
    let mut stale = generated.clone();
    stale["info"]["version"] = Value::from("0.0.0");
    let problem = connector_document_is_current(&stale, &generated).expect_err("stale");
    assert!(problem.contains("/info/version: committed"), "{problem}");
    // key order is no difference
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string(&generated).expect("text")).expect("json");
    assert!(connector_document_is_current(&reordered, &generated).is_ok());
}

#[test]
fn the_module_deploys_the_connector_from_the_committed_document_with_the_function_key() {
    let swagger = json(CONNECTOR_DOCUMENT);
    // the connection's one parameter is the document's one security definition
    let definitions = swagger["securityDefinitions"]
        .as_object()
        .expect("securityDefinitions");
    assert_eq!(definitions.len(), 1, "{definitions:?}");
    let definition = definitions.values().next().expect("a definition");
    assert_eq!(definition["type"], "apiKey");
    assert_eq!(definition["in"], "header");
    assert_eq!(definition["name"], "x-functions-key");

    let bicep = read("infra/modules/logicapp.bicep");
    for needed in [
        "resource connector 'Microsoft.Web/customApis@2016-06-01' = {",
        "    apiType: 'Rest'\n",
        "    swagger: loadJsonContent('../connector/patchwave.swagger.json')\n",
        "    backendService: {\n      serviceUrl: 'https://${functionAppHostName}'\n    }\n",
        "    connectionParameters: {\n      api_key: {\n        type: 'securestring'\n      }\n    }\n",
        "resource connection 'Microsoft.Web/connections@2016-06-01' = {",
        "    api: {\n      id: connector.id\n    }\n",
        "    parameterValues: {\n      api_key: key\n    }\n",
        "      '$connections': {\n        value: {\n          patchwave: {\n            connectionId: connection.id\n            connectionName: connection.name\n            id: connector.id\n",
        "    definition: loadJsonContent('../workflows/rollout-approval.json')\n",
    ] {
        assert!(bicep.contains(needed), "logicapp.bicep: {needed}");
    }
    // the key reaches the connection only: no workflow parameter carries it
    let workflow = bicep
        .split("resource workflow 'Microsoft.Logic/workflows@")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("workflow resource");
    assert!(
        !workflow.contains("key"),
        "the workflow resource names the key"
    );
    // the path loadJsonContent is given is the committed file, relative to the module
    assert!(root()
        .join("infra/modules")
        .join("../connector/patchwave.swagger.json")
        .is_file());
}

/// Every action of a workflow definition, those inside conditions, loops and scopes included.
fn workflow_actions(actions: &Value, found: &mut Vec<(String, Value)>) {
    for (name, action) in actions.as_object().into_iter().flatten() {
        found.push((name.clone(), action.clone()));
        workflow_actions(&action["actions"], found);
        workflow_actions(&action["else"]["actions"], found);
        workflow_actions(&action["default"]["actions"], found);
        for case in action["cases"].as_object().into_iter().flatten() {
            workflow_actions(&case.1["actions"], found);
        }
    }
}

/// The document's operation an ApiConnection action calls: its path template and operation.
/// A template's `{parameter}` segment takes a whole expression segment of the action's path,
/// encoded as the designer writes it (`@{encodeURIComponent(…)}`); other segments are equal.
fn connector_operation<'a>(
    swagger: &'a Value,
    method: &str,
    path: &str,
) -> Option<(&'a str, &'a Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    swagger["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    if part.starts_with('{') && part.ends_with('}') {
                        segment.starts_with("@{encodeURIComponent(") && segment.ends_with(")}")
                    } else {
                        part == segment
                    }
                });
            let operation = &item[method.to_ascii_lowercase()];
            (fits && operation.is_object()).then_some((template.as_str(), operation))
        })
}

/// Headers an ApiConnection action may send that its operation does not declare:
/// (operationId, header, why).
const UNDECLARED_HEADERS: &[(&str, &str, &str)] = &[];

/// The connection every ApiConnection action of the example workflow goes through.
const PATCHWAVE_CONNECTION: &str = "@parameters('$connections')['patchwave']['connectionId']";

/// Checks every ApiConnection action of `workflow` against `swagger`; the operationIds called.
fn connector_calls(workflow: &Value, swagger: &Value) -> Result<BTreeSet<String>, String> {
    let mut actions = Vec::new();
    workflow_actions(&workflow["actions"], &mut actions);
    let mut called = BTreeSet::new();
    let mut undeclared_used = BTreeSet::new();
    for (name, action) in actions.iter().filter(|(_, a)| a["type"] == "ApiConnection") {
        let inputs = &action["inputs"];
        if inputs["host"]["connection"]["name"] != PATCHWAVE_CONNECTION {
            return Err(format!("{name}: not through the patchwave connection"));
        }
        let method = inputs["method"].as_str().unwrap_or_default();
        let path = inputs["path"].as_str().unwrap_or_default();
        let (template, operation) =
            connector_operation(swagger, method, path).ok_or_else(|| {
                format!("{name}: {method} {path} is no operation of {CONNECTOR_DOCUMENT}")
            })?;
        let id = operation["operationId"]
            .as_str()
            .unwrap_or(template)
            .to_string();
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (header, _) in inputs["headers"].as_object().into_iter().flatten() {
            let declared = parameters.iter().any(|p| {
                p["in"] == "header"
                    && p["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(header))
            });
            if !declared {
                if !UNDECLARED_HEADERS
                    .iter()
                    .any(|(op, h, _)| *op == id && h.eq_ignore_ascii_case(header))
                {
                    return Err(format!(
                        "{name}: header {header} is not a parameter of {id}"
                    ));
                }
                undeclared_used.insert((id.clone(), header.to_ascii_lowercase()));
            }
        }
        let takes_body = parameters.iter().any(|p| p["in"] == "body");
        let sends_body = !inputs["body"].is_null();
        if takes_body != sends_body {
            return Err(format!(
                "{name}: a body where {id} takes none, or none where it takes one"
            ));
        }
        called.insert(id);
    }
    for (op, header, why) in UNDECLARED_HEADERS {
        if !undeclared_used.contains(&(op.to_string(), header.to_ascii_lowercase())) {
            return Err(format!(
                "UNDECLARED_HEADERS lists {header} for {op} ({why}), but no action sends it \
                 undeclared any more: drop it"
            ));
        }
    }
    Ok(called)
}

#[test]
fn the_workflow_calls_the_operator_api_through_the_operations_of_the_connector_document() {
    let workflow = json("infra/workflows/rollout-approval.json");
    let swagger = json(CONNECTOR_DOCUMENT);
    let called = connector_calls(&workflow, &swagger).unwrap_or_else(|problem| panic!("{problem}"));
    assert_eq!(
        called,
        ["cancel", "create", "show"].map(String::from).into(),
        "operations the workflow calls through the connector"
    );
    // the workflow's connection parameter is the one the module fills
    assert_eq!(workflow["parameters"]["$connections"]["type"], "Object");

    // the one call that stays an HTTP action: the approval, which needs a named principal
    // (the API refuses approvals to function keys): the Logic App's managed identity
    let mut actions = Vec::new();
    workflow_actions(&workflow["actions"], &mut actions);
    let direct: Vec<&(String, Value)> = actions
        .iter()
        .filter(|(_, a)| {
            a["inputs"]["uri"]
                .as_str()
                .is_some_and(|uri| uri.contains("parameters('functionAppUrl')"))
        })
        .collect();
    assert_eq!(direct.len(), 1, "direct calls: {direct:?}");
    let (name, approve) = direct[0];
    assert_eq!(name, "Approve");
    assert_eq!(approve["type"], "Http");
    assert!(approve["inputs"]["uri"]
        .as_str()
        .is_some_and(|uri| uri.ends_with("/approve")));
    assert_eq!(
        approve["inputs"]["authentication"]["type"],
        "ManagedServiceIdentity"
    );
    // …and that route is in the document too
    assert!(swagger["paths"]["/api/rollouts/{id}/approve"]["post"].is_object());

    // a renamed route fails
    let mut renamed = swagger.clone();
    let paths = renamed["paths"].as_object_mut().expect("paths");
    let cancel = paths.remove("/api/rollouts/{id}/cancel").expect("cancel");
    paths.insert("/api/rollouts/{id}/abort".to_string(), cancel);
    let problem = connector_calls(&workflow, &renamed).expect_err("renamed route");
    assert!(
        problem.contains("Cancel: post /api/rollouts/") && problem.contains("is no operation"),
        "{problem}"
    );
    // so does a method the route does not take
    let mut wrong = workflow.clone();
    wrong["actions"]["Until_a_gate_or_the_end"]["actions"]["Get_rollout"]["inputs"]["method"] =
        Value::from("delete");
    let problem = connector_calls(&wrong, &swagger).expect_err("wrong method");
    assert!(problem.contains("Get_rollout: delete"), "{problem}");
    // and a header the operation does not take
    let mut extra = workflow.clone();
    extra["actions"]["Create_rollout"]["inputs"]["headers"]["x-functions-key"] = Value::from("k");
    let problem = connector_calls(&extra, &swagger).expect_err("undeclared header");
    assert!(
        problem.contains("x-functions-key is not a parameter of create"),
        "{problem}"
    );
}

#[test]
fn what_the_alert_rules_read_is_never_sampled_away() {
    // the alert rules count traces (dead letters, decisions) and requests (failing
    // invocations): adaptive sampling, on by default in Functions, must keep every one
    let sampling = &json("host.json")["logging"]["applicationInsights"]["samplingSettings"];
    if sampling["isEnabled"] == false {
        return;
    }
    let excluded: BTreeSet<&str> = sampling["excludedTypes"]
        .as_str()
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .collect();
    for kind in ["Request", "Trace"] {
        assert!(
            excluded.contains(kind),
            "host.json: logging.applicationInsights.samplingSettings.excludedTypes lacks {kind}"
        );
    }
}

/// Every file under infra/ (templates, parameter files, workflow definitions), with its text.
fn infra_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join("infra"), &mut paths);
    paths.sort();
    let files: Vec<(String, String)> = paths
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(root())
                .expect("under the root")
                .to_string_lossy()
                .to_string();
            let text = read(&relative);
            (relative, text)
        })
        .collect();
    assert!(files.len() >= 15, "infra/ files: {}", files.len());
    files
}

/// Host names of one Azure cloud. Sovereign clouds have others: templates take host names
/// from the resources (`properties.serviceBusEndpoint`, `hostName`, …) or `environment()`.
/// `$schema` lines name JSON schemas, not hosts a deployment talks to.
const CLOUD_HOST_NAMES: &[&str] = &[
    "servicebus.windows.net",
    "windows.net",
    "azurewebsites.net",
    "azure-devices.net",
    "azure.net",
    "azure.com",
    "microsoft.com",
    "azure.us",
    "chinacloudapi.cn",
];

fn cloud_host_names_in(file: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.contains("\"$schema\"") {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        // a host name, not a part of a word: `Microsoft.Compute` is no `microsoft.com`
        let label = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        let host = CLOUD_HOST_NAMES.iter().find(|host| {
            lower.match_indices(*host).any(|(at, _)| {
                !label(lower[..at].chars().next_back())
                    && !label(lower[at + host.len()..].chars().next())
            })
        });
        if let Some(host) = host {
            found.push(format!("{file}:{}: {host}: {}", number + 1, line.trim()));
        }
    }
    found
}

#[test]
fn no_cloud_specific_host_name_is_written_in_infra() {
    let found: Vec<String> = infra_files()
        .iter()
        .flat_map(|(file, text)| cloud_host_names_in(file, text))
        .collect();
    assert!(found.is_empty(), "cloud-specific host names: {found:#?}");
    // the namespace's host comes from the namespace, and the IoT Hub route uses it
    let eventhubs = read("infra/modules/eventhubs.bicep");
    assert!(eventhubs.contains("namespace.properties.serviceBusEndpoint"));
    let iothub = read("infra/modules/iothub.bicep");
    assert!(iothub.contains("endpointUri: 'sb://${eventHubsFullyQualifiedNamespace}'"));
    // and the check sees what it is for
    assert_eq!(
        cloud_host_names_in(
            "x.bicep",
            "output fqdn string = '${namespace.name}.servicebus.windows.net'"
        )
        .len(),
        1
    );
    assert!(cloud_host_names_in("x.bicep", "'Microsoft.Compute/virtualMachines'").is_empty());
}

/// `YYYY-MM-DD` followed by a time (`HH:MM`, after a space or `T`): a literal moment. API
/// versions (`@2024-04-01`) and schema URLs have a date but no time.
fn literal_date_times(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range.end <= bytes.len() && bytes[range].iter().all(|b| b.is_ascii_digit())
    };
    let mut found = Vec::new();
    for start in 0..bytes.len() {
        let at = |i: usize, b: u8| bytes.get(start + i) == Some(&b);
        if digits(start..start + 4)
            && at(4, b'-')
            && digits(start + 5..start + 7)
            && at(7, b'-')
            && digits(start + 8..start + 10)
            && (at(10, b' ') || at(10, b'T'))
            && digits(start + 11..start + 13)
            && at(13, b':')
            && digits(start + 14..start + 16)
        {
            found.push(text[start..start + 16].to_string());
        }
    }
    found
}

#[test]
fn the_maintenance_window_starts_after_the_deployment_and_no_fixed_date_is_left() {
    // no literal moment anywhere in infra/: a fixed window start is in the past one day
    for (file, text) in infra_files() {
        let dates = literal_date_times(&text);
        assert!(dates.is_empty(), "{file}: literal date-times {dates:?}");
    }
    assert_eq!(
        literal_date_times("param maintenanceWindowStart string = '2026-01-04 02:00'"),
        vec!["2026-01-04 02:00"]
    );
    assert!(literal_date_times("'Microsoft.Web/sites@2024-04-01' = {").is_empty());

    // the default start is computed from the deployment's time
    let main = read("infra/main.bicep");
    for needed in [
        "param deploymentTime string = utcNow('u')\n",
        "param maintenanceWindowStart string = ''\n",
        "var windowStart = empty(maintenanceWindowStart) ? '${dateTimeAdd(deploymentTime, 'P1D', 'yyyy-MM-dd')} 02:00' : maintenanceWindowStart\n",
        "    windowStart: windowStart\n",
    ] {
        assert!(main.contains(needed), "main.bicep: {needed}");
    }
    // parameter files leave it computed (empty, or an azd environment value)
    for file in ["infra/main.parameters.json", "infra/az.parameters.json"] {
        let parameters = json(file);
        let value = &parameters["parameters"]["maintenanceWindowStart"]["value"];
        let text = value.as_str().unwrap_or_default();
        assert!(
            value.is_null() || text.is_empty() || text.starts_with("${"),
            "{file}: maintenanceWindowStart {value}"
        );
    }
}

/// `param NAME TYPE` names declared in main.bicep.
fn main_parameters() -> BTreeSet<String> {
    read("infra/main.bicep")
        .lines()
        .filter_map(|l| l.strip_prefix("param "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_parameter_files_name_parameters_main_bicep_declares() {
    let declared = main_parameters();
    assert!(declared.contains("codeDeployed") && declared.contains("location"));
    for file in ["infra/main.parameters.json", "infra/az.parameters.json"] {
        let parameters = json(file);
        let names = parameters["parameters"].as_object().expect("parameters");
        for name in names.keys() {
            assert!(declared.contains(name), "{file}: {name} is not a parameter");
        }
    }
    // az deployment takes values as they are: no azd ${…} substitution in its file
    let az = read("infra/az.parameters.json");
    assert!(
        !az.contains("${"),
        "az.parameters.json has azd substitutions"
    );
    // azd's file: first provision without the functions, location and name from azd
    let azd = json("infra/main.parameters.json");
    let value = |name: &str| azd["parameters"][name]["value"].clone();
    assert_eq!(value("codeDeployed"), "${APP_CODE_DEPLOYED=false}");
    assert_eq!(value("location"), "${AZURE_LOCATION}");
    assert_eq!(value("tags")["azd-env-name"], "${AZURE_ENV_NAME}");
    // no secret has a literal value in a parameter file
    assert!(azd["parameters"]["logicAppFunctionKey"]["value"]
        .as_str()
        .is_some_and(|v| v.starts_with("${")));
    assert!(json("infra/az.parameters.json")["parameters"]["logicAppFunctionKey"].is_null());
}

#[test]
fn what_needs_the_functions_waits_for_the_code_and_azd_provisions_again_after_deploying_it() {
    let main = read("infra/main.bicep");
    assert!(main.contains("param codeDeployed bool = true\n"));
    // an output, so that azd down drops it and the next azd up starts over
    assert!(main.contains("\noutput APP_CODE_DEPLOYED bool = codeDeployed\n"));
    assert!(main.contains("    subscribeEvents: codeDeployed\n"));
    assert!(main.contains("= if (deployExampleLogicApp && codeDeployed) {"));
    // every Event Grid subscription to a function waits for the code
    for file in bicep_files() {
        let source = read(&file);
        for header in source.lines().filter(|l| l.starts_with("resource ")) {
            if header.contains("eventSubscriptions@") {
                assert!(
                    header.contains("= if (subscribeEvents) {"),
                    "{file}: an Event Grid subscription that does not wait for the code: {header}"
                );
            }
        }
    }
    // the Logic App reads its key only in that second phase (no listKeys anywhere else)
    for file in bicep_files() {
        if read(&file).contains("listKeys(resourceId('Microsoft.Web/sites/host'") {
            assert_eq!(file, "infra/modules/logicapp.bicep");
        }
    }

    // azure.yaml: the service azd deploys is the tagged site, built by the packaging command
    let azure = read("azure.yaml");
    for needed in [
        "\nservices:\n  patchwave:\n",
        "    host: function\n",
        "    language: custom\n",
        "    project: .\n",
        "    dist: target/azd/functionapp\n",
        "cargo xtask package --out target/azd/functionapp",
        "  postdeploy:\n",
        "azd env set -e \"$AZURE_ENV_NAME\" APP_CODE_DEPLOYED true",
        "azd provision -e \"$AZURE_ENV_NAME\" --no-prompt",
        "azd env set -e $env:AZURE_ENV_NAME APP_CODE_DEPLOYED true",
    ] {
        assert!(azure.contains(needed), "azure.yaml: {needed}");
    }
    assert!(main.contains("      'azd-service-name': 'patchwave'\n"));
    let functionapp = read(FUNCTION_APP_BICEP);
    assert!(functionapp.contains("  tags: union(tags, siteTags)\n"));
}

#[test]
fn local_settings_example_runs_under_func_start_with_local_stand_ins() {
    let settings = json("local.settings.example.json");
    assert_eq!(settings["IsEncrypted"], false);
    let values = settings["Values"].as_object().expect("Values");
    let value = |name: &str| {
        values
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("local.settings.example.json: {name}"))
            .to_string()
    };
    assert_eq!(value("FUNCTIONS_WORKER_RUNTIME"), "custom");
    assert_eq!(value("AzureWebJobsStorage"), "UseDevelopmentStorage=true");
    assert_eq!(value("PATCHWAVE_STORE"), "sqlite:patchwave.db");
    assert_eq!(value("PATCHWAVE_AUTH"), "open");
    assert_eq!(value("PATCHWAVE_CREDENTIAL"), "none");
    for endpoint in [
        "PATCHWAVE_ADU_ENDPOINT",
        "PATCHWAVE_ARM_ENDPOINT",
        "PATCHWAVE_IOTHUB_HOST",
    ] {
        assert!(
            value(endpoint).starts_with("http://127.0.0.1:"),
            "{endpoint}"
        );
    }
    // the bindings' settings: each Event Hubs connection and every %NAME%
    for (name, definition) in functions() {
        let binding = trigger(&definition);
        if let Some(connection) = binding["connection"].as_str() {
            assert!(
                values.contains_key(connection),
                "{name}: connection {connection} not in local.settings.example.json"
            );
        }
    }
    for setting in binding_settings() {
        if let Some(connection) = setting.strip_suffix("__fullyQualifiedNamespace") {
            assert!(values.contains_key(connection), "{connection}");
        } else {
            assert!(values.contains_key(&setting), "{setting}");
        }
    }
    // every patchwave variable in it is one the binary reads, or a binding reads
    let binary =
        variables_the_binary_reads(&read("handlers/config.rs"), &read("handlers/telemetry.rs"));
    let bindings = binding_settings();
    for name in values.keys().filter(|n| n.starts_with("PATCHWAVE_")) {
        let binding = bindings.contains(name)
            || bindings.contains(&format!("{name}__fullyQualifiedNamespace"));
        assert!(
            binary.contains(name) || binding,
            "{name} is read by nothing"
        );
    }
    // the real file stays out of git
    let ignore = read(".gitignore");
    assert!(ignore.lines().any(|l| l.trim() == "local.settings.json"));
}
