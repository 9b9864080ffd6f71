//! Settings from the environment (design §8): every variable patchwave itself reads is read
//! here, once, at startup. Two readers are not ours: the log filter reads `RUST_LOG`
//! (`telemetry.rs`), and `azure_identity`'s credentials read their platform's variables
//! (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `IMDS_ENDPOINT`, …) themselves.

/// Port used when neither the host nor the user names one.
pub const DEFAULT_PORT: u16 = 7071;
/// The embedded default store's file.
pub const DEFAULT_SQLITE_PATH: &str = "patchwave.db";
/// Days a dead letter is kept by default (`PATCHWAVE_DEADLETTER_RETENTION_DAYS`).
pub const DEFAULT_DEAD_LETTER_RETENTION_DAYS: u32 = 30;
/// The longest retention accepted: 100 years.
pub const MAX_DEAD_LETTER_RETENTION_DAYS: u32 = 36_500;
/// Dead letters kept at most by default (`PATCHWAVE_DEADLETTER_MAX`).
pub const DEFAULT_DEAD_LETTER_MAX: usize = 100_000;

/// How the handler is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Port to listen on, on 127.0.0.1.
    pub port: u16,
    /// Where state lives (`PATCHWAVE_STORE`).
    pub store: StoreLocation,
    /// Who may call the operator API.
    pub auth: AuthSettings,
    /// Where Azure is, and as whom patchwave calls it.
    pub azure: AzureSettings,
    /// Dead letters older than this many days are deleted
    /// (`PATCHWAVE_DEADLETTER_RETENTION_DAYS`).
    pub dead_letter_retention_days: u32,
    /// The most dead letters kept, the newest (`PATCHWAVE_DEADLETTER_MAX`).
    pub dead_letter_max: usize,
}

/// The Azure services patchwave calls (design §7, §8). Each endpoint accepts a full base URL
/// (`http://127.0.0.1:PORT` for a stand-in) as well as the usual Azure value.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// Device Update account endpoint (`PATCHWAVE_ADU_ENDPOINT`), as a base URL.
    pub adu_endpoint: Option<String>,
    /// Device Update instance (`PATCHWAVE_ADU_INSTANCE`).
    pub adu_instance: Option<String>,
    /// Resource Manager base URL (`PATCHWAVE_ARM_ENDPOINT`).
    pub arm_endpoint: String,
    /// IoT Hub host (`PATCHWAVE_IOTHUB_HOST`), as a base URL.
    pub iothub: Option<String>,
    /// Which credential (`PATCHWAVE_CREDENTIAL`).
    pub credential: crate::azure::credential::CredentialKind,
    /// Service principal for `client-secret`: tenant, client id, secret (never printed).
    pub client_secret: Option<(String, String, String)>,
    /// Event Hubs namespace and hub for lifecycle events (`PATCHWAVE_EVENTHUB_*`).
    pub eventhub: Option<(String, String)>,
    /// JSON-lines file for lifecycle events when no Event Hub is set (`PATCHWAVE_EVENTS_FILE`).
    pub events_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for AzureSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSettings")
            .field("adu_endpoint", &self.adu_endpoint)
            .field("adu_instance", &self.adu_instance)
            .field("arm_endpoint", &self.arm_endpoint)
            .field("iothub", &self.iothub)
            .field("credential", &self.credential)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "(set)"),
            )
            .field("eventhub", &self.eventhub)
            .field("events_file", &self.events_file)
            .finish()
    }
}

/// Default Resource Manager endpoint.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";

/// A host name or URL as a base URL (`https://` when no scheme is given).
fn base_url(value: &str) -> String {
    let value = value.trim().trim_end_matches('/');
    if value.starts_with("http://") || value.starts_with("https://") {
        value.to_string()
    } else {
        format!("https://{value}")
    }
}

/// `PATCHWAVE_CREDENTIAL` (managed identity behind the host, else developer tools) and the
/// service principal `client-secret` needs.
#[allow(clippy::type_complexity)]
fn credential_settings(
    get: &impl Fn(&str) -> Option<String>,
    behind_host: bool,
) -> Result<
    (
        crate::azure::credential::CredentialKind,
        Option<(String, String, String)>,
    ),
    ConfigError,
