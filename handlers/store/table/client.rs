//! The Table REST protocol over reqwest: signed requests (Shared Key or bearer), entity
//! reads and writes, queries that follow continuation tokens, and entity group transactions.

use super::super::StoreError;
use super::auth::{self, Credential};
use super::batch::{self, Boundaries, Operation, Outcome};
use super::entity::{entity_path, Entity};
use crate::azure::credential::TokenSource;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::time::Duration;

/// The Storage service version every request names (`x-ms-version`): a real one, that Azure
/// Storage and Azurite (with its default strict checks) both accept, and the one the Azure SDKs
/// for Tables send. The list of versions: "Versioning for the Azure Storage services" in the
/// Storage REST documentation (2019-02-02, 2019-07-07, 2019-12-12, 2020-02-10, …).
pub(crate) const API_VERSION: &str = "2019-02-02";
const ACCEPT: &str = "application/json;odata=nometadata";
const JSON: &str = "application/json";
/// Attempts for a request the service turned away as busy (429, 503) or that never connected.
const ATTEMPTS: u32 = 4;

/// Query values are percent-encoded except for RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A response, read whole.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// A backend error naming what was attempted, the status and the service's message.
    pub fn error(&self, what: &str) -> StoreError {
        let (mut code, message) = batch::odata_error(&self.body);
        if let Some(header) = self.header("x-ms-error-code") {
            code = header;
        }
        StoreError::Status {
            what: what.to_string(),
            status: self.status.as_u16(),
            detail: format!("{code} {message}"),
        }
    }
}

/// A response read whole.
async fn read_reply(
    response: reqwest::Response,
    method: &Method,
    url: &Url,
) -> Result<Reply, StoreError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| StoreError::http(format!("{method} {}", url.path()), e))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn http_client() -> Result<reqwest::Client, StoreError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| StoreError::http("HTTP client", e))
}

/// One table service account.
pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: Url,
    credential: Credential,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableClient({}, {:?})", self.endpoint, self.credential)
    }
}

impl Client {
    /// A client for the endpoint and account key of a connection string (see
    /// [`auth::parse_connection_string`]).
    pub fn with_connection_string(connection_string: &str) -> Result<Self, StoreError> {
        let (endpoint, credential) = auth::parse_connection_string(connection_string)?;
        Ok(Client {
            http: http_client()?,
            endpoint,
            credential,
        })
    }

    /// A client for `endpoint` with bearer tokens from `tokens`.
    pub fn with_tokens(
        endpoint: Url,
        tokens: std::sync::Arc<dyn TokenSource>,
    ) -> Result<Self, StoreError> {
        Ok(Client {
            http: http_client()?,
            endpoint,
            credential: Credential::Bearer(tokens),
        })
    }

