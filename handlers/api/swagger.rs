//! `GET /api/swagger.json` and `patchwave openapi --v2`: the OpenAPI 2.0 (Swagger) form of
//! openapi.json, converted from the same generated document (never kept by hand), for Logic
//! Apps custom connectors and the HTTP + Swagger action, which import OpenAPI 2.0 only.
//!
//! What the conversion does with the 3.1 constructs 2.0 lacks:
//! - `components.schemas` become `definitions`, every `$ref` pointing there with them;
//! - `type: [X, "null"]`, a `null` alternative of `oneOf`/`anyOf`, a `null` in `enum` and
//!   `nullable: true` become `type: X` with `x-nullable: true`;
//! - the other `oneOf`/`anyOf`: the one alternative left, or string enums merged into one
//!   enum, or else their common type (none when they differ) with a description naming them;
//! - `const` becomes an enum of one, `examples` its first as `example`, a numeric
//!   `exclusiveMinimum`/`exclusiveMaximum` the bound with the 2.0 flag; keys 2.0 has no place
//!   for (`$schema`, `prefixItems`, `deprecated` in a schema, …) are left out;
//! - path, query and header parameters carry their schema flattened into the parameter
//!   (`$ref`s resolved), with `x-ms-summary` and `x-ms-visibility` for the connector designer;
//!   cookie parameters are left out;
//! - `requestBody` becomes the `in: body` parameter `body`, its media types `consumes`;
//! - a response keeps one schema (its JSON one first) and its headers, its media types go to
//!   `produces` (`application/problem+json` with them);
//! - API-key security schemes become `securityDefinitions` named after their header (others
//!   are left out), requirements renamed with them;
//! - an operation whose `202` answer carries `Location` is marked
//!   `x-ms-long-running-operation: true`, so that Logic Apps polls it;
//! - `host` is the caller's (omitted when unknown), `basePath` `/`, `schemes` `https`.

use super::openapi::ApiDoc;
use crate::problem::Problem;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::OpenApi;

const SCHEMAS: &str = "#/components/schemas/";
const DEFINITIONS: &str = "#/definitions/";
const JSON: &str = "application/json";
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];
/// Schema keys 2.0 shares with 3.1 as they are (the rest is converted or left out).
const SCHEMA_KEYS: [&str; 20] = [
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "readOnly",
    "xml",
    "externalDocs",
    "example",
    "enum",
];
/// What a path, query or header parameter (or a response header) may say of its value.
const SIMPLE_KEYS: [&str; 16] = [
    "type",
    "format",
    "items",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];
const SIMPLE_TYPES: [&str; 5] = ["string", "number", "integer", "boolean", "array"];

/// `GET /api/swagger.json`: anyone may read it, like openapi.json; `host` is the request's.
pub async fn document(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(host_of);
    match swagger(host.as_deref()) {
        Ok(document) => Json(document).into_response(),
        Err(error) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "No document")
            .detail(error.to_string())
            .into_response(),
    }
}

/// The OpenAPI 2.0 document, for `host` (e.g. `app.azurewebsites.net`; omitted when `None`).
pub fn swagger(host: Option<&str>) -> Result<Value, serde_json::Error> {
    Ok(convert(&serde_json::to_value(ApiDoc::openapi())?, host))
}

/// `host[:port]` of a Host header or a URL, when it is one Swagger 2.0 accepts.
pub fn host_of(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .unwrap_or(raw);
    let host = raw.split('/').next().unwrap_or_default();
    let (name, port) = host.split_once(':').unwrap_or((host, "0"));
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !"{}/:\\".contains(c));
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    (name_ok && port_ok).then(|| host.to_string())
}

/// What the paths need of the rest of the document.
struct Context {
    definitions: Map<String, Value>,
    /// 3.1 security scheme name → its 2.0 `securityDefinitions` key.
    schemes: BTreeMap<String, String>,
}

