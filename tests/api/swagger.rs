//! The OpenAPI 2.0 document for Logic Apps (`GET /api/swagger.json`, `patchwave openapi
//! --v2`): every operation of openapi.json, only what Swagger 2.0 knows, the function key as
//! the only credential, and the asynchronous commands marked for polling.

use crate::{spawn, Api, Who};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];
/// Maps whose keys are names (of properties, definitions, paths, headers), not keywords.
const NAME_MAPS: [&str; 5] = [
    "properties",
    "definitions",
    "paths",
    "headers",
    "securityDefinitions",
];
const OPERATION_KEYS: &str = "tags summary description externalDocs operationId consumes produces parameters responses schemes deprecated security";
const PARAMETER_KEYS: &str = "name in description required type format allowEmptyValue items collectionFormat default maximum exclusiveMaximum minimum exclusiveMinimum maxLength minLength pattern maxItems minItems uniqueItems enum multipleOf";
const BODY_KEYS: &str = "name in description required schema";
const RESPONSE_KEYS: &str = "description schema headers examples";

async fn document(api: &Api, path: &str) -> Value {
    let (status, _, document) = api.call(Method::GET, path, Who::Nobody, None).await;
    assert_eq!(status, 200, "{path} is served to anyone, like openapi.json");
    document
}

async fn both() -> (Value, Value) {
    let api = spawn(&[]).await;
    let openapi = document(&api, "/api/openapi.json").await;
    let swagger = document(&api, "/api/swagger.json").await;
    (openapi, swagger)
}

/// `(path, method, operation)` of every operation.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((path.clone(), method.to_string(), operation.clone()));
            }
        }
    }
    found
}

/// Every `(key, value)` of every object, keys of name maps left out (their values kept).
fn entries<'a>(value: &'a Value, names: bool, out: &mut Vec<(&'a str, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if !names {
                    out.push((key, child));
                }
                entries(child, !names && NAME_MAPS.contains(&key.as_str()), out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| entries(item, false, out)),
        _ => {}
    }
}

fn allowed(object: &Value, keys: &str, what: &str) {
    let keys: BTreeSet<&str> = keys.split(' ').collect();
    for key in object.as_object().expect("object").keys() {
        assert!(
            keys.contains(key.as_str()) || key.starts_with("x-"),
            "{what}: `{key}` is no Swagger 2.0 field"
        );
    }
}

#[tokio::test]
async fn swagger_json_lists_every_operation_of_openapi_json_with_its_id_and_summary() {
    let (openapi, swagger) = both().await;
    assert_eq!(swagger["swagger"], "2.0");
    assert_eq!(swagger["info"]["title"], openapi["info"]["title"]);
    assert_eq!(swagger["info"]["version"], env!("CARGO_PKG_VERSION"));
    let ours = operations(&openapi);
    assert!(ours.len() >= 14, "{} operations", ours.len());
    for (path, method, operation) in &ours {
        let converted = &swagger["paths"][path][method];
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert_eq!(converted["operationId"], id, "{method} {path}");
        for document in [operation, converted] {
            let summary = document["summary"].as_str().unwrap_or_default();
            assert!(!summary.trim().is_empty(), "{method} {path}: no summary");
        }
    }
    let theirs: BTreeSet<_> = operations(&swagger)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let ours: BTreeSet<_> = ours.into_iter().map(|(p, m, _)| (p, m)).collect();
    assert_eq!(theirs, ours);
    assert!(ours.contains(&("/api/rollouts".to_string(), "post".to_string())));
}

#[tokio::test]
async fn the_function_key_is_the_only_credential_and_the_principal_header_is_nowhere() {
    let (openapi, swagger) = both().await;
    for document in [&openapi, &swagger] {
        let text = document.to_string().to_ascii_lowercase();
        assert!(
            !text.contains("x-ms-client-principal"),
            "a header App Service sets is no client credential"
        );
    }
    let definitions = swagger["securityDefinitions"].as_object().expect("defs");
    assert_eq!(definitions.keys().collect::<Vec<_>>(), ["x-functions-key"]);
    let key = &definitions["x-functions-key"];
    assert_eq!(
        (&key["type"], &key["in"], &key["name"]),
        (
            &json!("apiKey"),
            &json!("header"),
            &json!("x-functions-key")
        )
    );
    assert_eq!(swagger["security"], json!([{"x-functions-key": []}]));
    let schemes = openapi["components"]["securitySchemes"]
        .as_object()
        .expect("3.1");
    let keys: Vec<_> = schemes
        .iter()
        .filter(|(_, s)| s["type"] == "apiKey")
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "the function key is the only key a client sends"
    );
    assert_eq!(
        (keys[0].0.as_str(), &keys[0].1["name"]),
        ("functionKey", &json!("x-functions-key"))
    );
    assert_eq!(
        schemes["entraId"]["scheme"], "bearer",
        "approvals need a token"
    );
    assert!(openapi["security"]
        .as_array()
        .expect("security")
        .contains(&json!({"functionKey": []})));
}

