//! Who the Table service sees: Shared Key signatures from a connection string, or bearer
//! tokens from the App Service / Functions managed identity (IMDS when that is absent).
//! Keys and tokens never appear in errors, logs or `Debug` output.

use super::super::StoreError;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Azurite's well-known development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, documented; not a secret).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default table endpoint (path-style: the account is the first path segment).
pub const DEV_TABLE_ENDPOINT: &str = "http://127.0.0.1:10002/devstoreaccount1";
/// The token audience of Azure Storage.
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com/";

/// The wall clock. Request signatures and token lifetimes are about real time, so the store
/// reads it here rather than taking `now` from the engine.
#[allow(clippy::disallowed_methods)] // protocol time, not rule time
pub(crate) fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

/// Something that hands out bearer tokens for Azure Storage.
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync + 'static {
    /// A token valid for at least a few more minutes.
    async fn token(&self) -> Result<String, StoreError>;
}

/// How requests are authorized.
#[derive(Clone)]
pub(crate) enum Credential {
    /// Shared Key (not Lite) with the account key.
    SharedKey { account: String, key: Arc<Vec<u8>> },
    /// `Authorization: Bearer` from a token provider.
    Bearer(Arc<dyn TokenProvider>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::SharedKey { account, .. } => write!(f, "SharedKey({account}, <redacted>)"),
            Credential::Bearer(_) => write!(f, "Bearer(<provider>)"),
        }
    }
}

/// Where the table service is and how to authorize: parsed from what follows `table:`.
pub(crate) fn parse_spec(
    spec: &str,
    http: &reqwest::Client,
) -> Result<(Url, Credential), StoreError> {
    let spec = spec.trim();
    let lower = spec.to_ascii_lowercase();
    if (lower.starts_with("https://") || lower.starts_with("http://")) && !spec.contains(';') {
        let endpoint = parse_url(spec)?;
        let provider = ManagedIdentity::from_env(http.clone(), STORAGE_RESOURCE);
        return Ok((endpoint, Credential::Bearer(Arc::new(provider))));
    }
    parse_connection_string(spec)
}

pub(crate) fn parse_url(text: &str) -> Result<Url, StoreError> {
    let url = Url::parse(text.trim_end_matches('/'))
        .map_err(|e| StoreError::Backend(format!("table endpoint {text:?} is not a URL: {e}")))?;
    if url.query().is_some() {
        return Err(StoreError::Backend(
            "table endpoint must not carry a query (SAS tokens are not supported)".into(),
        ));
    }
    Ok(url)
}

/// A storage connection string: `AccountName`, `AccountKey`, and `TableEndpoint` or
/// `DefaultEndpointsProtocol` + `EndpointSuffix`; or `UseDevelopmentStorage=true`.
pub(crate) fn parse_connection_string(text: &str) -> Result<(Url, Credential), StoreError> {
    let mut settings = std::collections::HashMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(StoreError::Backend(
                "table connection string is malformed: expected Name=Value pairs".into(),
            ));
        };
        settings.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let get = |name: &str| settings.get(&name.to_ascii_lowercase()).cloned();
    if get("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let endpoint = match get("DevelopmentStorageProxyUri") {
            Some(proxy) => format!("{}/{DEV_ACCOUNT}", proxy.trim_end_matches('/')),
            None => DEV_TABLE_ENDPOINT.to_string(),
        };
        return Ok((parse_url(&endpoint)?, shared_key(DEV_ACCOUNT, DEV_KEY)?));
    }
    if get("SharedAccessSignature").is_some() {
        return Err(StoreError::Backend(
            "table connection strings with a SharedAccessSignature are not supported; use an account key or a managed identity".into(),
        ));
    }
    let account = get("AccountName")
        .ok_or_else(|| StoreError::Backend("table connection string has no AccountName".into()))?;
    let key = get("AccountKey")
        .ok_or_else(|| StoreError::Backend("table connection string has no AccountKey".into()))?;
    let endpoint = match get("TableEndpoint") {
        Some(endpoint) => endpoint,
        None => {
            let protocol = get("DefaultEndpointsProtocol").unwrap_or_else(|| "https".into());
            let suffix = get("EndpointSuffix").unwrap_or_else(|| "core.windows.net".into());
            format!("{protocol}://{account}.table.{suffix}")
        }
    };
    Ok((parse_url(&endpoint)?, shared_key(&account, &key)?))
}