/// The 2.0 form of a 3.1 document (see the module doc).
pub fn convert(openapi: &Value, host: Option<&str>) -> Value {
    let (security_definitions, schemes) = security_definitions(openapi);
    let definitions = object(&openapi["components"]["schemas"])
        .iter()
        .map(|(name, source)| (name.clone(), schema(source)))
        .collect();
    let cx = Context {
        definitions,
        schemes,
    };
    let paths = paths(openapi, &cx);
    let mut out = json!({
        "swagger": "2.0",
        "info": info(&openapi["info"]),
        "basePath": "/",
        "schemes": ["https"],
        "consumes": union_of(&paths, "consumes"),
        "produces": union_of(&paths, "produces"),
        "paths": paths,
        "definitions": cx.definitions,
        "securityDefinitions": security_definitions,
        "x-ms-connector-metadata": [
            {"propertyName": "Categories", "propertyValue": "Internet of Things;IT Operations"}
        ],
    });
    if let Some(security) = openapi.get("security") {
        out["security"] = requirements(security, &cx);
    }
    if let Some(tags) = openapi.get("tags") {
        out["tags"] = tags.clone();
    }
    if let Some(host) = host {
        out["host"] = json!(host);
    }
    out
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(value) = from.get(key) {
            to.insert(key.to_string(), value.clone());
        }
    }
}

fn info(source: &Value) -> Value {
    let mut out = Map::new();
    copy(
        source,
        &mut out,
        &[
            "title",
            "description",
            "termsOfService",
            "contact",
            "version",
        ],
    );
    if let Some(license) = source.get("license") {
        let mut kept = Map::new();
        copy(license, &mut kept, &["name", "url"]);
        out.insert("license".into(), Value::Object(kept));
    }
    Value::Object(out)
}

/// API-key schemes, keyed by their header (or query) name, and the renaming.
fn security_definitions(openapi: &Value) -> (Map<String, Value>, BTreeMap<String, String>) {
    let mut definitions = Map::new();
    let mut names = BTreeMap::new();
    for (id, scheme) in object(&openapi["components"]["securitySchemes"]) {
        let place = scheme["in"].as_str().unwrap_or_default();
        let (Some("apiKey"), Some(name), "header" | "query") =
            (scheme["type"].as_str(), scheme["name"].as_str(), place)
        else {
            continue;
        };
        let mut definition = json!({"type": "apiKey", "in": place, "name": name});
        if let Some(description) = scheme.get("description") {
            definition["description"] = description.clone();
        }
        definitions.insert(name.to_string(), definition);
        names.insert(id, name.to_string());
    }
    (definitions, names)
}

/// Security requirements with the 2.0 scheme names; `[{}]` (anonymous) becomes `[]`.
fn requirements(source: &Value, cx: &Context) -> Value {
    let list: Vec<Value> = source
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|requirement| {
            let mut renamed = Map::new();
            for (id, scopes) in requirement.as_object()? {
                renamed.insert(cx.schemes.get(id)?.clone(), scopes.clone());
            }
            Some(Value::Object(renamed))
        })
        .collect();
    if list
        .iter()
        .all(|r| r.as_object().is_some_and(Map::is_empty))
    {
        return json!([]);
    }
    Value::Array(list)
}

fn paths(openapi: &Value, cx: &Context) -> Map<String, Value> {
    let mut out = Map::new();
    for (path, item) in object(&openapi["paths"]) {
        let mut converted = Map::new();
        if let Some(shared) = item.get("parameters") {
            converted.insert("parameters".into(), parameters(shared, cx));
        }
        for method in METHODS {
            if let Some(found) = item.get(method) {
                converted.insert(method.into(), operation(found, cx));
            }
        }
        out.insert(path, Value::Object(converted));
    }
    out
}

/// Every media type the operations list under `key`, JSON first.
fn union_of(paths: &Map<String, Value>, key: &str) -> Vec<String> {
    let found: BTreeSet<String> = paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|operation| operation.get(key)?.as_array())
        .flatten()
        .filter_map(|media| media.as_str().map(str::to_string))
        .collect();
    let mut list: Vec<String> = found.iter().filter(|m| *m == JSON).cloned().collect();
    list.extend(found.into_iter().filter(|m| m != JSON));
    list
}

