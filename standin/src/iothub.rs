//! IoT Hub service API: `POST /devices/query?api-version=2021-04-12`, the twin query for the
//! devices of a Device Update group, over device twins (`SELECT * FROM devices WHERE
//! tags.ADUGroup = '…'`) and module twins (`… FROM devices.modules …`, for agents provisioned
//! as a module identity), with `x-ms-max-item-count` pages and `x-ms-continuation` tokens.
//!
//! Every error is in IoT Hub's own form, never Azure's `{"error": {…}}`:
//! `{"Message":"ErrorCode:<code>;<text>","ExceptionMessage":"Tracking ID:…-TimeStamp:…"}` with
//! the code in the `iothub-errorcode` header too, the injected faults (`429
//! ThrottlingException`, `500 ServerError`) included.

use super::http::azure_time;
use super::model::Device;
use super::world::State as WorldState;
use super::World;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The IoT Hub service api-version served.
pub const API_VERSION: &str = "2021-04-12";

/// The IoT Hub routes, with fault injection answering in IoT Hub's error form.
pub fn routes(world: Arc<World>) -> Router<Arc<World>> {
    Router::new()
        .route("/devices/query", post(query))
        .layer(axum::middleware::from_fn_with_state(world, inject_faults))
}

/// An IoT Hub error: `{"Message":"ErrorCode:{code};{message}","ExceptionMessage":"Tracking
/// ID:…"}` and the `iothub-errorcode` header, as IoT Hub answers every error.
pub fn hub_error(world: &World, status: StatusCode, code: &str, message: &str) -> Response {
    let now = world.now();
    let seed = format!(
        "{code}/{message}/{}",
        now.timestamp_nanos_opt().unwrap_or(0)
    );
    let tracking = format!(
        "{:016X}{:016X}",
        super::rng::fnv1a(&seed),
        super::rng::fnv1a(&format!("{seed}/2"))
    );
    let mut response = (
        status,
        Json(json!({
            "Message": format!("ErrorCode:{code};{message}"),
            "ExceptionMessage": format!(
                "Tracking ID:{tracking}-G:0-TimeStamp:{}",
                now.format("%m/%d/%Y %H:%M:%S")
            ),
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(code) {
        response.headers_mut().insert("iothub-errorcode", value);
    }
    response
}

/// Middleware: added latency, then a share of `429 ThrottlingException` (with `Retry-After:
/// 1`) and `500 ServerError`, drawn before the request is handled (as the shared one does for
/// the other services, in IoT Hub's error form).
async fn inject_faults(State(world): State<Arc<World>>, request: Request, next: Next) -> Response {
    let faults = world.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    match world.draw_fault(&faults) {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            let mut response = hub_error(
                &world,
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                "The request was throttled (stand-in fault injection). Retry after 1 second.",
            );
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
        Some(status) => hub_error(
            &world,
            status,
            "ServerError",
            "The server encountered an internal error (stand-in fault injection).",
        ),
        None => next.run(request).await,
    }
}

/// The twin collection a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    /// `devices`: device twins.
    Devices,
    /// `devices.modules`: module twins.
    Modules,
}

/// What the query returns of each twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Projection {
    /// `SELECT *`: whole twins.
    All,
    /// `SELECT deviceId`.
    DeviceId,
}

/// A twin query the stand-in answers:
/// `SELECT {* | deviceId} FROM {devices | devices.modules}
/// [WHERE tags.ADUGroup = '…' [AND deviceId IN ['…', …]]]` (the conditions in either order).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TwinQuery {
    projection: Projection,
    collection: Collection,
    group: Option<String>,
    device_ids: Option<BTreeSet<String>>,
}

/// A token of the query language.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Symbol(char),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut literal = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string literal".into()),
                    // a doubled quote stands for one quote
                    Some(q) if q == c && chars.peek() == Some(&c) => {
                        chars.next();
                        literal.push(c);
                    }
                    Some(q) if q == c => break,
                    Some(other) => literal.push(other),
                }
            }
            out.push(Token::Text(literal));
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
            let mut word = String::new();
            while let Some(&w) = chars.peek() {
                if w.is_ascii_alphanumeric() || matches!(w, '_' | '$' | '.' | '-') {
                    word.push(w);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Token::Word(word));
        } else if matches!(c, '*' | '=' | '[' | ']' | ',') {
            chars.next();
            out.push(Token::Symbol(c));
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

const SUPPORTED: &str = "the stand-in only answers 'SELECT {* | deviceId} FROM {devices | devices.modules} [WHERE tags.ADUGroup = '…' [AND deviceId IN ['…', …]]]'";

/// Parses a twin query of the supported form ([`SUPPORTED`]).
fn parse_query(text: &str) -> Result<TwinQuery, String> {
    let tokens = tokens(text)?;
    let mut at = tokens.iter().peekable();
    let (projection, collection) = parse_select(&mut at)?;
    let mut query = TwinQuery {
        projection,
        collection,
        group: None,
        device_ids: None,
    };
    if at.peek().is_none() {
        return Ok(query);
    }
    expect_word(at.next(), "WHERE")?;
    loop {
        match at.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("tags.ADUGroup") => {
                if query.group.is_some() {
                    return Err("tags.ADUGroup is compared twice".into());
                }
                query.group = Some(parse_group(&mut at)?);
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("deviceId") => {
                if query.device_ids.is_some() {
                    return Err("deviceId is compared twice".into());
                }
                expect_word(at.next(), "IN")?;
                query.device_ids = Some(parse_id_list(&mut at)?);
            }
            _ => {
                return Err(format!(
                    "only tags.ADUGroup and deviceId IN can be queried: {SUPPORTED}"
                ))
            }
        }
        match at.next() {
            None => return Ok(query),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("AND") => continue,
            Some(other) => return Err(format!("unexpected {other:?}: {SUPPORTED}")),
        }
    }
}

/// `Ok` when `token` is the keyword `expected` (in any case).
fn expect_word(token: Option<&Token>, expected: &str) -> Result<(), String> {
    match token {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case(expected) => Ok(()),
        _ => Err(format!("expected {expected}: {SUPPORTED}")),
    }
}

/// `SELECT {* | deviceId} FROM {devices | devices.modules}`.
fn parse_select<'a>(
    at: &mut impl Iterator<Item = &'a Token>,
) -> Result<(Projection, Collection), String> {
    expect_word(at.next(), "SELECT")?;
    let projection = match at.next() {
        Some(Token::Symbol('*')) => Projection::All,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("deviceId") => Projection::DeviceId,
        _ => return Err(SUPPORTED.into()),
    };
    expect_word(at.next(), "FROM")?;
    let collection = match at.next() {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("devices") => Collection::Devices,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("devices.modules") => Collection::Modules,
        _ => return Err(SUPPORTED.into()),
    };
    Ok((projection, collection))
}