#[tokio::test]
async fn every_reference_resolves_and_no_openapi_3_construct_is_left() {
    let (_, swagger) = both().await;
    let definitions = swagger["definitions"].as_object().expect("definitions");
    assert!(definitions.contains_key("RolloutPlan") && definitions.contains_key("Problem"));
    let mut found = Vec::new();
    entries(&swagger, false, &mut found);
    let mut references = 0;
    for (key, value) in found {
        let forbidden = [
            "nullable",
            "oneOf",
            "anyOf",
            "components",
            "const",
            "examples",
            "requestBody",
            "content",
            "openapi",
        ];
        assert!(!forbidden.contains(&key), "`{key}` left: {value}");
        if key == "type" {
            assert!(value.is_string(), "a type list left: {value}");
        }
        if key == "$ref" {
            let target = value.as_str().expect("ref");
            let name = target.strip_prefix("#/definitions/");
            assert!(
                name.is_some_and(|n| definitions.contains_key(n)),
                "{target} resolves to no definition"
            );
            references += 1;
        }
    }
    assert!(references > 20, "{references} references");
    let plan = &definitions["RolloutPlan"]["properties"];
    assert_eq!(plan["window"]["$ref"], "#/definitions/Window");
    assert_eq!(plan["window"]["x-nullable"], true);
    let decision = &definitions["Decision"]["properties"]["actor"];
    assert_eq!(
        (&decision["type"], &decision["x-nullable"]),
        (&json!("string"), &json!(true))
    );
}

#[tokio::test]
async fn the_commands_that_answer_202_with_location_are_long_running_for_logic_apps() {
    let (openapi, swagger) = both().await;
    let mut long_running = BTreeSet::new();
    for (path, method, operation) in operations(&swagger) {
        let marked = operation["x-ms-long-running-operation"] == json!(true);
        let source = &openapi["paths"][&path][&method]["responses"]["202"];
        let polls = source["headers"].get("Location").is_some();
        assert_eq!(marked, polls, "{method} {path}");
        if marked {
            assert!(operation["responses"]["202"]["headers"]["Location"].is_object());
            long_running.insert(path.rsplit('/').next().unwrap_or_default().to_string());
        }
    }
    let commands = ["approve", "cancel", "pause", "resume", "rollback"];
    assert_eq!(long_running, BTreeSet::from(commands.map(String::from)));
}

#[tokio::test]
async fn operations_parameters_and_responses_use_only_swagger_2_fields() {
    let (_, swagger) = both().await;
    for (path, method, operation) in operations(&swagger) {
        let what = format!("{method} {path}");
        allowed(&operation, OPERATION_KEYS, &what);
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let body = parameter["in"] == "body";
            allowed(
                parameter,
                if body { BODY_KEYS } else { PARAMETER_KEYS },
                &what,
            );
            assert!(
                body == parameter.get("schema").is_some(),
                "{what}: {parameter}"
            );
            if !body {
                let kind = parameter["type"].as_str().unwrap_or_default();
                assert!(["string", "number", "integer", "boolean", "array"].contains(&kind));
            }
        }
        let responses = operation["responses"].as_object().expect("responses");
        for response in responses.values() {
            allowed(response, RESPONSE_KEYS, &what);
            assert!(response["description"].is_string(), "{what}");
        }
        if responses.keys().any(|status| status.starts_with('4')) {
            let produces = operation["produces"].as_array().expect("produces");
            assert!(
                produces.contains(&json!("application/problem+json")),
                "{what}"
            );
        }
    }
    let create = &swagger["paths"]["/api/rollouts"]["post"];
    assert_eq!(create["parameters"][1]["name"], "body");
    assert_eq!(create["consumes"], json!(["application/json"]));
    assert_eq!(
        create["responses"]["201"]["headers"]["Location"]["type"],
        "string"
    );
}

fn cli(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .args(args)
        .output()
        .expect("patchwave");
    assert!(output.status.success(), "{args:?}: {output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

async fn with_host(api: &Api, host: &str) -> Value {
    let url = format!("{}/api/swagger.json", api.url);
    let response = api.http.get(url).header("Host", host).send().await;
    response.expect("swagger").json().await.expect("JSON")
}

#[tokio::test]
async fn the_host_is_the_callers_and_the_cli_prints_the_same_documents() {
    let api = spawn(&[]).await;
    let served = document(&api, "/api/swagger.json").await;
    assert_eq!(served["host"], api.url.trim_start_matches("http://"));
    assert_eq!(
        (&served["basePath"], &served["schemes"]),
        (&json!("/"), &json!(["https"]))
    );
    let app = with_host(&api, "contoso-patchwave.azurewebsites.net").await;
    assert_eq!(app["host"], "contoso-patchwave.azurewebsites.net");
    assert_eq!(
        app,
        with_host(&api, "contoso-patchwave.azurewebsites.net").await
    );
    assert!(with_host(&api, "not{a}host").await.get("host").is_none());
    let mut printed = cli(&["openapi", "--v2"]);
    assert!(printed.get("host").is_none(), "no host without --host");
    printed["host"] = served["host"].clone();
    assert_eq!(printed, served);
    let hosted = cli(&[
        "openapi",
        "--v2",
        "--host",
        "https://app.azurewebsites.net/",
    ]);
    assert_eq!(hosted["host"], "app.azurewebsites.net");
    assert_eq!(cli(&["openapi"]), document(&api, "/api/openapi.json").await);
}
