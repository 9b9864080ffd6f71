//! Who the Table service sees: Shared Key signatures from a connection string, or bearer
//! tokens from the shared Azure credential (`crate::azure::credential`, the same one every
//! other Azure client uses). Keys and tokens never appear in errors, logs or `Debug` output.

use super::super::StoreError;
use crate::azure::credential::TokenSource;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::Url;
use std::sync::Arc;

/// Azurite's well-known development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, documented; not a secret).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default table endpoint (path-style: the account is the first path segment).
pub const DEV_TABLE_ENDPOINT: &str = "http://127.0.0.1:10002/devstoreaccount1";
/// The token scope of Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The wall clock. Request dates (`x-ms-date`, signed by Shared Key) are about real time, so
/// the store reads it here rather than taking `now` from the engine.
#[allow(clippy::disallowed_methods)] // protocol time, not rule time
pub(crate) fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

/// How requests are authorized.
#[derive(Clone)]
pub(crate) enum Credential {
    /// Shared Key (not Lite) with the account key.
    SharedKey { account: String, key: Arc<Vec<u8>> },
    /// `Authorization: Bearer` with tokens for [`STORAGE_SCOPE`].
    Bearer(Arc<dyn TokenSource>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::SharedKey { account, .. } => write!(f, "SharedKey({account}, <redacted>)"),
            Credential::Bearer(_) => write!(f, "Bearer(<token source>)"),
        }
    }
}

impl Credential {
    /// The `Authorization` value of a request: a Shared Key signature over `method`,
    /// `content_type`, `date` and `url`, or a bearer token.
    pub(crate) async fn authorization(
        &self,
        method: &str,
        content_type: &str,
        date: &str,
        url: &Url,
    ) -> Result<String, StoreError> {
        match self {
            Credential::SharedKey { account, key } => {
                shared_key_authorization(account, key, method, content_type, date, url)
            }
            Credential::Bearer(tokens) => match tokens.token(STORAGE_SCOPE).await? {
                Some(token) => Ok(format!("Bearer {token}")),
                None => Err(StoreError::Backend(
                    "no credential for Table Storage".into(),
                )),
            },
        }
    }
}

fn parse_url(text: &str) -> Result<Url, StoreError> {
    Ok(crate::config::table_endpoint(text)?)
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
