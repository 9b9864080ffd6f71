//! Property tests: every decoder, fed arbitrary bytes and mutated copies of the real
//! examples, returns a value or an error that says what is wrong, and never panics.

use patchwave::decode::event_grid::decode_events;
use patchwave::decode::http_request::decode_http_request;
use patchwave::decode::timer::decode_timer;
use patchwave::decode::twin_change::decode_twin_batch;
use patchwave::host::Invocation;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;

/// Reads `tests/fixtures/<relative>`; a leading `fixtures/` is accepted for the files at the
/// top of that folder.
fn load(relative: &str) -> Value {
    let relative = relative.strip_prefix("fixtures/").unwrap_or(relative);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("example")).expect("JSON")
}

/// Real envelopes for every function, including ones built around the Azure examples.
fn seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> = [
        "functions-host/eventgrid-request.json",
        "functions-host/eventhub-many-request.json",
        "functions-host/eventhub-many-string-request.json",
        "functions-host/eventhub-one-request.json",
        "functions-host/http-nonforwarded-request.json",
        "functions-host/timer-request.json",
        "fixtures/eventgrid-cloudevents-request.json",
        "fixtures/timer-request-with-retrycontext.json",
        "fixtures/eventhub-many-binary-request.json",
        "fixtures/http-nonforwarded-request-post-with-key.json",
    ]
    .iter()
    .map(|path| load(path))
    .collect();
    for event in [
        "azure/eventgrid-pre-maintenance-event.json",
        "azure/eventgrid-post-maintenance-event.json",
    ] {
        let text = serde_json::to_string_pretty(&load(event)[0]).expect("text");
        seeds.push(json!({"Data": {"event": serde_json::to_string(&text).expect("encode")}}));
    }
    let report = load("azure/iothub-twin-change-deviceupdate-reported.constructed.json");
    let body = json!({"version": 5, "properties": {"reported": load("azure/adu-agent-reported-success.json")}});
    seeds.push(json!({
        "Data": {"events": json!([report.to_string(), body.to_string()]).to_string()},
        "Metadata": {
            "PropertiesArray": json!([{}, {"deviceId": "d", "opType": "updateTwin"}]).to_string(),
            "SystemPropertiesArray": json!([{}, {"iothub-message-source": "twinChangeEvents"}]).to_string()
        }
    }));
    seeds
}

/// Runs every decoder; checks that each failure explains itself.
fn decode_everything(bytes: &[u8]) {
    let invocation = match Invocation::parse(bytes) {
        Ok(invocation) => invocation,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    if let Ok(binding) = invocation.binding("event") {
        for item in decode_events(binding) {
            if let Err(error) = item {
                assert!(!error.reason.is_empty());
            }
        }
    }
    match decode_twin_batch(&invocation) {
        Ok(batch) => {
            for item in batch.items {
                if let Err(error) = item {
                    assert!(!error.reason.is_empty());
                }
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    if let Err(error) = decode_timer(&invocation) {
        assert!(!error.to_string().is_empty());
    }
    if let Err(error) = decode_http_request(&invocation) {
        assert!(!error.to_string().is_empty());
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-zA-Z0-9 {}\\[\\]\":,.$_-]{0,24}".prop_map(Value::String),
        prop_oneof![
            Just("{"),
            Just("[1,"),
            Just("\"\\\"x\\\"\""),
            Just("0001-01-01T00:00:00"),
            Just("2023-05-09T15:00:00Z"),
            Just("C00D0011,zz"),
            Just("-1"),
            Just("255"),
            Just("eyJhIjox")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z$_-]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `target`-th node (pre-order) of `value` with `replacement`, or, when the
/// node is a string holding JSON, mutates inside it and re-encodes it.
fn mutate(value: &mut Value, target: &mut usize, replacement: &Value) -> bool {
    if *target == 0 {
        *value = replacement.clone();
        return true;
    }
    *target -= 1;
    match value {
        Value::Array(items) => items
            .iter_mut()
            .any(|item| mutate(item, target, replacement)),
        Value::Object(map) => map
            .values_mut()
            .any(|item| mutate(item, target, replacement)),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(mut inner @ (Value::Object(_) | Value::Array(_))) => {
                let done = mutate(&mut inner, target, replacement);
                *text = inner.to_string();
                done
            }
            _ => false,
        },
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_json_envelopes_never_panic(data in any_json(), metadata in any_json()) {
        let envelope = json!({"Data": {"event": data.clone(), "events": data.clone(), "tick": data.clone(), "req": data}, "Metadata": metadata});
        decode_everything(envelope.to_string().as_bytes());
    }

    #[test]
    fn mutated_real_examples_never_panic(
        seed in 0usize..13,
        target in 0usize..400,
        replacement in any_json(),
        cut in 0usize..4096,
        flip in any::<(usize, u8)>(),
    ) {
        let seeds = seeds();
        let mut example = seeds[seed % seeds.len()].clone();
        let mut remaining = target;
        mutate(&mut example, &mut remaining, &replacement);
        let bytes = example.to_string().into_bytes();
        decode_everything(&bytes);
        decode_everything(&bytes[..cut.min(bytes.len())]);
        let mut flipped = bytes.clone();
        if !flipped.is_empty() {
            let at = flip.0 % flipped.len();
            flipped[at] ^= flip.1;
        }
        decode_everything(&flipped);
    }
}

#[test]
fn seeds_decode_cleanly_so_mutations_start_from_valid_input() {
    for seed in seeds() {
        let invocation = Invocation::parse(seed.to_string().as_bytes()).expect("valid envelope");
        assert!(
            invocation.binding("event").is_ok()
                || invocation.binding("events").is_ok()
                || invocation.binding("tick").is_ok()
                || invocation.binding("req").is_ok()
        );
    }
}