/// `= '…'` after `tags.ADUGroup`: the group.
fn parse_group<'a>(at: &mut impl Iterator<Item = &'a Token>) -> Result<String, String> {
    if at.next() != Some(&Token::Symbol('=')) {
        return Err("expected = after tags.ADUGroup".into());
    }
    match at.next() {
        Some(Token::Text(group)) => Ok(group.clone()),
        _ => Err("expected a quoted group".into()),
    }
}

/// `['…', …]` after `deviceId IN`: the device ids.
fn parse_id_list<'a>(at: &mut impl Iterator<Item = &'a Token>) -> Result<BTreeSet<String>, String> {
    if at.next() != Some(&Token::Symbol('[')) {
        return Err("expected [ after IN".into());
    }
    let mut ids = BTreeSet::new();
    loop {
        match at.next() {
            Some(Token::Text(id)) => {
                ids.insert(id.clone());
            }
            _ => return Err("expected a quoted device id in the IN list".into()),
        }
        match at.next() {
            Some(Token::Symbol(',')) => continue,
            Some(Token::Symbol(']')) => return Ok(ids),
            _ => return Err("expected , or ] in the IN list".into()),
        }
    }
}

/// Where `device`'s `ADUGroup` tag is: on its device twin, and the module whose twin has it.
fn tag_places<'a>(state: &'a WorldState, device: &Device) -> (bool, Option<&'a str>) {
    match state.groups.get(&device.group) {
        Some(group) => match group.module_id.as_deref() {
            None => (true, None),
            Some(module) => (group.device_twin_tagged.contains(&device.id), Some(module)),
        },
        None => (true, None),
    }
}

fn etag(version: u64, digits: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{version:0digits$}"))
}

