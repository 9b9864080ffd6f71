//! Settings from the environment (design §8); the only place that reads variables.

/// Port used when neither the host nor the user names one.
pub const DEFAULT_PORT: u16 = 7071;

/// How the handler is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Port to listen on, on 127.0.0.1.
    pub port: u16,
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

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
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
            .transpose()?
            .unwrap_or(DEFAULT_PORT);
        Ok(Settings { port })
    }
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
}