> {
    use crate::azure::credential::CredentialKind;
    let credential = match get("PATCHWAVE_CREDENTIAL") {
        Some(value) => CredentialKind::parse(&value).map_err(|problem| ConfigError {
            variable: "PATCHWAVE_CREDENTIAL",
            value,
            problem,
        })?,
        None if behind_host => CredentialKind::ManagedIdentity,
        None => CredentialKind::DeveloperTools,
    };
    let client_secret = match (
        get("AZURE_TENANT_ID"),
        get("AZURE_CLIENT_ID"),
        get("AZURE_CLIENT_SECRET"),
    ) {
        (Some(tenant), Some(client), Some(secret)) => Some((tenant, client, secret)),
        _ if credential == CredentialKind::ClientSecret => {
            return Err(ConfigError {
                variable: "PATCHWAVE_CREDENTIAL",
                value: "client-secret".into(),
                problem: "needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".into(),
            })
        }
        _ => None,
    };
    Ok((credential, client_secret))
}

/// `PATCHWAVE_EVENTHUB_NAMESPACE` and `PATCHWAVE_EVENTHUB_NAME`: both, or neither.
fn eventhub_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(String, String)>, ConfigError> {
    match (
        get("PATCHWAVE_EVENTHUB_NAMESPACE"),
        get("PATCHWAVE_EVENTHUB_NAME"),
    ) {
        (Some(namespace), Some(name)) => Ok(Some((namespace, name))),
        (None, None) => Ok(None),
        (namespace, _) => {
            let variable = if namespace.is_some() {
                "PATCHWAVE_EVENTHUB_NAME"
            } else {
                "PATCHWAVE_EVENTHUB_NAMESPACE"
            };
            Err(ConfigError {
                variable,
                value: String::new(),
                problem:
                    "set both PATCHWAVE_EVENTHUB_NAMESPACE and PATCHWAVE_EVENTHUB_NAME, or neither"
                        .into(),
            })
        }
    }
}

fn azure_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    behind_host: bool,
) -> Result<AzureSettings, ConfigError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (credential, client_secret) = credential_settings(&get, behind_host)?;
    let eventhub = eventhub_settings(&get)?;
    Ok(AzureSettings {
        adu_endpoint: get("PATCHWAVE_ADU_ENDPOINT").map(|v| base_url(&v)),
        adu_instance: get("PATCHWAVE_ADU_INSTANCE"),
        arm_endpoint: get("PATCHWAVE_ARM_ENDPOINT")
            .map_or_else(|| DEFAULT_ARM_ENDPOINT.to_string(), |v| base_url(&v)),
        iothub: get("PATCHWAVE_IOTHUB_HOST").map(|v| base_url(&v)),
        credential,
        client_secret,
        eventhub,
        events_file: get("PATCHWAVE_EVENTS_FILE").map(std::path::PathBuf::from),
    })
}

/// `PATCHWAVE_STORE`, parsed once: `sqlite:PATH`, or `table:` followed by a connection string
/// or an endpoint URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// SQLite file.
    Sqlite(std::path::PathBuf),
    /// Azure Table Storage through a connection string (an account key, or
    /// `UseDevelopmentStorage=true` for Azurite): requests signed with Shared Key.
    TableConnectionString(String),
    /// Azure Table Storage at an endpoint URL (`https://ACCOUNT.table.core.windows.net`):
    /// bearer tokens from the credential `PATCHWAVE_CREDENTIAL` names.
    TableEndpoint(reqwest::Url),
}