/// A twin as IoT Hub serves it: the device twin, or the twin of module `module` of the device.
/// The Device Update agent's reported properties and model are on the twin it runs as.
fn twin(
    device: &Device,
    module: Option<&str>,
    agent_here: bool,
    tagged: bool,
    hub_time: &str,
) -> Value {
    let mut twin = Map::new();
    twin.insert("deviceId".into(), json!(device.id));
    if let Some(module) = module {
        twin.insert("moduleId".into(), json!(module));
    }
    let (version, reported_version) = if agent_here {
        (device.twin_version, device.reported_version)
    } else {
        (2, 1)
    };
    let mut reported =
        json!({"$metadata": {"$lastUpdated": hub_time}, "$version": reported_version});
    if agent_here {
        reported["deviceUpdate"] = json!({"__t": "c", "agent": device.agent});
    }
    let rest = json!({
        "etag": etag(version, 8),
        "deviceEtag": etag(version, 9),
        "status": "enabled", "statusUpdateTime": "0001-01-01T00:00:00Z",
        "connectionState": "Connected", "lastActivityTime": hub_time,
        "cloudToDeviceMessageCount": 0, "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
        "modelId": if agent_here { "dtmi:azure:iot:deviceUpdateModel;3" } else { "" },
        "version": version,
        "properties": {
            "desired": {"$metadata": {"$lastUpdated": hub_time}, "$version": 1},
            "reported": reported,
        },
    });
    if let Value::Object(rest) = rest {
        twin.extend(rest);
    }
    if tagged {
        twin.insert("tags".into(), json!({"ADUGroup": device.group}));
    }
    if module.is_none() {
        twin.insert("capabilities".into(), json!({"iotEdge": false}));
    }
    Value::Object(twin)
}

/// The rows of `query` over the world, in device id order.
fn rows(state: &WorldState, query: &TwinQuery, hub_time: &str) -> Vec<Value> {
    state
        .devices
        .values()
        .filter(|d| {
            query
                .device_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&d.id))
        })
        .filter_map(|device| {
            let (device_tagged, agent_module) = tag_places(state, device);
            // the row's twin, whether it carries the tag, whether the agent runs as it
            let (module, tagged, agent_here) = match query.collection {
                Collection::Devices => (None, device_tagged, agent_module.is_none()),
                Collection::Modules => (Some(agent_module?), true, true),
            };
            if query
                .group
                .as_ref()
                .is_some_and(|g| !tagged || &device.group != g)
            {
                return None;
            }
            Some(match query.projection {
                Projection::DeviceId => json!({"deviceId": device.id}),
                Projection::All => twin(device, module, agent_here, tagged, hub_time),
            })
        })
        .collect()
}

/// `POST /devices/query`.
pub async fn query(
    State(world): State<Arc<World>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bad =
        |(code, message): Rejection| hub_error(&world, StatusCode::BAD_REQUEST, code, &message);
    if let Err(rejection) = check_api_version(&params) {
        return bad(rejection);
    }
    let (text, query) = match read_query(&body) {
        Ok(read) => read,
        Err(rejection) => return bad(rejection),
    };
    let (page, skip) = match read_paging(&headers, &text, world.config.page_size) {
        Ok(paging) => paging,
        Err(rejection) => return bad(rejection),
    };
    query_page(&world, &query, &text, page, skip)
}

/// Why a query is refused with `400`: the IoT Hub error code and the message.
type Rejection = (&'static str, String);

/// `Ok` when the `api-version` is [`API_VERSION`].
fn check_api_version(params: &HashMap<String, String>) -> Result<(), Rejection> {
    match params.get("api-version") {
        Some(version) if version == API_VERSION => Ok(()),
        Some(version) => Err((
            "InvalidProtocolVersion",
            format!("The api-version '{version}' is not supported; the supported version is '{API_VERSION}'."),
        )),
        None => Err((
            "InvalidProtocolVersion",
            format!("The api-version query parameter is required; the supported version is '{API_VERSION}'."),
        )),
    }
}

/// The body's `{"query": "…"}`: its text and the query parsed.
fn read_query(body: &[u8]) -> Result<(String, TwinQuery), Rejection> {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Err((
            "IotHubFormatError",
            "The request body is not valid JSON.".into(),
        ));
    };
    let Some(text) = body.get("query").and_then(Value::as_str).map(String::from) else {
        return Err((
            "ArgumentInvalid",
            "The body must be {\"query\": \"…\"}.".into(),
        ));
    };
    match parse_query(&text) {
        Ok(query) => Ok((text, query)),
        Err(message) => Err(("ArgumentInvalid", message)),
    }
}