fn shared_key(account: &str, key: &str) -> Result<Credential, StoreError> {
    let key = BASE64
        .decode(key)
        .map_err(|_| StoreError::Backend("table AccountKey is not base64".into()))?;
    Ok(Credential::SharedKey {
        account: account.to_string(),
        key: Arc::new(key),
    })
}

/// The `Authorization` value of Shared Key for the Table service:
/// `VERB\nContent-MD5\nContent-Type\nDate\nCanonicalizedResource`, where the resource is
/// `/{account}{path}` plus `?comp=` if the query has it (nothing else from the query).
pub(crate) fn shared_key_authorization(
    account: &str,
    key: &[u8],
    method: &str,
    content_type: &str,
    date: &str,
    url: &Url,
) -> Result<String, StoreError> {
    let mut resource = format!("/{account}{}", url.path());
    if let Some((_, comp)) = url.query_pairs().find(|(name, _)| name == "comp") {
        resource.push_str("?comp=");
        resource.push_str(&comp);
    }
    let string_to_sign = format!("{method}\n\n{content_type}\n{date}\n{resource}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key)
        .map_err(|_| StoreError::Backend("table account key unusable".into()))?;
    mac.update(string_to_sign.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    Ok(format!("SharedKey {account}:{signature}"))
}

/// Where managed identity tokens come from.
#[derive(Debug, Clone)]
enum TokenSource {
    /// App Service / Functions: `IDENTITY_ENDPOINT` with the `X-IDENTITY-HEADER` secret.
    AppService { endpoint: String, header: String },
    /// The VM instance metadata service.
    Imds { endpoint: String },
}

/// Managed identity tokens, cached until five minutes before they expire.
pub struct ManagedIdentity {
    http: reqwest::Client,
    source: TokenSource,
    resource: String,
    client_id: Option<String>,
    cached: tokio::sync::Mutex<Option<(String, i64)>>,
}

impl std::fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            TokenSource::AppService { endpoint, .. } => format!("app service at {endpoint}"),
            TokenSource::Imds { endpoint } => format!("IMDS at {endpoint}"),
        };
        write!(f, "ManagedIdentity({source}, {})", self.resource)
    }
}

/// Tokens are refreshed this long before `expires_on`.
const REFRESH_MARGIN_SECONDS: i64 = 300;

impl ManagedIdentity {
    /// From `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service, Functions), else IMDS;
    /// `AZURE_CLIENT_ID` picks a user-assigned identity.
    pub fn from_env(http: reqwest::Client, resource: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let source = match (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => TokenSource::AppService { endpoint, header },
            _ => TokenSource::Imds {
                endpoint: "http://169.254.169.254/metadata/identity/oauth2/token".into(),
            },
        };
        let mut identity = ManagedIdentity::new(http, source, resource);
        identity.client_id = var("AZURE_CLIENT_ID");
        identity
    }

    /// The App Service protocol at `endpoint`, sending `header` as `X-IDENTITY-HEADER`.
    pub fn app_service(
        http: reqwest::Client,
        endpoint: &str,
        header: &str,
        resource: &str,
    ) -> Self {
        let source = TokenSource::AppService {
            endpoint: endpoint.into(),
            header: header.into(),
        };
        ManagedIdentity::new(http, source, resource)
    }

