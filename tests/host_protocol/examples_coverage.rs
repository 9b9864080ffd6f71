//! Every example the reference folder ships for our inputs is exercised by a test here.
//! A new example appearing in `../shared/reference` fails this test until a test uses it.

use crate::support::reference_dir;

/// Examples the tests in this binary read, by path under `../shared/reference`.
const COVERED: &[&str] = &[
    "functions-host/eventgrid-request.json",
    "functions-host/eventgrid-response.json",
    "functions-host/eventgrid-webhook-validation-request.json",
    "functions-host/eventgrid-webhook-validation-response.json",
    "functions-host/eventhub-many-request.json",
    "functions-host/eventhub-many-string-request.json",
    "functions-host/eventhub-one-request.json",
    "functions-host/eventhub-response.json",
    "functions-host/http-nonforwarded-request.json",
    "functions-host/http-nonforwarded-response.json",
    "functions-host/timer-request.json",
    "functions-host/timer-response.json",
    "azure/eventgrid-pre-maintenance-event.json",
    "azure/eventgrid-pre-maintenance-event.camelcase-docs-variant.json",
    "azure/eventgrid-post-maintenance-event.json",
    "azure/iothub-twin-change-eventhub-message.json",
    "azure/iothub-twin-change-eventhub-message-body.json",
    "azure/iothub-twin-change-eventhub-message-properties.json",
    "azure/iothub-twin-change-deviceupdate-reported.constructed.json",
    "azure/iothub-connection-state-eventhub-message.json",
    "azure/adu-agent-reported-success.json",
    "azure/adu-agent-reported-success.agent-testdata.json",
    "azure/adu-agent-reported-in-progress.constructed.json",
    "azure/adu-agent-reported-failure.constructed.json",
    "azure/adu-agent-reported-service-ack.constructed.json",
    "azure/adu-service-desired-cancel.constructed.json",
    "azure/adu-service-desired-processdeployment.agent-testdata.json",
];

fn is_trigger_input_example(relative: &str) -> bool {
    let Some(name) = relative.strip_prefix("azure/") else {
        return relative.starts_with("functions-host/") && relative.ends_with(".json");
    };
    name.ends_with(".json")
        && ((name.contains("maintenance-event")
            && (name.starts_with("eventgrid-") || name.starts_with("cloudevents-")))
            || name.starts_with("iothub-")
            || name.starts_with("adu-agent-")
            || name.starts_with("adu-service-"))
}

#[test]
fn every_reference_example_for_our_triggers_is_covered() {
    let mut uncovered = Vec::new();
    for folder in ["functions-host", "azure"] {
        for entry in std::fs::read_dir(reference_dir().join(folder)).expect("reference folder") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let relative = format!("{folder}/{name}");
            if is_trigger_input_example(&relative) && !COVERED.contains(&relative.as_str()) {
                uncovered.push(relative);
            }
        }
    }
    assert!(
        uncovered.is_empty(),
        "examples no test decodes yet: {uncovered:?}"
    );
}

#[test]
fn documented_response_examples_match_our_response_shape() {
    for example in [
        "functions-host/eventgrid-response.json",
        "functions-host/eventhub-response.json",
        "functions-host/timer-response.json",
        "functions-host/http-nonforwarded-response.json",
    ] {
        let documented = crate::support::reference(example);
        let ours = serde_json::to_value(patchwave::host::InvokeResponse::new(
            serde_json::Value::Null,
            vec!["x".into()],
        ))
        .expect("serialize");
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .expect("object")
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&ours), keys(&documented), "{example}");
    }
}