/// Why a `PATCHWAVE_STORE` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreLocationError {
    /// Neither `sqlite:` nor `table:`.
    #[error("must start with sqlite: or table:")]
    Scheme,
    /// `sqlite:` with nothing after it.
    #[error("sqlite: needs a file path, e.g. sqlite:patchwave.db")]
    NoPath,
    /// `table:` with nothing after it.
    #[error("table: needs a connection string or an endpoint URL")]
    NoTarget,
    /// An endpoint that does not parse as a URL.
    #[error("table endpoint {endpoint:?} is not a URL: {source}")]
    NotAUrl {
        /// What was given.
        endpoint: String,
        /// Why it is not a URL.
        #[source]
        source: url::ParseError,
    },
    /// An endpoint with a query string.
    #[error("table endpoint must not carry a query (SAS tokens are not supported)")]
    Query,
}

impl StoreLocation {
    /// Parses the variable's value. After `table:`, an `http://` or `https://` URL with no `;`
    /// is an endpoint; anything else is a connection string (checked when the store opens).
    pub fn parse(value: &str) -> Result<Self, StoreLocationError> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(StoreLocationError::NoPath);
            }
            return Ok(StoreLocation::Sqlite(path.into()));
        }
        let Some(target) = value.strip_prefix("table:").map(str::trim) else {
            return Err(StoreLocationError::Scheme);
        };
        if target.is_empty() {
            return Err(StoreLocationError::NoTarget);
        }
        let lower = target.to_ascii_lowercase();
        if (lower.starts_with("https://") || lower.starts_with("http://")) && !target.contains(';')
        {
            return table_endpoint(target).map(StoreLocation::TableEndpoint);
        }
        Ok(StoreLocation::TableConnectionString(target.to_string()))
    }

    /// A description safe to log (no account key).
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreLocation::TableEndpoint(url) => {
                format!("table:{}", url.as_str().trim_end_matches('/'))
            }
            StoreLocation::TableConnectionString(_) => "table:(connection string)".into(),
        }
    }
}

/// The connection string holds the account key: `Debug` shows what [`StoreLocation::describe`]
/// shows.
impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreLocation({})", self.describe())
    }
}

/// A Table service endpoint: a URL without a query (no trailing `/`).
pub fn table_endpoint(text: &str) -> Result<reqwest::Url, StoreLocationError> {
    let url = reqwest::Url::parse(text.trim().trim_end_matches('/')).map_err(|source| {
        StoreLocationError::NotAUrl {
            endpoint: text.to_string(),
            source,
        }
    })?;
    if url.query().is_some() {
        return Err(StoreLocationError::Query);
    }
    Ok(url)
}

/// How operator calls are authorised (design §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `PATCHWAVE_AUTH=open`: every caller has every role (local use only).
    pub open: bool,
    /// Roles of callers that present a function key (`PATCHWAVE_KEY_ROLES`).
    pub key_roles: Vec<String>,
    /// SHA-256 hex digests of the keys accepted when standalone (`PATCHWAVE_FUNCTION_KEYS`).
    pub function_key_hashes: Vec<String>,
    /// Running under the Functions host, which checked the key before forwarding.
    pub behind_host: bool,
    /// App Service Authentication is on (`WEBSITE_AUTH_ENABLED=True`): only then does the
    /// platform strip callers' own `X-MS-CLIENT-PRINCIPAL` and set its own.
    pub platform_auth: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            open: false,
            key_roles: vec!["Rollout.Read".into(), "Rollout.Operate".into()],
            function_key_hashes: Vec::new(),
            behind_host: false,
            platform_auth: false,
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {problem}")]
pub struct ConfigError {
    /// Variable name.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A whole number variable within `min..=max`; `default` when unset or empty.
fn whole_number<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(value) = lookup(variable).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    match value.trim().parse::<T>() {
        Ok(number) if number >= min && number <= max => Ok(number),
        _ => Err(ConfigError {
            variable,
            value,
            problem: format!("must be a whole number from {min} to {max}"),
        }),
    }
}

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = port(&lookup)?;
        let store = store_location(&lookup)?;
        let auth = auth_settings(&lookup)?;
        let azure = azure_settings(&lookup, auth.behind_host)?;
        Ok(Settings {
            port,
            store,
            auth,
            azure,
            dead_letter_retention_days: whole_number(
                &lookup,
                "PATCHWAVE_DEADLETTER_RETENTION_DAYS",
                DEFAULT_DEAD_LETTER_RETENTION_DAYS,
                1,
                MAX_DEAD_LETTER_RETENTION_DAYS,
            )?,
            dead_letter_max: whole_number(
                &lookup,
                "PATCHWAVE_DEADLETTER_MAX",
                DEFAULT_DEAD_LETTER_MAX,
                1,
                usize::MAX,
            )?,
        })
    }
}