    fn new(http: reqwest::Client, source: TokenSource, resource: &str) -> Self {
        ManagedIdentity {
            http,
            source,
            resource: resource.into(),
            client_id: None,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<(String, i64), StoreError> {
        let failed = |what: String| StoreError::Backend(format!("managed identity: {what}"));
        let (endpoint, api_version) = match &self.source {
            TokenSource::AppService { endpoint, .. } => (endpoint, "2019-08-01"),
            TokenSource::Imds { endpoint } => (endpoint, "2018-02-01"),
        };
        let mut url = Url::parse(endpoint).map_err(|e| failed(format!("bad endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("api-version", api_version)
            .append_pair("resource", &self.resource);
        if let Some(client_id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", client_id);
        }
        let request = match &self.source {
            TokenSource::AppService { header, .. } => {
                self.http.get(url).header("X-IDENTITY-HEADER", header)
            }
            TokenSource::Imds { .. } => self.http.get(url).header("Metadata", "true"),
        };
        let response = request
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| failed(format!("request failed: {e}")))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            let excerpt: String = body.chars().take(300).collect();
            return Err(failed(format!("{status}: {excerpt}")));
        }
        let json: Value =
            serde_json::from_str(&body).map_err(|_| failed("response is not JSON".into()))?;
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| failed("response has no access_token".into()))?;
        let number = |name: &str| match json.get(name) {
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        };
        let now = wall_clock().timestamp();
        let expires_on = number("expires_on")
            .or_else(|| number("expires_in").map(|seconds| now + seconds))
            .ok_or_else(|| failed("response has no usable expires_on".into()))?;
        Ok((token.to_string(), expires_on))
    }
}

#[async_trait::async_trait]
impl TokenProvider for ManagedIdentity {
    async fn token(&self) -> Result<String, StoreError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires_on)) = cached.as_ref() {
            if wall_clock().timestamp() < expires_on - REFRESH_MARGIN_SECONDS {
                return Ok(token.clone());
            }
        }
        let (token, expires_on) = self.fetch().await?;
        *cached = Some((token.clone(), expires_on));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_is_azurite() {
        let (url, credential) =
            parse_connection_string("UseDevelopmentStorage=true").expect("parse");
        assert_eq!(url.as_str(), "http://127.0.0.1:10002/devstoreaccount1");
        assert!(
            matches!(credential, Credential::SharedKey { account, .. } if account == DEV_ACCOUNT)
        );
    }

    #[test]
    fn connection_strings_give_endpoint_and_key() {
        let (url, _) = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .expect("parse");
        assert_eq!(url.as_str(), "https://acct.table.core.windows.net/");
        let (url, credential) = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1234/devstoreaccount1;",
        )
        .expect("parse");
        assert_eq!(url.as_str(), "http://127.0.0.1:1234/devstoreaccount1");
        assert!(
            !format!("{credential:?}").contains("a2V5"),
            "the key stays out of Debug"
        );
        assert!(parse_connection_string("AccountName=acct").is_err());
        assert!(parse_connection_string("AccountName=acct;AccountKey=!!").is_err());
    }

    #[test]
    fn shared_key_signs_the_table_string_to_sign() {
        // Expected value computed independently (Python hmac/hashlib) over
        // "GET\n\n\nMon, 01 Jan 2024 00:00:00 GMT\n/devstoreaccount1/devstoreaccount1/Tables".
        let url = Url::parse("http://127.0.0.1:10002/devstoreaccount1/Tables?$top=1").expect("url");
        let key = BASE64.decode(DEV_KEY).expect("key");
        let auth = shared_key_authorization(
            DEV_ACCOUNT,
            &key,
            "GET",
            "",
            "Mon, 01 Jan 2024 00:00:00 GMT",
            &url,
        )
        .expect("sign");
        assert_eq!(
            auth,
            format!("SharedKey {DEV_ACCOUNT}:xTTIoWBK7u+nSgfft7uKiDmecLL9GEiBUE4qVj03gko=")
        );
        // `comp` is the one query parameter kept in the canonicalized resource
        let url =
            Url::parse("http://127.0.0.1:10002/devstoreaccount1/Tables?restype=x&comp=properties")
                .expect("url");
        let auth = shared_key_authorization(
            DEV_ACCOUNT,
            &key,
            "GET",
            "",
            "Mon, 01 Jan 2024 00:00:00 GMT",
            &url,
        )
        .expect("sign");
        assert_eq!(
            auth,
            format!("SharedKey {DEV_ACCOUNT}:Vatx2++KgZius4DDH7zuc+MD3LSmTT9NKwkanuF4Eig=")
        );
    }
}