/// The page size (`x-ms-max-item-count`) and rows to skip (`x-ms-continuation` of query `text`).
fn read_paging(
    headers: &HeaderMap,
    text: &str,
    page_size: usize,
) -> Result<(usize, usize), Rejection> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let page = match header("x-ms-max-item-count").map(str::parse::<usize>) {
        None => page_size.max(1),
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            return Err((
                "ArgumentInvalid",
                "x-ms-max-item-count must be a positive integer.".into(),
            ))
        }
    };
    let skip = match header("x-ms-continuation").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => decode_token(token, text).ok_or((
            "ArgumentInvalid",
            "The continuation token is not valid for this query.".to_string(),
        ))?,
    };
    Ok((page, skip))
}

/// The `200` with a page of `query`'s rows, `x-ms-item-type` and any `x-ms-continuation`.
fn query_page(world: &World, query: &TwinQuery, text: &str, page: usize, skip: usize) -> Response {
    let now = azure_time(world.now());
    let matching = rows(&world.lock(), query, &now);
    let total = matching.len();
    let twins: Vec<Value> = matching.into_iter().skip(skip).take(page).collect();
    let mut response = (StatusCode::OK, Json(Value::Array(twins))).into_response();
    let item_type = match query.projection {
        Projection::All => "Twin",
        Projection::DeviceId => "Raw",
    };
    response
        .headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static(item_type));
    if skip + page < total {
        if let Ok(value) = HeaderValue::from_str(&encode_token(skip + page, text)) {
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

    fn group_query(collection: Collection, group: Option<&str>) -> TwinQuery {
        TwinQuery {
            projection: Projection::All,
            collection,
            group: group.map(String::from),
            device_ids: None,
        }
    }

    #[test]
    fn queries_parse() {
        use Collection::*;
        assert_eq!(
            parse_query("SELECT * FROM devices"),
            Ok(group_query(Devices, None))
        );
        assert_eq!(
            parse_query("select *  from devices where tags.ADUGroup = 'canary'"),
            Ok(group_query(Devices, Some("canary")))
        );
        assert_eq!(
            parse_query("SELECT * FROM devices WHERE tags.ADUGroup=\"fleet\""),
            Ok(group_query(Devices, Some("fleet")))
        );
        assert_eq!(
            parse_query("SELECT * FROM devices WHERE tags.ADUGroup = 'o''brien'"),
            Ok(group_query(Devices, Some("o'brien")))
        );
        assert_eq!(
            parse_query("SELECT * FROM devices.modules WHERE tags.ADUGroup = 'm'"),
            Ok(group_query(Modules, Some("m")))
        );
        assert_eq!(
            parse_query(
                "SELECT deviceId FROM devices WHERE tags.ADUGroup = 'g' AND deviceId IN ['a', 'b''c']"
            ),
            Ok(TwinQuery {
                projection: Projection::DeviceId,
                collection: Devices,
                group: Some("g".into()),
                device_ids: Some(["a".to_string(), "b'c".to_string()].into()),
            })
        );
        assert!(parse_query("SELECT * FROM devices WHERE tags.ADUGroup = 'open").is_err());
        assert!(parse_query("SELECT * FROM devices WHERE tags.other = 'x'").is_err());
        assert!(parse_query("SELECT properties FROM devices").is_err());
        assert!(parse_query("SELECT * FROM devices.jobs").is_err());
        assert!(parse_query("SELECT * FROM devices WHERE tags.ADUGroup = 'a' OR 1=1").is_err());
        assert!(parse_query("SELECT * FROM devices WHERE deviceId IN ['a'").is_err());
        assert!(parse_query(
            "SELECT * FROM devices WHERE tags.ADUGroup = 'a' AND tags.ADUGroup = 'b'"
        )
        .is_err());
    }

    #[test]
    fn tokens_round_trip_only_for_their_query() {
        let token = encode_token(100, "q");
        assert_eq!(decode_token(&token, "q"), Some(100));
        assert_eq!(decode_token(&token, "other"), None);
        assert_eq!(decode_token("garbage", "q"), None);
    }
}
