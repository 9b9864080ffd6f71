//! IoT Hub service API: `POST /devices/query?api-version=2021-04-12`, the twin query for the
//! devices of a Device Update group (`SELECT * FROM devices WHERE tags.ADUGroup = '…'`), with
//! `x-ms-max-item-count` pages and `x-ms-continuation` tokens.

use super::http::{azure_time, require_api_version};
use super::model::Device;
use super::World;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The IoT Hub service api-version served.
pub const API_VERSION: &str = "2021-04-12";

/// An IoT Hub error: its own `Message` form, plus the `error` object other services use.
fn hub_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "Message": format!("ErrorCode:{code};{message}"),
            "ExceptionMessage": format!("Tracking ID:standin-{code}"),
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

/// Which devices a query selects: all, or one `ADUGroup`.
fn parse_query(text: &str) -> Result<Option<String>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let normalized = words.join(" ");
    let lower = normalized.to_ascii_lowercase();
    let prefix = "select * from devices";
    if !lower.starts_with(prefix) {
        return Err(format!(
            "the stand-in only answers '{prefix} [WHERE tags.ADUGroup = '…']'"
        ));
    }
    let rest = normalized[prefix.len()..].trim();
    if rest.is_empty() {
        return Ok(None);
    }
    let condition = strip_word(rest, "where").ok_or("expected WHERE")?;
    let condition =
        strip_word(condition, "tags.ADUGroup").ok_or("only tags.ADUGroup can be queried")?;
    let literal = condition
        .strip_prefix('=')
        .ok_or("expected = after tags.ADUGroup")?
        .trim();
    let quote = literal
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or("expected a quoted group")?;
    // The literal ends at the first quote not doubled (`''` stands for one quote).
    let mut group = String::new();
    let mut chars = literal[1..].char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != quote {
            group.push(c);
            continue;
        }
        if chars.peek().is_some_and(|(_, next)| *next == quote) {
            chars.next();
            group.push(quote);
            continue;
        }
        let rest = literal[1 + at + 1..].trim();
        if !rest.is_empty() {
            return Err(format!("unexpected text after the group: '{rest}'"));
        }
        return Ok(Some(group));
    }
    Err("unterminated group literal".into())
}

fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    head.eq_ignore_ascii_case(word)
        .then(|| text[word.len()..].trim_start())
}

fn twin(device: &Device, hub_time: &str) -> Value {
    json!({
        "deviceId": device.id,
        "etag": base64::engine::general_purpose::STANDARD.encode(format!("{:08}", device.twin_version)),
        "deviceEtag": base64::engine::general_purpose::STANDARD.encode(format!("{:09}", device.twin_version)),
        "status": "enabled", "statusUpdateTime": "0001-01-01T00:00:00Z",
        "connectionState": "Connected", "lastActivityTime": hub_time,
        "cloudToDeviceMessageCount": 0, "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
        "modelId": "dtmi:azure:iot:deviceUpdateModel;3",
        "version": device.twin_version,
        "tags": {"ADUGroup": device.group},
        "properties": {
            "desired": {"$metadata": {"$lastUpdated": hub_time}, "$version": 1},
            "reported": {
                "deviceUpdate": {"__t": "c", "agent": device.agent},
                "$metadata": {"$lastUpdated": hub_time},
                "$version": device.reported_version,
            }
        },
        "capabilities": {"iotEdge": false},
    })
}

/// `POST /devices/query`.
pub async fn query(
    State(world): State<Arc<World>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = require_api_version(&params, API_VERSION) {
        return *response;
    }
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("query").and_then(Value::as_str).map(String::from));
    let Some(text) = text else {
        return hub_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The body must be {\"query\": \"…\"}.",
        );
    };
    let group = match parse_query(&text) {
        Ok(group) => group,
        Err(message) => return hub_error(StatusCode::BAD_REQUEST, "SqlQueryInvalid", &message),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let page = match header("x-ms-max-item-count").map(str::parse::<usize>) {
        None => world.config.page_size.max(1),
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            return hub_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "x-ms-max-item-count must be a positive integer.",
            )
        }
    };
    let skip = match header("x-ms-continuation").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match decode_token(token, &text) {
            Some(skip) => skip,
            None => {
                return hub_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "The continuation token is not valid for this query.",
                )
            }
        },
    };
    let now = azure_time(world.now());
    let state = world.lock();
    let matching: Vec<&Device> = state
        .devices
        .values()
        .filter(|d| group.as_ref().is_none_or(|g| &d.group == g))
        .collect();
    let twins: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(page)
        .map(|d| twin(d, &now))
        .collect();
    let mut response = (StatusCode::OK, Json(Value::Array(twins))).into_response();
    response
        .headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static("Twin"));
    if skip + page < matching.len() {
        if let Ok(value) = HeaderValue::from_str(&encode_token(skip + page, &text)) {
            response.headers_mut().insert("x-ms-continuation", value);
        }
    }
    response
}

fn encode_token(skip: usize, query: &str) -> String {
    let raw = format!("{skip}:{:016x}", super::rng::fnv1a(query));
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_token(token: &str, query: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (skip, hash) = raw.split_once(':')?;
    (hash == format!("{:016x}", super::rng::fnv1a(query))).then_some(())?;
    skip.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse() {
        assert_eq!(parse_query("SELECT * FROM devices"), Ok(None));
        assert_eq!(
            parse_query("select *  from devices where tags.ADUGroup = 'canary'"),
            Ok(Some("canary".into()))
        );
        assert_eq!(
            parse_query("SELECT * FROM devices WHERE tags.ADUGroup=\"fleet\""),
            Ok(Some("fleet".into()))
        );
        assert_eq!(
            parse_query("SELECT * FROM devices WHERE tags.ADUGroup = 'o''brien'"),
            Ok(Some("o'brien".into()))
        );
        assert!(parse_query("SELECT * FROM devices WHERE tags.ADUGroup = 'open").is_err());
        assert!(parse_query("SELECT * FROM devices WHERE tags.other = 'x'").is_err());
        assert!(parse_query("SELECT deviceId FROM devices").is_err());
        assert!(parse_query("SELECT * FROM devices WHERE tags.ADUGroup = 'a' OR 1=1").is_err());
    }

    #[test]
    fn tokens_round_trip_only_for_their_query() {
        let token = encode_token(100, "q");
        assert_eq!(decode_token(&token, "q"), Some(100));
        assert_eq!(decode_token(&token, "other"), None);
        assert_eq!(decode_token("garbage", "q"), None);
    }
}