/// `FUNCTIONS_CUSTOMHANDLER_PORT`, else `PATCHWAVE_PORT`, else [`DEFAULT_PORT`].
fn port(lookup: &impl Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    let port = ["FUNCTIONS_CUSTOMHANDLER_PORT", "PATCHWAVE_PORT"]
        .into_iter()
        .find_map(|variable| {
            lookup(variable)
                .filter(|value| !value.trim().is_empty())
                .map(|value| (variable, value))
        })
        .map(|(variable, value)| {
            value.trim().parse::<u16>().map_err(|e| ConfigError {
                variable,
                value: value.clone(),
                problem: format!("not a port number ({e})"),
            })
        })
        .transpose()?;
    Ok(port.unwrap_or(DEFAULT_PORT))
}

/// `PATCHWAVE_STORE`, parsed once; SQLite at [`DEFAULT_SQLITE_PATH`] when unset.
fn store_location(lookup: &impl Fn(&str) -> Option<String>) -> Result<StoreLocation, ConfigError> {
    match lookup("PATCHWAVE_STORE").filter(|v| !v.trim().is_empty()) {
        None => Ok(StoreLocation::Sqlite(DEFAULT_SQLITE_PATH.into())),
        // the value may hold an account key: the error never repeats it
        Some(value) => StoreLocation::parse(&value).map_err(|problem| ConfigError {
            variable: "PATCHWAVE_STORE",
            value: "(unparsed)".into(),
            problem: problem.to_string(),
        }),
    }
}