    /// The endpoint, as sub-requests of a batch spell it.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    fn url(&self, resource: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.endpoint.clone();
        let path = format!("{}/{resource}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        if !query.is_empty() {
            let query: Vec<String> = query
                .iter()
                .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
                .collect();
            url.set_query(Some(&query.join("&")));
        }
        url
    }

    /// Sends one request, signed afresh on every attempt; retries what the service refused
    /// as busy, what never reached it, and reads that failed in transit.
    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Result<Reply, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.request(&method, &url, headers, body.as_ref()).await?;
            let retry_after = match request.send().await {
                Ok(response) => {
                    let busy = matches!(response.status().as_u16(), 429 | 503);
                    if !busy || attempt >= ATTEMPTS {
                        return read_reply(response, &method, &url).await;
                    }
                    response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(10)))
                }
                // a read is safe to send again whatever happened to it (e.g. a pooled
                // connection the server had closed); a write only if it never left
                Err(e) if (e.is_connect() || method == Method::GET) && attempt < ATTEMPTS => None,
                Err(e) => return Err(StoreError::http(format!("{method} {}", url.path()), e)),
            };
            let backoff = Duration::from_millis(200 * 2u64.pow(attempt - 1));
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
        }
    }

    /// One attempt's request: dated and authorized now, with the protocol's headers.
    async fn request(
        &self,
        method: &Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&(&str, String)>,
    ) -> Result<reqwest::RequestBuilder, StoreError> {
        let date = auth::wall_clock()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let content_type = body.map(|(ct, _)| *ct).unwrap_or("");
        let authorization = self
            .credential
            .authorization(method.as_str(), content_type, &date, url)
            .await?;
        let accept = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("Accept"))
            .map_or(ACCEPT, |(_, value)| *value);
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("Accept", accept)
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Authorization", authorization);
        for (name, value) in headers {
            if !name.eq_ignore_ascii_case("Accept") {
                request = request.header(*name, *value);
            }
        }
        if let Some((content_type, body)) = body {
            request = request
                .header("Content-Type", *content_type)
                .body(body.clone());
        }
        Ok(request)
    }

    /// Creates a table; one that already exists is fine.
    pub async fn create_table(&self, name: &str) -> Result<(), StoreError> {
        let body = serde_json::json!({ "TableName": name }).to_string();
        let reply = self
            .send(
                Method::POST,
                self.url("Tables", &[]),
                &[("Prefer", "return-no-content")],
                Some((JSON, body)),
            )
            .await?;
        match reply.status.as_u16() {
            200..=299 | 409 => Ok(()),
            _ => Err(reply.error(&format!("create table {name}"))),
        }
    }

    /// Reads one entity and its ETag; `None` if it does not exist.
    pub async fn get(
        &self,
        table: &str,
        partition: &str,
        row: &str,
    ) -> Result<Option<(Entity, String)>, StoreError> {
        let reply = self
            .send(
                Method::GET,
                self.url(&entity_path(table, partition, row), &[]),
                &[],
                None,
            )
            .await?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let etag = reply.header("etag").ok_or_else(|| {
                    StoreError::Backend(format!("read from {table} carried no ETag"))
                })?;
                let entity = serde_json::from_str(&reply.body)
                    .map_err(|e| StoreError::unreadable(format!("entity from {table}"), e))?;
                Ok(Some((entity, etag)))
            }
            _ => Err(reply.error(&format!("read from {table}"))),
        }
    }

    /// Inserts an entity: `false` if one with its keys exists already.
    pub async fn insert(&self, table: &str, entity: &Entity) -> Result<bool, StoreError> {
        let body = serde_json::to_string(entity).map_err(StoreError::from)?;
        let reply = self
            .send(
                Method::POST,
                self.url(table, &[]),
                &[("Prefer", "return-no-content")],
                Some((JSON, body)),
            )
            .await?;
        match reply.status.as_u16() {
            200..=299 => Ok(true),
            409 => Ok(false),
            _ => Err(reply.error(&format!("insert into {table}"))),
        }
    }

    /// Merges properties into an existing entity whatever its version: `false` if it is gone.
    pub async fn merge_any(
        &self,
        table: &str,
        entity: &Entity,
        partition: &str,
        row: &str,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(entity).map_err(StoreError::from)?;
        let reply = self
            .send(
                Method::PATCH,
                self.url(&entity_path(table, partition, row), &[]),
                &[("If-Match", "*")],
                Some((JSON, body)),
            )
            .await?;
        match reply.status.as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(reply.error(&format!("merge into {table}"))),
        }
    }

    /// Deletes an entity whatever its version: `false` if it was gone already.
    pub async fn delete(
        &self,
        table: &str,
        partition: &str,
        row: &str,
    ) -> Result<bool, StoreError> {
        let reply = self
            .send(
                Method::DELETE,
                self.url(&entity_path(table, partition, row), &[]),
                &[("If-Match", "*")],
                None,
            )
            .await?;
        match reply.status.as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(reply.error(&format!("delete from {table}"))),
        }
    }

    /// Entities matching `filter`, following continuation tokens; at most `limit` of them.
    pub async fn query(
        &self,
        table: &str,
        filter: &str,
        select: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Entity>, StoreError> {
        self.query_as(table, filter, select, limit, ACCEPT).await
    }

    /// [`Client::query`], each entity with its ETag (as `odata.etag`, which only the
    /// minimal-metadata answer carries).
    pub async fn query_with_etags(
        &self,
        table: &str,
        filter: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Entity>, StoreError> {
        let accept = "application/json;odata=minimalmetadata";
        self.query_as(table, filter, None, limit, accept).await
    }

    async fn query_as(
        &self,
        table: &str,
        filter: &str,
        select: Option<&str>,
        limit: Option<usize>,
        accept: &str,
    ) -> Result<Vec<Entity>, StoreError> {
        let mut found: Vec<Entity> = Vec::new();
        let mut next: Option<(String, Option<String>)> = None;
        loop {
            let wanted = limit.map(|l| l.saturating_sub(found.len()).min(1000).to_string());
            let mut query: Vec<(&str, &str)> = vec![("$filter", filter)];
            if let Some(select) = select {
                query.push(("$select", select));
            }
            if let Some(top) = &wanted {
                query.push(("$top", top));
            }
            if let Some((partition, row)) = &next {
                query.push(("NextPartitionKey", partition));
                if let Some(row) = row {
                    query.push(("NextRowKey", row));
                }
            }
            let url = self.url(&format!("{table}()"), &query);
            let reply = self
                .send(Method::GET, url, &[("Accept", accept)], None)
                .await?;
            if !reply.status.is_success() {
                return Err(reply.error(&format!("query {table}")));
            }
            let page: Value = serde_json::from_str(&reply.body)
                .map_err(|e| StoreError::unreadable(format!("query of {table}"), e))?;
            if let Some(Value::Array(values)) = page.get("value") {
                for value in values {
                    if let Value::Object(entity) = value {
                        found.push(entity.clone());
                    }
                }
            }
            if limit.is_some_and(|l| found.len() >= l) {
                found.truncate(limit.unwrap_or(usize::MAX));
                return Ok(found);
            }
            match reply.header("x-ms-continuation-NextPartitionKey") {
                Some(partition) => {
                    next = Some((partition, reply.header("x-ms-continuation-NextRowKey")))
                }
                None => return Ok(found),
            }
        }
    }

    /// Runs one changeset in `table` atomically.
    pub async fn batch(
        &self,
        table: &str,
        operations: &[Operation],
    ) -> Result<Outcome, StoreError> {
        if operations.is_empty() {
            return Ok(Outcome::Applied(Vec::new()));
        }
        if operations.len() > batch::MAX_OPERATIONS {
            return Err(StoreError::Backend(format!(
                "too many operations for one entity group transaction: {}",
                operations.len()
            )));
        }
        let boundaries = Boundaries::new();
        let body = batch::request_body(self.endpoint(), table, operations, &boundaries)?;
        let content_type = format!("multipart/mixed; boundary={}", boundaries.batch);
        let reply = self
            .send(
                Method::POST,
                self.url("$batch", &[]),
                &[],
                Some((&content_type, body)),
            )
            .await?;
        if reply.status != StatusCode::ACCEPTED {
            return Err(reply.error(&format!("batch on {table}")));
        }
        batch::outcome(&reply.body, operations.len())
    }
}
