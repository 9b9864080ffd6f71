//! One REST pipeline for every Azure client: bearer token, timeout, bounded retries with
//! backoff for 5xx, 408 and transport errors, `429` waited out per `Retry-After`, and errors
//! typed as retryable or not. Tokens and keys never reach a log line.

use super::credential::TokenSource;
pub use super::error::AzureError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub max_attempts: u32,
    /// First backoff; doubles each retry.
    pub base_delay: Duration,
    /// Longest backoff or `Retry-After` honoured.
    pub max_delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A response that succeeded.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty).
    pub body: Value,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A request body.
#[derive(Debug, Clone, Copy)]
enum Payload<'a> {
    Empty,
    Json(&'a Value),
    Text {
        content_type: &'a str,
        text: &'a str,
    },
}

/// A REST client for one Azure service: base URL, token scope, retry policy.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    scope: String,
    credential: Arc<dyn TokenSource>,
    policy: RetryPolicy,
}

impl RestClient {
    /// A client for `base` (e.g. `https://management.azure.com`, or a stand-in's URL).
    pub fn new(
        base: &str,
        scope: &str,
        credential: Arc<dyn TokenSource>,
        policy: RetryPolicy,
    ) -> Result<Self, AzureError> {
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .build()
            .map_err(|e| AzureError::Credential(format!("HTTP client: {e}")))?;
        Ok(RestClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            scope: scope.to_string(),
            credential,
            policy,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request to `target` (a path under the base, or an absolute URL the service
    /// returned, e.g. a `Location`), retrying as the policy says.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, AzureError> {
        let payload = body.map_or(Payload::Empty, Payload::Json);
        self.send_payload(method, target, payload, headers).await
    }

    /// Sends `text` as the body with `content_type` (for services that take other than JSON,
    /// such as Event Hubs' REST send), retrying as [`RestClient::send`] does.
    pub async fn send_text(
        &self,
        method: Method,
        target: &str,
        content_type: &str,
        text: &str,
    ) -> Result<Reply, AzureError> {
        let payload = Payload::Text { content_type, text };
        self.send_payload(method, target, payload, &[]).await
    }

    async fn send_payload(
        &self,
        method: Method,
        target: &str,
        payload: Payload<'_>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, AzureError> {
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_string()
        } else {
            format!("{}{}", self.base, target)
        };
        let path = url.split('?').next().unwrap_or_default().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(method.clone(), &url, payload, headers).await {
                Ok(reply) => return Ok(reply),
                Err((error, wait)) => {
                    if !error.retryable() || attempt >= self.policy.max_attempts {
                        return Err(error);
                    }
                    let delay = wait
                        .unwrap_or_else(|| self.backoff(attempt))
                        .min(self.policy.max_delay);
                    tracing::warn!(method = %method, path = %path, attempt, delay_ms = delay.as_millis() as u64, error = %error, "Azure call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.policy
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(10))
    }

    /// One attempt; on failure, the error and the wait the service asked for.
    async fn send_once(
        &self,
        method: Method,
        url: &str,
        payload: Payload<'_>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, (AzureError, Option<Duration>)> {
        let path = url.split('?').next().unwrap_or_default().to_string();
        let request = self
            .request(&method, url, payload, headers)
            .await
            .map_err(|e| (e, None))?;
        let response = request.send().await.map_err(|e| {
            let error = AzureError::Transport {
                method: method.to_string(),
                path: path.clone(),
                message: transport_message(&e),
            };
            (error, None)
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        let (code, message) = error_fields(&headers, &body);
        let wait = retry_after(&headers);
        Err((
            AzureError::Http {
                method: method.to_string(),
                path,
                status: status.as_u16(),
                code,
                message,
            },
            wait,
        ))
    }

    /// One attempt's request, with a fresh token (none for a stand-in) and the payload.
    async fn request(
        &self,
        method: &Method,
        url: &str,
        payload: Payload<'_>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, AzureError> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("Accept", "application/json");
        if let Some(token) = self.credential.token(&self.scope).await? {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Ok(match payload {
            Payload::Empty => request,
            Payload::Json(body) => request.json(body),
            Payload::Text { content_type, text } => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(text.to_string()),
        })
    }
}

fn transport_message(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

/// The error code and message of an error answer: `{"error":{"code","message"}}` as Azure
/// services send it, or IoT Hub's own form (see [`iot_hub_error_fields`]).
fn error_fields(headers: &reqwest::header::HeaderMap, body: &Value) -> (String, String) {
    if let Some(fields) = body.as_str().and_then(service_bus_error_fields) {
        return fields;
    }
    if body.get("error").is_none() {
        if let Some(fields) = iot_hub_error_fields(headers, body) {
            return fields;
        }
    }
    let error = body.get("error").unwrap_or(body);
    let text = |key: &str| {
        error
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let message = match text("message") {
        m if m.is_empty() => body
            .as_str()
            .map(|s| s.chars().take(200).collect())
            .unwrap_or_default(),
        m => m,
    };
    (text("code"), message)
}

/// Service Bus's (and Event Hubs' REST) error form:
/// `<Error><Code>401</Code><Detail>MalformedToken: …</Detail></Error>`.
fn service_bus_error_fields(text: &str) -> Option<(String, String)> {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].trim().to_string())
    };
    let detail = element("Detail")?;
    Some((element("Code").unwrap_or_default(), detail))
}

/// IoT Hub's error form: `{"Message":"ErrorCode:<code>;<text>","ExceptionMessage":"Tracking
/// ID:…"}` with the code also in the `iothub-errorcode` header. The code is the header's, else
/// the one in `Message` (`ErrorCode:<code>;`, or `errorCode` when `Message` is itself a JSON
/// object, as some IoT Hub answers have it); the message is the text after the first `;`.
/// `None` when the answer has neither the header nor a `Message`.
fn iot_hub_error_fields(
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) -> Option<(String, String)> {
    let header = headers
        .get("iothub-errorcode")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .map(str::to_string);
    let text = body
        .get("Message")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let (code, message) = match text {
        None => (
            None,
            body.as_str()
                .map(|s| s.chars().take(200).collect())
                .unwrap_or_default(),
        ),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(inner) if inner.is_object() => {
                let code = match inner.get("errorCode") {
                    Some(Value::String(code)) => Some(code.clone()),
                    Some(Value::Number(code)) => Some(code.to_string()),
                    _ => None,
                };
                let message = inner
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or(text)
                    .to_string();
                (code, message)
            }
            _ => match strip_prefix_ignore_case(text, "ErrorCode:") {
                Some(rest) => match rest.split_once(';') {
                    Some((code, message)) => {
                        (Some(code.trim().to_string()), message.trim().to_string())
                    }
                    None => (Some(rest.trim().to_string()), String::new()),
                },
                None => (None, text.to_string()),
            },
        },
    };
    if header.is_none() && text.is_none() {
        return None;
    }
    let code = header
        .or(code.filter(|c| !c.is_empty()))
        .unwrap_or_default();
    Some((code, message.chars().take(500).collect()))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&value).ok()?;
    #[allow(clippy::disallowed_methods)] // converting an absolute Retry-After needs the clock
    let now = chrono::Utc::now();
    (when.with_timezone(&chrono::Utc) - now).to_std().ok()
}

/// Characters escaped in a path segment (RFC 3986 reserved and unsafe ones).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// Percent-encodes one path segment.
pub fn segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}