fn operation(source: &Value, cx: &Context) -> Value {
    let mut out = Map::new();
    let keys = [
        "tags",
        "summary",
        "description",
        "operationId",
        "deprecated",
        "externalDocs",
    ];
    copy(source, &mut out, &keys);
    let mut list = source
        .get("parameters")
        .map(|p| parameters(p, cx))
        .unwrap_or_else(|| json!([]));
    if let Some((parameter, consumes)) = source.get("requestBody").and_then(body) {
        push(&mut list, parameter);
        out.insert("consumes".into(), json!(consumes));
    }
    if list.as_array().is_some_and(|l| !l.is_empty()) {
        out.insert("parameters".into(), list);
    }
    let (responses, produces) = responses(&source["responses"], cx);
    out.insert("responses".into(), responses);
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    if let Some(security) = source.get("security") {
        out.insert("security".into(), requirements(security, cx));
    }
    if long_running(source) {
        out.insert("x-ms-long-running-operation".into(), json!(true));
    }
    extensions(source, &mut out);
    Value::Object(out)
}

fn push(list: &mut Value, item: Value) {
    if let Some(list) = list.as_array_mut() {
        list.push(item);
    }
}

fn extensions(source: &Value, out: &mut Map<String, Value>) {
    for (key, value) in source.as_object().into_iter().flatten() {
        if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
}

/// A `202` answer with a `Location` to poll: Logic Apps' asynchronous pattern.
fn long_running(operation: &Value) -> bool {
    operation["responses"]["202"]["headers"]
        .as_object()
        .is_some_and(|headers| headers.keys().any(|h| h.eq_ignore_ascii_case("location")))
}

fn parameters(source: &Value, cx: &Context) -> Value {
    let list = source.as_array().into_iter().flatten();
    Value::Array(list.filter_map(|p| parameter(p, cx)).collect())
}

fn parameter(source: &Value, cx: &Context) -> Option<Value> {
    let place = source["in"].as_str()?;
    let name = source["name"].as_str()?;
    if !matches!(place, "path" | "query" | "header") {
        return None;
    }
    let required = place == "path" || source["required"] == json!(true);
    let mut out = simple(&source["schema"], cx);
    out.insert("name".into(), json!(name));
    out.insert("in".into(), json!(place));
    out.insert("required".into(), json!(required));
    copy(source, &mut out, &["description"]);
    out.insert("x-ms-summary".into(), json!(label(name)));
    if required {
        out.insert("x-ms-visibility".into(), json!("important"));
    } else if place == "header" {
        out.insert("x-ms-visibility".into(), json!("advanced"));
    }
    Some(Value::Object(out))
}

/// `rollout` → `Rollout`: the field's label in the connector designer.
fn label(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A value's schema flattened into a 2.0 parameter or header (`$ref` resolved).
fn simple(source: &Value, cx: &Context) -> Map<String, Value> {
    let mut converted = schema(source);
    if let Some(name) = converted["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(DEFINITIONS))
    {
        let mut resolved = object(&cx.definitions.get(name).cloned().unwrap_or_default());
        resolved.extend(object(&converted).into_iter().filter(|(k, _)| k != "$ref"));
        converted = Value::Object(resolved);
    }
    let mut out = Map::new();
    copy(&converted, &mut out, &SIMPLE_KEYS);
    if let Some(items) = converted.get("items") {
        out.insert("items".into(), Value::Object(simple(items, cx)));
    }
    let kind = out.get("type").and_then(Value::as_str).unwrap_or_default();
    if !SIMPLE_TYPES.contains(&kind) {
        out.insert("type".into(), json!("string"));
    }
    out
}

/// The media type a 2.0 document keeps when 3.1 gives several: JSON, else the first.
fn preferred(content: &Value) -> Option<&Value> {
    let content = content.as_object()?;
    content.get(JSON).or_else(|| content.values().next())
}

/// The request body as the `body` parameter, and the media types it comes in.
fn body(request: &Value) -> Option<(Value, Vec<String>)> {
    let media = preferred(&request["content"])?;
    let mut parameter = json!({
        "name": "body",
        "in": "body",
        "required": request["required"] == json!(true),
        "schema": schema(&media["schema"]),
        "x-ms-summary": "Body",
    });
    if let Some(description) = request.get("description") {
        parameter["description"] = description.clone();
    }
    let consumes = object(&request["content"]).keys().cloned().collect();
    Some((parameter, consumes))
}

/// Responses, and the media types they come in.
fn responses(source: &Value, cx: &Context) -> (Value, BTreeSet<String>) {
    let mut out = Map::new();
    let mut produces = BTreeSet::new();
    for (status, answer) in object(source) {
        produces.extend(object(&answer["content"]).keys().cloned());
        out.insert(status.clone(), response(&status, &answer, cx));
    }
    (Value::Object(out), produces)
}

fn response(status: &str, source: &Value, cx: &Context) -> Value {
    let description = source["description"].as_str().unwrap_or_default();
    let reason = StatusCode::from_bytes(status.as_bytes())
        .ok()
        .and_then(|s| s.canonical_reason());
    let description = match (description, reason) {
        ("", Some(reason)) => reason,
        _ => description,
    };
    let mut out = json!({ "description": description });
    if let Some(media) = preferred(&source["content"]) {
        if let Some(found) = media.get("schema") {
            out["schema"] = schema(found);
        }
    }
    let headers: Map<String, Value> = object(&source["headers"])
        .into_iter()
        .map(|(name, header)| {
            let mut converted = simple(&header["schema"], cx);
            copy(&header, &mut converted, &["description"]);
            (name, Value::Object(converted))
        })
        .collect();
    if !headers.is_empty() {
        out["headers"] = Value::Object(headers);
    }
    out
}

/// A 3.1 schema (JSON Schema 2020-12) as a 2.0 schema object (see the module doc).
pub fn schema(source: &Value) -> Value {
    let Some(source) = source.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    let mut nullable = false;
    if let Some(options) = source.get("oneOf").or_else(|| source.get("anyOf")) {
        out = object(&alternatives(options, &mut nullable));
    }
    for (key, value) in source {
        keyword(key, value, &mut out, &mut nullable);
    }
    if nullable {
        out.insert("x-nullable".into(), json!(true));
    }
    if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
        out.insert("items".into(), json!({}));
    }
    Value::Object(out)
}

/// One keyword of a schema, converted into `out`.
fn keyword(key: &str, value: &Value, out: &mut Map<String, Value>, nullable: &mut bool) {
    let same = |converted: Option<Value>| converted.map(|v| (key, v));
    let converted = match key {
        "$ref" => same(Some(json!(reference(value)))),
        "type" => same(without_null(value, nullable)),
        "enum" => same(Some(enumeration(value, nullable))),
        "const" => Some(("enum", json!([value]))),
        "examples" => value
            .as_array()
            .and_then(|e| e.first())
            .map(|v| ("example", v.clone())),
        "nullable" => {
            *nullable |= value == &json!(true);
            None
        }
        "exclusiveMinimum" | "exclusiveMaximum" => return exclusive(key, value, out),
        "properties" => same(Some(properties(value))),
        "items" => same(Some(schema(
            value.as_array().and_then(|a| a.first()).unwrap_or(value),
        ))),
        "additionalProperties" if value.is_boolean() => same(Some(value.clone())),
        "additionalProperties" => same(Some(schema(value))),
        "allOf" => same(Some(Value::Array(
            value.as_array().into_iter().flatten().map(schema).collect(),
        ))),
        "required" => same(
            value
                .as_array()
                .filter(|r| !r.is_empty())
                .map(|_| value.clone()),
        ),
        key if key.starts_with("x-") || SCHEMA_KEYS.contains(&key) => same(Some(value.clone())),
        _ => None,
    };
    if let Some((key, converted)) = converted {
        out.insert(key.to_string(), converted);
    }
}

fn reference(value: &Value) -> String {
    let target = value.as_str().unwrap_or_default();
    match target.strip_prefix(SCHEMAS) {
        Some(name) => format!("{DEFINITIONS}{name}"),
        None => target.to_string(),
    }
}

fn properties(value: &Value) -> Value {
    let converted: Map<String, Value> = object(value)
        .into_iter()
        .map(|(name, property)| (name, schema(&property)))
        .collect();
    Value::Object(converted)
}

/// `type: [X, "null"]` → `X` (and nullable); several types left → none (any value).
fn without_null(kind: &Value, nullable: &mut bool) -> Option<Value> {
    let Some(kinds) = kind.as_array() else {
        if kind == "null" {
            *nullable = true;
            return None;
        }
        return Some(kind.clone());
    };
    let rest: Vec<&Value> = kinds.iter().filter(|k| *k != "null").collect();
    *nullable |= rest.len() < kinds.len();
    match rest.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

fn enumeration(value: &Value, nullable: &mut bool) -> Value {
    let values = value.as_array().cloned().unwrap_or_default();
    let rest: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
    *nullable |= rest.len() < values.len();
    Value::Array(rest)
}

/// 3.1's numeric `exclusiveMinimum: n` is 2.0's `minimum: n, exclusiveMinimum: true`.
fn exclusive(key: &str, value: &Value, out: &mut Map<String, Value>) {
    if value.is_number() {
        let bound = if key == "exclusiveMinimum" {
            "minimum"
        } else {
            "maximum"
        };
        out.insert(bound.into(), value.clone());
        out.insert(key.into(), json!(true));
    } else if value.is_boolean() {
        out.insert(key.into(), value.clone());
    }
}

/// `oneOf`/`anyOf`, which 2.0 lacks: `null` alternatives make it nullable; one alternative
/// left stands for them; string enums merge; otherwise their common type, described.
fn alternatives(options: &Value, nullable: &mut bool) -> Value {
    let all = options.as_array().cloned().unwrap_or_default();
    let converted: Vec<Value> = all.iter().map(schema).collect();
    let rest: Vec<Value> = converted.into_iter().filter(|o| !is_null_only(o)).collect();
    *nullable |= rest.len() < all.len() || rest.iter().any(|o| o["x-nullable"] == json!(true));
    match rest.as_slice() {
        [] => json!({}),
        [one] => without_key(one, "x-nullable"),
        many => merged(many),
    }
}

/// A converted `{"type": "null"}`: only `x-nullable` (and perhaps a description) left.
fn is_null_only(converted: &Value) -> bool {
    object(converted)
        .keys()
        .all(|k| k == "x-nullable" || k == "description")
        && converted["x-nullable"] == json!(true)
}

fn without_key(value: &Value, key: &str) -> Value {
    let mut kept = object(value);
    kept.remove(key);
    Value::Object(kept)
}

fn merged(options: &[Value]) -> Value {
    let names: Vec<String> = options.iter().map(name_of).collect();
    let description = format!("One of: {}.", names.join(", "));
    let kinds: BTreeSet<Option<&str>> = options.iter().map(|o| o["type"].as_str()).collect();
    let strings = options
        .iter()
        .all(|o| o["type"] == "string" && o["enum"].is_array());
    if strings {
        let values: Vec<Value> = options
            .iter()
            .flat_map(|o| o["enum"].as_array().cloned().unwrap_or_default())
            .collect();
        return json!({"type": "string", "enum": values});
    }
    match kinds.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(kind)] => json!({"type": kind, "description": description}),
        _ => json!({ "description": description }),
    }
}

fn name_of(option: &Value) -> String {
    let reference = option["$ref"]
        .as_str()
        .map(|r| r.trim_start_matches(DEFINITIONS));
    reference
        .or_else(|| option["title"].as_str())
        .or_else(|| option["type"].as_str())
        .unwrap_or("any value")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_types_and_alternatives_become_x_nullable() {
        let converted = schema(&json!({"type": "object", "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/B", "description": "b"}]},
            "c": {"anyOf": [{"type": "string", "enum": ["x"]}, {"type": "string", "enum": ["y"]}]},
            "d": {"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "d"},
            "e": {"const": 1, "examples": [1, 2], "exclusiveMinimum": 0},
            "f": {"enum": ["x", null], "type": "array"}
        }, "required": []}));
        let p = &converted["properties"];
        assert_eq!(p["a"], json!({"type": "string", "x-nullable": true}));
        assert_eq!(
            p["b"],
            json!({"$ref": "#/definitions/B", "description": "b", "x-nullable": true})
        );
        assert_eq!(p["c"], json!({"type": "string", "enum": ["x", "y"]}));
        assert_eq!(p["d"], json!({"description": "d"}));
        assert_eq!(
            p["e"],
            json!({"enum": [1], "example": 1, "minimum": 0, "exclusiveMinimum": true})
        );
        assert_eq!(
            p["f"],
            json!({"enum": ["x"], "type": "array", "items": {}, "x-nullable": true})
        );
        assert!(converted.get("required").is_none());
    }

    #[test]
    fn hosts_swagger_refuses_are_left_out() {
        assert_eq!(
            host_of("app.azurewebsites.net").as_deref(),
            Some("app.azurewebsites.net")
        );
        assert_eq!(host_of("https://h:8443/api").as_deref(), Some("h:8443"));
        for bad in ["", "[::1]:80", "h:port", "a b", "h:"] {
            assert_eq!(host_of(bad), None, "{bad}");
        }
    }
}