/// `PATCHWAVE_AUTH`, `PATCHWAVE_KEY_ROLES`, `PATCHWAVE_FUNCTION_KEYS`, and what the platform
/// says (`FUNCTIONS_CUSTOMHANDLER_PORT` set: behind the host; `WEBSITE_AUTH_ENABLED`).
fn auth_settings(lookup: &impl Fn(&str) -> Option<String>) -> Result<AuthSettings, ConfigError> {
    let mut auth = AuthSettings::default();
    match lookup("PATCHWAVE_AUTH").map(|v| v.trim().to_ascii_lowercase()) {
        None => {}
        Some(mode) if mode.is_empty() || mode == "azure" => {}
        Some(mode) if mode == "open" => auth.open = true,
        Some(mode) => {
            return Err(ConfigError {
                variable: "PATCHWAVE_AUTH",
                value: mode,
                problem: "must be azure or open".into(),
            })
        }
    }
    if let Some(roles) = lookup("PATCHWAVE_KEY_ROLES").filter(|v| !v.trim().is_empty()) {
        auth.key_roles = list(&roles);
    }
    if let Some(keys) = lookup("PATCHWAVE_FUNCTION_KEYS") {
        auth.function_key_hashes = function_key_hashes(&keys)?;
    }
    auth.behind_host = lookup("FUNCTIONS_CUSTOMHANDLER_PORT").is_some();
    auth.platform_auth =
        lookup("WEBSITE_AUTH_ENABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Ok(auth)
}

/// `PATCHWAVE_FUNCTION_KEYS`: SHA-256 hex digests, lower-cased.
fn function_key_hashes(keys: &str) -> Result<Vec<String>, ConfigError> {
    let hashes: Vec<String> = list(keys)
        .into_iter()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    if let Some(bad) = hashes
        .iter()
        .find(|k| k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(ConfigError {
            variable: "PATCHWAVE_FUNCTION_KEYS",
            value: format!("{}…", bad.chars().take(6).collect::<String>()),
            problem: "each entry must be the SHA-256 hex digest of a key (64 hex digits)".into(),
        });
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn dead_letter_retention_has_defaults_and_refuses_what_is_not_a_count() {
        let defaults = settings(&[]).expect("defaults");
        assert_eq!(defaults.dead_letter_retention_days, 30);
        assert_eq!(defaults.dead_letter_max, 100_000);
        let set = settings(&[
            ("PATCHWAVE_DEADLETTER_RETENTION_DAYS", " 7 "),
            ("PATCHWAVE_DEADLETTER_MAX", "500"),
        ])
        .expect("set");
        assert_eq!(
            (set.dead_letter_retention_days, set.dead_letter_max),
            (7, 500)
        );
        for (variable, value) in [
            ("PATCHWAVE_DEADLETTER_RETENTION_DAYS", "0"),
            ("PATCHWAVE_DEADLETTER_RETENTION_DAYS", "-1"),
            ("PATCHWAVE_DEADLETTER_RETENTION_DAYS", "30d"),
            ("PATCHWAVE_DEADLETTER_RETENTION_DAYS", "36501"),
            ("PATCHWAVE_DEADLETTER_MAX", "0"),
            ("PATCHWAVE_DEADLETTER_MAX", "1e5"),
            ("PATCHWAVE_DEADLETTER_MAX", "100,000"),
        ] {
            let error = settings(&[(variable, value)]).expect_err(value);
            assert_eq!(error.variable, variable);
            assert!(
                error
                    .to_string()
                    .contains("must be a whole number from 1 to"),
                "{error}"
            );
        }
    }

    #[test]
    fn host_port_wins_then_patchwave_port_then_default() {
        assert_eq!(settings(&[]).map(|s| s.port), Ok(7071));
        assert_eq!(
            settings(&[("PATCHWAVE_PORT", "8080")]).map(|s| s.port),
            Ok(8080)
        );
        assert_eq!(
            settings(&[
                ("PATCHWAVE_PORT", "8080"),
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "40123")
            ])
            .map(|s| s.port),
            Ok(40123)
        );
        let error = settings(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "http")]).expect_err("bad port");
        assert!(
            error
                .to_string()
                .starts_with("FUNCTIONS_CUSTOMHANDLER_PORT=\"http\""),
            "{error}"
        );
    }

    #[test]
    fn the_store_location_is_parsed_once_into_its_kind() {
        assert_eq!(
            settings(&[]).map(|s| s.store),
            Ok(StoreLocation::Sqlite("patchwave.db".into()))
        );
        let endpoint = settings(&[(
            "PATCHWAVE_STORE",
            "table:https://acct.table.core.windows.net/",
        )])
        .expect("endpoint");
        assert!(
            matches!(&endpoint.store, StoreLocation::TableEndpoint(url) if url.host_str() == Some("acct.table.core.windows.net")),
            "{:?}",
            endpoint.store
        );
        assert_eq!(
            endpoint.store.describe(),
            "table:https://acct.table.core.windows.net"
        );
        let key = "AccountName=acct;AccountKey=c2VjcmV0";
        let connection = settings(&[("PATCHWAVE_STORE", &format!("table:{key}"))]).expect("key");
        assert_eq!(
            connection.store,
            StoreLocation::TableConnectionString(key.into())
        );
        assert!(!format!("{:?}", connection.store).contains("c2VjcmV0"));
        for (value, problem) in [
            ("postgres:x", "must start with sqlite: or table:"),
            ("sqlite:", "sqlite: needs a file path"),
            (
                "table:",
                "table: needs a connection string or an endpoint URL",
            ),
            ("table:https://", "is not a URL"),
            (
                "table:https://acct.table.core.windows.net?sv=1",
                "SAS tokens",
            ),
        ] {
            let error = settings(&[("PATCHWAVE_STORE", value)]).expect_err(value);
            assert_eq!(error.variable, "PATCHWAVE_STORE");
            assert!(error.problem.contains(problem), "{value}: {error}");
        }
    }
}
